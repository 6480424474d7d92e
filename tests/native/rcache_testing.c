/*
 * Test support: entry points that change a registration cache's state behind its back, reaching
 * its internals through cache/native/rcache_internal.h. They do nothing unless the process opted
 * in with DENO_RDMA_TESTING=1 in its environment.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "rcache_internal.h"

/* The cells rcache_testing_jam_rings claimed; forgotten in a forked child. */
static uint64_t jammed_at[RCACHE_MAX_CACHES];
static bool jammed[RCACHE_MAX_CACHES];
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void forget_jams(void)
{
    for (int i = 0; i < RCACHE_MAX_CACHES; i++)
        jammed[i] = false;
}

static void install_fork_handler(void)
{
    pthread_atfork(NULL, NULL, forget_jams);
}

static bool testing_enabled(void)
{
    const char *value = getenv("DENO_RDMA_TESTING");
    return value != NULL && value[0] == '1' && value[1] == 0;
}

/* Adds `count` holds to the region that starts at `address` in every open cache, to its front
 * word (`through_front`) or to its holders, as that many unreleased gets would. Returns how many
 * regions it changed, or -1 (not enabled, or a count beyond 32 bits). */
int rcache_testing_add_holds(double address, double count, int through_front)
{
    /* Counts wrap modulo 2^32 on purpose: a test takes holds back by adding 2^32 - n. */
    if (!testing_enabled() || !(count >= 0 && count < 4294967296.0))
        return -1;
    int changed = 0;
    for (int i = 0; i < RCACHE_MAX_CACHES; i++) {
        struct rc_cache *c = rc_enter(i);
        if (!c)
            continue;
        struct rc_region *r = rc_index_floor(c->root, (uintptr_t)address);
        if (r && r->start == (uintptr_t)address) {
            if (!through_front)
                r->holders += (uint32_t)count;
            else if (r->front >= 0)
                atomic_fetch_add(&c->front[r->front], (uint32_t)count);
            changed++;
        }
        rc_leave(c);
    }
    return changed;
}

/* `jam` 1 claims a cell in the pending ring of every open cache without filling it, as a pusher
 * stopped between the two would; 0 fills those cells (with an empty range). Returns how many rings
 * it changed, or -1 when not enabled. */
int rcache_testing_jam_rings(int jam)
{
    if (!testing_enabled())
        return -1;
    pthread_once(&fork_once, install_fork_handler);
    int changed = 0;
    for (int i = 0; i < RCACHE_MAX_CACHES; i++) {
        struct rc_pending_ring *ring = &rc_caches[i].pending;
        if (jam && atomic_load(&rc_caches[i].live) && !jammed[i]) {
            /* Claimed as a pusher claims it, and only if it is free (a full ring is left alone). */
            if (!range_ring_claim(&ring->ring, &jammed_at[i]))
                continue;
            jammed[i] = true;
            changed++;
        } else if (!jam && jammed[i]) {
            /* An empty range: invalidates nothing. */
            range_ring_publish(&ring->ring, jammed_at[i], &(struct range_ring_entry){0});
            jammed[i] = false;
            changed++;
        }
    }
    return changed;
}
