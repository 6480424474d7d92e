/*
 * The registrar double (see registrar_double.h): no device. Keys come from a counter; the handle is
 * the key itself, so no memory is allocated (deregistration runs inside release hooks, where malloc
 * is not allowed).
 */
#include "registrar_double.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

static _Atomic uint64_t registrations, deregistrations, deregistrations_started, failures,
    pinned_bytes, pin_limit;
static _Atomic uint32_t next_key = 1;
static _Atomic uint64_t dereg_delay_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int double_reg(void *context, uintptr_t addr, size_t length, uint32_t access,
                      struct rcache_registration *out)
{
    (void)context;
    (void)addr;
    (void)access;
    uint64_t limit = atomic_load(&pin_limit);
    uint64_t pinned = atomic_fetch_add(&pinned_bytes, length) + length;
    if (limit && pinned > limit) {
        atomic_fetch_sub(&pinned_bytes, length);
        atomic_fetch_add(&failures, 1);
        return ENOMEM;
    }
    uint32_t key = atomic_fetch_add(&next_key, 1);
    if (key == 0)
        key = atomic_fetch_add(&next_key, 1); /* 0 stays "no handle" after wrap-around */
    atomic_fetch_add(&registrations, 1);
    out->mr = (void *)(uintptr_t)key;
    out->lkey = key;
    out->rkey = key ^ 0x80000000u; /* distinct from lkey, as on real devices */
    return 0;
}

static int double_dereg(void *context, void *mr, size_t length)
{
    (void)context;
    (void)mr;
    atomic_fetch_add(&deregistrations_started, 1); /* lets a test see one in progress */
    /* A real ibv_dereg_mr takes microseconds to milliseconds; tests that need the cache lock held
     * that long (inside a release hook) ask for it. Busy-waits: no sleeping call in a hook. */
    uint64_t delay = atomic_load(&dereg_delay_ns);
    if (delay) {
        uint64_t until = now_ns() + delay;
        while (now_ns() < until) {
        }
    }
    atomic_fetch_sub(&pinned_bytes, length);
    atomic_fetch_add(&deregistrations, 1);
    return 0;
}

static const struct rcache_registrar registrar = {.reg = double_reg, .dereg = double_dereg};

EXPORT const struct rcache_registrar *rcache_double_registrar(double limit)
{
    atomic_store(&pin_limit, (uint64_t)limit);
    return &registrar;
}

#define COUNTER_VALUE(variable, ts_name) (double)atomic_load(&variable),

EXPORT int rcache_double_counters(double *out, int count)
{
    double values[] = {RCACHE_DOUBLE_COUNTERS(COUNTER_VALUE)};
    int n = (int)(sizeof values / sizeof values[0]);
    for (int i = 0; i < count && i < n; i++)
        out[i] = values[i];
    return n;
}

EXPORT void rcache_double_set_dereg_delay(double ns)
{
    atomic_store(&dereg_delay_ns, (uint64_t)ns);
}

/* ---- The records TypeScript shares (records.h) -------------------------------------------- */

#define COUNTER_INDEX(variable, ts_name) COUNTER_##variable,
enum { RCACHE_DOUBLE_COUNTERS(COUNTER_INDEX) COUNTER_COUNT };
#define COUNTER_ENTRY(variable, ts_name) CONSTANT_ENTRY(DOUBLE_COUNTER, ts_name, COUNTER_##variable)

/* Each entry list ends in a comma, which clang-format cannot see: kept one list per line. */
/* clang-format off */
static const struct record_entry records[] = {
    RCACHE_DOUBLE_COUNTERS(COUNTER_ENTRY)
};
/* clang-format on */

EXPORT const char *rcache_double_records(void)
{
    static char text[1024];
    if (!text[0] && !records_text(records, sizeof records / sizeof records[0], text, sizeof text))
        return "";
    return text;
}
