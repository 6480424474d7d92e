/*
 * Test support: the cache's pending-release ring (cache/native/pending_ring.c) with a pusher that
 * stops between claiming a cell and filling it, as a preempted thread does.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "pending_ring.h"

static struct rc_pending_ring ring;

static void *fill_claimed_cell_later(void *unused) {
  (void)unused;
  nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
  ring.cells[0].start = 0x1000;
  ring.cells[0].end = 0x2000;
  atomic_store_explicit(&ring.cells[0].sequence, 1, memory_order_release);
  return NULL;
}

/*
 * A claimed cell, then a range pushed behind it: the drain must return both, in order, and then
 * find the ring empty. Returns 0, or which step failed (1-3), or -1 if no thread could start.
 */
int ring_pop_behind_claimed_cell(void) {
  rc_pending_init(&ring);
  atomic_fetch_add(&ring.enqueue_at, 1); /* cell 0 claimed, not filled */
  rc_pending_push(&ring, 0x2000, 0x3000);
  pthread_t filler;
  if (pthread_create(&filler, NULL, fill_claimed_cell_later, NULL) != 0) return -1;
  uintptr_t start = 0, end = 0;
  int failed = 0;
  if (!rc_pending_pop(&ring, &start, &end) || start != 0x1000 || end != 0x2000) {
    failed = 1;
  } else if (!rc_pending_pop(&ring, &start, &end) || start != 0x2000 || end != 0x3000) {
    failed = 2;
  } else if (rc_pending_pop(&ring, &start, &end)) {
    failed = 3;
  }
  pthread_join(filler, NULL);
  return failed;
}
