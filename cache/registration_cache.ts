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
  rcacheNative,
  RcacheStatus,
  type RcacheSymbols,
  RELEASE_QUEUE_SIZE,
  RELEASE_QUEUE_SLOTS,
  RESULT_RECORD_SIZE,
  ResultField,
  STAT_NAMES,
} from "../ffi/rcache.ts";
import { memHooks } from "../hooks/mem_hooks.ts";
import { Access, ACCESS_MASK } from "../verbs/constants.ts";
import { Errno, RdmaError } from "../verbs/errors.ts";
import { ProtectionDomain } from "../verbs/protection_domain.ts";
import { RegistrarDouble } from "./registrar_double.ts";

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

/** Counters and sizes from `RegistrationCache.stats()`. */
export type RegistrationCacheStats = Record<(typeof STAT_NAMES)[number], number>;

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
const ADDRESS_LIMIT = 1n << 53n;
const NEEDS_LOCAL_WRITE = Access.REMOTE_WRITE | Access.REMOTE_ATOMIC;

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

const leakedCaches = new FinalizationRegistry<number>((slot) => {
  rcacheNative().rcache_destroy(slot);
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

  /** @internal Made by RegistrationCache.get. */
  constructor(
    cache: RegistrationCache,
    target: unknown,
    length: number,
    hit: boolean,
    f64: Float64Array,
    u32: Uint32Array,
  ) {
    this.#cache = cache;
    this.#target = target;
    this.#address = f64[ResultField.ADDRESS];
    this.length = length;
    this.hit = hit;
    this.#handle = f64[ResultField.REGION];
    this.lkey = u32[ResultField.LKEY];
    this.rkey = u32[ResultField.RKEY];
    this.access = u32[ResultField.ACCESS];
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
  /** struct rcache_release_queue: [head, tail, retired] and the queued handles. */
  readonly #releaseControl: Int32Array;
  readonly #releaseHandles: Float64Array;
  /** Keeps the protection domain (or double) alive while regions are registered with it. */
  readonly #registrar: ProtectionDomain | RegistrarDouble;
  #closed = false;

  /**
   * Creates a cache over `pd` (or a RegistrarDouble, for logic tests without a device). Installs the
   * memory hooks if needed and refuses (RdmaError ENOSYS) when they cannot report both free and
   * mmap-family releases: without them a lazy cache could hand out stale registrations.
   */
  constructor(pd: ProtectionDomain | RegistrarDouble, options: RegistrationCacheOptions = {}) {
    if (options === null || typeof options !== "object") {
      throw new TypeError("options must be an object");
    }
    this.maxRegions = bound("maxRegions", options.maxRegions, DEFAULT_MAX_REGIONS);
    this.maxBytes = bound("maxBytes", options.maxBytes, DEFAULT_MAX_BYTES);
    if (options.merge !== undefined && typeof options.merge !== "boolean") {
      throw new TypeError("merge must be a boolean");
    }
    this.merge = options.merge ?? true;
    let pointer: Deno.PointerValue = null;
    let pinLimit = 0;
    if (pd instanceof RegistrarDouble) {
      pinLimit = pd.pinLimit;
    } else if (pd instanceof ProtectionDomain) {
      pointer = pd.pointerFor("RegistrationCache");
    } else {
      throw new TypeError("a RegistrationCache needs a ProtectionDomain (or a RegistrarDouble)");
    }
    this.#registrar = pd;
    const native = rcacheNative();
    const slot = native.rcache_create(
      pointer,
      pd instanceof RegistrarDouble ? 1 : 0,
      pinLimit,
      this.maxRegions,
      this.maxBytes,
      this.merge ? 1 : 0,
    );
    if (slot < 0) throw createError(native, slot);
    this.#native = native;
    this.#slot = slot;
    const record = Deno.UnsafePointerView.getArrayBuffer(
      native.rcache_result(slot)!,
      RESULT_RECORD_SIZE,
    );
    this.#f64 = new Float64Array(record, 0, 4);
    this.#u32 = new Uint32Array(record);
    this.#i32 = new Int32Array(record);
    const queue = Deno.UnsafePointerView.getArrayBuffer(
      native.rcache_release_queue(slot)!,
      RELEASE_QUEUE_SIZE,
    );
    this.#releaseControl = new Int32Array(queue, 0, 3);
    this.#releaseHandles = new Float64Array(queue, 16, RELEASE_QUEUE_SLOTS);
    leakedCaches.register(this, slot, this);
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
    memHooks.flushIfPending();
    if (access !== Access.LOCAL_WRITE) checkAccess(access);
    const native = this.#native;
    let status: number;
    let length: number;
    if (ArrayBuffer.isView(target)) {
      length = target.byteLength;
      if (length === 0) throw emptyBufferError(target.buffer);
      status = native.rcache_get_buffer(this.#slot, target, length, access);
      // Only a miss can be a growable buffer's memory: one refused at its miss leaves nothing.
      if (status === RcacheStatus.MISS && isGrowable(target.buffer)) throw this.#refuseGrowable();
    } else if (target instanceof ArrayBuffer || target instanceof SharedArrayBuffer) {
      length = target.byteLength;
      if (length === 0) throw emptyBufferError(target);
      status = native.rcache_get_buffer(this.#slot, target, length, access);
      if (status === RcacheStatus.MISS && isGrowable(target)) throw this.#refuseGrowable();
    } else if (target !== null && typeof target === "object" && "address" in target) {
      const a = target.address;
      length = target.length;
      if (typeof a !== "bigint") throw new TypeError("address must be a bigint");
      if (typeof length !== "number") throw new TypeError("length must be a number");
      if (!Number.isSafeInteger(length) || length < 1) {
        throw new RangeError(`length must be a positive integer, got ${length}`);
      }
      // The native side checks that address + length stays below the limit too.
      if (a <= 0n || a >= ADDRESS_LIMIT) {
        throw new RangeError(`address ${a} is outside the user address space`);
      }
      status = native.rcache_get(this.#slot, Number(a), length, access);
    } else {
      throw new TypeError(
        "target must be an ArrayBuffer, a typed array, a DataView or {address: bigint, length}",
      );
    }
    if (status < 0) throw this.#getError(status, this.#f64[ResultField.ADDRESS], length);
    return new Registration(
      this,
      target,
      length,
      status === RcacheStatus.HIT,
      this.#f64,
      this.#u32,
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
    return Object.fromEntries(STAT_NAMES.map((n, i) => [n, values[i]])) as RegistrationCacheStats;
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
  }

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
    const tail = control[1];
    if (((tail - control[0]) >>> 0) >= RELEASE_QUEUE_SLOTS || control[2] !== 0) {
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
    // semantics (cache/native/rcache.c) sees the handle. (The memory hooks are x86-64 only.)
    this.#releaseHandles[tail & (RELEASE_QUEUE_SLOTS - 1)] = handle;
    control[1] = (tail + 1) | 0;
  }

  /** Undoes the registration just returned (see isGrowable) and says why. */
  #refuseGrowable(): TypeError {
    this.#native.rcache_discard(this.#slot, this.#f64[ResultField.REGION]);
    return new TypeError("cannot register a resizable ArrayBuffer or growable SharedArrayBuffer");
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
      default:
        return new RdmaError("RegistrationCache.get", Errno.EIO, `unexpected status ${status}`);
    }
  }
}

/** The error for a buffer (or a view's buffer) with no bytes. */
function emptyBufferError(buffer: ArrayBufferLike): Error {
  if (buffer instanceof ArrayBuffer && buffer.detached) {
    return new TypeError("cannot register a detached ArrayBuffer");
  }
  return new RangeError("cannot register an empty buffer or view");
}

/** Resizable and growable buffers can change length under a registration: refused. */
function isGrowable(buffer: ArrayBufferLike): boolean {
  return (buffer as ArrayBuffer).resizable === true ||
    (buffer as SharedArrayBuffer).growable === true;
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
