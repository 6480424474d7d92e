/**
 * The lazy-unpin registration cache.
 *
 * `get()` returns a registration covering the asked bytes with at least the asked access, reusing a
 * cached one when it can; `release()` makes it idle but keeps it registered (lazy unpinning) until
 * LRU eviction, `flush()`, `close()`, or the release of its memory. The memory hooks keep the cache
 * correct: when memory is unmapped, trimmed, remapped or madvised away, every cached region over it
 * leaves the index before the release returns, and idle ones are deregistered then too (or, when the
 * releasing thread is inside the allocator, libibverbs or the cache itself, at the next cache call).
 * A registration still held when its memory goes stays valid until released, and is then
 * deregistered. The region index lives in native code (cache/native/) because the hooks consult it
 * synchronously on whatever thread releases memory.
 *
 * @module
 */
import {
  frontWordsView,
  type RcacheNative,
  rcacheNative,
  RcacheStatus,
  RELEASE_QUEUE_SLOTS,
  ReleaseQueueField,
  releaseQueueViews,
  ResultField,
  resultViews,
} from "../ffi/rcache.ts";
import { interceptionGuard } from "../ffi/memhooks.ts";
import { loadAcquire, storeRelease } from "../ffi/ordered_words.ts";
import { memHooks } from "../hooks/mem_hooks.ts";
import { Access } from "../verbs/constants.ts";
import { Errno, RdmaError } from "../verbs/errors.ts";
import { NativeHandle } from "../verbs/handle.ts";
import { ProtectionDomain } from "../verbs/protection_domain.ts";
import { isSharedArrayBuffer } from "../verbs/buffer_facts.ts";
import { closedError, createError, getError } from "./errors.ts";
import { FrontEntry, HintTable, withKey } from "./front_entries.ts";
import { FrontWords } from "./front_words.ts";
import {
  bound,
  checkAccess,
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_REGIONS,
  type RegistrationCacheOptions,
} from "./options.ts";
import { CacheRegistrar, NATIVE_REGISTRAR } from "./registrar.ts";
import { BOUNDS, MADE_BY_CACHE, PUT, Registration } from "./registration.ts";
import { decodeStats, type RegistrationCacheStats, statsBuffer } from "./stats.ts";
import { type CacheTarget, knownTargetLength, readTarget } from "./targets.ts";

/**
 * Where to post from: a scatter/gather element (the shape `QueuePair.postSend`/`postRecv` take)
 * plus the registration to release after the work request completes.
 */
export interface CachedSge {
  /** First byte (struct ibv_sge addr). */
  address: bigint;
  /** Bytes (struct ibv_sge length). */
  length: number;
  /** struct ibv_sge lkey. */
  lkey: number;
  /** Release it when the work request has completed. */
  registration: Registration;
}

const leakedCaches = new FinalizationRegistry<{ slot: number; releasePd: () => void }>((cache) => {
  rcacheNative().rcache_destroy(cache.slot);
  cache.releasePd();
});

/** The lazy-unpin registration cache over one protection domain. */
export class RegistrationCache implements Disposable {
  /** Bound on registered regions (0 means none). */
  readonly maxRegions: number;
  /** Bound on registered bytes (0 means none). */
  readonly maxBytes: number;
  /** Whether overlapping/adjacent registrations of the same access are merged. */
  readonly merge: boolean;
  readonly #native: RcacheNative;
  readonly #slot: number;
  /** The native result record (struct rcache_result), by element type. */
  readonly #f64: Float64Array;
  readonly #u32: Uint32Array;
  readonly #i32: Int32Array;
  /** struct rcache_release_queue: [head, tail, retired, deferred] and the queued handles. */
  readonly #releaseControl: Int32Array;
  readonly #releaseHandles: Float64Array;
  /** The native front words (see cache/native/rcache.h). */
  readonly #front: FrontWords;
  /** What the last get of a target object returned, so reusing the object converts nothing. */
  readonly #byTarget = new WeakMap<object, FrontEntry>();
  /** What the last get at an address returned, for new objects over the same bytes. */
  readonly #hints = new HintTable();
  /** Address of each registered buffer's first byte: a non-resizable buffer's memory never moves
   * while the buffer lives. */
  readonly #bufferBases = new WeakMap<ArrayBufferLike, number>();
  /** Keeps the protection domain (or registrar) alive while regions are registered with it. */
  readonly #registrar: ProtectionDomain | CacheRegistrar;
  /** Gives the protection domain back (see NativeHandle.holdOpen). */
  readonly #releasePd: () => void;
  #closed = false;

  /**
   * Creates a cache over `pd` (or a registrar such as the RegistrarDouble, for logic tests without
   * a device). Installs the memory hooks if needed and refuses (RdmaError ENOSYS) when they cannot
   * report both free and mmap-family releases: without them a lazy cache could hand out stale
   * registrations.
   */
  constructor(pd: ProtectionDomain | CacheRegistrar, options: RegistrationCacheOptions = {}) {
    if (options === null || typeof options !== "object") {
      throw new TypeError("options must be an object");
    }
    // Each option read once, before the domain is checked: a getter may close it.
    this.maxRegions = bound("maxRegions", options.maxRegions, DEFAULT_MAX_REGIONS);
    this.maxBytes = bound("maxBytes", options.maxBytes, DEFAULT_MAX_BYTES);
    const merge: unknown = options.merge;
    if (merge !== undefined && typeof merge !== "boolean") {
      throw new TypeError("merge must be a boolean");
    }
    this.merge = merge ?? true;
    let registrar: Deno.PointerValue = null;
    let pointer: Deno.PointerValue = null;
    let releasePd = () => {};
    if (pd instanceof CacheRegistrar) {
      registrar = pd[NATIVE_REGISTRAR]();
    } else if (pd instanceof ProtectionDomain) {
      pointer = pd.pointerFor("RegistrationCache");
      // The native cache registers in this domain: it stays open (EBUSY) while the cache does.
      releasePd = NativeHandle.holdOpen(pd, "RegistrationCache");
    } else {
      throw new TypeError("a RegistrationCache needs a ProtectionDomain (or a RegistrarDouble)");
    }
    this.#registrar = pd;
    const native = rcacheNative();
    const slot = native.rcache_create(
      registrar,
      pointer,
      this.maxRegions,
      this.maxBytes,
      this.merge ? 1 : 0,
    );
    if (slot < 0) {
      releasePd();
      throw createError(native, slot);
    }
    this.#releasePd = releasePd;
    this.#native = native;
    this.#slot = slot;
    ({ f64: this.#f64, u32: this.#u32, i32: this.#i32 } = resultViews(slot));
    ({ control: this.#releaseControl, handles: this.#releaseHandles } = releaseQueueViews(slot));
    this.#front = new FrontWords(frontWordsView(slot), this.#releaseControl, interceptionGuard());
    leakedCaches.register(this, { slot, releasePd }, this);
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * A registration of `target`'s bytes with at least `access` (default LOCAL_WRITE). A buffer
   * target stays referenced while the registration is held. Throws TypeError/RangeError for bad
   * input, RdmaError when registration fails (ENOMEM/EAGAIN after evicting every idle region and
   * retrying, with the locked-memory limit in the message) or the cache is closed (EBADF).
   */
  get(target: CacheTarget, access: number = Access.LOCAL_WRITE): Registration {
    if (this.#closed) throw closedError("RegistrationCache.get");
    memHooks.flushIfPending(); // runs the program's hook listeners
    if (access !== Access.LOCAL_WRITE) checkAccess(access);
    // The hit path: the same object as before (any other value finds nothing).
    const entry = this.#byTarget.get(target as object);
    if (entry !== undefined) {
      // Only buffers and views that #getSlow took have entries without a key; read by the
      // engine's own accessors, so no user code runs for them.
      const length = knownTargetLength(target, entry.key);
      // After the last user code (listeners, the target's getters): one may have closed this cache
      // (and another may have taken its native slot).
      if (this.#closed) throw closedError("RegistrationCache.get");
      if (
        typeof length === "number" && length > 0 && Number.isSafeInteger(length) &&
        this.#front.hold(entry, length, access)
      ) {
        return this.#registration(target, entry, length);
      }
    }
    return this.#getSlow(target, access, entry);
  }

  /** The registration of a hold just taken through `entry`'s front word. */
  #registration(target: unknown, entry: FrontEntry, length: number): Registration {
    return new Registration(
      MADE_BY_CACHE,
      this,
      target,
      entry.address,
      length,
      true,
      entry.handle,
      entry.lkey,
      entry.rkey,
      entry.access,
    );
  }

  /**
   * get() when the target object brought no usable entry (`known`: the stale or unsuitable one it
   * brought, if any): checks the target, then looks the bytes up.
   */
  #getSlow(target: CacheTarget, access: number, known: FrontEntry | undefined): Registration {
    const bytes = readTarget(target, known, this.#bufferBases);
    const { buffer, offset, length, key } = bytes;
    let address = bytes.address;
    // After the last user code (the target's getters, or get()'s listeners): one may have closed
    // this cache, and another cache may have taken its native slot.
    if (this.#closed) throw closedError("RegistrationCache.get");
    const front = this.#front;
    const addressKnown = !Number.isNaN(address); // NaN: a buffer whose memory is not known yet
    if (addressKnown) {
      const hint = this.#hints.find(address);
      if (hint !== undefined && hint !== known && front.hold(hint, length, access)) {
        const hit = this.#registration(target, hint, length);
        this.#byTarget.set(target, hint.key === key ? hint : withKey(hint, key));
        return hit;
      }
    }
    const native = this.#native;
    const offered = front.offered;
    let status: number;
    if (buffer === null || addressKnown) {
      status = native.rcache_get(this.#slot, address, length, access, offered);
    } else {
      status = native.rcache_get_buffer(
        this.#slot,
        // FFI takes views of a SharedArrayBuffer, not the buffer itself.
        isSharedArrayBuffer(target) ? new Uint8Array(target) : target as BufferSource,
        length,
        access,
        offered,
      );
    }
    const f64 = this.#f64, u32 = this.#u32;
    const word = status >= 0 ? this.#i32[ResultField.FRONT] : -1;
    front.reported(word, offered);
    if (status < 0) {
      const errno = this.#i32[ResultField.ERROR];
      throw getError(native, status, errno, f64[ResultField.ADDRESS], length);
    }
    address = f64[ResultField.ADDRESS];
    if (buffer !== null && !addressKnown) {
      this.#bufferBases.set(buffer, address - offset);
    }
    const handle = f64[ResultField.REGION];
    const lkey = u32[ResultField.LKEY], rkey = u32[ResultField.RKEY];
    const regionAccess = u32[ResultField.ACCESS];
    if (word >= 0) {
      const generation = front.generation(word);
      const limit = f64[ResultField.REGION_END] - address;
      let entry = known;
      if (entry !== undefined && entry.address === address && entry.key === key) {
        // The same target and bytes, another region: update in place (no WeakMap insertion).
        entry.word = word;
        entry.generation = generation;
        entry.limit = limit;
        entry.handle = handle;
        entry.lkey = lkey;
        entry.rkey = rkey;
        entry.access = regionAccess;
      } else {
        entry = new FrontEntry(
          word,
          generation,
          address,
          limit,
          handle,
          lkey,
          rkey,
          regionAccess,
          key,
        );
        this.#byTarget.set(target, entry);
      }
      this.#hints.remember(address, entry);
    }
    const hit = status === RcacheStatus.HIT;
    return new Registration(
      MADE_BY_CACHE,
      this,
      target,
      address,
      length,
      hit,
      handle,
      lkey,
      rkey,
      regionAccess,
    );
  }

  /**
   * A scatter/gather element for `length` bytes at `offset` in `buffer` (default: to its end),
   * registered through the cache; release `registration` after the work request completes.
   */
  sge(
    buffer: ArrayBuffer | ArrayBufferView,
    offset = 0,
    length?: number,
    access: number = Access.LOCAL_WRITE,
  ): CachedSge {
    const view = ArrayBuffer.isView(buffer)
      ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
      : buffer instanceof ArrayBuffer
      ? new Uint8Array(buffer)
      : null;
    if (view === null) throw new TypeError("buffer must be an ArrayBuffer or a view of one");
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > view.byteLength) {
      throw new RangeError(`offset ${offset} is outside the ${view.byteLength}-byte buffer`);
    }
    const size = length ?? view.byteLength - offset;
    if (!Number.isSafeInteger(size) || size < 1 || offset + size > view.byteLength) {
      throw new RangeError(
        `length ${size} at offset ${offset} does not fit the ${view.byteLength}-byte buffer`,
      );
    }
    const part = view.subarray(offset, offset + size);
    const registration = this.get(part, access);
    return { address: registration.address, length: size, lkey: registration.lkey, registration };
  }

  /** Counters and sizes (see RegistrationCacheStats). */
  stats(): RegistrationCacheStats {
    if (this.#closed) throw closedError("RegistrationCache.stats");
    memHooks.flushIfPending();
    const values = statsBuffer();
    this.#native.rcache_stats(this.#slot, values, values.length);
    return decodeStats(values, this.#front.hits);
  }

  /** Deregisters every idle region now. */
  flush(): void {
    if (this.#closed) throw closedError("RegistrationCache.flush");
    memHooks.flushIfPending();
    this.#native.rcache_flush(this.#slot);
  }

  /**
   * Deregisters everything, held registrations included (their later release() throws EBADF).
   * Idempotent; any other later use throws RdmaError EBADF.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    leakedCaches.unregister(this);
    this.#native.rcache_destroy(this.#slot);
    this.#releasePd();
  }

  /** `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal Registration.regionAddress/regionLength: [start, end) of a held region. */
  [BOUNDS](handle: number): [number, number] {
    if (this.#closed) throw closedError("Registration.region");
    this.#native.rcache_region_bounds(this.#slot, handle);
    return [this.#f64[ResultField.REGION_START], this.#f64[ResultField.REGION_END]];
  }

  /**
   * @internal Registration.release. Queues the release for native code without a call (see
   * struct rcache_release_queue): the next operation, or a release hook on any thread, applies it
   * before anything else, so the region is idle before its memory can go.
   */
  [PUT](handle: number): void {
    if (this.#closed) throw closedError("Registration.release");
    const control = this.#releaseControl;
    // Only this thread writes tail. Head with acquire (ffi/ordered_words.ts): the consumer read
    // the slots below it before it stored it (release), so they may be overwritten. A stale head
    // only hides free slots, a stale retired count only delays one deregistration.
    const tail = control[ReleaseQueueField.TAIL];
    if (
      ((tail - loadAcquire(control, ReleaseQueueField.HEAD)) >>> 0) >= RELEASE_QUEUE_SLOTS ||
      loadAcquire(control, ReleaseQueueField.RETIRED) !== 0
    ) {
      // The queue is full, or retired regions exist (this may be one: deregister it now): release
      // with a call, after the queued ones. A queued release calls nothing, so TypeScript hook
      // listeners get their events at the next get/stats/flush instead.
      memHooks.flushIfPending();
      const status = this.#native.rcache_put(this.#slot, handle);
      if (status < 0) {
        throw new RdmaError("Registration.release", Errno.EINVAL, `cache reports status ${status}`);
      }
      return;
    }
    // Handle first, then tail with release, so a reader that loads tail with acquire
    // (cache/native/deferred.c) sees the handle on any CPU.
    this.#releaseHandles[tail & (RELEASE_QUEUE_SLOTS - 1)] = handle;
    storeRelease(control, ReleaseQueueField.TAIL, (tail + 1) | 0);
  }
}
