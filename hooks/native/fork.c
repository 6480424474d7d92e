/*
 * fork(): the API lock is taken around it so the child never inherits it held, and the child's
 * in-flight counters drop the dispatches of threads that do not exist there (otherwise an
 * unregister in the child would wait for them forever); queue cells those threads were filling
 * are filled for them. The hooks themselves hold no lock.
 */
#include <pthread.h>

#include "memhooks_internal.h"

static void before_fork(void)
{
    mh_api_lock();
    mh_queue_before_fork();
}

static void after_fork_in_parent(void)
{
    mh_api_unlock();
}

static void after_fork_in_child(void)
{
    mh_dispatch_after_fork_child();
    mh_queue_after_fork_child();
    mh_api_unlock();
}

static pthread_once_t fork_handlers_once = PTHREAD_ONCE_INIT;

static void install_fork_handlers(void)
{
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

void mh_fork_handlers_install(void)
{
    pthread_once(&fork_handlers_once, install_fork_handlers);
}
