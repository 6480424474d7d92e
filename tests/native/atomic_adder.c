/*
 * Test support: a thread that adds to a 32-bit word with C11 atomics, to check that TypeScript's
 * Atomics.add on a view of native memory is atomic against native threads (the registration
 * cache's front words rely on it: cache/native/rcache.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

static _Atomic int32_t adder_word;
static _Atomic int adder_go;
static int adder_count;
static pthread_t adder_thread;

static void *add_loop(void *unused)
{
    (void)unused;
    while (!atomic_load(&adder_go)) {
    }
    for (int i = 0; i < adder_count; i++)
        atomic_fetch_add(&adder_word, 1);
    return NULL;
}

/* The word TypeScript adds to. */
void *adder_word_address(void)
{
    return (void *)&adder_word;
}

/* Starts a thread that adds 1 `count` times once adder_go(1) is called; 0 or an errno. */
int adder_start(int count)
{
    atomic_store(&adder_word, 0);
    atomic_store(&adder_go, 0);
    adder_count = count;
    return pthread_create(&adder_thread, NULL, add_loop, NULL);
}

void adder_go_now(void)
{
    atomic_store(&adder_go, 1);
}

void adder_join(void)
{
    pthread_join(adder_thread, NULL);
}
