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
  FRONT_CLOSED,
  FRONT_HOLDS,
  FRONT_SLOTS,
  frontWordsView,
  PERMISSION_ACCESS,
  rcacheNative,
  RcacheStatus,
  type RcacheSymbols,
  RELEASE_QUEUE_SLOTS,
  ReleaseQueueField,
  releaseQueueViews,
  ResultField,
  resultViews,
  STAT_NAMES,
} from "../ffi/rcache.ts";
import { memHooks } from "../hooks/mem_hooks.ts";
import { Access, ACCESS_MASK } from "../verbs/constants.ts";
import { Errno, RdmaError } from "../verbs/errors.ts";
import { NativeHandle } from "../verbs/handle.ts";
import { ProtectionDomain } from "../verbs/protection_domain.ts";
import { CHECK_POSTABLE } from "../verbs/scatter_gather.ts";
import {
  bufferByteLength,
  isArrayBuffer,
  isDetached,
  isGrowable,
  isSharedArrayBuffer,
  viewFacts,
  viewLength,
} from "../verbs/buffer_facts.ts";
import { CacheRegistrar, NATIVE_REGISTRAR } from "./registrar.ts";

/** What to register: a buffer or view (all its bytes), or native memory. */
export type CacheTarget =
  | ArrayBuffer
  | SharedArrayBuffer
  | ArrayBufferView
  | { address: bigint; length: number };

/** Options of `new RegistrationCache`. */
export interface RegistrationCacheOptions {
  /** Registered regions kept at most (held ones included; only idle ones are evicted). Default
   * 16384; `Infinity` for no bound. */
  maxRegions?: number;
  /** Registered bytes kept at most, likewise. Default 1 GiB; `Infinity` for no bound. */
  maxBytes?: number;
  /** Register the union with overlapping or adjacent regions of the same access. Default true. */
  merge?: boolean;
}

/**
 * Counters and sizes from `RegistrationCache.stats()`. `hits` counts every hit; `fastHits` those
 * served without a native call (the same target object, or the same address, as a recent get).
 */
export type RegistrationCacheStats = {
  /** Calls of `get()` (and `sge()`), fast hits included. */
  gets: number;
  /** Gets served by a region already registered, fast hits included. */
  hits: number;
  /** Gets that registered a new region. */
  misses: number;
  /** Registrations of the union with overlapping or adjacent regions of the same access. */
  merges: number;
  /** Idle regions deregistered to stay within `maxRegions`/`maxBytes`, or before a limitRetry. */
  evictions: number;
  /** Regions taken out of the index because their memory was released. */
  invalidations: number;
  /** Deregistrations, for any reason. */
  deregistrations: number;
  /** Deregistrations done inside the releasing call, before the memory went. */
  deregistrationsInRelease: number;
  /** Deregistrations of released memory done at the next cache call (the hook could not). */
  deregistrationsDeferred: number;
  /** Registrations made (each a new region). */
  registrations: number;
  /** Regions registered now, held retired ones included. */
  regions: number;
  /** Bytes registered now, held retired regions included. */
  bytes: number;
  /** Regions held now (not idle). */
  inUse: number;
  /** Regions a lookup can find now. */
  indexedRegions: number;
  /** Registrations that failed with ENOMEM/EAGAIN, retried after evicting every idle region. */
  limitRetries: number;
  /** Times the ring of deferred releases overflowed (or had a stuck cell): every region went. */
  pendingOverflows: number;
  /** Deregistrations the registrar reported failing. */
  deregistrationFailures: number;
  /** Releases of a registration the cache did not hold (a bug). */
  badReleases: number;
  /**
   * Memory releases (munmap, free, ...) in the process that touched the spans of this cache's
   * regions, so the release hook applied or queued them; the others it passed over.
   */
  releasesExamined: number;
  /** Hits served without a native call (counted in `hits` and `gets` too). */
  fastHits: number;
};

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

const DEFAULT_MAX_REGIONS = 16384;
const DEFAULT_MAX_BYTES = 1024 * 1024 * 1024;
const PUT = Symbol("put");
const BOUNDS = Symbol("bounds");
/** Addresses cross to native code as doubles: exact below 2^53, far above any user address. */
const ADDRESS_LIMIT = 2 ** 53;
const NEEDS_LOCAL_WRITE = Access.REMOTE_WRITE | Access.REMOTE_ATOMIC;

/**
 * What a get remembers for the next get of the same target, or at the same address: the region it
 * returned and the front word that stands for it (see cache/native/rcache.h).
 */
class FrontEntry {
  constructor(
    public word: number,
    /** The word's binding when this was made: a rebound word makes the entry stale. */
    public generation: number,
    /** The address asked for, as a number. */
    readonly address: number,
    /** Bytes from `address` to the region's end. */
    public limit: number,
    public handle: number,
    public lkey: number,
    public rkey: number,
    public access: number,
    /** For an `{address, length}` target: the address it had (the object may change). */
    readonly key: bigint | undefined,
  ) {}
}

/** Size of the table of entries by address (direct-mapped: a collision replaces). */
const HINT_SLOTS = 2 * FRONT_SLOTS;

/** The hint table's slot for an address: bits 4-31 folded (ToUint32 keeps the low 32 bits). */
function hintSlot(address: number): number {
  return ((address >>> 4) ^ (address >>> 17)) & (HINT_SLOTS - 1);
}

function bound(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Infinity) return 0; // 0 is "unbounded" in the native cache
  if (typeof value !== "number") throw new TypeError(`${name} must be a number`);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer or Infinity, got ${value}`);
  }
  return value;
}

function checkAccess(access: unknown): number {
  if (typeof access !== "number") throw new TypeError("access must be a number (Access bits)");
  if (!Number.isInteger(access) || access < 0 || (access & ~ACCESS_MASK) !== 0) {
    throw new RangeError(`access ${access} has bits that are not IBV_ACCESS_* flags`);
  }
  if ((access & NEEDS_LOCAL_WRITE) !== 0 && (access & Access.LOCAL_WRITE) === 0) {
    throw new RangeError("REMOTE_WRITE and REMOTE_ATOMIC access need LOCAL_WRITE too");
  }
  return access;
}

function closedError(operation: string): RdmaError {
  return new RdmaError(operation, Errno.EBADF, "the registration cache is closed");
}

/** Proof that a Registration is being made by this module (see its constructor). */
const MADE_BY_CACHE: unique symbol = Symbol("RegistrationCache");

const leakedCaches = new FinalizationRegistry<{ slot: number; releasePd: () => void }>((cache) => {
  rcacheNative().rcache_destroy(cache.slot);
  cache.releasePd();
});

/** A cached registration: use `lkey`/`rkey`, then `release()` (or `using`). */
export class Registration implements Disposable {
  /** Local key, for scatter/gather elements. */
  readonly lkey: number;
  /** Remote key, for a peer's RDMA READ/WRITE (only with remote access). */
  readonly rkey: number;
  /** Bytes asked for (from `address`). */
  readonly length: number;
  /** IBV_ACCESS_* bits of the underlying region (a superset of those asked for). */
  readonly access: number;
  /** True when the cache already had a covering region. */
  readonly hit: boolean;
  readonly #address: number;
  readonly #handle: number;
  #cache: RegistrationCache | null;
  /** Keeps a registered buffer alive (and its memory mapped) while held. */
  #target: unknown;

  /** Made by RegistrationCache.get only (its handle goes to native code on release). */
  constructor(
    token: typeof MADE_BY_CACHE,
    cache: RegistrationCache,
    target: unknown,
    address: number,
    length: number,
    hit: boolean,
    handle: number,
    lkey: number,
    rkey: number,
    access: number,
  ) {
    if (token !== MADE_BY_CACHE) {
      throw new TypeError("a Registration comes from RegistrationCache.get");
    }
    this.#cache = cache;
    this.#target = target;
    this.#address = address;
    this.length = length;
    this.hit = hit;
    this.#handle = handle;
    this.lkey = lkey;
    this.rkey = rkey;
    this.access = access;
  }

  /** First byte asked for. */
  get address(): bigint {
    return BigInt(this.#address);
  }

  /** First byte of the registered region (merging can make it larger than what was asked). */
  get regionAddress(): bigint {
    return BigInt(this.#bounds()[0]);
  }

  /** Bytes in the registered region. */
  get regionLength(): number {
    const [start, end] = this.#bounds();
    return end - start;
  }

  #bounds(): [number, number] {
    const cache = this.#cache;
    if (cache === null) {
      throw new RdmaError("Registration.region", Errno.EBADF, "registration already released");
    }
    return cache[BOUNDS](this.#handle);
  }

  /** True after `release()`. */
  get released(): boolean {
    return this.#cache === null;
  }

  /** Gives the registration back to the cache; a second call throws RdmaError EBADF. */
  release(): void {
    const cache = this.#cache;
    if (cache === null) {
      throw new RdmaError("Registration.release", Errno.EBADF, "registration already released");
    }
    this.#cache = null;
    this.#target = null;
    cache[PUT](this.#handle);
  }

  /** Releases unless already released. */
  [Symbol.dispose](): void {
    if (this.#cache !== null) this.release();
  }

  /** @internal Posting it as a scatter/gather element: RdmaError EBADF once released. */
  [CHECK_POSTABLE](verb: string): void {
    if (this.#cache === null) {
      throw new RdmaError(verb, Errno.EBADF, "the cached registration was released");
    }
    if (this.#cache.closed) {
      throw new RdmaError(verb, Errno.EBADF, "the registration cache was closed");
    }
  }
}

/** The lazy-unpin registration cache over one protection domain. */
export class RegistrationCache implements Disposable {
  /** Bound on registered regions (0 means none). */
  readonly maxRegions: number;
  /** Bound on registered bytes (0 means none). */
  readonly maxBytes: number;
  /** Whether overlapping/adjacent registrations of the same access are merged. */
  readonly merge: boolean;
  readonly #native: RcacheSymbols;
  readonly #slot: number;
  readonly #f64: Float64Array;
  readonly #u32: Uint32Array;
  readonly #i32: Int32Array;
  /** struct rcache_release_queue: [head, tail, retired, deferred] and the queued handles. */
  readonly #releaseControl: Int32Array;
  readonly #releaseHandles: Float64Array;
  /** The native front words (see cache/native/rcache.h) and how often each was bound. */
  readonly #frontWords: Int32Array;
  readonly #frontGenerations = new Uint32Array(FRONT_SLOTS);
  /** The front word the next region without one gets (round robin). */
  #nextFront = 0;
  #frontHits = 0;
  /** What the last get of a target object returned, so reusing the object converts nothing. */
  readonly #byTarget = new WeakMap<object, FrontEntry>();
  /** What the last get at an address returned, for new objects over the same bytes. */
  readonly #hintAddresses = new Float64Array(HINT_SLOTS).fill(NaN);
  readonly #hintEntries: (FrontEntry | undefined)[] = new Array(HINT_SLOTS).fill(undefined);
  /** Address of each registered buffer's first byte: a non-resizable buffer's memory never moves
   * while the buffer lives. */
  readonly #bufferBases = new WeakMap<ArrayBufferLike, number>();
  /** Keeps the protection domain (or double) alive while regions are registered with it. */
  readonly #registrar: ProtectionDomain | CacheRegistrar;
  /** Gives the protection domain back (see NativeHandle.holdOpen). */
  readonly #releasePd: () => void;
  #closed = false;

  /**
   * Creates a cache over `pd` (or a RegistrarDouble, for logic tests without a device). Installs the
   * memory hooks if needed and refuses (RdmaError ENOSYS) when they cannot report both free and
   * mmap-family releases: without them a lazy cache could hand out stale registrations.
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
    this.#frontWords = frontWordsView(slot);
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
      let length: unknown;
      if (entry.key === undefined) {
        // Only buffers and views that #getSlow took have such entries; read by the engine's own
        // accessors, so no user code runs. 0 once detached.
        length = ArrayBuffer.isView(target)
          ? viewLength(target)
          : bufferByteLength(target as ArrayBufferLike);
      } else if ((target as { address: unknown }).address === entry.key) {
        length = (target as { length: unknown }).length;
      }
      // After the last user code (listeners, the target's getters): one may have closed this cache
      // (and another may have taken its native slot).
      if (this.#closed) throw closedError("RegistrationCache.get");
      if (typeof length === "number" && length > 0 && Number.isSafeInteger(length)) {
        const hit = this.#frontHit(entry, target, length, access);
        if (hit !== null) return hit;
      }
    }
    return this.#getSlow(target, access, entry);
  }

  /**
   * get() when the target object brought no usable entry (`known`: the stale or unsuitable one it
   * brought, if any): checks the target, then looks the bytes up.
   */
  #getSlow(target: CacheTarget, access: number, known: FrontEntry | undefined): Registration {
    let buffer: ArrayBufferLike | null = null;
    let key: bigint | undefined;
    let offset = 0;
    let address: number;
    let length: number;
    // Buffers and views are read by the engine's own accessors: no getter of theirs runs.
    if (ArrayBuffer.isView(target)) {
      // The buffer first: it also moves a small typed array's bytes off the V8 heap, where they
      // could move.
      [buffer, offset, length] = viewFacts(target);
      if (length === 0) throw emptyBufferError(buffer);
      if (isGrowable(buffer)) throw growableError();
      // A view's bytes never move, so an entry of this same view knows its address.
      address = known !== undefined && known.key === undefined
        ? known.address
        : (this.#bufferBases.get(buffer) ?? NaN) + offset;
    } else if (isArrayBuffer(target) || isSharedArrayBuffer(target)) {
      buffer = target;
      length = bufferByteLength(target);
      if (length === 0) throw emptyBufferError(target);
      if (isGrowable(buffer)) throw growableError();
      address = known !== undefined && known.key === undefined
        ? known.address
        : this.#bufferBases.get(target) ?? NaN;
    } else if (target !== null && typeof target === "object" && "address" in target) {
      key = target.address;
      length = target.length;
      if (typeof key !== "bigint") throw new TypeError("address must be a bigint");
      if (typeof length !== "number") throw new TypeError("length must be a number");
      if (!Number.isSafeInteger(length) || length < 1) {
        throw new RangeError(`length must be a positive integer, got ${length}`);
      }
      // Number() rounds, but not across these bounds. The native side checks the end too.
      address = known?.key === key ? known.address : Number(key);
      if (address <= 0 || address >= ADDRESS_LIMIT) {
        throw new RangeError(`address ${key} is outside the user address space`);
      }
    } else {
      throw new TypeError(
        "target must be an ArrayBuffer, a typed array, a DataView or {address: bigint, length}",
      );
    }
    // After the last user code (the target's getters, or get()'s listeners): one may have closed
    // this cache, and another cache may have taken its native slot.
    if (this.#closed) throw closedError("RegistrationCache.get");
    const addressKnown = !Number.isNaN(address); // NaN: a buffer whose memory is not known yet
    if (addressKnown) {
      const slot = hintSlot(address);
      const hint = this.#hintAddresses[slot] === address ? this.#hintEntries[slot] : undefined;
      if (hint !== undefined && hint !== known) {
        const hit = this.#frontHit(hint, target, length, access);
        if (hit !== null) {
          this.#byTarget.set(target, hint.key === key ? hint : withKey(hint, key));
          return hit;
        }
      }
    }
    const native = this.#native;
    const offered = this.#nextFront;
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
    if (word === offered) {
      // Bound to a region just now: entries made for the word's previous region are stale.
      this.#frontGenerations[word]++;
      this.#nextFront = (offered + 1) % FRONT_SLOTS;
    }
    if (status < 0) throw this.#getError(status, f64[ResultField.ADDRESS], length);
    address = f64[ResultField.ADDRESS];
    if (buffer !== null && !addressKnown) {
      this.#bufferBases.set(buffer, address - offset);
    }
    const handle = f64[ResultField.REGION];
    const lkey = u32[ResultField.LKEY], rkey = u32[ResultField.RKEY];
    const regionAccess = u32[ResultField.ACCESS];
    if (word >= 0) {
      const generation = this.#frontGenerations[word];
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
      const slot = hintSlot(address);
      this.#hintAddresses[slot] = address;
      this.#hintEntries[slot] = entry;
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
   * The hit that makes no native call, from what an earlier get remembered: if the region covers
   * `length` bytes with the access and its front word is still open and bound to it, one atomic
   * add on the word takes the hold (see cache/native/rcache.h for why that is safe against
   * release hooks on other threads). Null when the native lookup must decide.
   */
  #frontHit(
    entry: FrontEntry,
    target: unknown,
    length: number,
    access: number,
  ): Registration | null {
    // A release whose invalidation a hook deferred, or a drain is applying, is not in the front
    // words yet: the word is non-zero until it is (rcache.h). (A plain read:
    // the atomic add of the previous hit keeps the compiler from reusing an older value.)
    if (this.#releaseControl[ReleaseQueueField.DEFERRED] !== 0) return null;
    const word = entry.word;
    if (
      length > entry.limit ||
      (entry.access & access) !== access ||
      (entry.access & ~PERMISSION_ACCESS) !== (access & ~PERMISSION_ACCESS) ||
      this.#frontGenerations[word] !== entry.generation
    ) {
      return null;
    }
    const words = this.#frontWords;
    // Closed stays closed until this thread rebinds the word: a plain read can say no for sure.
    // Only this thread adds, so a word below its full count cannot overflow into the closed bit;
    // a full one leaves the next holds to the native count (FRONT_HOLDS < FRONT_CLOSED).
    if (words[word] >= FRONT_HOLDS) return null;
    if ((Atomics.add(words, word, 1) & FRONT_CLOSED) !== 0) {
      Atomics.sub(words, word, 1); // the region left the index (its entries stay, and fail here)
      return null;
    }
    this.#frontHits++;
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
    const values = new Float64Array(STAT_NAMES.length);
    this.#native.rcache_stats(this.#slot, values, values.length);
    const stats = Object.fromEntries(STAT_NAMES.map((n, i) => [n, values[i]]));
    stats.gets += this.#frontHits;
    stats.hits += this.#frontHits;
    stats.fastHits = this.#frontHits;
    return stats as RegistrationCacheStats;
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
    // Plain reads: a stale head only hides free slots, a stale retired count only delays one
    // deregistration to the next operation.
    const tail = control[ReleaseQueueField.TAIL];
    if (
      ((tail - control[ReleaseQueueField.HEAD]) >>> 0) >= RELEASE_QUEUE_SLOTS ||
      control[ReleaseQueueField.RETIRED] !== 0
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
    // Handle first, then tail, as two plain stores: V8 keeps stores to typed arrays in program
    // order and x86-64 does not reorder stores, so a reader that loads tail with acquire
    // semantics (cache/native/deferred.c) sees the handle. (The memory hooks are x86-64 only.)
    this.#releaseHandles[tail & (RELEASE_QUEUE_SLOTS - 1)] = handle;
    control[ReleaseQueueField.TAIL] = (tail + 1) | 0;
  }

  #getError(status: number, address: number, length: number): Error {
    const what = `${length} bytes at 0x${address.toString(16)}`;
    const errno = this.#i32[ResultField.ERROR];
    switch (status) {
      case RcacheStatus.CLOSED:
        return closedError("RegistrationCache.get");
      case RcacheStatus.RANGE:
        return new RangeError(`${length} bytes from that address leave the user address space`);
      case RcacheStatus.LIMIT: {
        const limit = this.#native.rcache_memlock_limit();
        const limitText = limit < 0 ? "unlimited" : `${limit} bytes`;
        return new RdmaError(
          "ibv_reg_mr",
          errno,
          `registering ${what} hit the locked-memory limit (RLIMIT_MEMLOCK ${limitText}, or a ` +
            `device limit) even after evicting every idle cached region; release registrations ` +
            `or raise the limit (ulimit -l)`,
        );
      }
      case RcacheStatus.REGISTER:
        return new RdmaError("ibv_reg_mr", errno, `registering ${what}`);
      case RcacheStatus.NO_MEMORY:
        return new RdmaError("RegistrationCache.get", Errno.ENOMEM, "out of memory");
      case RcacheStatus.HOLDS:
        return new RdmaError(
          "RegistrationCache.get",
          Errno.EOVERFLOW,
          `the region of ${what} already counts 2^31 holds: registrations are never released`,
        );
      default:
        return new RdmaError("RegistrationCache.get", Errno.EIO, `unexpected status ${status}`);
    }
  }
}

/** The error for a buffer (or a view's buffer) with no bytes. */
function emptyBufferError(buffer: ArrayBufferLike): Error {
  if (isDetached(buffer)) {
    return new TypeError("cannot register a detached ArrayBuffer");
  }
  return new RangeError("cannot register an empty buffer or view");
}

/** `entry` for a target of another kind (`key`: the address of an `{address, length}` target). */
function withKey(entry: FrontEntry, key: bigint | undefined): FrontEntry {
  return new FrontEntry(
    entry.word,
    entry.generation,
    entry.address,
    entry.limit,
    entry.handle,
    entry.lkey,
    entry.rkey,
    entry.access,
    key,
  );
}

/** Resizable and growable buffers can change length under a registration: refused, hit or miss. */
function growableError(): TypeError {
  return new TypeError("cannot register a resizable ArrayBuffer or growable SharedArrayBuffer");
}

function createError(native: RcacheSymbols, status: number): Error {
  const level = native.rcache_hooks_support_level();
  switch (status) {
    case RcacheStatus.UNSUPPORTED:
      return new RdmaError(
        "RegistrationCache",
        Errno.ENOSYS,
        `the memory hooks report support level 0x${level.toString(16)}; a lazy registration ` +
          `cache needs FREE and MMAP support, or released memory could stay registered`,
      );
    case RcacheStatus.HOOKS:
      return new RdmaError(
        "RegistrationCache",
        Errno.EIO,
        `installing the memory hooks failed (opal code ${native.rcache_hooks_status()})`,
      );
    case RcacheStatus.TOO_MANY:
      return new RdmaError("RegistrationCache", Errno.ENOMEM, "too many registration caches open");
    default:
      return new RdmaError("RegistrationCache", Errno.EIO, `unexpected status ${status}`);
  }
}
