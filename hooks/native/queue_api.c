/*
 * The queue calls of the public API that change subscribers: queue.c's operations under the API
 * lock (lifecycle.c), each followed by recomputing what the hooks must do. Draining and the
 * pending word take no lock (queue.c).
 */
#include "memhooks_internal.h"

int memhooks_queue_subscribe(void)
{
    mh_api_lock();
    int rc = mh_queue_subscribe();
    mh_update_work(); /* it may have taken back subscribers of ended threads */
    mh_api_unlock();
    return rc;
}

int memhooks_queue_enable(int subscriber, int kinds)
{
    if (kinds & ~(MEMHOOKS_QUEUE_RELEASE | MEMHOOKS_QUEUE_ALLOC))
        return OPAL_ERR_BAD_PARAM;
    mh_api_lock();
    int rc;
    if (kinds != 0 && !mh_supported())
        rc = OPAL_ERR_NOT_SUPPORTED;
    else {
        rc = mh_queue_set_kinds(subscriber, kinds);
        mh_update_work();
    }
    mh_api_unlock();
    return rc;
}

int memhooks_queue_unsubscribe(int subscriber)
{
    mh_api_lock();
    int rc = mh_queue_unsubscribe(subscriber);
    mh_update_work();
    mh_api_unlock();
    return rc;
}
