/*
 * The registrar double: a struct rcache_registrar (cache/native/rcache.h) that needs no RDMA
 * device. It counts calls and hands out fake keys, so the cache's logic (eviction order, merging,
 * stats, hook-driven invalidation) can be tested, and its lookups measured, on any machine. Its
 * settings and counters are process-wide. Built into libdeno_rdma_testing.so, bound by
 * ffi/testing.ts, used through testing/mod.ts.
 */
#ifndef RCACHE_REGISTRAR_DOUBLE_H
#define RCACHE_REGISTRAR_DOUBLE_H

#include "rcache.h"
#include "records.h"

/* The double's counters, as rcache_double_counters writes them: one double each, in this order
 * (tests/native/memhooks_probe.c reads the first two). COUNTER(C variable, TypeScript name). */
#define RCACHE_DOUBLE_COUNTERS(COUNTER)                                                       \
    COUNTER(registrations, registrations)     /* registrations made */                        \
    COUNTER(deregistrations, deregistrations) /* deregistrations finished */                  \
    COUNTER(failures, failures)               /* registrations refused over the pin limit */  \
    COUNTER(pinned_bytes, pinnedBytes)        /* bytes registered now */                      \
    COUNTER(pin_limit, pinLimit)              /* the emulated locked-memory limit, 0: none */ \
    COUNTER(deregistrations_started, deregistrationsStarted) /* entered, finished or not */

/*
 * The double, for rcache_create. `pin_limit` emulates RLIMIT_MEMLOCK from now on, for every cache
 * over the double: a registration that would pin more than that many bytes in total fails with
 * ENOMEM (0: no limit). The registrar is static: it never moves and is never freed.
 */
const struct rcache_registrar *rcache_double_registrar(double pin_limit);
/* Writes min(count, the number of counters) counters into `out`; returns the number of counters. */
int rcache_double_counters(double *out, int count);
/* Makes every deregistration by the double busy-wait `ns` nanoseconds (0: none), as a real
 * ibv_dereg_mr takes a while; for tests that need the cache lock held inside a release hook. */
void rcache_double_set_dereg_delay(double ns);
/* The double's records for TypeScript (records_text(), see ffi/native/records.h). */
const char *rcache_double_records(void);

#endif /* RCACHE_REGISTRAR_DOUBLE_H */
