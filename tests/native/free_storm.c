/*
 * Test support: threads that malloc and free blocks in a loop while the test looks each block up
 * in a registration cache, so that glibc releases the memory (munmap of a large block, the arena
 * trimmed under its lock) on those threads while the cache holds regions there.
 *
 * Each thread publishes a block in its slot (generation odd), waits until the test has looked that
 * generation up (or a bound passes), frees it (generation even), and starts again.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STORM_MAX 8

struct storm_slot {
    _Atomic uint64_t addr;
    _Atomic uint64_t len;
    _Atomic uint32_t gen;
    _Atomic uint32_t looked_up; /* the generation the test last looked up */
};

static struct storm_slot slots[STORM_MAX];
static pthread_t threads[STORM_MAX];
static int thread_count;
static _Atomic int stop;
static size_t small_size, large_size;

static void *storm_loop(void *arg)
{
    struct storm_slot *s = arg;
    for (unsigned i = 0; !atomic_load(&stop); i++) {
        size_t len = (i & 1) ? large_size : small_size;
        char *p = malloc(len);
        if (!p)
            continue;
        memset(p, 1, 4096);
        p[len - 1] = 1;
        atomic_store(&s->len, len);
        atomic_store(&s->addr, (uintptr_t)p);
        uint32_t gen = atomic_fetch_add(&s->gen, 1) + 1;
        for (int spins = 0;
             spins < 20000 && !atomic_load(&stop) && atomic_load(&s->looked_up) != gen; spins++)
            sched_yield();
        free(p);
        atomic_fetch_add(&s->gen, 1);
    }
    return NULL;
}

/* Starts `count` threads alternating blocks of `small` and `large` bytes; 0 or an errno. */
int storm_start(int count, double small, double large)
{
    if (count < 1 || count > STORM_MAX)
        return 22;
    memset(slots, 0, sizeof slots);
    atomic_store(&stop, 0);
    small_size = (size_t)small;
    large_size = (size_t)large;
    for (thread_count = 0; thread_count < count; thread_count++) {
        int rc = pthread_create(&threads[thread_count], NULL, storm_loop, &slots[thread_count]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Slot `i` as {generation, address, length} into `out` when a block is published there and
 * stayed so while read; returns 0 then, -1 otherwise. */
int storm_peek(int i, uint64_t *out)
{
    if (i < 0 || i >= thread_count)
        return -1;
    uint32_t gen = atomic_load(&slots[i].gen);
    uint64_t addr = atomic_load(&slots[i].addr), len = atomic_load(&slots[i].len);
    if (!(gen & 1) || atomic_load(&slots[i].gen) != gen)
        return -1;
    out[0] = gen;
    out[1] = addr;
    out[2] = len;
    return 0;
}

/* The test has looked generation `gen` of slot `i` up: its thread may free it now. */
void storm_looked_up(int i, uint32_t gen)
{
    if (i >= 0 && i < thread_count)
        atomic_store(&slots[i].looked_up, gen);
}

/* Stops and joins the threads; the number of blocks they freed. */
uint64_t storm_stop(void)
{
    atomic_store(&stop, 1);
    uint64_t freed = 0;
    for (int i = 0; i < thread_count; i++) {
        pthread_join(threads[i], NULL);
        freed += atomic_load(&slots[i].gen) / 2;
    }
    thread_count = 0;
    return freed;
}
