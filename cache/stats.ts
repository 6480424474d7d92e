/**
 * The cache's statistics: what `RegistrationCache.stats()` returns, decoded from what rcache_stats
 * writes (one double per stat, in the order the C sources give, ffi/records/rcache.ts).
 *
 * @module
 */
import { STAT_NAMES } from "../ffi/rcache.ts";

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
  /**
   * Times the memory hooks' entry points were found written over (another library patched libc
   * over them, or the code no longer led to a source of events): every region was invalidated,
   * since releases may have gone unseen (hooks/README.md, "Other interceptors").
   */
  interceptionLosses: number;
  /**
   * Gets served as misses, their regions deregistered by their release, because no source of
   * events saw every release then (an entry point owned by a library whose events cannot be
   * imported).
   */
  unwatchedGets: number;
  /** Where release events come from now: `SOURCE.*` bits (ffi/records/memhooks.ts): 1 the hooks'
   * own patches, 2 UCX's ucm, 4 another library's opal memory hooks. */
  eventSources: number;
  /** Hits served without a native call (counted in `hits` and `gets` too). */
  fastHits: number;
};

// The stats the C sources name are exactly the fields of RegistrationCacheStats but fastHits: a
// stat renamed, added or dropped on either side fails to type-check here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _statsMatchTheNativeOnes: Same<
  (typeof STAT_NAMES)[number],
  Exclude<keyof RegistrationCacheStats, "fastHits">
> = true;

/** A buffer for rcache_stats to write into. */
export function statsBuffer(): Float64Array<ArrayBuffer> {
  return new Float64Array(STAT_NAMES.length);
}

/** The stats from what rcache_stats wrote into `values`, and the hits served without a call. */
export function decodeStats(values: Float64Array, fastHits: number): RegistrationCacheStats {
  const stats = Object.fromEntries(STAT_NAMES.map((n, i) => [n, values[i]]));
  stats.gets += fastHits;
  stats.hits += fastHits;
  stats.fastHits = fastHits;
  return stats as RegistrationCacheStats;
}
