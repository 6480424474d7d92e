/*
 * UCX's registration cache (ucs_rcache, Debian's libucx-dev) timed on the access patterns that
 * bench/cache_bench.ts times for ours, so the two print side by side. Registration callbacks do
 * nothing, as our registrar double does: only the cache's own work is measured.
 *
 *   ucx_rcache_bench <regions> <pattern> <ops> <samples>
 *
 * Regions are 4 KiB, 8 KiB apart, in one reserved, never-touched mapping (UCX reads the page
 * table of what it caches, so the addresses must be mapped). Patterns:
 *   hot     the middle region again and again
 *   random  regions drawn uniformly from all of them, by the same generator and order table as
 *           the TypeScript side (one draw per operation, the table walked once across samples)
 *   miss    two regions alternately through a cache that keeps one: each get registers, evicts
 * Prints one line: the median over samples of the mean ns per get + put.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucs/memory/rcache.h>

#define REGION_BYTES 4096u
#define REGION_STRIDE 8192u
#define ORDER_BITS 21u

static ucs_status_t null_reg(void *context, ucs_rcache_t *rcache, void *arg,
                             ucs_rcache_region_t *region, uint16_t flags)
{
    (void)context, (void)rcache, (void)arg, (void)region, (void)flags;
    return UCS_OK;
}

static void null_dereg(void *context, ucs_rcache_t *rcache, ucs_rcache_region_t *region)
{
    (void)context, (void)rcache, (void)region;
}

static void no_dump(void *context, ucs_rcache_t *rcache, ucs_rcache_region_t *region, char *buf,
                    size_t max)
{
    (void)context, (void)rcache, (void)region;
    if (max > 0)
        buf[0] = '\0';
}

static const ucs_rcache_ops_t OPS = {null_reg, null_dereg, no_dump};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static ucs_rcache_t *create(unsigned long max_regions)
{
    ucs_rcache_params_t params;
    memset(&params, 0, sizeof(params));
    params.region_struct_size = sizeof(ucs_rcache_region_t);
    params.alignment = UCS_PGT_ADDR_ALIGN;
    params.max_alignment = 4096;
    params.ucm_events = 0; /* no memory events: the hit and miss paths only */
    params.ops = &OPS;
    /* No flags: UCS_RCACHE_FLAG_NO_PFN_CHECK also skips LRU eviction in UCX 1.13 (the miss pattern
     * would then hit); without UCX_RCACHE_CHECK_PFN set, no page frame is read either way. */
    params.flags = 0;
    params.max_regions = max_regions;
    params.max_size = SIZE_MAX;
    params.max_unreleased = SIZE_MAX;
    ucs_rcache_t *rcache;
    if (ucs_rcache_create(&params, "bench", NULL, &rcache) != UCS_OK) {
        fprintf(stderr, "ucs_rcache_create failed\n");
        exit(1);
    }
    return rcache;
}

static void get_put(ucs_rcache_t *rcache, char *address)
{
    ucs_rcache_region_t *region;
    if (ucs_rcache_get(rcache, address, REGION_BYTES, PROT_READ | PROT_WRITE, NULL, &region) !=
        UCS_OK) {
        fprintf(stderr, "ucs_rcache_get failed at %p\n", (void *)address);
        exit(1);
    }
    ucs_rcache_region_put(rcache, region);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s <regions> hot|random|miss <ops> <samples>\n", argv[0]);
        return 2;
    }
    const unsigned long count = strtoul(argv[1], NULL, 10);
    const char *pattern = argv[2];
    const unsigned long ops = strtoul(argv[3], NULL, 10);
    const unsigned long samples = strtoul(argv[4], NULL, 10);
    if (count < 2 || ops == 0 || samples == 0 || samples > 1000)
        return 2;

    char *base = mmap(NULL, count * REGION_STRIDE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return 1;
    const int miss = strcmp(pattern, "miss") == 0;
    ucs_rcache_t *rcache = create(miss ? 1 : ULONG_MAX);
    if (!miss) {
        for (unsigned long i = 0; i < count; i++)
            get_put(rcache, base + i * REGION_STRIDE);
    }

    /* The TypeScript side's generator: state = state * 1103515245 + 12345 (mod 2^32). */
    const size_t order_size = (size_t)1 << ORDER_BITS;
    uint32_t *order = malloc(order_size * sizeof(*order));
    if (order == NULL)
        return 1;
    uint32_t state = 12345;
    for (size_t i = 0; i < order_size; i++) {
        state = state * 1103515245u + 12345u;
        order[i] = (uint32_t)(state % count);
    }

    size_t next = 0;
    double results[1000];
    /* Half a second unmeasured (warm caches, as the TypeScript side warms V8), then samples. */
    for (long s = -1; s < (long)samples; s++) {
        const double started = now_ns();
        unsigned long done = 0;
        do {
            for (unsigned long i = 0; i < ops; i++) {
                char *address;
                if (miss) {
                    address = base + (i & 1) * REGION_STRIDE;
                } else if (pattern[0] == 'h') {
                    address = base + (count / 2) * REGION_STRIDE;
                } else {
                    address = base + (size_t)order[next++ & (order_size - 1)] * REGION_STRIDE;
                }
                get_put(rcache, address);
            }
            done += ops;
        } while (s < 0 && now_ns() - started < 5e8);
        if (s >= 0)
            results[s] = (now_ns() - started) / (double)done;
    }
    qsort(results, samples, sizeof(double), compare_doubles);
    printf("%.1f\n", samples % 2 ? results[samples / 2]
                                 : (results[samples / 2 - 1] + results[samples / 2]) / 2);
    ucs_rcache_destroy(rcache);
    return 0;
}
