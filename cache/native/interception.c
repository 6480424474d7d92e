/*
 * Never trusting the memory hooks' patches without a check (rcache_internal.h).
 *
 * Another library may write its own jump over one of the hooks' entry points at any time; releases
 * from then on reach only that library. memhooks_verify() notices the change (and imports that
 * library's events when it can) and counts a loss. Every cache's regions may then be stale: all of
 * them are invalidated, under each cache's lock, before memhooks_guard_publish() lets TypeScript's
 * hits without a native call accept the new entry bytes. Until then those hits see bytes that
 * differ from the guard words and go native, to the check here.
 */
#include <pthread.h>

#include "opal_memhooks.h"
#include "rcache_internal.h"

static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int handled; /* the loss count every cache has been invalidated for */

void rc_check_interception(void)
{
    int losses = memhooks_verify();
    if (losses == atomic_load_explicit(&handled, memory_order_acquire))
        return;
    pthread_mutex_lock(&check_lock);
    if (losses != atomic_load(&handled)) {
        for (int i = 0; i < RCACHE_MAX_CACHES; i++) {
            struct rc_cache *c = &rc_caches[i];
            if (!atomic_load_explicit(&c->live, memory_order_acquire))
                continue;
            rc_lock(c);
            if (atomic_load_explicit(&c->live, memory_order_relaxed)) {
                rc_apply_releases(c);
                rc_invalidate_everything(c, RCACHE_STAT_DEREGISTRATIONS_DEFERRED);
                c->stats[RCACHE_STAT_INTERCEPTION_LOSSES]++;
                rc_span_refresh(c);
            }
            rc_unlock(c);
        }
        atomic_store_explicit(&handled, losses, memory_order_release);
    }
    pthread_mutex_unlock(&check_lock);
    memhooks_guard_publish(losses);
}

bool rc_unwatched(void)
{
    return !memhooks_intercepted();
}
