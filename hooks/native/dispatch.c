/*
 * The C callbacks: their tables, registering and unregistering them, and dispatching each event
 * the hooks report to them and to the TypeScript queues (mh_release, mh_alloc).
 *
 * Hooks read the tables without locks. The API lock (lifecycle.c) serializes only register,
 * unregister, init and finalize. Unregistering waits until no thread can still be running the
 * removed callback, with two in-flight counters: a dispatch counts itself in the counter the epoch
 * points to; unregister clears the slot, then waits until each counter in turn has drained (see
 * mh_wait_for_dispatches).
 */
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <string.h>

#include "memhooks_internal.h"

#define MH_MAX_CALLBACKS 32
#define MH_NESTED_MAX 8

struct slot {
    _Atomic(opal_mem_hooks_callback_fn_t *) fn;
    void *_Atomic cbdata;
    /* Kept from reuse while an unregister waits for dispatches that may still read this slot:
     * a new callback's cbdata must never reach the old callback. Guarded by the API lock. */
    bool retiring;
};

static struct slot release_slots[MH_MAX_CALLBACKS];
static struct slot alloc_slots[MH_MAX_CALLBACKS];
/* One past the highest slot ever used: hooks scan no further. Only grows. */
static _Atomic int slots_used;
static int release_count, alloc_count; /* guarded by the API lock */

static _Atomic unsigned epoch;
static _Atomic long inflight[2];

/* Per-thread dispatch state. Kept small: initial-exec TLS of a dlopened library is scarce. */
static MH_TLS int tls_depth;        /* > 0 while this thread runs callbacks */
static MH_TLS long tls_inflight[2]; /* this thread's share of inflight[] */
static MH_TLS uintptr_t tls_caller; /* return address of the hooked call being dispatched */
static MH_TLS uintptr_t tls_nested_addr[MH_NESTED_MAX];
static MH_TLS size_t tls_nested_len[MH_NESTED_MAX];
static MH_TLS unsigned tls_nested_count;
static MH_TLS unsigned tls_nested_from_alloc; /* bit i: entry i came from the allocator */

uintptr_t memhooks_release_caller(void)
{
    return tls_depth > 0 ? tls_caller : 0;
}

bool mh_from_alloc(uintptr_t caller)
{
    return mh_in_allocator > 0 || mh_libc_text_contains(caller);
}

static void run_callbacks(struct slot *slots, void *addr, size_t len, bool from_alloc,
                          uintptr_t caller)
{
    unsigned idx = atomic_load(&epoch) & 1;
    atomic_fetch_add(&inflight[idx], 1);
    tls_inflight[idx]++;
    uintptr_t saved_caller = tls_caller;
    tls_caller = caller;
    tls_depth++;
    int used = atomic_load_explicit(&slots_used, memory_order_acquire);
    for (int i = 0; i < used; i++) {
        opal_mem_hooks_callback_fn_t *fn = atomic_load_explicit(&slots[i].fn, memory_order_acquire);
        if (fn)
            fn(addr, len, atomic_load_explicit(&slots[i].cbdata, memory_order_relaxed), from_alloc);
    }
    tls_depth--;
    tls_caller = saved_caller;
    tls_inflight[idx]--;
    atomic_fetch_sub(&inflight[idx], 1);
}

static void record_nested_unmasked(uintptr_t addr, size_t len, bool from_alloc)
{
    unsigned n = tls_nested_count;
    if (n < MH_NESTED_MAX) {
        tls_nested_addr[n] = addr;
        tls_nested_len[n] = len;
        tls_nested_from_alloc = (tls_nested_from_alloc & ~(1u << n)) | ((unsigned)from_alloc << n);
        tls_nested_count = n + 1;
        return;
    }
    /* Full: widen the last entry to cover this range too (a larger release is never wrong). */
    unsigned last = MH_NESTED_MAX - 1;
    uintptr_t lo = tls_nested_addr[last] < addr ? tls_nested_addr[last] : addr;
    uintptr_t end_a = tls_nested_addr[last] + tls_nested_len[last], end_b = addr + len;
    tls_nested_addr[last] = lo;
    tls_nested_len[last] = (end_a > end_b ? end_a : end_b) - lo;
    if (!from_alloc)
        tls_nested_from_alloc &= ~(1u << last);
    atomic_fetch_add_explicit(&mh_stat_coalesced, 1, memory_order_relaxed);
}

/*
 * A release made by a callback on this thread: remembered, dispatched after the outer one. Signals
 * are blocked meanwhile: a handler that releases memory on this thread records too, and would
 * otherwise be overwritten by the update it interrupted. Nested releases are rare, so the two
 * system calls do not weigh on the usual path.
 */
static void record_nested(uintptr_t addr, size_t len, bool from_alloc)
{
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    record_nested_unmasked(addr, len, from_alloc);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

static void dispatch_nested(uintptr_t outer_caller)
{
    while (tls_nested_count > 0) {
        uintptr_t addr[MH_NESTED_MAX];
        size_t len[MH_NESTED_MAX];
        unsigned n = tls_nested_count, from_alloc = tls_nested_from_alloc;
        memcpy(addr, tls_nested_addr, n * sizeof addr[0]);
        memcpy(len, tls_nested_len, n * sizeof len[0]);
        tls_nested_count = 0;
        for (unsigned i = 0; i < n; i++) {
            atomic_fetch_add_explicit(&mh_stat_nested, 1, memory_order_relaxed);
            run_callbacks(release_slots, (void *)addr[i], len[i], (from_alloc >> i) & 1,
                          outer_caller);
        }
    }
}

void mh_release(void *addr, size_t len, uintptr_t caller)
{
    if (len == 0)
        return;
    bool from_alloc = mh_from_alloc(caller);
    int work = atomic_load_explicit(&mh_work, memory_order_relaxed);
    mh_count_event(&mh_stat_release);
    if (work & MH_WORK_RELEASE)
        mh_queue_push((uintptr_t)addr, len,
                      MEMHOOKS_EVENT_RELEASE | (from_alloc ? MEMHOOKS_EVENT_FROM_ALLOC : 0) |
                          (tls_depth > 0 ? MEMHOOKS_EVENT_NESTED : 0));
    if (tls_depth > 0) {
        /* A callback is releasing memory: straight to the kernel, callbacks see it afterwards. */
        record_nested((uintptr_t)addr, len, from_alloc);
        return;
    }
    if (work & MH_WORK_RELEASE) {
        run_callbacks(release_slots, addr, len, from_alloc, caller);
        dispatch_nested(caller);
    }
}

void mh_alloc(void *addr, size_t len, uintptr_t caller)
{
    if (len == 0)
        return;
    bool from_alloc = mh_from_alloc(caller);
    int work = atomic_load_explicit(&mh_work, memory_order_relaxed);
    mh_count_event(&mh_stat_alloc);
    if (!(work & MH_WORK_ALLOC))
        return;
    mh_queue_push((uintptr_t)addr, len,
                  MEMHOOKS_EVENT_ALLOC | (from_alloc ? MEMHOOKS_EVENT_FROM_ALLOC : 0));
    /* Allocations made by a callback reach the queue only: calling back would recurse. */
    if (tls_depth == 0) {
        run_callbacks(alloc_slots, addr, len, from_alloc, caller);
        /* Memory an alloc callback released: its release callbacks run before this call returns. */
        dispatch_nested(caller);
    }
}

/* ---- Registration ------------------------------------------------------------------------- */

int mh_callback_work(void)
{
    return (release_count > 0 ? MH_WORK_RELEASE : 0) | (alloc_count > 0 ? MH_WORK_ALLOC : 0);
}

/*
 * Returns once no dispatch that could have read a slot before it was cleared is still running.
 * Safety: each counter is seen at (this thread's own share of) zero at some instant after the
 * clear, so every dispatch counted in it then has finished; a dispatch counted later read the slot
 * after the clear (all of it is sequentially consistent) and saw it empty. The epoch is pointed
 * away from the counter being waited for so that new dispatches cannot keep it from draining.
 */
void mh_wait_for_dispatches(void)
{
    for (unsigned parity = 0; parity < 2; parity++) {
        atomic_store(&epoch, parity + 1);
        /* This thread's own dispatch (unregister from inside a callback) is not waited for. */
        while (atomic_load(&inflight[parity]) > tls_inflight[parity])
            sched_yield();
    }
}

static int add_callback(struct slot *slots, int *count, opal_mem_hooks_callback_fn_t *func,
                        void *cbdata)
{
    if (!func)
        return OPAL_ERR_BAD_PARAM;
    mh_api_lock();
    int rc = OPAL_SUCCESS, free_slot = -1;
    if (!mh_supported()) {
        rc = OPAL_ERR_NOT_SUPPORTED;
        goto out;
    }
    for (int i = 0; i < MH_MAX_CALLBACKS; i++) {
        opal_mem_hooks_callback_fn_t *fn = atomic_load(&slots[i].fn);
        if (fn == func) {
            rc = OPAL_EXISTS;
            goto out;
        }
        if (!fn && !slots[i].retiring && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0) {
        rc = OPAL_ERR_OUT_OF_RESOURCE;
        goto out;
    }
    atomic_store(&slots[free_slot].cbdata, cbdata);
    atomic_store(&slots[free_slot].fn, func);
    if (free_slot + 1 > atomic_load(&slots_used))
        atomic_store(&slots_used, free_slot + 1);
    (*count)++;
    mh_update_work();
out:
    mh_api_unlock();
    return rc;
}

/*
 * Threads waiting in remove_callback while inside a dispatch of their own (an unregister from a
 * callback). Two of them would wait for each other's dispatch forever, so while one waits, another
 * callback's unregister is refused (changing nothing) instead. Guarded by the API lock.
 */
static int callback_waiters;

static int remove_callback(struct slot *slots, int *count, opal_mem_hooks_callback_fn_t *func)
{
    bool in_callback = tls_inflight[0] + tls_inflight[1] > 0;
    mh_api_lock();
    if (in_callback && callback_waiters > 0) {
        mh_api_unlock();
        return OPAL_ERR_RESOURCE_BUSY;
    }
    int found = -1;
    for (int i = 0; func && i < MH_MAX_CALLBACKS; i++) {
        if (atomic_load(&slots[i].fn) == func) {
            atomic_store(&slots[i].fn, NULL);
            slots[i].retiring = true;
            (*count)--;
            found = i;
            break;
        }
    }
    if (found >= 0) {
        mh_update_work();
        callback_waiters += in_callback;
    }
    mh_api_unlock();
    if (found < 0)
        return OPAL_ERR_NOT_FOUND;
    /* Waited for without the lock: a callback running on another thread may itself register or
     * unregister, and must not wait for us while we wait for it. */
    mh_wait_for_dispatches();
    mh_api_lock();
    slots[found].retiring = false;
    callback_waiters -= in_callback;
    mh_api_unlock();
    return OPAL_SUCCESS;
}

int opal_mem_hooks_register_release(opal_mem_hooks_callback_fn_t *func, void *cbdata)
{
    return add_callback(release_slots, &release_count, func, cbdata);
}

int opal_mem_hooks_register_alloc(opal_mem_hooks_callback_fn_t *func, void *cbdata)
{
    return add_callback(alloc_slots, &alloc_count, func, cbdata);
}

int opal_mem_hooks_unregister_release(opal_mem_hooks_callback_fn_t *func)
{
    return remove_callback(release_slots, &release_count, func);
}

int opal_mem_hooks_unregister_alloc(opal_mem_hooks_callback_fn_t *func)
{
    return remove_callback(alloc_slots, &alloc_count, func);
}

/* With the API lock held, for finalize: every callback goes (the caller then waits for dispatches).
 */
void mh_callbacks_clear(void)
{
    for (int i = 0; i < MH_MAX_CALLBACKS; i++) {
        atomic_store(&release_slots[i].fn, NULL);
        atomic_store(&alloc_slots[i].fn, NULL);
    }
    release_count = alloc_count = 0;
}

/*
 * In a forked child: the in-flight counters drop the dispatches of threads that do not exist
 * there (an unregister in the child would otherwise wait for them forever).
 */
void mh_dispatch_after_fork_child(void)
{
    atomic_store(&inflight[0], tls_inflight[0]);
    atomic_store(&inflight[1], tls_inflight[1]);
}
