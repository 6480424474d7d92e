/*
 * Installing and removing the hooks (opal_mem_hooks_init, _finalize, _support_level), the API
 * lock, and mh_work: what every hook must do besides calling the kernel.
 *
 * The API lock serializes every call that changes what the hooks do: register and unregister
 * (dispatch.c), init and finalize, the queue subscriptions (queue_api.c); fork.c takes it around
 * fork(). Each of them recomputes mh_work under it.
 */
#include <pthread.h>

#include "memhooks_internal.h"

static pthread_mutex_t api_lock = PTHREAD_MUTEX_INITIALIZER;
static bool initialized;  /* guarded by api_lock */
static int support_level; /* guarded by api_lock */

_Atomic int mh_work;

void mh_api_lock(void)
{
    pthread_mutex_lock(&api_lock);
}

void mh_api_unlock(void)
{
    pthread_mutex_unlock(&api_lock);
}

bool mh_supported(void)
{
    return initialized && support_level != 0;
}

void mh_update_work(void)
{
    int work = atomic_load(&mh_work) & MH_WORK_SELFTEST;
    work |= mh_callback_work();         /* the kinds some C callback is registered for */
    int queue_kinds = mh_queue_kinds(); /* what any subscriber records */
    if (queue_kinds & MEMHOOKS_QUEUE_RELEASE)
        work |= MH_WORK_RELEASE;
    if (queue_kinds & MEMHOOKS_QUEUE_ALLOC)
        work |= MH_WORK_ALLOC;
    atomic_store(&mh_work, work);
}

int opal_mem_hooks_init(void)
{
    mh_fork_handlers_install();
    mh_api_lock();
    int rc = OPAL_SUCCESS;
    if (!initialized) {
        bool patched = mh_patch_install() == OPAL_SUCCESS;
        mh_foreign_init(); /* who owns each entry; imports the events of those we cannot patch */
        if (patched || (memhooks_event_sources() & ~MEMHOOKS_SOURCE_PATCH)) {
            int seen, tested;
            support_level = mh_selftest_run(&seen, &tested);
            mh_patch_check_seen(seen, tested);
        } else
            support_level = 0;
        initialized = true;
        if (support_level == 0)
            rc = OPAL_ERR_NOT_SUPPORTED;
    }
    mh_api_unlock();
    return rc;
}

int opal_mem_hooks_finalize(void)
{
    mh_api_lock();
    /* A cache would keep serving registrations unwatched; a subscriber's consumer (another
     * JavaScript isolate) would stop getting events. Subscribers of ended threads do not count. */
    if (memhooks_holders() > 0 || mh_queue_live_subscribers() > 0) {
        mh_api_unlock();
        return OPAL_ERR_RESOURCE_BUSY;
    }
    mh_callbacks_clear();
    mh_update_work(); /* no subscriber is left, so no queue records */
    mh_wait_for_dispatches();
    if (initialized) {
        mh_foreign_finalize();
        mh_patch_remove();
    }
    initialized = false;
    support_level = 0;
    mh_api_unlock();
    return OPAL_SUCCESS;
}

int opal_mem_hooks_support_level(void)
{
    mh_api_lock();
    int level = initialized ? support_level : 0;
    /* Never trusted without a check: an entry written over by a library whose events cannot be
     * imported leaves releases unseen. */
    if (initialized && (mh_foreign_verify_locked(), !memhooks_intercepted()))
        level &= ~(OPAL_MEMORY_FREE_SUPPORT | OPAL_MEMORY_CHUNK_SUPPORT);
    mh_api_unlock();
    return level;
}
