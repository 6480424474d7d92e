/**
 * The FFI table of the registration cache's native part (`build/libdeno_rdma_rcache.so`, sources in
 * `cache/native/`), and typed views of the records and shared memory it keeps for TypeScript: the
 * result record, the release queue and the front words of each cache slot. Their layouts and
 * constants come from the C sources (`ffi/records/rcache.ts`, written by `deno task build`).
 *
 * Opened on first use. Addresses, lengths and region handles cross as doubles (f64): user-space
 * addresses on Linux fit in 47 bits, so they are exact, and the hot path needs no BigInt.
 *
 * @module
 */
import { openNativeLibrary } from "./loader.ts";
import { bytesAt } from "./pointers.ts";
import { RELEASE_QUEUE, RESULT, STAT, STAT_COUNT, STATUS } from "./records/rcache.ts";
import { FRONT_SLOTS, RELEASE_QUEUE_SLOTS } from "./records/rcache.ts";

export {
  FRONT_CLOSED,
  FRONT_HOLDS,
  FRONT_SLOTS,
  PERMISSION_ACCESS,
  RELEASE_QUEUE_SLOTS,
} from "./records/rcache.ts";

/** File name of the cache library in the build folder. */
export const RCACHE_LIBRARY = "libdeno_rdma_rcache.so";

/** The library's functions, by C name (cache/native/rcache.h). */
export const rcacheSymbols = {
  /** int rcache_create(const struct rcache_registrar *registrar, void *pd, double max_regions,
   * double max_bytes, int merge) */
  rcache_create: {
    parameters: ["pointer", "pointer", "f64", "f64", "i32"],
    result: "i32",
  },
  /** int rcache_destroy(int slot) */
  rcache_destroy: { parameters: ["i32"], result: "i32" },
  /** struct rcache_result *rcache_result(int slot) */
  rcache_result: { parameters: ["i32"], result: "pointer" },
  /** struct rcache_release_queue *rcache_release_queue(int slot) */
  rcache_release_queue: { parameters: ["i32"], result: "pointer" },
  /** int rcache_region_bounds(int slot, double region) */
  rcache_region_bounds: { parameters: ["i32", "f64"], result: "i32" },
  /** int rcache_get(int slot, double addr, double length, uint32_t access, int32_t front) */
  rcache_get: { parameters: ["i32", "f64", "f64", "u32", "i32"], result: "i32" },
  /** int rcache_get_buffer(int slot, const uint8_t *buffer, double length, uint32_t access,
   * int32_t front) */
  rcache_get_buffer: { parameters: ["i32", "buffer", "f64", "u32", "i32"], result: "i32" },
  /** _Atomic uint32_t *rcache_front(int slot) */
  rcache_front: { parameters: ["i32"], result: "pointer" },
  /** int rcache_put(int slot, double region) */
  rcache_put: { parameters: ["i32", "f64"], result: "i32" },
  /** int rcache_discard(int slot, double region) */
  rcache_discard: { parameters: ["i32", "f64"], result: "i32" },
  /** int rcache_flush(int slot) */
  rcache_flush: { parameters: ["i32"], result: "i32" },
  /** int rcache_stats(int slot, double *out, int count) */
  rcache_stats: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /** double rcache_memlock_limit(void) */
  rcache_memlock_limit: { parameters: [], result: "f64" },
  /** int rcache_hooks_support_level(void) */
  rcache_hooks_support_level: { parameters: [], result: "i32" },
  /** int rcache_hooks_status(void) */
  rcache_hooks_status: { parameters: [], result: "i32" },
  /** const char *rcache_hooks_missing(void): this thread's last refusal, function by function */
  rcache_hooks_missing: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened library's functions. */
export type RcacheNative = Deno.DynamicLibrary<typeof rcacheSymbols>["symbols"];

let library: Deno.DynamicLibrary<typeof rcacheSymbols> | undefined;

/** The cache library's symbols, opening it on first call. */
export function rcacheNative(): RcacheNative {
  library ??= openNativeLibrary(RCACHE_LIBRARY, rcacheSymbols);
  return library.symbols;
}

/** Results of rcache_get and the other calls (enum rcache_status); errors are negative. */
export const RcacheStatus = Object.freeze(STATUS);

/** The names of the values rcache_stats writes, in its order (enum rcache_stat). */
export const STAT_NAMES: readonly (keyof typeof STAT)[] = Object.freeze(
  (Object.keys(STAT) as (keyof typeof STAT)[]).sort((a, b) => STAT[a] - STAT[b]),
);
if (STAT_NAMES.length !== STAT_COUNT || STAT_NAMES.some((name, i) => STAT[name] !== i)) {
  throw new Error("ffi/records/rcache.ts: the stat indices are not 0 .. STAT_COUNT - 1");
}

/*
 * Element indexes are derived with shifts, not divisions: integer results, so V8 keeps them as
 * small integers (a division's result is a heap number, and indexing with one costs a conversion
 * on every get and release).
 */

/** Element indexes of the fields of struct rcache_result, in the view of their type. */
export const ResultField = Object.freeze(
  {
    /** Float64 index of the region handle. */
    REGION: RESULT.region >> 3,
    /** Float64 index of the registered region's first byte. */
    REGION_START: RESULT.region_start >> 3,
    /** Float64 index of the registered region's end (exclusive). */
    REGION_END: RESULT.region_end >> 3,
    /** Float64 index of the first byte asked for. */
    ADDRESS: RESULT.address >> 3,
    /** Uint32 index of lkey. */
    LKEY: RESULT.lkey >> 2,
    /** Uint32 index of rkey. */
    RKEY: RESULT.rkey >> 2,
    /** Int32 index of the failed registration's errno. */
    ERROR: RESULT.error >> 2,
    /** Uint32 index of the region's access bits. */
    ACCESS: RESULT.access >> 2,
    /** Int32 index of the region's front word, -1 when none. */
    FRONT: RESULT.front >> 2,
  } as const,
);

/** Int32 indexes of the release queue's control words (struct rcache_release_queue). */
export const ReleaseQueueField = Object.freeze(
  {
    HEAD: RELEASE_QUEUE.head >> 2,
    TAIL: RELEASE_QUEUE.tail >> 2,
    RETIRED: RELEASE_QUEUE.retired >> 2,
    DEFERRED: RELEASE_QUEUE.deferred >> 2,
  } as const,
);

/**
 * A cache slot's result record (struct rcache_result), in place: what the last rcache_get (or
 * rcache_region_bounds) of that slot wrote. Index it with ResultField.
 */
export interface ResultViews {
  /** The doubles: region, region_start, region_end, address. */
  readonly f64: Float64Array;
  /** The same bytes as unsigned words: lkey, rkey, access. */
  readonly u32: Uint32Array;
  /** The same bytes as signed words: error, front. */
  readonly i32: Int32Array;
}

/** A cache slot's release queue (struct rcache_release_queue), in place. */
export interface ReleaseQueueViews {
  /** head, tail, retired, deferred (ReleaseQueueField). */
  readonly control: Int32Array;
  /** RELEASE_QUEUE_SLOTS region handles. */
  readonly handles: Float64Array;
}

function bytesOf(pointer: Deno.PointerValue, length: number, what: string): ArrayBuffer {
  if (pointer === null) throw new RangeError(`the cache library has no ${what} for that slot`);
  return bytesAt(pointer, length).buffer as ArrayBuffer;
}

/** The result record of cache `slot` (valid for the life of the process: slots never move). */
export function resultViews(slot: number): ResultViews {
  const record = bytesOf(rcacheNative().rcache_result(slot), RESULT.size, "result record");
  return {
    f64: new Float64Array(record, 0, RESULT.lkey >> 3),
    u32: new Uint32Array(record),
    i32: new Int32Array(record),
  };
}

/** The release queue of cache `slot` (valid for the life of the process). */
export function releaseQueueViews(slot: number): ReleaseQueueViews {
  const queue = bytesOf(rcacheNative().rcache_release_queue(slot), RELEASE_QUEUE.size, "queue");
  return {
    control: new Int32Array(queue, 0, RELEASE_QUEUE.handles >> 2),
    handles: new Float64Array(queue, RELEASE_QUEUE.handles, RELEASE_QUEUE_SLOTS),
  };
}

/** The FRONT_SLOTS front words of cache `slot`, as Int32 (valid for the life of the process). */
export function frontWordsView(slot: number): Int32Array {
  return new Int32Array(bytesOf(rcacheNative().rcache_front(slot), FRONT_SLOTS * 4, "front words"));
}
