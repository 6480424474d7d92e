/*
 * The callback tables and the opal_mem_hooks_* API.
 *
 * Hooks read the tables without locks. A mutex serializes only register/unregister/init/finalize.
 * Unregistering waits until no thread can still be running the removed callback, with two
 * in-flight counters: a dispatch counts itself in the counter the epoch points to; unregister
 * clears the slot, then waits until each counter in turn has drained (see wait_for_dispatches).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memhooks_internal.h"

#define MH_MAX_CALLBACKS 32
#define MH_NESTED_MAX 8

struct slot {
    _Atomic(opal_mem_hooks_callback_fn_t *) fn;
    void *_Atomic cbdata;
    /* Kept from reuse while an unregister waits for dispatches that may still read this slot:
     * a new callback's cbdata must never reach the old callback. Guarded by api_lock. */
    bool retiring;
};

static struct slot release_slots[MH_MAX_CALLBACKS];
static struct slot alloc_slots[MH_MAX_CALLBACKS];
/* One past the highest slot ever used: hooks scan no further. Only grows. */
static _Atomic int slots_used;
static int release_count, alloc_count; /* guarded by api_lock */

static pthread_mutex_t api_lock = PTHREAD_MUTEX_INITIALIZER;
static bool initialized;
static int support_level;

_Atomic int mh_work;
_Atomic uint64_t mh_stat_release, mh_stat_alloc, mh_stat_nested, mh_stat_coalesced, mh_stat_queued;

static _Atomic unsigned epoch;
static _Atomic long inflight[2];

/* Per-thread dispatch state. Kept small: initial-exec TLS of a dlopened library is scarce. */
static MH_TLS int tls_depth;          /* > 0 while this thread runs callbacks */
static MH_TLS long tls_inflight[2];   /* this thread's share of inflight[] */
static MH_TLS uintptr_t tls_caller;   /* return address of the hooked call being dispatched */
static MH_TLS uintptr_t tls_nested_addr[MH_NESTED_MAX];
static MH_TLS size_t tls_nested_len[MH_NESTED_MAX];
static MH_TLS unsigned tls_nested_count;
static MH_TLS unsigned tls_nested_from_alloc; /* bit i: entry i came from the allocator */

static _Atomic uintptr_t selftest_addr;
static _Atomic int selftest_seen;

long mh_syscall_result(long ret)
{
    if ((unsigned long)ret > -4096UL) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}

uintptr_t memhooks_release_caller(void)
{
    return tls_depth > 0 ? tls_caller : 0;
}

bool mh_from_alloc(uintptr_t caller)
{
    return mh_in_allocator > 0 || mh_libc_text_contains(caller);
}

void mh_selftest_note(uintptr_t addr, int seen_bit)
{
    if (!(atomic_load_explicit(&mh_work, memory_order_relaxed) & MH_WORK_SELFTEST))
        return;
    if (addr == atomic_load(&selftest_addr))
        atomic_fetch_or(&selftest_seen, seen_bit);
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

/*
 * The release and alloc totals are statistics only: a plain load and store instead of a locked
 * increment keeps them off the hot path's cost; concurrent hooks may undercount them slightly.
 */
static inline void count_event(_Atomic uint64_t *counter)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void mh_release(void *addr, size_t len, uintptr_t caller)
{
    if (len == 0)
        return;
    bool from_alloc = mh_from_alloc(caller);
    int work = atomic_load_explicit(&mh_work, memory_order_relaxed);
    count_event(&mh_stat_release);
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
    count_event(&mh_stat_alloc);
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

static void update_work(void)
{
    int work = atomic_load(&mh_work) & MH_WORK_SELFTEST;
    int queue_kinds = mh_queue_kinds(); /* what any subscriber records */
    if (release_count > 0 || (queue_kinds & MEMHOOKS_QUEUE_RELEASE))
        work |= MH_WORK_RELEASE;
    if (alloc_count > 0 || (queue_kinds & MEMHOOKS_QUEUE_ALLOC))
        work |= MH_WORK_ALLOC;
    atomic_store(&mh_work, work);
}

/*
 * Returns once no dispatch that could have read a slot before it was cleared is still running.
 * Safety: each counter is seen at (this thread's own share of) zero at some instant after the
 * clear, so every dispatch counted in it then has finished; a dispatch counted later read the slot
 * after the clear (all of it is sequentially consistent) and saw it empty. The epoch is pointed
 * away from the counter being waited for so that new dispatches cannot keep it from draining.
 */
static void wait_for_dispatches(void)
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
    pthread_mutex_lock(&api_lock);
    int rc = OPAL_SUCCESS, free_slot = -1;
    if (!initialized || support_level == 0) {
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
    update_work();
out:
    pthread_mutex_unlock(&api_lock);
    return rc;
}

/*
 * Threads waiting in remove_callback while inside a dispatch of their own (an unregister from a
 * callback). Two of them would wait for each other's dispatch forever, so while one waits, another
 * callback's unregister is refused (changing nothing) instead. Guarded by api_lock.
 */
static int callback_waiters;

static int remove_callback(struct slot *slots, int *count, opal_mem_hooks_callback_fn_t *func)
{
    bool in_callback = tls_inflight[0] + tls_inflight[1] > 0;
    pthread_mutex_lock(&api_lock);
    if (in_callback && callback_waiters > 0) {
        pthread_mutex_unlock(&api_lock);
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
        update_work();
        callback_waiters += in_callback;
    }
    pthread_mutex_unlock(&api_lock);
    if (found < 0)
        return OPAL_ERR_NOT_FOUND;
    /* Waited for without the lock: a callback running on another thread may itself register or
     * unregister, and must not wait for us while we wait for it. */
    wait_for_dispatches();
    pthread_mutex_lock(&api_lock);
    slots[found].retiring = false;
    callback_waiters -= in_callback;
    pthread_mutex_unlock(&api_lock);
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

int memhooks_queue_subscribe(void)
{
    pthread_mutex_lock(&api_lock);
    int rc = mh_queue_subscribe();
    update_work(); /* it may have taken back subscribers of ended threads */
    pthread_mutex_unlock(&api_lock);
    return rc;
}

int memhooks_queue_enable(int subscriber, int kinds)
{
    if (kinds & ~(MEMHOOKS_QUEUE_RELEASE | MEMHOOKS_QUEUE_ALLOC))
        return OPAL_ERR_BAD_PARAM;
    pthread_mutex_lock(&api_lock);
    int rc;
    if (kinds != 0 && (!initialized || support_level == 0))
        rc = OPAL_ERR_NOT_SUPPORTED;
    else {
        rc = mh_queue_set_kinds(subscriber, kinds);
        update_work();
    }
    pthread_mutex_unlock(&api_lock);
    return rc;
}

int memhooks_queue_unsubscribe(int subscriber)
{
    pthread_mutex_lock(&api_lock);
    int rc = mh_queue_unsubscribe(subscriber);
    update_work();
    pthread_mutex_unlock(&api_lock);
    return rc;
}

/* ---- Init, self-test, finalize ------------------------------------------------------------- */

/* Calls each patched function through libc's own entry point and checks its hook saw it. */
static int run_selftest(void)
{
    typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
    typedef int (*munmap_fn)(void *, size_t);
    typedef int (*madvise_fn)(void *, size_t, int);
    typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);
    typedef int (*brk_fn)(void *);
    typedef void *(*sbrk_fn)(intptr_t);
    mmap_fn do_mmap = (mmap_fn)mh_libc_symbol("mmap");
    munmap_fn do_munmap = (munmap_fn)mh_libc_symbol("munmap");
    madvise_fn do_madvise = (madvise_fn)mh_libc_symbol("madvise");
    mremap_fn do_mremap = (mremap_fn)mh_libc_symbol("mremap");
    brk_fn do_brk = (brk_fn)mh_libc_symbol("brk");
    sbrk_fn do_sbrk = (sbrk_fn)mh_libc_symbol("sbrk");
    if (!do_mmap || !do_munmap || !do_madvise || !do_mremap || !do_brk || !do_sbrk)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    int seen = 0;
    atomic_store(&selftest_seen, 0);
    atomic_fetch_or(&mh_work, MH_WORK_SELFTEST);

    /* The scratch mapping is reserved with a raw syscall so that its address is known first. */
    long base = raw_syscall6(SYS_mmap, 0, 4 * page, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if ((unsigned long)base < -4096UL) {
        char *p = (char *)base;
        atomic_store(&selftest_addr, (uintptr_t)(p + 3 * page));
        do_mmap(p + 3 * page, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                -1, 0);
        atomic_store(&selftest_addr, (uintptr_t)(p + 2 * page));
        do_madvise(p + 2 * page, page, MADV_DONTNEED);
        atomic_store(&selftest_addr, (uintptr_t)(p + 3 * page));
        do_mremap(p + 2 * page, 2 * page, page, 0);
        atomic_store(&selftest_addr, (uintptr_t)p);
        do_munmap(p, 3 * page);
    }
    /* System V shared memory, when the system has it: shmat over an attachment with SHM_REMAP,
     * then shmdt. The segment is created and attached with raw system calls. */
    bool shm_tested = false;
    typedef void *(*shmat_fn)(int, const void *, int);
    typedef int (*shmdt_fn)(const void *);
    shmat_fn do_shmat = (shmat_fn)mh_libc_symbol("shmat");
    shmdt_fn do_shmdt = (shmdt_fn)mh_libc_symbol("shmdt");
    long shmid = raw_syscall(SYS_shmget, IPC_PRIVATE, page, IPC_CREAT | 0600);
    if (shmid >= 0 && do_shmat && do_shmdt) {
        long at = raw_syscall(SYS_shmat, shmid, 0, 0);
        if ((unsigned long)at < -4096UL) {
            shm_tested = true;
            atomic_store(&selftest_addr, (uintptr_t)at);
            do_shmat((int)shmid, (void *)at, SHM_REMAP);
            do_shmdt((void *)at);
        }
        raw_syscall(SYS_shmctl, shmid, IPC_RMID, 0);
    }

    /* brk to the current break and sbrk(0) release nothing; the hooks still note the call. */
    long cur = raw_syscall(SYS_brk, 0, 0, 0);
    atomic_store(&selftest_addr, (uintptr_t)cur);
    do_sbrk(0);
    do_brk((void *)cur);
    seen = atomic_load(&selftest_seen);
    atomic_fetch_and(&mh_work, ~MH_WORK_SELFTEST);
    atomic_store(&selftest_addr, 0);

    int level = 0;
    int release_bits = MH_SEEN_MUNMAP | MH_SEEN_MADVISE | MH_SEEN_MREMAP | MH_SEEN_MMAP_FIXED |
                       MH_SEEN_BRK | MH_SEEN_SBRK | (shm_tested ? MH_SEEN_SHMAT | MH_SEEN_SHMDT : 0);
    if ((seen & release_bits) == release_bits)
        level |= OPAL_MEMORY_FREE_SUPPORT | OPAL_MEMORY_CHUNK_SUPPORT;
    if (seen & MH_SEEN_MMAP_ALLOC)
        level |= OPAL_MEMORY_MMAP_SUPPORT;
    if (mh_preload_active())
        level |= OPAL_MEMORY_MALLOC_SUPPORT;
    return level;
}

/*
 * fork(): the API lock is taken around it so the child never inherits it held, and the child's
 * in-flight counters drop the dispatches of threads that do not exist there (otherwise an
 * unregister in the child would wait for them forever); queue cells those threads were filling
 * are filled for them. The hooks themselves hold no lock.
 */
static void before_fork(void)
{
    pthread_mutex_lock(&api_lock);
    mh_queue_before_fork();
}

static void after_fork_in_parent(void)
{
    pthread_mutex_unlock(&api_lock);
}

static void after_fork_in_child(void)
{
    atomic_store(&inflight[0], tls_inflight[0]);
    atomic_store(&inflight[1], tls_inflight[1]);
    mh_queue_after_fork_child();
    pthread_mutex_unlock(&api_lock);
}

static pthread_once_t fork_handlers_once = PTHREAD_ONCE_INIT;

static void install_fork_handlers(void)
{
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

int opal_mem_hooks_init(void)
{
    pthread_once(&fork_handlers_once, install_fork_handlers);
    pthread_mutex_lock(&api_lock);
    int rc = OPAL_SUCCESS;
    if (!initialized) {
        if (mh_patch_install() == OPAL_SUCCESS)
            support_level = run_selftest();
        else
            support_level = 0;
        initialized = true;
        if (support_level == 0)
            rc = OPAL_ERR_NOT_SUPPORTED;
    }
    pthread_mutex_unlock(&api_lock);
    return rc;
}

static _Atomic int holders;

void memhooks_hold(void)
{
    atomic_fetch_add(&holders, 1);
}

void memhooks_unhold(void)
{
    atomic_fetch_sub(&holders, 1);
}

int memhooks_holders(void)
{
    return atomic_load(&holders);
}

int opal_mem_hooks_finalize(void)
{
    pthread_mutex_lock(&api_lock);
    /* A cache would keep serving registrations unwatched; a subscriber's consumer (another
     * JavaScript isolate) would stop getting events. Subscribers of ended threads do not count. */
    if (atomic_load(&holders) > 0 || mh_queue_live_subscribers() > 0) {
        pthread_mutex_unlock(&api_lock);
        return OPAL_ERR_RESOURCE_BUSY;
    }
    for (int i = 0; i < MH_MAX_CALLBACKS; i++) {
        atomic_store(&release_slots[i].fn, NULL);
        atomic_store(&alloc_slots[i].fn, NULL);
    }
    release_count = alloc_count = 0;
    update_work(); /* no subscriber is left, so no queue records */
    wait_for_dispatches();
    if (initialized)
        mh_patch_remove();
    initialized = false;
    support_level = 0;
    pthread_mutex_unlock(&api_lock);
    return OPAL_SUCCESS;
}

int opal_mem_hooks_support_level(void)
{
    pthread_mutex_lock(&api_lock);
    int level = initialized ? support_level : 0;
    pthread_mutex_unlock(&api_lock);
    return level;
}

void memhooks_stats(struct memhooks_stats *out)
{
    out->releases = atomic_load(&mh_stat_release);
    out->allocs = atomic_load(&mh_stat_alloc);
    out->nested = atomic_load(&mh_stat_nested);
    out->coalesced = atomic_load(&mh_stat_coalesced);
    out->queued = atomic_load(&mh_stat_queued);
}
