/*
 * The registrar double: no device. Keys come from a counter; the handle is the key itself, so no
 * memory is allocated (deregistration runs inside release hooks, where malloc is not allowed).
 */
#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include "registrar.h"

static _Atomic uint64_t registrations, deregistrations, deregistrations_started, failures,
    pinned_bytes, pin_limit;
static _Atomic uint32_t next_key = 1;
static _Atomic uint64_t dereg_delay_ns;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int double_reg(void *context, uintptr_t addr, size_t length, uint32_t access,
                      struct rc_registration *out) {
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
  if (key == 0) key = atomic_fetch_add(&next_key, 1); /* 0 stays "no handle" after wrap-around */
  atomic_fetch_add(&registrations, 1);
  out->mr = (void *)(uintptr_t)key;
  out->lkey = key;
  out->rkey = key ^ 0x80000000u; /* distinct from lkey, as on real devices */
  return 0;
}

static int double_dereg(void *context, void *mr, size_t length) {
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

struct rc_registrar rc_registrar_double(uint64_t limit) {
  atomic_store(&pin_limit, limit);
  return (struct rc_registrar){.reg = double_reg, .dereg = double_dereg, .context = 0};
}

void rc_registrar_double_read(struct rc_registrar_double_counters *out) {
  out->registrations = atomic_load(&registrations);
  out->deregistrations = atomic_load(&deregistrations);
  out->deregistrations_started = atomic_load(&deregistrations_started);
  out->failures = atomic_load(&failures);
  out->pinned_bytes = atomic_load(&pinned_bytes);
  out->pin_limit = atomic_load(&pin_limit);
}

void rc_registrar_double_set_limit(uint64_t limit) { atomic_store(&pin_limit, limit); }

void rc_registrar_double_set_dereg_delay(uint64_t ns) { atomic_store(&dereg_delay_ns, ns); }
