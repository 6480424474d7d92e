/*
 * The registration cache's native interface, called from TypeScript through Deno FFI
 * (ffi/rcache.ts). Caches live in a fixed table of slots so the release hook can reach every one of
 * them from any thread without allocating and without a slot ever being freed under it.
 *
 * Every record and constant TypeScript shares is described here once (ffi/native/records.h):
 * rcache_records() reports them, and `deno task build` writes ffi/records/rcache.ts from that.
 * The implementation's own structures are in rcache_internal.h.
 */
#ifndef RCACHE_H
#define RCACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "records.h"
#include "visibility.h"

#define RCACHE_MAX_CACHES 64

/*
 * Results of rcache_get (and of the other calls); errors are negative. STATUS(C name, TypeScript
 * name, value).
 */
#define RCACHE_STATUSES(STATUS)                                                                    \
    STATUS(RCACHE_HIT, HIT, 0)                      /* a cached region covers the range */         \
    STATUS(RCACHE_MISS, MISS, 1)                    /* a new region was registered */              \
    STATUS(RCACHE_ERR_CLOSED, CLOSED, -1)           /* no such cache, or closed */                 \
    STATUS(RCACHE_ERR_LIMIT, LIMIT, -2)             /* ENOMEM/EAGAIN after evict + retry */        \
    STATUS(RCACHE_ERR_REGISTER, REGISTER, -3)       /* registration failed; errno in the result */ \
    STATUS(RCACHE_ERR_NO_MEMORY, NO_MEMORY, -4)     /* malloc of the bookkeeping failed */         \
    STATUS(RCACHE_ERR_HOOKS, HOOKS, -5)             /* opal_mem_hooks_init or _register failed */  \
    STATUS(RCACHE_ERR_UNSUPPORTED, UNSUPPORTED, -6) /* the hooks lack FREE or MMAP support */      \
    STATUS(RCACHE_ERR_TOO_MANY, TOO_MANY, -7)       /* all RCACHE_MAX_CACHES slots are in use */   \
    STATUS(RCACHE_ERR_RANGE, RANGE, -8)             /* empty, or wraps around the address space */ \
    STATUS(RCACHE_ERR_STATE, STATE, -9)  /* release of a registration that is not held */          \
    STATUS(RCACHE_ERR_HOLDS, HOLDS, -10) /* the region counts RCACHE_MAX_HOLDERS holds */
#define RCACHE_STATUS_ENUM(c_name, ts_name, value) c_name = (value),
enum rcache_status { RCACHE_STATUSES(RCACHE_STATUS_ENUM) };

/* Holds one region may count in `holders` (its front word adds at most RCACHE_FRONT_HOLDS):
 * the total stays below 2^32. Only registrations that are never released get near it. */
#define RCACHE_MAX_HOLDERS 0x80000000u

/* What a successful get describes; read by TypeScript through a view, never reallocated. */
#define RCACHE_RESULT_FIELDS(FIELD, ctx)                                                          \
    FIELD(ctx, double, region, )       /* opaque handle for rcache_put (a pointer, exact) */      \
    FIELD(ctx, double, region_start, ) /* the registered region, which may be larger than... */   \
    FIELD(ctx, double, region_end, )   /* ...what was asked (also set by rcache_region_bounds) */ \
    FIELD(ctx, double, address, )      /* the first byte asked for (every get that gets in) */    \
    FIELD(ctx, uint32_t, lkey, )                                                                  \
    FIELD(ctx, uint32_t, rkey, )                                                                  \
    FIELD(ctx, int32_t, error, ) /* errno of the failed registration (_LIMIT, _REGISTER) */       \
    FIELD(ctx, uint32_t, access, )                                                                \
    FIELD(ctx, int32_t, front, ) /* the region's front word (see below), -1 when none */          \
    FIELD(ctx, uint32_t, reserved, )
RECORD_STRUCT(rcache_result, RCACHE_RESULT_FIELDS);

/*
 * Releases queued by TypeScript without a native call: it writes a region handle at `tail` and then
 * advances `tail` (an atomic store); whoever next holds the cache lock (the next operation, or a
 * release hook) applies the queued releases, in order, before anything else. A release hook
 * therefore sees a region released before the memory went as idle, and deregisters it at once.
 *
 * `retired`: held regions retired from the index. While there are any, TypeScript releases with a
 * call (rcache_put), so a retired region is deregistered by its release itself, not later.
 * `deferred`: RCACHE_DEFERRED is set by a release hook that had to defer its invalidation (its
 * range is in the pending ring); RCACHE_DRAINING while a drain applies popped ranges. While either
 * is set, TypeScript takes no hold through a front word.
 */
#define RCACHE_RELEASE_SLOTS 256u /* power of two */
#define RCACHE_DEFERRED 1u        /* bits of rcache_release_queue.deferred */
#define RCACHE_DRAINING 2u
#define RCACHE_RELEASE_QUEUE_FIELDS(FIELD, ctx)                                          \
    FIELD(ctx, _Atomic uint32_t, head, )    /* next entry to apply: the lock holder's */ \
    FIELD(ctx, _Atomic uint32_t, tail, )    /* next entry to fill: TypeScript's only */  \
    FIELD(ctx, _Atomic uint32_t, retired, ) /* held regions retired from the index */    \
    FIELD(ctx, _Atomic uint32_t, deferred, )                                             \
    FIELD(ctx, double, handles, [RCACHE_RELEASE_SLOTS])
RECORD_STRUCT(rcache_release_queue, RCACHE_RELEASE_QUEUE_FIELDS);

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
#define RCACHE_FRONT_SLOTS 4096
#define RCACHE_FRONT_CLOSED 0x40000000u
#define RCACHE_FRONT_HOLDS 0x3fffffffu

/*
 * IBV_ACCESS_* bits that grant something (local write, remote write/read/atomic, memory window
 * bind): a region with more of them serves a request for fewer. Every other bit (zero-based, on
 * demand, huge pages, relaxed ordering, ...) changes what the region is, and must match exactly.
 */
#define RCACHE_PERMISSION_ACCESS 0x1fu

/* The values rcache_stats writes, in order: STAT(C name, TypeScript name). */
#define RCACHE_STATS(STAT)                                                                        \
    STAT(RCACHE_STAT_GETS, gets)                                                                  \
    STAT(RCACHE_STAT_HITS, hits)                                                                  \
    STAT(RCACHE_STAT_MISSES, misses)                                                              \
    STAT(RCACHE_STAT_MERGES, merges)                                                              \
    STAT(RCACHE_STAT_EVICTIONS, evictions)                                                        \
    STAT(RCACHE_STAT_INVALIDATIONS, invalidations)                                                \
    STAT(RCACHE_STAT_DEREGISTRATIONS, deregistrations)                                            \
    STAT(RCACHE_STAT_DEREGISTRATIONS_IN_RELEASE, deregistrationsInRelease)                        \
    STAT(RCACHE_STAT_DEREGISTRATIONS_DEFERRED, deregistrationsDeferred)                           \
    STAT(RCACHE_STAT_REGISTRATIONS, registrations)                                                \
    STAT(RCACHE_STAT_REGIONS, regions)                                                            \
    STAT(RCACHE_STAT_BYTES, bytes)                                                                \
    STAT(RCACHE_STAT_IN_USE, inUse)                                                               \
    STAT(RCACHE_STAT_INDEXED, indexedRegions)                                                     \
    STAT(RCACHE_STAT_LIMIT_RETRIES, limitRetries)                                                 \
    STAT(RCACHE_STAT_PENDING_OVERFLOWS, pendingOverflows)                                         \
    STAT(RCACHE_STAT_DEREGISTRATION_FAILURES, deregistrationFailures)                             \
    STAT(RCACHE_STAT_BAD_RELEASES, badReleases)           /* queued releases of unheld regions */ \
    STAT(RCACHE_STAT_RELEASES_EXAMINED, releasesExamined) /* releases that touched a span */      \
    STAT(RCACHE_STAT_INTERCEPTION_LOSSES, interceptionLosses) /* entries found written over */    \
    STAT(RCACHE_STAT_UNWATCHED_GETS, unwatchedGets) /* misses while no release is seen */         \
    STAT(RCACHE_STAT_EVENT_SOURCES, eventSources)   /* MEMHOOKS_SOURCE_* bits, now */
#define RCACHE_STAT_ENUM(c_name, ts_name) c_name,
enum rcache_stat { RCACHE_STATS(RCACHE_STAT_ENUM) RCACHE_STAT_COUNT };

/* The single constants TypeScript needs, as CONSTANT(TypeScript name, value). */
#define RCACHE_CONSTANTS(CONSTANT)                        \
    CONSTANT(MAX_CACHES, RCACHE_MAX_CACHES)               \
    CONSTANT(RELEASE_QUEUE_SLOTS, RCACHE_RELEASE_SLOTS)   \
    CONSTANT(FRONT_SLOTS, RCACHE_FRONT_SLOTS)             \
    CONSTANT(FRONT_CLOSED, RCACHE_FRONT_CLOSED)           \
    CONSTANT(FRONT_HOLDS, RCACHE_FRONT_HOLDS)             \
    CONSTANT(PERMISSION_ACCESS, RCACHE_PERMISSION_ACCESS) \
    CONSTANT(STAT_COUNT, RCACHE_STAT_COUNT)

/*
 * How a cache registers and deregisters memory. The cache's own is ibv_reg_mr/ibv_dereg_mr on a
 * protection domain; another (the registrar double in testing/native/, which needs no device)
 * passes its own to rcache_create.
 */
struct rcache_registration {
    void *mr; /* the registrar's handle (a struct ibv_mr * for the verbs registrar) */
    uint32_t lkey, rkey;
};

struct rcache_registrar {
    /* Returns 0 and fills *out, or an errno value (ENOMEM/EAGAIN mean a pinning limit was hit). */
    int (*reg)(void *context, uintptr_t addr, size_t length, uint32_t access,
               struct rcache_registration *out);
    /* Returns 0 or an errno value. Runs inside release hooks: must not take the cache lock,
     * allocate, or block on anything a releasing thread may hold. */
    int (*dereg)(void *context, void *mr, size_t length);
    void *context;
};

/*
 * Creates a cache (sizes as doubles, like addresses). `registrar` is copied; NULL means the verbs
 * registrar over `pd` (a struct ibv_pd *, unused otherwise). max_regions and max_bytes bound the
 * cache (0: unbounded). Returns the slot, or a negative RCACHE_ERR_*.
 */
RCACHE_API int rcache_create(const struct rcache_registrar *registrar, void *pd, double max_regions,
                             double max_bytes, int merge);
RCACHE_API int rcache_destroy(int slot);
RCACHE_API struct rcache_result *rcache_result(int slot);
RCACHE_API struct rcache_release_queue *rcache_release_queue(int slot);
/* Writes the bounds of a held region into the result record (region_start, region_end). */
RCACHE_API int rcache_region_bounds(int slot, double region);
/* Addresses and lengths are doubles (exact below 2^53, which covers user space) so the FFI call
 * needs no BigInt. `front`: a front word to bind the region to if this is a hit and it has none
 * (-1: do not bind); the region's word, if any, is in the result record. */
RCACHE_API int rcache_get(int slot, double addr, double length, uint32_t access, int32_t front);
/* The first `length` bytes of `buffer` (a typed array's data). */
RCACHE_API int rcache_get_buffer(int slot, const uint8_t *buffer, double length, uint32_t access,
                                 int32_t front);
/* The cache's RCACHE_FRONT_SLOTS front words (never moves). */
RCACHE_API _Atomic uint32_t *rcache_front(int slot);
/* Releases `region` now (after the queued releases); TypeScript uses it when the queue is full. */
RCACHE_API int rcache_put(int slot, double region);
/* Releases `region` and, if that left it idle, deregisters it (a registration the caller refuses).
 */
RCACHE_API int rcache_discard(int slot, double region);
RCACHE_API int rcache_flush(int slot);
/* Writes min(count, RCACHE_STAT_COUNT) values in enum rcache_stat order; returns RCACHE_STAT_COUNT.
 */
RCACHE_API int rcache_stats(int slot, double *out, int count);

/* Facts for error messages. */
RCACHE_API double rcache_memlock_limit(void); /* RLIMIT_MEMLOCK soft limit, -1 when unlimited */
RCACHE_API int rcache_hooks_support_level(void);
RCACHE_API int rcache_hooks_status(void); /* the last opal_mem_hooks_* code rcache_create saw */
/* The libc functions the hooks could not patch or prove, each with why ("sbrk: unknown
 * instruction at +0: 41 54 55 48"), as this thread's last refused rcache_create saw them. */
RCACHE_API const char *rcache_hooks_missing(void);

/* The records and constants above, as records_text() (see ffi/native/records.h). */
RCACHE_API const char *rcache_records(void);

#endif /* RCACHE_H */
