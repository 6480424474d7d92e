/*
 * Test probe for the memory hooks: a C release/alloc handler that records what it sees into fixed
 * static arrays, and drivers that release memory through the real libc paths.
 *
 * The release handler proves "before the memory is released": for a range overlapping the watched
 * buffer it reads the watched bytes inside the range and records whether they still hold the
 * byte the test wrote (after the release they would be gone: unmapped, or zero after DONTNEED).
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../ffi/native/records.h"
#include "child_status.h"
#include "opal_memhooks.h"

#define MAX_EVENTS 4096
#define PAGE 4096

/*
 * One event the handlers recorded, as hooks_probe.ts reads it (described by probe_records).
 * intact: -1 when the range does not touch the watched bytes.
 */
#define PROBE_EVENT_FIELDS(FIELD, ctx)                                              \
    FIELD(ctx, uint64_t, addr, )                                                    \
    FIELD(ctx, uint64_t, len, )                                                     \
    FIELD(ctx, int32_t, from_alloc, )                                               \
    FIELD(ctx, int32_t, intact, ) /* 1: watched bytes intact, 0: not, -1: missed */ \
    FIELD(ctx, int32_t, thread, ) /* kernel thread id of the releasing thread */    \
    FIELD(ctx, int32_t, nested, ) /* released by the freeing handler while it ran */
RECORD_STRUCT(probe_event, PROBE_EVENT_FIELDS);

/* clang-format off */
static const struct record_entry probe_record_entries[] = {
    RECORD_ENTRIES(PROBE_EVENT, probe_event, PROBE_EVENT_FIELDS)
};
/* clang-format on */

/* The probe's record, as records_text() (ffi/native/records.h), for hooks_probe.ts. */
const char *probe_records(void)
{
    static char text[512];
    if (!text[0] && !records_text(probe_record_entries,
                                  sizeof probe_record_entries / sizeof probe_record_entries[0],
                                  text, sizeof text))
        return "";
    return text;
}

static struct probe_event events[MAX_EVENTS];
static _Atomic int event_ready[MAX_EVENTS]; /* events[i] is complete */
static _Atomic uint32_t event_count;
static _Atomic uint64_t event_total;
static _Atomic uintptr_t watch_addr;
static _Atomic size_t watch_len;
static _Atomic int watch_byte;
static _Atomic uint64_t alloc_total;

/* What the freeing handler releases when it sees the watched range, once. */
static _Atomic uintptr_t free_in_handler_addr;
static size_t free_in_handler_len;
static _Atomic uintptr_t nested_victim;

static int watched_intact(uintptr_t addr, size_t len)
{
    uintptr_t w = atomic_load(&watch_addr);
    size_t wl = atomic_load(&watch_len);
    if (!w || addr >= w + wl || addr + len <= w)
        return -1;
    uintptr_t lo = addr > w ? addr : w, hi = addr + len < w + wl ? addr + len : w + wl;
    unsigned char byte = (unsigned char)atomic_load(&watch_byte);
    for (const volatile unsigned char *p = (const unsigned char *)lo; p < (unsigned char *)hi; p++)
        if (*p != byte)
            return 0;
    return 1;
}

/* When set, only events that touch the watched range are recorded (for busy processes). */
static _Atomic int watched_only;

void probe_record_watched_only(int on)
{
    atomic_store(&watched_only, on);
}

static void record(void *buf, size_t length, bool from_alloc, int nested)
{
    if (atomic_load(&watched_only) && watched_intact((uintptr_t)buf, length) < 0)
        return;
    atomic_fetch_add(&event_total, 1);
    uint32_t i = atomic_fetch_add(&event_count, 1);
    if (i >= MAX_EVENTS)
        return;
    /* Filled in completely (reading a large watched range takes a while), then published. */
    struct probe_event e = {
        .addr = (uintptr_t)buf,
        .len = length,
        .from_alloc = from_alloc,
        .intact = watched_intact((uintptr_t)buf, length),
        .thread = (int32_t)syscall(SYS_gettid),
        .nested = nested,
    };
    events[i] = e;
    atomic_store_explicit(&event_ready[i], 1, memory_order_release);
}

static void release_handler(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)cbdata;
    record(buf, length, from_alloc, 0);
}

static void freeing_handler(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)cbdata;
    uintptr_t victim = atomic_load(&free_in_handler_addr);
    bool touches_watch = watched_intact((uintptr_t)buf, length) >= 0;
    uintptr_t nested = atomic_load(&nested_victim);
    record(buf, length, from_alloc, nested && (uintptr_t)buf == nested);
    if (victim && touches_watch &&
        atomic_compare_exchange_strong(&free_in_handler_addr, &victim, 0))
        munmap((void *)victim, free_in_handler_len);
}

static void alloc_handler(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)buf;
    (void)length;
    (void)cbdata;
    (void)from_alloc;
    atomic_fetch_add(&alloc_total, 1);
}

static _Atomic uintptr_t unmap_on_alloc_addr;
static size_t unmap_on_alloc_len;

/* An alloc callback that releases memory: unmaps [addr, addr + len) once, on the next alloc. */
static void unmapping_alloc_handler(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)buf;
    (void)length;
    (void)cbdata;
    (void)from_alloc;
    uintptr_t victim = atomic_exchange(&unmap_on_alloc_addr, 0);
    if (victim)
        munmap((void *)victim, unmap_on_alloc_len);
}

/* ---- Handler control ---------------------------------------------------------------------- */

int probe_register(void)
{
    return opal_mem_hooks_register_release(release_handler, NULL);
}

int probe_unregister(void)
{
    return opal_mem_hooks_unregister_release(release_handler);
}

int probe_register_alloc(void)
{
    return opal_mem_hooks_register_alloc(alloc_handler, NULL);
}

int probe_unregister_alloc(void)
{
    return opal_mem_hooks_unregister_alloc(alloc_handler);
}

int probe_register_unmapping_alloc(void *addr, size_t len)
{
    unmap_on_alloc_len = len;
    atomic_store(&unmap_on_alloc_addr, (uintptr_t)addr);
    return opal_mem_hooks_register_alloc(unmapping_alloc_handler, NULL);
}

int probe_unregister_unmapping_alloc(void)
{
    atomic_store(&unmap_on_alloc_addr, 0);
    return opal_mem_hooks_unregister_alloc(unmapping_alloc_handler);
}

uint64_t probe_alloc_total(void)
{
    return atomic_load(&alloc_total);
}

/* Registers the handler that, on seeing the watched range, unmaps [addr, addr + len). */
int probe_register_freeing(void *addr, size_t len)
{
    free_in_handler_len = len;
    atomic_store(&nested_victim, (uintptr_t)addr);
    atomic_store(&free_in_handler_addr, (uintptr_t)addr);
    return opal_mem_hooks_register_release(freeing_handler, NULL);
}

int probe_unregister_freeing(void)
{
    return opal_mem_hooks_unregister_release(freeing_handler);
}

/* Stands for a callback that was never registered (for the NOT_FOUND return code). */
int probe_unregister_unknown(void)
{
    return opal_mem_hooks_unregister_release(alloc_handler);
}

int probe_register_null(void)
{
    return opal_mem_hooks_register_release(NULL, NULL);
}

void probe_reset(void)
{
    uint32_t n = atomic_load(&event_count);
    for (uint32_t i = 0; i < n && i < MAX_EVENTS; i++)
        atomic_store(&event_ready[i], 0);
    atomic_store(&event_count, 0);
    atomic_store(&event_total, 0);
    atomic_store(&watch_addr, 0);
    atomic_store(&watch_len, 0);
}

void probe_watch(void *addr, size_t len, int byte)
{
    atomic_store(&watch_byte, byte);
    atomic_store(&watch_len, len);
    atomic_store(&watch_addr, (uintptr_t)addr);
}

uint64_t probe_event_total(void)
{
    return atomic_load(&event_total);
}

/*
 * Index of the first recorded event with exactly this range, or -1. With len 0, the first event
 * whose range contains addr.
 */
int probe_find(void *addr, size_t len)
{
    uint32_t n = atomic_load(&event_count);
    if (n > MAX_EVENTS)
        n = MAX_EVENTS;
    for (uint32_t i = 0; i < n; i++) {
        if (!atomic_load_explicit(&event_ready[i], memory_order_acquire))
            continue; /* still being recorded on another thread */
        uintptr_t a = (uintptr_t)addr;
        if (len ? (events[i].addr == a && events[i].len == len)
                : (a >= events[i].addr && a < events[i].addr + events[i].len))
            return (int)i;
    }
    return -1;
}

/* Copies event `i` into `out` (a struct probe_event); returns 0, or -1 if none. */
int probe_event(int i, struct probe_event *out)
{
    uint32_t n = atomic_load(&event_count);
    if (i < 0 || (uint32_t)i >= n || i >= MAX_EVENTS ||
        !atomic_load_explicit(&event_ready[i], memory_order_acquire))
        return -1;
    *out = events[i];
    return 0;
}

int probe_gettid(void)
{
    return (int)syscall(SYS_gettid);
}

/* ---- Release drivers: each goes through libc's public function -------------------------- */

void *probe_map(size_t len, int byte)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    memset(p, byte, len);
    return p;
}

/* A shared anonymous (shmem) mapping, the kind MADV_REMOVE applies to. */
void *probe_map_shared(size_t len, int byte)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    memset(p, byte, len);
    return p;
}

int probe_munmap(void *p, size_t len)
{
    return munmap(p, len);
}

int probe_madvise(void *p, size_t len, int advice)
{
    return madvise(p, len, advice);
}

int probe_posix_madvise_dontneed(void *p, size_t len)
{
    return posix_madvise(p, len, POSIX_MADV_DONTNEED);
}

void *probe_mremap(void *p, size_t old_len, size_t new_len, int flags)
{
    return mremap(p, old_len, new_len, flags);
}

/* Moves [p, p + len) to a fresh address with MREMAP_MAYMOVE|MREMAP_FIXED. */
void *probe_mremap_fixed(void *p, size_t len, void *target)
{
    return mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, target);
}

void *probe_mmap_fixed(void *p, size_t len)
{
    return mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

/* Allocates `size` bytes with malloc, fills them with `byte`, and returns the block. */
void *probe_malloc_fill(size_t size, int byte)
{
    void *p = malloc(size);
    if (p)
        memset(p, byte, size);
    return p;
}

void probe_free(void *p)
{
    free(p);
}

int probe_malloc_trim(void)
{
    return malloc_trim(0);
}

static int last_shmid = -1;

/* Creates a private System V segment of `size` bytes, attaches it and fills it with `byte`. */
void *probe_shm_attach(size_t size, int byte)
{
    last_shmid = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
    if (last_shmid < 0)
        return NULL;
    void *p = shmat(last_shmid, NULL, 0);
    shmctl(last_shmid, IPC_RMID, NULL); /* destroyed once the last attachment goes */
    if (p == (void *)-1)
        return NULL;
    memset(p, byte, size);
    return p;
}

int probe_shmdt(void *p)
{
    return shmdt(p);
}

/*
 * shmdt(p) while this process can open no file (the soft RLIMIT_NOFILE lowered to the lowest free
 * descriptor, so every lower one is taken), so the hook cannot read /proc/self/maps. Restores the
 * limit. Returns shmdt's result, or -2 when the limit could not be set.
 */
int probe_shmdt_without_fds(void *p)
{
    struct rlimit saved;
    if (getrlimit(RLIMIT_NOFILE, &saved) != 0)
        return -2;
    int lowest_free = dup(0);
    if (lowest_free < 0)
        return -2;
    close(lowest_free);
    struct rlimit none = {.rlim_cur = (rlim_t)lowest_free, .rlim_max = saved.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &none) != 0)
        return -2;
    int rc = shmdt(p);
    setrlimit(RLIMIT_NOFILE, &saved);
    return rc;
}

/* Attaches the last segment again over `p` with SHM_REMAP. */
void *probe_shmat_remap(void *p)
{
    return shmat(last_shmid, p, SHM_REMAP);
}

/* ---- Threads ------------------------------------------------------------------------------ */

struct unmap_job {
    void *addr;
    size_t len;
};

static void *unmap_thread(void *arg)
{
    struct unmap_job *job = arg;
    munmap(job->addr, job->len);
    return NULL;
}

/* munmap on a new native thread; returns 0 once it has finished. */
int probe_munmap_on_thread(void *addr, size_t len)
{
    pthread_t t;
    struct unmap_job job = {addr, len};
    if (pthread_create(&t, NULL, unmap_thread, &job) != 0)
        return -1;
    return pthread_join(t, NULL);
}

#define LOOP_THREADS_MAX 16
static pthread_t loop_threads[LOOP_THREADS_MAX];
static int loop_thread_count;
static _Atomic int loop_started;
static _Atomic uint64_t loop_ops, loop_failures;

static void *mmap_loop(void *arg)
{
    long iterations = (long)(intptr_t)arg;
    atomic_fetch_add(&loop_started, 1);
    for (long i = 0; i < iterations; i++) {
        /* Four of the patched functions, so installation and removal race with each of them. */
        char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            atomic_fetch_add(&loop_failures, 1);
            continue;
        }
        p[0] = 1;
        p[PAGE] = 1;
        if (madvise(p + PAGE, PAGE, MADV_DONTNEED) != 0 || p[PAGE] != 0)
            atomic_fetch_add(&loop_failures, 1);
        if (mremap(p, 2 * PAGE, PAGE, 0) != p)
            atomic_fetch_add(&loop_failures, 1);
        if (munmap(p, PAGE) != 0)
            atomic_fetch_add(&loop_failures, 1);
        atomic_fetch_add_explicit(&loop_ops, 1, memory_order_relaxed);
    }
    return NULL;
}

/*
 * Starts `threads` threads that each mmap two pages, madvise(MADV_DONTNEED) the second, mremap
 * down to the first and munmap it, `iterations` times; returns once all run.
 */
int probe_loop_start(int threads, long iterations)
{
    if (threads < 1 || threads > LOOP_THREADS_MAX)
        return -1;
    atomic_store(&loop_started, 0);
    atomic_store(&loop_ops, 0);
    atomic_store(&loop_failures, 0);
    for (loop_thread_count = 0; loop_thread_count < threads; loop_thread_count++)
        if (pthread_create(&loop_threads[loop_thread_count], NULL, mmap_loop,
                           (void *)(intptr_t)iterations) != 0)
            return -1;
    while (atomic_load(&loop_started) < threads)
        sched_yield();
    return 0;
}

/* Joins the loop threads; returns the number of completed iterations, or -1 on any failure. */
int64_t probe_loop_join(void)
{
    for (int i = 0; i < loop_thread_count; i++)
        pthread_join(loop_threads[i], NULL);
    loop_thread_count = 0;
    return atomic_load(&loop_failures) ? -1 : (int64_t)atomic_load(&loop_ops);
}

/*
 * munmap of `count` pages in turn, cycling over a reserved window of `window` pages; returns the
 * window's address. Unmapping a page that is already gone still calls munmap, and the hook.
 */
void *probe_release_storm(long count, int window)
{
    char *base = mmap(NULL, (size_t)window * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    for (long i = 0; i < count; i++)
        munmap(base + (i % window) * PAGE, PAGE);
    return base;
}

/*
 * Heap trim: mallocs `blocks` blocks of `size` bytes from the heap, each followed by a guard block
 * of the same size, fills them with `byte`, frees the blocks (not the guards), watches one page
 * inside the middle block and calls malloc_trim(0). The guards keep each freed block from merging
 * with the top of the heap, so free cannot give it back and it waits in a bin for malloc_trim.
 * Returns the watched page.
 */
void *probe_trim_scenario(int blocks, size_t size, int byte)
{
    void *ptrs[64], *guards[64];
    if (blocks < 1 || blocks > 64)
        return NULL;
    for (int i = 0; i < blocks; i++) {
        ptrs[i] = malloc(size);
        guards[i] = malloc(size);
        if (!ptrs[i] || !guards[i])
            return NULL;
        memset(ptrs[i], byte, size);
    }
    uintptr_t mid = (uintptr_t)ptrs[blocks / 2];
    uintptr_t page = (mid + 2 * PAGE) & ~(uintptr_t)(PAGE - 1);
    probe_watch((void *)page, PAGE, byte);
    for (int i = 0; i < blocks; i++)
        free(ptrs[i]);
    malloc_trim(0);
    for (int i = 0; i < blocks; i++)
        free(guards[i]);
    return (void *)page;
}

/*
 * sbrk shrink: grows the break by `pages` pages, fills them with `byte`, watches them, shrinks by
 * half of them, then gives back the rest. Returns the first released address.
 */
void *probe_sbrk_scenario(int pages, int byte)
{
    char *old = sbrk(0);
    if (sbrk((intptr_t)pages * PAGE) == (void *)-1)
        return NULL;
    memset(old, byte, (size_t)pages * PAGE);
    probe_watch(old, (size_t)pages * PAGE, byte);
    char *released = old + (size_t)(pages / 2) * PAGE;
    sbrk(-(intptr_t)(pages - pages / 2) * PAGE);
    sbrk(-(intptr_t)(pages / 2) * PAGE);
    return released;
}

/* ---- fork ---------------------------------------------------------------------------------- */

/*
 * Forks; the child unmaps a filled mapping and frees a large malloc block, and exits 0 only if its
 * release handler saw the unmap with the bytes still there and it could then unregister the
 * handler. Returns the child's exit status (142 if it hung and SIGALRM ended it).
 */
int probe_fork_child_unmaps(void)
{
    char *p = probe_map(2 * PAGE, 0x5a);
    if (!p)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        alarm(10); /* a lock or counter inherited from another thread would hang: fail instead */
        probe_reset();
        probe_watch(p, 2 * PAGE, 0x5a);
        munmap(p, 2 * PAGE);
        void *big = malloc(1 << 22);
        free(big);
        int i = probe_find(p, 2 * PAGE);
        if (i < 0 || events[i].intact != 1)
            _exit(3);
        /* Unregistering waits for in-flight dispatches: those of the parent's other threads
         * must not count here. */
        _exit(opal_mem_hooks_unregister_release(release_handler) == OPAL_SUCCESS ? 0 : 4);
    }
    int status = child_status(pid);
    munmap(p, 2 * PAGE);
    return status;
}

static pthread_barrier_t unregister_barrier;
static _Atomic int unregister_turn;
static _Atomic int unregister_results[2];
static _Thread_local int unregister_armed;

static void unregister_victim_a(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)buf;
    (void)length;
    (void)cbdata;
    (void)from_alloc;
}

static void unregister_victim_b(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)buf;
    (void)length;
    (void)cbdata;
    (void)from_alloc;
}

/* Once per armed thread: waits until the other thread is inside a dispatch too, then unregisters
 * one of the victims. */
static void unregistering_handler(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)buf;
    (void)length;
    (void)cbdata;
    (void)from_alloc;
    if (!unregister_armed)
        return;
    unregister_armed = 0;
    pthread_barrier_wait(&unregister_barrier);
    int k = atomic_fetch_add(&unregister_turn, 1);
    unregister_results[k & 1] =
        opal_mem_hooks_unregister_release(k ? unregister_victim_a : unregister_victim_b);
}

static void *unmap_armed(void *arg)
{
    (void)arg;
    unregister_armed = 1;
    void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED)
        munmap(p, PAGE);
    return NULL;
}

/*
 * In a forked child: two threads, each inside a release callback at the same time, each
 * unregister another callback. Exit status 0 when one unregister succeeded and the other was
 * refused with OPAL_ERR_RESOURCE_BUSY, 1 for other results, 142 when they waited for each other
 * until the alarm. Returns the child's status.
 */
int probe_fork_two_unregisters_in_callbacks(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        alarm(10);
        pthread_barrier_init(&unregister_barrier, NULL, 2);
        if (opal_mem_hooks_register_release(unregister_victim_a, NULL) != OPAL_SUCCESS ||
            opal_mem_hooks_register_release(unregister_victim_b, NULL) != OPAL_SUCCESS ||
            opal_mem_hooks_register_release(unregistering_handler, NULL) != OPAL_SUCCESS)
            _exit(2);
        pthread_t threads[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&threads[i], NULL, unmap_armed, NULL);
        for (int i = 0; i < 2; i++)
            pthread_join(threads[i], NULL);
        int a = unregister_results[0], b = unregister_results[1];
        bool one_each = (a == OPAL_SUCCESS && b == OPAL_ERR_RESOURCE_BUSY) ||
                        (a == OPAL_ERR_RESOURCE_BUSY && b == OPAL_SUCCESS);
        _exit(one_each ? 0 : 1);
    }
    return child_status(pid);
}

/*
 * fork() while a queue cell is claimed and not filled (memhooks_testing_jam_queue): in the child,
 * a munmap's event, queued behind that cell, must still be drained, after a release covering
 * everything in its place. The probe takes a subscriber of its own that records releases.
 * Returns the child's status: 0, or 3 (the event stayed hidden), 4 (no covering release first).
 */
int probe_fork_child_drains_behind_stuck_cell(void)
{
    int sub = memhooks_queue_subscribe();
    if (sub < 0)
        return -2;
    if (memhooks_queue_enable(sub, MEMHOOKS_QUEUE_RELEASE) != OPAL_SUCCESS ||
        memhooks_testing_jam_queue(sub, 1) != 1) {
        memhooks_queue_unsubscribe(sub);
        return -2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        memhooks_queue_unsubscribe(sub);
        return -1;
    }
    if (pid == 0) {
        alarm(10);
        char *p = probe_map(PAGE, 0x5a);
        if (!p)
            _exit(2);
        munmap(p, PAGE);
        struct memhooks_event events[64];
        bool covered = false;
        for (;;) {
            size_t n = memhooks_queue_drain(sub, events, 64);
            if (n == 0)
                _exit(3);
            for (size_t i = 0; i < n; i++) {
                if (events[i].addr == 0 && events[i].len == UINT64_MAX &&
                    (events[i].flags & MEMHOOKS_EVENT_COALESCED))
                    covered = true;
                if (events[i].addr == (uintptr_t)p && (events[i].flags & MEMHOOKS_EVENT_RELEASE))
                    _exit(covered ? 0 : 4);
            }
        }
    }
    memhooks_testing_jam_queue(sub, 0);
    memhooks_queue_unsubscribe(sub);
    return child_status(pid);
}

/* ---- Another interceptor ---------------------------------------------------------------- */

static _Atomic int foreign_calls;

static int foreign_shmdt(const void *addr)
{
    atomic_fetch_add(&foreign_calls, 1);
    return (int)syscall(SYS_shmdt, addr);
}

int probe_foreign_calls(void)
{
    return atomic_load(&foreign_calls);
}

/*
 * Plays another interceptor (Open MPI's style): overwrites the start of libc's shmdt with
 * `movabs r11, foreign_shmdt; jmp r11` (aarch64: `ldr x16, #8; br x16; .quad foreign_shmdt`). For
 * a test process of its own. Returns 0 on success.
 */
int probe_patch_foreign_shmdt(void)
{
    void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    unsigned char *code = libc ? dlsym(libc, "shmdt") : NULL;
    if (!code)
        return -1;
    uintptr_t page = (uintptr_t)code & ~(uintptr_t)(PAGE - 1);
    if (mprotect((void *)page, 2 * PAGE, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
        return -1;
    uint64_t target = (uint64_t)(uintptr_t)foreign_shmdt;
#if defined(__aarch64__)
    /* ldr x16, #8; br x16; .quad target (the first byte is 0x50) */
    const uint32_t jump[2] = {0x58000050u, 0xd61f0200u};
    memcpy(code, jump, 8);
    memcpy(code + 8, &target, 8);
    __builtin___clear_cache((char *)code, (char *)code + 16);
#else
    code[0] = 0x49;
    code[1] = 0xbb;
    memcpy(code + 2, &target, 8);
    code[10] = 0x41;
    code[11] = 0xff;
    code[12] = 0xe3;
#endif
    return mprotect((void *)page, 2 * PAGE, PROT_READ | PROT_EXEC);
}

/* The first byte of libc's shmdt now (0x49 on x86_64, 0x50 on aarch64, while the foreign patch is
 * in place). */
int probe_libc_shmdt_first_byte(void)
{
    void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    unsigned char *code = libc ? dlsym(libc, "shmdt") : NULL;
    return code ? code[0] : -1;
}

/* ---- Unregistering while a callback runs ------------------------------------------------ */

static _Atomic int slow_running, slow_calls, self_unregister_rc = 1;

/* Takes 100 ms for the watched range, so that another thread can unregister it meanwhile. */
static void slow_handler(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)cbdata;
    (void)from_alloc;
    if (watched_intact((uintptr_t)buf, length) < 0)
        return;
    atomic_store(&slow_running, 1);
    atomic_fetch_add(&slow_calls, 1);
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    atomic_store(&slow_running, 0);
}

int probe_register_slow(void)
{
    return opal_mem_hooks_register_release(slow_handler, NULL);
}

int probe_slow_running(void)
{
    return atomic_load(&slow_running);
}

/* Unregisters the slow handler; returns whether it was still running right after (must be 0),
 * or -1 if unregister failed. */
int probe_unregister_slow_then_running(void)
{
    if (opal_mem_hooks_unregister_release(slow_handler) != OPAL_SUCCESS)
        return -1;
    return atomic_load(&slow_running);
}

static pthread_t async_thread;
static struct unmap_job async_job;

/* munmap on a new thread without waiting for it; probe_join_async() waits. */
int probe_munmap_async(void *addr, size_t len)
{
    async_job.addr = addr;
    async_job.len = len;
    return pthread_create(&async_thread, NULL, unmap_thread, &async_job);
}

int probe_join_async(void)
{
    return pthread_join(async_thread, NULL);
}

/* A handler that unregisters itself on its first call. */
static void self_unregistering_handler(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)cbdata;
    (void)from_alloc;
    if (watched_intact((uintptr_t)buf, length) < 0)
        return;
    atomic_store(&self_unregister_rc,
                 opal_mem_hooks_unregister_release(self_unregistering_handler));
}

int probe_register_self_unregistering(void)
{
    atomic_store(&self_unregister_rc, 1);
    return opal_mem_hooks_register_release(self_unregistering_handler, NULL);
}

/* What the handler's own unregister returned (1 while it has not run). */
int probe_self_unregister_rc(void)
{
    return atomic_load(&self_unregister_rc);
}
