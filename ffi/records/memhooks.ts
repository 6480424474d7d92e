/**
 * Records and constants shared with libopal_memhooks.so, as its C sources describe them
 * (ffi/native/records.h). Written by `deno task build` (tools/records.ts): do not edit.
 *
 * @module
 */

/** QUEUE_SUBSCRIBERS, from C. */
export const QUEUE_SUBSCRIBERS = 32;

/** GUARD_WORDS, from C. */
export const GUARD_WORDS = 16;

/** EVENT: size and field offsets in bytes, from C. */
export const EVENT = {
  size: 24,
  addr: 0,
  len: 8,
  flags: 16,
  reserved: 20,
} as const;

/** STATS: size and field offsets in bytes, from C. */
export const STATS = {
  size: 40,
  releases: 0,
  allocs: 8,
  nested: 16,
  coalesced: 24,
  queued: 32,
} as const;

/** EVENT_FLAG: values, from C. */
export const EVENT_FLAG = {
  RELEASE: 1,
  ALLOC: 2,
  FROM_ALLOC: 4,
  COALESCED: 8,
  NESTED: 16,
} as const;

/** QUEUE_KIND: values, from C. */
export const QUEUE_KIND = {
  RELEASE: 1,
  ALLOC: 2,
} as const;

/** PATCH: values, from C. */
export const PATCH = {
  OK: 0,
  NOT_INSTALLED: 1,
  NO_SYMBOL: 2,
  UNKNOWN_PROLOGUE: 3,
  FOREIGN: 4,
  NO_TRAMPOLINE: 5,
  WRITE_FAILED: 6,
  UNSUPPORTED: 7,
  NO_SAFE_ENTRY: 8,
  NOT_SEEN: 9,
} as const;

/** SOURCE: values, from C. */
export const SOURCE = {
  PATCH: 1,
  UCM: 2,
  OPAL: 4,
} as const;

/** OPAL: values, from C. */
export const OPAL = {
  SUCCESS: 0,
  ERR_OUT_OF_RESOURCE: -2,
  ERR_RESOURCE_BUSY: -4,
  ERR_BAD_PARAM: -5,
  ERR_NOT_SUPPORTED: -8,
  ERR_NOT_FOUND: -13,
  EXISTS: -14,
} as const;

/** OPAL_MEMORY: values, from C. */
export const OPAL_MEMORY = {
  FREE_SUPPORT: 1,
  MALLOC_SUPPORT: 2,
  CHUNK_SUPPORT: 4,
  MMAP_SUPPORT: 8,
} as const;
