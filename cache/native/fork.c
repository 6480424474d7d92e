/*
 * fork() in a process where another thread holds a cache lock would leave the child with a lock
 * nobody can release, and the child's first munmap would block in the release hook forever. So
 * the forking thread takes every lock first (the create lock, then the slots in order: the order
 * every other path uses), and both sides release them after. glibc runs these handlers before it
 * locks the allocator, so a lock holder that is inside free() can finish.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "rcache_internal.h"

static void before_fork(void)
{
    pthread_mutex_lock(&rc_create_lock);
    for (int i = 0; i < RCACHE_MAX_CACHES; i++)
        pthread_mutex_lock(&rc_caches[i].lock);
}

static void after_fork_parent(void)
{
    for (int i = RCACHE_MAX_CACHES - 1; i >= 0; i--)
        pthread_mutex_unlock(&rc_caches[i].lock);
    pthread_mutex_unlock(&rc_create_lock);
}

/*
 * The child shares the parent's device handles (the same uverbs file): a deregistration there
 * would destroy the parent's memory regions in the kernel. So its copies of the caches are closed
 * without deregistering anything: the release hook skips them, and their operations fail (EBADF).
 */
static void after_fork_child(void)
{
    for (int i = RCACHE_MAX_CACHES - 1; i >= 0; i--) {
        struct rc_cache *c = &rc_caches[i];
        atomic_store_explicit(&c->live, 0, memory_order_relaxed);
        atomic_store_explicit(&c->owner, 0, memory_order_relaxed);
        /* A cell another thread had claimed would never be filled here. */
        rc_pending_init(&c->pending);
        c->stuck_covered_valid = false;
        pthread_mutex_unlock(&c->lock);
    }
    atomic_store_explicit(&rc_live_slots, 0, memory_order_relaxed);
    pthread_mutex_unlock(&rc_create_lock);
}

void rc_fork_handlers_install(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}
