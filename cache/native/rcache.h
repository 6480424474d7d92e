/*
 * The registration cache's native interface, called from TypeScript through Deno FFI (ffi/rcache.ts).
 * Caches live in a fixed table of slots so the release hook can reach every one of them from any
 * thread without allocating and without a slot ever being freed under it.
 */
#ifndef RCACHE_H
#define RCACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RCACHE_MAX_CACHES 64

/* Results of rcache_get; errors are negative. */
#define RCACHE_HIT 0
#define RCACHE_MISS 1
#define RCACHE_ERR_CLOSED (-1)      /* no such cache, or closed */
#define RCACHE_ERR_LIMIT (-2)       /* registration failed with ENOMEM/EAGAIN after evict + retry */
#define RCACHE_ERR_REGISTER (-3)    /* registration failed otherwise; errno in the result record */
#define RCACHE_ERR_NO_MEMORY (-4)   /* malloc of the bookkeeping failed */
#define RCACHE_ERR_HOOKS (-5)       /* opal_mem_hooks_init or register_release failed */
#define RCACHE_ERR_UNSUPPORTED (-6) /* the hooks do not report FREE and MMAP support */
#define RCACHE_ERR_TOO_MANY (-7)    /* all RCACHE_MAX_CACHES slots are in use */
#define RCACHE_ERR_RANGE (-8)       /* empty range or one that wraps around the address space */
#define RCACHE_ERR_STATE (-9)       /* release of a registration that is not held */
#define RCACHE_ERR_HOLDS (-10)      /* the region already counts RCACHE_MAX_HOLDERS holds */

/* Holds one region may count in `holders` (its front word adds at most RCACHE_FRONT_HOLDS):
 * the total stays below 2^32. Only registrations that are never released get near it. */
#define RCACHE_MAX_HOLDERS 0x80000000u

/* What a successful get describes; read by TypeScript through a view, never reallocated. */
struct rcache_result {
  double region;       /* opaque handle for rcache_put (a pointer, exact in a double) */
  double region_start; /* the registered region, which may be larger than what was asked */
  double region_end;   /* (both also written by rcache_region_bounds) */
  double address; /* the first byte asked for (set by every get that reaches the cache) */
  uint32_t lkey, rkey;
  int32_t error; /* errno of the failed registration, for RCACHE_ERR_LIMIT / _REGISTER */
  uint32_t access;
  int32_t front; /* the region's front word (see below), -1 when it has none */
  uint32_t reserved;
};

/*
 * Releases queued by TypeScript without a native call: it writes a region handle at `tail` and then
 * advances `tail` (an atomic store); whoever next holds the cache lock (the next operation, or a
 * release hook) applies the queued releases, in order, before anything else. A release hook
 * therefore sees a region released before the memory went as idle, and deregisters it at once.
 */
#define RCACHE_RELEASE_SLOTS 256u /* power of two */
#define RCACHE_DEFERRED 1u          /* bits of rcache_release_queue.deferred */
#define RCACHE_DRAINING 2u
struct rcache_release_queue {
  _Atomic uint32_t head; /* next entry to apply: moved by the lock holder */
  _Atomic uint32_t tail; /* next entry to fill: moved by the TypeScript thread only */
  /* Held regions retired from the index. While there are any, TypeScript releases with a call
   * (rcache_put), so a retired region is deregistered by its release itself, not later. */
  _Atomic uint32_t retired;
  /* RCACHE_DEFERRED: set by a release hook that had to defer its invalidation (its range is in
   * the pending ring). RCACHE_DRAINING: a drain is applying popped ranges. While either is set,
   * TypeScript takes no hold through a front word. */
  _Atomic uint32_t deferred;
  double handles[RCACHE_RELEASE_SLOTS];
};

/*
 * Front words: hits that make no native call. TypeScript remembers which region a recent get
 * returned (by the address asked for) and, on the next get of covered bytes, takes a hold by an
 * atomic add on that region's front word instead of calling rcache_get. A word is bound to one
 * region at a time; TypeScript picks the word (the `front` argument of rcache_get) so it always
 * knows which region a word stands for.
 *
 * Low 30 bits: holds taken through the word and not yet released (a release is queued or made
 * with rcache_put as usual; native code then takes it off the word or off `holders`). Bit 30,
 * RCACHE_FRONT_CLOSED: the region left the index, was evicted, or the word was rebound. Native
 * code closes a word under the cache lock with one atomic exchange (or a compare-and-swap from 0
 * when evicting), moving the holds it counted into the region's own count, so a hold is either
 * taken before the close (and counted) or sees the bit and is undone. TypeScript reads `deferred`
 * before the add, so a release whose invalidation is still pending sends it the slow way.
 */
/*
 * IBV_ACCESS_* bits that grant something (local write, remote write/read/atomic, memory window
 * bind): a region with more of them serves a request for fewer. Every other bit (zero-based, on
 * demand, huge pages, relaxed ordering, ...) changes what the region is, and must match exactly.
 */
#define RCACHE_PERMISSION_ACCESS 0x1fu

#define RCACHE_FRONT_SLOTS 4096
#define RCACHE_FRONT_CLOSED 0x40000000u
#define RCACHE_FRONT_HOLDS 0x3fffffffu

/* Order of the values rcache_stats writes. */
enum rcache_stat {
  RCACHE_STAT_GETS,
  RCACHE_STAT_HITS,
  RCACHE_STAT_MISSES,
  RCACHE_STAT_MERGES,
  RCACHE_STAT_EVICTIONS,
  RCACHE_STAT_INVALIDATIONS,
  RCACHE_STAT_DEREGISTRATIONS,
  RCACHE_STAT_DEREGISTRATIONS_IN_RELEASE,
  RCACHE_STAT_DEREGISTRATIONS_DEFERRED,
  RCACHE_STAT_REGISTRATIONS,
  RCACHE_STAT_REGIONS,
  RCACHE_STAT_BYTES,
  RCACHE_STAT_IN_USE,
  RCACHE_STAT_INDEXED,
  RCACHE_STAT_LIMIT_RETRIES,
  RCACHE_STAT_PENDING_OVERFLOWS,
  RCACHE_STAT_DEREGISTRATION_FAILURES,
  RCACHE_STAT_BAD_RELEASES, /* queued releases of regions that were not held (a bug) */
  RCACHE_STAT_RELEASES_EXAMINED, /* releases that touched a span: applied or queued */
  RCACHE_STAT_COUNT
};

/*
 * Creates a cache (sizes as doubles, like addresses). `pd` is a struct ibv_pd * (ignored with use_double). use_double selects the
 * registrar double; double_pin_limit is its emulated locked-memory limit (0: none). max_regions and
 * max_bytes bound the cache (0: unbounded). Returns the slot, or a negative RCACHE_ERR_*.
 */
int rcache_create(void *pd, int use_double, double double_pin_limit, double max_regions,
                  double max_bytes, int merge);
int rcache_destroy(int slot);
struct rcache_result *rcache_result(int slot);
struct rcache_release_queue *rcache_release_queue(int slot);
/* Writes the bounds of a held region into the result record (region_start, region_end). */
int rcache_region_bounds(int slot, double region);
/* Addresses and lengths are doubles (exact below 2^53, which covers user space) so the FFI call
 * needs no BigInt. */
/* `front`: a front word to bind the region to if this is a hit and it has none (-1: do not
 * bind); the region's word, if any, is in the result record. */
int rcache_get(int slot, double addr, double length, uint32_t access, int32_t front);
/* The first `length` bytes of `buffer` (a typed array's data). */
int rcache_get_buffer(int slot, const uint8_t *buffer, double length, uint32_t access,
                      int32_t front);
/* The cache's RCACHE_FRONT_SLOTS front words (never moves). */
_Atomic uint32_t *rcache_front(int slot);
/* Releases `region` now (after the queued releases); TypeScript uses it when the queue is full. */
int rcache_put(int slot, double region);
/* Releases `region` and, if that left it idle, deregisters it (a registration the caller refuses). */
int rcache_discard(int slot, double region);
int rcache_flush(int slot);
int rcache_stats(int slot, double *out, int count);

/* Facts for error messages. */
double rcache_memlock_limit(void); /* RLIMIT_MEMLOCK soft limit in bytes, -1 when unlimited */
int rcache_hooks_support_level(void);
int rcache_hooks_status(void); /* the last opal_mem_hooks_* return code seen by rcache_create */

/* The registrar double's process-wide counters: registrations, deregistrations, failures,
 * pinned bytes, pin limit. */
int rcache_double_counters(double *out, int count);
/* The registrar double's deregistrations take `ns` nanoseconds each (process-wide). */
void rcache_double_set_dereg_delay(double ns);

/* Tests only: adds `count` holds to the region that starts at `address` in every open cache, to
 * its front word (`through_front`) or to its holders, as that many unreleased gets would. Returns
 * how many regions it changed. */
int rcache_testing_add_holds(double address, double count, int through_front);
/* Tests only: `jam` 1 claims a cell in the pending ring of every open cache without filling it,
 * as a pusher stopped between the two would; 0 fills those cells (with an empty range). Returns
 * how many rings it changed. */
int rcache_testing_jam_rings(int jam);

#endif /* RCACHE_H */
