/*
 * The release callback the cache registers with the memory hooks (opal_mem_hooks_register_release),
 * once for all caches. It runs synchronously, on whatever thread releases memory, before the memory
 * goes: it never allocates, and never waits for a lock its own thread holds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>

#include "opal_memhooks.h"
#include "rcache_internal.h"
#include "verbs_text.h"

#define NEEDED_SUPPORT (OPAL_MEMORY_FREE_SUPPORT | OPAL_MEMORY_MMAP_SUPPORT)

static _Atomic int hooks_status = OPAL_SUCCESS;
static _Thread_local char hooks_missing[768]; /* rc_hooks_missing(): read by the refused thread */

/* Lists the functions that are not patched, with why, into hooks_missing. */
static void describe_missing(void)
{
    size_t n = 0;
    hooks_missing[0] = 0;
    for (int i = 0; i < memhooks_patch_count() && n < sizeof hooks_missing; i++) {
        if (memhooks_patch_status(i) == MEMHOOKS_PATCH_OK)
            continue;
        int got = snprintf(hooks_missing + n, sizeof hooks_missing - n, "%s%s: %s", n ? "; " : "",
                           memhooks_patch_name(i), memhooks_patch_reason(i));
        if (got < 0)
            break;
        n += (size_t)got;
    }
}
static _Atomic int hooks_level;

static void release_hook(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)cbdata;
    if (length == 0)
        return;
    uintptr_t start = (uintptr_t)buf;
    uintptr_t end = start + length < start ? UINTPTR_MAX : start + length;
    /*
     * The allocator may hold its arena lock (ibv_dereg_mr calls free, and a lock holder of ours may
     * be waiting in malloc for that arena), and libibverbs may hold its own locks: in both cases
     * only record the range. The next cache operation applies it before any lookup.
     */
    bool must_defer = from_alloc || rc_verbs_text_contains(memhooks_release_caller());
    uintptr_t self = (uintptr_t)pthread_self();
    for (uint64_t live = atomic_load_explicit(&rc_live_slots, memory_order_acquire); live;
         live &= live - 1) {
        struct rc_cache *c = &rc_caches[__builtin_ctzll(live)];
        if (!atomic_load_explicit(&c->live, memory_order_acquire))
            continue;
        /* Outside every region: nothing to do. A region registered while its memory is being
         * released could be missed, but registering memory another thread is unmapping is already
         * undefined (ibv_reg_mr may pin either side of the unmap). */
        if (!rc_span_touches(c, start, end))
            continue;
        atomic_fetch_add_explicit(&c->releases_examined, 1, memory_order_relaxed);
        if (must_defer || atomic_load_explicit(&c->owner, memory_order_relaxed) == self) {
            rc_pending_push(&c->pending, start, end);
            atomic_fetch_or_explicit(&c->releases.deferred, RCACHE_DEFERRED, memory_order_seq_cst);
            continue;
        }
        rc_lock(c);
        if (atomic_load_explicit(&c->live, memory_order_relaxed)) {
            rc_apply_releases(c); /* released before this memory went: idle, so deregistered now */
            rc_drain_pending(c, true);
            rc_invalidate_range(c, start, end, RCACHE_STAT_DEREGISTRATIONS_IN_RELEASE);
            rc_span_refresh(c);
        }
        rc_unlock(c);
    }
}

int rc_ensure_hooks(void)
{
    int level = opal_mem_hooks_support_level();
    if ((level & NEEDED_SUPPORT) != NEEDED_SUPPORT) {
        atomic_store(&hooks_status, opal_mem_hooks_init());
        level = opal_mem_hooks_support_level();
    }
    atomic_store(&hooks_level, level);
    if ((level & NEEDED_SUPPORT) != NEEDED_SUPPORT) {
        describe_missing();
        return RCACHE_ERR_UNSUPPORTED;
    }
    /* Registered once for all caches; OPAL_EXISTS just means it already is. Registering again on
     * every creation restores it after an opal_mem_hooks_finalize. */
    int rc = opal_mem_hooks_register_release(release_hook, rc_caches);
    atomic_store(&hooks_status, rc);
    if (rc != OPAL_SUCCESS && rc != OPAL_EXISTS)
        return RCACHE_ERR_HOOKS;
    return 0;
}

int rc_hooks_level(void)
{
    return atomic_load(&hooks_level);
}

const char *rc_hooks_missing(void)
{
    return hooks_missing;
}

int rc_hooks_status(void)
{
    return atomic_load(&hooks_status);
}
