/*
 * Where libibverbs and its provider libraries keep their code. A release whose caller lies in one
 * of these ranges came from inside libibverbs (destroying a queue, a provider's own munmap), and
 * calling ibv_dereg_mr from there could re-enter a library that holds its own locks: defer.
 */
#ifndef RCACHE_VERBS_TEXT_H
#define RCACHE_VERBS_TEXT_H

#include <stdbool.h>
#include <stdint.h>

/* Records the executable segments of the loaded verbs libraries. Not from a hook (it may lock). */
void rc_verbs_text_scan(void);
/* True when `addr` lies in a recorded segment. Lock-free, safe inside a hook. */
bool rc_verbs_text_contains(uintptr_t addr);

#endif /* RCACHE_VERBS_TEXT_H */
