/*
 * How the cache registers and deregisters memory. The real registrar calls ibv_reg_mr/ibv_dereg_mr on
 * a protection domain; the registrar double counts calls and hands out fake keys so the cache's logic
 * (eviction order, merging, stats, hook-driven invalidation) can be tested on a machine without RDMA.
 */
#ifndef RCACHE_REGISTRAR_H
#define RCACHE_REGISTRAR_H

#include <stddef.h>
#include <stdint.h>

struct rc_registration {
  void *mr;
  uint32_t lkey, rkey;
};

struct rc_registrar {
  /* Returns 0 and fills *out, or an errno value (ENOMEM/EAGAIN mean a pinning limit was hit). */
  int (*reg)(void *context, uintptr_t addr, size_t length, uint32_t access,
             struct rc_registration *out);
  /* Returns 0 or an errno value. Runs inside release hooks: must not take the cache lock. */
  int (*dereg)(void *context, void *mr, size_t length);
  void *context; /* struct ibv_pd * for the real registrar */
};

/* The real registrar over the protection domain `pd` (a struct ibv_pd *). */
struct rc_registrar rc_verbs_registrar(void *pd);

/*
 * The registrar double. `pin_limit` emulates RLIMIT_MEMLOCK: a registration that would pin more
 * than that many bytes in total fails with ENOMEM (0 means no limit).
 */
struct rc_registrar rc_registrar_double(uint64_t pin_limit);

/* The double's counters, process-wide: calls made and bytes it currently "pins". */
struct rc_registrar_double_counters {
  uint64_t registrations, deregistrations, failures, pinned_bytes, pin_limit;
  uint64_t deregistrations_started; /* deregistrations entered, finished or not */
};
void rc_registrar_double_read(struct rc_registrar_double_counters *out);
void rc_registrar_double_set_limit(uint64_t pin_limit);
/* Makes every deregistration by the double take this long (process-wide; 0: none). */
void rc_registrar_double_set_dereg_delay(uint64_t ns);

#endif /* RCACHE_REGISTRAR_H */
