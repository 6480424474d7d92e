/*
 * The registration cache's API (rcache.h): the slots, creating and destroying a cache, lookups,
 * releases, statistics, and entering and leaving a cache (its lock, with deferred work applied).
 */
#include "rcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "opal_memhooks.h"
#include "rcache_internal.h"
#include "verbs_text.h"

struct rc_cache rc_caches[RCACHE_MAX_CACHES];
_Atomic uint64_t rc_live_slots;
pthread_mutex_t rc_create_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

static void init_slots(void)
{
    for (int i = 0; i < RCACHE_MAX_CACHES; i++) {
        pthread_mutex_init(&rc_caches[i].lock, NULL);
        rc_pending_init(&rc_caches[i].pending);
    }
    rc_fork_handlers_install();
}

struct rc_cache *rc_enter(int slot)
{
    if (slot < 0 || slot >= RCACHE_MAX_CACHES)
        return NULL;
    struct rc_cache *c = &rc_caches[slot];
    if (!atomic_load_explicit(&c->live, memory_order_acquire))
        return NULL;
    rc_check_interception(); /* before the lock: it may take every cache's */
    rc_lock(c);
    if (!atomic_load_explicit(&c->live, memory_order_relaxed)) {
        rc_unlock(c);
        return NULL;
    }
    rc_apply_releases(c);
    rc_drain_pending(c, false);
    if (rc_unwatched())
        rc_invalidate_everything(c, RCACHE_STAT_DEREGISTRATIONS_DEFERRED);
    return c;
}

void rc_leave(struct rc_cache *c)
{
    rc_drain_pending(c, false);
    /* Nothing may stay findable while releases go unseen: what this operation registered is
     * retired at once (deregistered by its release). */
    if (rc_unwatched())
        rc_invalidate_everything(c, RCACHE_STAT_DEREGISTRATIONS_DEFERRED);
    rc_span_refresh(c);
    rc_unlock(c);
}

/* A free slot made ready for a new cache over `registrar` (lock held). */
static void reset_slot(struct rc_cache *c, const struct rcache_registrar *registrar,
                       double max_regions, double max_bytes, int merge)
{
    /* Releases pushed while the slot was free concern a cache that no longer exists (a stuck
     * cell stops this; what stays behind it only costs the new cache a spurious invalidation). */
    uintptr_t start, end;
    while (rc_pending_pop(&c->pending, &start, &end) > 0) {
    }
    c->stuck_covered_valid = false;
    rc_pending_take_overflow(&c->pending);
    atomic_store(&c->pending.overflows, 0);
    c->registrar = *registrar;
    c->max_regions = (uint64_t)max_regions;
    c->max_bytes = (uint64_t)max_bytes;
    c->merge = merge != 0;
    c->root = NULL;
    rc_span_clear(c);
    c->span_stale = false;
    c->last = NULL;
    c->idle = (struct rc_list){0};
    c->retired = (struct rc_list){0};
    c->graveyard = NULL;
    for (int s = 0; s < RCACHE_STAT_COUNT; s++)
        c->stats[s] = 0;
    atomic_store(&c->releases_examined, 0);
    c->result = (struct rcache_result){0};
    atomic_store(&c->releases.head, 0);
    atomic_store(&c->releases.tail, 0);
    atomic_store(&c->releases.retired, 0);
    atomic_store(&c->releases.deferred, 0);
    for (int i = 0; i < RCACHE_FRONT_SLOTS; i++) {
        atomic_store_explicit(&c->front[i], RCACHE_FRONT_CLOSED, memory_order_relaxed);
        c->front_owner[i] = NULL;
    }
}

int rcache_create(const struct rcache_registrar *registrar, void *pd, double max_regions,
                  double max_bytes, int merge)
{
    pthread_once(&slots_once, init_slots);
    pthread_mutex_lock(&rc_create_lock);
    memhooks_hold(); /* first: a finalize from now on refuses, so the hooks stay once registered */
    int status = rc_ensure_hooks();
    int slot = RCACHE_ERR_TOO_MANY;
    for (int i = 0; status == 0 && i < RCACHE_MAX_CACHES; i++) {
        if (!atomic_load(&rc_caches[i].live)) {
            slot = i;
            break;
        }
    }
    if (status == 0 && slot < 0)
        status = slot; /* every slot in use */
    if (status == 0) {
        struct rcache_registrar verbs;
        if (!registrar) {
            rc_verbs_text_scan();
            verbs = rc_verbs_registrar(pd);
            registrar = &verbs;
        }
        struct rc_cache *c = &rc_caches[slot];
        rc_lock(c);
        reset_slot(c, registrar, max_regions, max_bytes, merge);
        atomic_store_explicit(&c->live, 1, memory_order_release);
        atomic_fetch_or_explicit(&rc_live_slots, (uint64_t)1 << slot, memory_order_release);
        rc_unlock(c);
        status = slot;
    }
    if (status < 0)
        memhooks_unhold();
    pthread_mutex_unlock(&rc_create_lock);
    return status;
}

int rcache_destroy(int slot)
{
    struct rc_cache *c = rc_enter(slot);
    if (!c)
        return RCACHE_ERR_CLOSED;
    atomic_store_explicit(&c->live, 0, memory_order_release);
    atomic_fetch_and_explicit(&rc_live_slots, ~((uint64_t)1 << slot), memory_order_release);
    for (int i = 0; i < RCACHE_FRONT_SLOTS; i++) {
        if (c->front_owner[i])
            rc_front_close(c, c->front_owner[i]);
    }
    rc_evict_all_idle(c, false);
    c->last = NULL;
    while (c->root) { /* held and indexed */
        struct rc_region *r = c->root;
        rc_index_remove(&c->root, r);
        rc_deregister(c, r, RCACHE_STAT_DEREGISTRATIONS, false);
        rc_bury(c, r);
    }
    while (c->retired.oldest) {
        struct rc_region *r = c->retired.oldest;
        rc_list_remove(&c->retired, r);
        rc_deregister(c, r, RCACHE_STAT_DEREGISTRATIONS, false);
        rc_bury(c, r);
    }
    rc_free_graveyard(c);
    rc_unlock(c);
    memhooks_unhold();
    return 0;
}

struct rcache_result *rcache_result(int slot)
{
    if (slot < 0 || slot >= RCACHE_MAX_CACHES)
        return NULL;
    return &rc_caches[slot].result;
}

struct rcache_release_queue *rcache_release_queue(int slot)
{
    if (slot < 0 || slot >= RCACHE_MAX_CACHES)
        return NULL;
    return &rc_caches[slot].releases;
}

_Atomic uint32_t *rcache_front(int slot)
{
    if (slot < 0 || slot >= RCACHE_MAX_CACHES)
        return NULL;
    return rc_caches[slot].front;
}

static void describe(struct rc_cache *c, struct rc_region *r)
{
    c->result.region = (double)(uintptr_t)r;
    c->result.region_start = (double)r->start;
    c->result.region_end = (double)r->end;
    c->result.lkey = r->lkey;
    c->result.rkey = r->rkey;
    c->result.access = r->access;
    c->result.error = 0;
    c->result.front = r->front;
}

int rcache_get(int slot, double address, double length, uint32_t access, int32_t front)
{
    /* TypeScript passes integers (pointers, or checked safe integers); the comparisons also reject
     * NaN. The limit keeps every bound exact in a double. */
    if (!(address >= 1 && length >= 1 && address + length <= 9007199254740992.0))
        return RCACHE_ERR_RANGE;
    uint64_t addr = (uint64_t)address;
    struct rc_cache *c = rc_enter(slot);
    if (!c)
        return RCACHE_ERR_CLOSED;
    uintptr_t start = (uintptr_t)addr, end = (uintptr_t)(addr + (uint64_t)length);
    c->result.address = (double)start;
    c->stats[RCACHE_STAT_GETS]++;
    int status;
    struct rc_region *r = c->last;
    if (!r || r->start > start || r->end < end)
        r = rc_index_floor(c->root, start);
    if (r && r->end >= end && rc_access_serves(r->access, access)) {
        if (r->holders >= RCACHE_MAX_HOLDERS) {
            rc_leave(c);
            return RCACHE_ERR_HOLDS; /* one more would wrap the count, and a held region could go */
        }
        c->stats[RCACHE_STAT_HITS]++;
        rc_hold(c, r);
        c->last = r;
        status = RCACHE_HIT;
    } else {
        c->stats[RCACHE_STAT_MISSES]++;
        if (rc_unwatched())
            c->stats[RCACHE_STAT_UNWATCHED_GETS]++;
        status = rc_register_range(c, start, end, access, &r);
    }
    if (status >= 0) {
        /* Only a region found again gets a word: one registered and never reused costs nothing. */
        if (status == RCACHE_HIT && r->front < 0 && front >= 0 && front < RCACHE_FRONT_SLOTS)
            rc_front_bind(c, r, front);
        describe(c, r);
    }
    rc_leave(c);
    return status;
}

int rcache_get_buffer(int slot, const uint8_t *buffer, double length, uint32_t access,
                      int32_t front)
{
    return rcache_get(slot, (double)(uintptr_t)buffer, length, access, front);
}

int rcache_put(int slot, double handle)
{
    struct rc_cache *c = rc_enter(slot);
    if (!c)
        return RCACHE_ERR_CLOSED;
    int status = rc_put_region(c, (struct rc_region *)(uintptr_t)(uint64_t)handle);
    rc_leave(c);
    return status;
}

int rcache_discard(int slot, double handle)
{
    struct rc_cache *c = rc_enter(slot);
    if (!c)
        return RCACHE_ERR_CLOSED;
    struct rc_region *r = (struct rc_region *)(uintptr_t)(uint64_t)handle;
    int status = rc_put_region(c, r);
    if (status == 0 && (r->flags & RC_REGION_IDLE))
        rc_discard_idle(c, r, RCACHE_STAT_EVICTIONS, false);
    rc_leave(c);
    return status;
}

int rcache_region_bounds(int slot, double handle)
{
    if (slot < 0 || slot >= RCACHE_MAX_CACHES)
        return RCACHE_ERR_CLOSED;
    /* The caller holds the region, so it is alive, and its bounds never change: no lock needed. */
    const struct rc_region *r = (const struct rc_region *)(uintptr_t)(uint64_t)handle;
    rc_caches[slot].result.region_start = (double)r->start;
    rc_caches[slot].result.region_end = (double)r->end;
    return 0;
}

int rcache_flush(int slot)
{
    struct rc_cache *c = rc_enter(slot);
    if (!c)
        return RCACHE_ERR_CLOSED;
    rc_evict_all_idle(c, false);
    rc_leave(c);
    return 0;
}

int rcache_stats(int slot, double *out, int count)
{
    struct rc_cache *c = rc_enter(slot);
    if (!c)
        return RCACHE_ERR_CLOSED;
    c->stats[RCACHE_STAT_PENDING_OVERFLOWS] = atomic_load(&c->pending.overflows);
    c->stats[RCACHE_STAT_RELEASES_EXAMINED] = atomic_load(&c->releases_examined);
    c->stats[RCACHE_STAT_EVENT_SOURCES] = (uint64_t)memhooks_event_sources();
    /* In use: every live region but the idle ones (those on the idle list that TypeScript has not
     * taken since). Counted here rather than kept, because front holds are taken without a call. */
    uint64_t idle = 0;
    for (struct rc_region *r = c->idle.oldest; r; r = r->next)
        idle += rc_front_holds(c, r) == 0;
    c->stats[RCACHE_STAT_IN_USE] = c->stats[RCACHE_STAT_REGIONS] - idle;
    for (int i = 0; i < count && i < RCACHE_STAT_COUNT; i++)
        out[i] = (double)c->stats[i];
    rc_leave(c);
    return RCACHE_STAT_COUNT;
}

double rcache_memlock_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return -1;
    return (double)limit.rlim_cur;
}

int rcache_hooks_support_level(void)
{
    return rc_hooks_level();
}

int rcache_hooks_status(void)
{
    return rc_hooks_status();
}

const char *rcache_hooks_missing(void)
{
    return rc_hooks_missing();
}

/* ---- The records TypeScript shares (records.h; tools/records.ts reads them) ---------------- */

#define STATUS_ENTRY(c_name, ts_name, value) CONSTANT_ENTRY(STATUS, ts_name, c_name)
#define STAT_ENTRY(c_name, ts_name) CONSTANT_ENTRY(STAT, ts_name, c_name)

/* Each entry list ends in a comma, which clang-format cannot see: kept one list per line. */
/* clang-format off */
static const struct record_entry records[] = {
    RECORD_ENTRIES(RESULT, rcache_result, RCACHE_RESULT_FIELDS)
    RECORD_ENTRIES(RELEASE_QUEUE, rcache_release_queue, RCACHE_RELEASE_QUEUE_FIELDS)
    RCACHE_STATUSES(STATUS_ENTRY)
    RCACHE_STATS(STAT_ENTRY)
    RCACHE_CONSTANTS(CONSTANT_VALUE)
};
/* clang-format on */

const char *rcache_records(void)
{
    /* Built once; static so that TypeScript reads it as a C string. */
    static char text[4096];
    if (!text[0] && !records_text(records, sizeof records / sizeof records[0], text, sizeof text))
        return "";
    return text;
}
