/*
 * Benchmark helpers for bench/hooks_munmap.ts (build/libdeno_rdma_bench.so): munmap loops timed in
 * C, so that only the system call and what the memory hooks add to it are measured, and a C
 * release callback that is not interested in what it sees.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#include "opal_memhooks.h"

#define PAGE 4096

/* The one page the uninterested callback looks at: nothing the benchmark unmaps. */
static _Atomic uintptr_t watch_addr = 0x1000;
static _Atomic size_t watch_len = PAGE;
static _Atomic uint64_t watched_events;

/* Checks whether the release touches the watched page, as a callback that cares about some
 * memory does, and ignores it otherwise. */
static void uninterested_handler(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)cbdata;
    (void)from_alloc;
    uintptr_t w = atomic_load(&watch_addr);
    size_t wl = atomic_load(&watch_len);
    uintptr_t addr = (uintptr_t)buf;
    if (!w || addr >= w + wl || addr + length <= w)
        return;
    atomic_fetch_add(&watched_events, 1);
}

/* Registers the uninterested callback; an OPAL_* code. */
int bench_register_uninterested(void)
{
    return opal_mem_hooks_register_release(uninterested_handler, NULL);
}

/* Unregisters it (OPAL_ERR_NOT_FOUND when it was not registered). */
int bench_unregister_uninterested(void)
{
    return opal_mem_hooks_unregister_release(uninterested_handler);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Nanoseconds spent in `batches` x `batch` munmap calls of populated 4 KiB mappings (the mmap
 * and first touch of each page happen outside the timed loop). Returns 0 on failure.
 */
uint64_t bench_time_munmap(int batches, int batch)
{
    static void *pages[4096];
    if (batch < 1 || batch > 4096)
        return 0;
    uint64_t total = 0;
    for (int b = 0; b < batches; b++) {
        for (int i = 0; i < batch; i++) {
            pages[i] = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (pages[i] == MAP_FAILED)
                return 0;
            *(volatile char *)pages[i] = 1;
        }
        uint64_t start = now_ns();
        for (int i = 0; i < batch; i++)
            munmap(pages[i], PAGE);
        total += now_ns() - start;
    }
    return total;
}

/* Nanoseconds for `count` munmap calls on a page that is not mapped: the system call's own floor,
 * which makes the constant cost a hook adds visible. */
uint64_t bench_time_munmap_unmapped(int count)
{
    char *page = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 0;
    munmap(page, PAGE);
    uint64_t start = now_ns();
    for (int i = 0; i < count; i++)
        munmap(page, PAGE);
    return now_ns() - start;
}

/*
 * munmap of `count` pages in turn, cycling over a reserved window of `window` pages; returns the
 * window's address. Unmapping a page that is already gone still calls munmap, and the hook.
 */
void *bench_release_storm(long count, int window)
{
    char *base = mmap(NULL, (size_t)window * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    for (long i = 0; i < count; i++)
        munmap(base + (i % window) * PAGE, PAGE);
    return base;
}
