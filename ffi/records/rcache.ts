/**
 * Records and constants shared with libdeno_rdma_rcache.so, as its C sources describe them
 * (ffi/native/records.h). Written by `deno task build` (tools/records.ts): do not edit.
 *
 * @module
 */

/** MAX_CACHES, from C. */
export const MAX_CACHES = 64;

/** RELEASE_QUEUE_SLOTS, from C. */
export const RELEASE_QUEUE_SLOTS = 256;

/** FRONT_SLOTS, from C. */
export const FRONT_SLOTS = 4096;

/** FRONT_CLOSED, from C. */
export const FRONT_CLOSED = 1073741824;

/** FRONT_HOLDS, from C. */
export const FRONT_HOLDS = 1073741823;

/** PERMISSION_ACCESS, from C. */
export const PERMISSION_ACCESS = 31;

/** STAT_COUNT, from C. */
export const STAT_COUNT = 22;

/** RESULT: size and field offsets in bytes, from C. */
export const RESULT = {
  size: 56,
  region: 0,
  region_start: 8,
  region_end: 16,
  address: 24,
  lkey: 32,
  rkey: 36,
  error: 40,
  access: 44,
  front: 48,
  reserved: 52,
} as const;

/** RELEASE_QUEUE: size and field offsets in bytes, from C. */
export const RELEASE_QUEUE = {
  size: 2064,
  head: 0,
  tail: 4,
  retired: 8,
  deferred: 12,
  handles: 16,
} as const;

/** STATUS: values, from C. */
export const STATUS = {
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
} as const;

/** STAT: values, from C. */
export const STAT = {
  gets: 0,
  hits: 1,
  misses: 2,
  merges: 3,
  evictions: 4,
  invalidations: 5,
  deregistrations: 6,
  deregistrationsInRelease: 7,
  deregistrationsDeferred: 8,
  registrations: 9,
  regions: 10,
  bytes: 11,
  inUse: 12,
  indexedRegions: 13,
  limitRetries: 14,
  pendingOverflows: 15,
  deregistrationFailures: 16,
  badReleases: 17,
  releasesExamined: 18,
  interceptionLosses: 19,
  unwatchedGets: 20,
  eventSources: 21,
} as const;
