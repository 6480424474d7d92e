/**
 * The FFI table of the registration cache's native part (`build/libdeno_rdma_rcache.so`, sources in
 * `cache/native/`), and the layout of the records it shares with TypeScript.
 *
 * Opened on first use. Addresses, lengths and region handles cross as doubles (f64): user-space
 * addresses on Linux fit in 47 bits, so they are exact, and the hot path needs no BigInt.
 *
 * @module
 */
import { openNativeLibrary } from "./loader.ts";

/** File name of the cache library in the build folder. */
export const RCACHE_FILE = "libdeno_rdma_rcache.so";

const SYMBOLS = {
  rcache_create: {
    parameters: ["pointer", "i32", "f64", "f64", "f64", "i32"],
    result: "i32",
  },
  rcache_destroy: { parameters: ["i32"], result: "i32" },
  rcache_result: { parameters: ["i32"], result: "pointer" },
  rcache_release_queue: { parameters: ["i32"], result: "pointer" },
  rcache_region_bounds: { parameters: ["i32", "f64"], result: "i32" },
  rcache_get: { parameters: ["i32", "f64", "f64", "u32", "i32"], result: "i32" },
  rcache_get_buffer: { parameters: ["i32", "buffer", "f64", "u32", "i32"], result: "i32" },
  rcache_front: { parameters: ["i32"], result: "pointer" },
  rcache_put: { parameters: ["i32", "f64"], result: "i32" },
  rcache_discard: { parameters: ["i32", "f64"], result: "i32" },
  rcache_flush: { parameters: ["i32"], result: "i32" },
  rcache_stats: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  rcache_memlock_limit: { parameters: [], result: "f64" },
  rcache_hooks_support_level: { parameters: [], result: "i32" },
  rcache_hooks_status: { parameters: [], result: "i32" },
  rcache_double_counters: { parameters: ["buffer", "i32"], result: "i32" },
  rcache_double_set_dereg_delay: { parameters: ["f64"], result: "void" },
  rcache_testing_add_holds: { parameters: ["f64", "f64", "i32"], result: "i32" },
  rcache_testing_jam_rings: { parameters: ["i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened library's functions. */
export type RcacheSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let library: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

/** The cache library's symbols, opening it on first call. */
export function rcacheNative(): RcacheSymbols {
  library ??= openNativeLibrary(RCACHE_FILE, SYMBOLS);
  return library.symbols;
}

/** rcache_get results (cache/native/rcache.h). Errors are negative. */
export const RcacheStatus = Object.freeze(
  {
    HIT: 0,
    MISS: 1,
    CLOSED: -1,
    LIMIT: -2,
    REGISTER: -3,
    NO_MEMORY: -4,
    HOOKS: -5,
    UNSUPPORTED: -6,
    TOO_MANY: -7,
    RANGE: -8,
    STATE: -9,
    HOLDS: -10,
  } as const,
);

/** Size in bytes of struct rcache_result. */
export const RESULT_RECORD_SIZE = 56;

/** Field offsets of struct rcache_result: four doubles, then six 32-bit words. */
export const ResultField = Object.freeze(
  {
    /** Float64 index of the region handle. */
    REGION: 0,
    /** Float64 index of the registered region's first byte. */
    REGION_START: 1,
    /** Float64 index of the registered region's end (exclusive). */
    REGION_END: 2,
    /** Float64 index of the first byte asked for. */
    ADDRESS: 3,
    /** Uint32 index of lkey. */
    LKEY: 8,
    /** Uint32 index of rkey. */
    RKEY: 9,
    /** Int32 index of the failed registration's errno. */
    ERROR: 10,
    /** Uint32 index of the region's access bits. */
    ACCESS: 11,
    /** Int32 index of the region's front word, -1 when none. */
    FRONT: 12,
  } as const,
);

/** Order of the values rcache_stats writes (enum rcache_stat). */
export const STAT_NAMES = [
  "gets",
  "hits",
  "misses",
  "merges",
  "evictions",
  "invalidations",
  "deregistrations",
  "deregistrationsInRelease",
  "deregistrationsDeferred",
  "registrations",
  "regions",
  "bytes",
  "inUse",
  "indexedRegions",
  "limitRetries",
  "pendingOverflows",
  "deregistrationFailures",
  "badReleases",
  "releasesExamined",
] as const;

/** Entries in struct rcache_release_queue (a power of two). */
export const RELEASE_QUEUE_SLOTS = 256;
/** Size in bytes of struct rcache_release_queue: head, tail, retired, deferred, handles. */
export const RELEASE_QUEUE_SIZE = 16 + 8 * RELEASE_QUEUE_SLOTS;
/** Int32 indexes of the release queue's control words. */
export const ReleaseQueueField = Object.freeze(
  { HEAD: 0, TAIL: 1, RETIRED: 2, DEFERRED: 3 } as const,
);

/** Front words per cache (RCACHE_FRONT_SLOTS; see cache/native/rcache.h). */
export const FRONT_SLOTS = 4096;
/** IBV_ACCESS_* bits a region may have more of than asked (RCACHE_PERMISSION_ACCESS); others match. */
export const PERMISSION_ACCESS = 0x1f;
/** Front word bit: closed, no hold may be taken through it. */
export const FRONT_CLOSED = 0x40000000;
/** Front word bits that count holds (RCACHE_FRONT_HOLDS). */
export const FRONT_HOLDS = 0x3fffffff;

/** Order of the values rcache_double_counters writes. */
export const DOUBLE_COUNTER_NAMES = [
  "registrations",
  "deregistrations",
  "failures",
  "pinnedBytes",
  "pinLimit",
  "deregistrationsStarted",
] as const;
