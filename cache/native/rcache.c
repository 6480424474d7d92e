/*
 * The lazy-unpin registration cache: lookups, registration on a miss, LRU eviction, and the release
 * hook that keeps it correct.
 *
 * Locking: one mutex per cache. Every operation drains the pending ring right after taking the lock
 * and again right before dropping it, so a release deferred while the operation ran (by another
 * thread's allocator, or by this thread re-entering through malloc/free) is applied before anyone can
 * look the range up again. `owner` records the thread holding the lock so the hook can tell "my own
 * thread is inside this cache" (defer) from "another thread is" (a direct release may wait).
 */
#include "rcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "opal_memhooks.h"
#include "pending_ring.h"
#include "region_index.h"
#include "registrar.h"
#include "verbs_text.h"

#define NEEDED_SUPPORT (OPAL_MEMORY_FREE_SUPPORT | OPAL_MEMORY_MMAP_SUPPORT)

struct rc_cache {
  pthread_mutex_t lock;
  _Atomic uintptr_t owner; /* pthread_self() of the lock holder, 0 when unlocked */
  _Atomic int live;        /* read by the hook without the lock; changed under it */
  struct rc_registrar registrar;
  uint64_t max_regions, max_bytes; /* 0: unbounded */
  bool merge;
  struct rc_region *root;
  /* Two spans, from the lowest start to the highest end of the indexed regions that start below
   * SPAN_SPLIT (the heap) and of those that start above it (the mmap area); empty: start > end.
   * The hook reads them without the lock to pass over releases no region can overlap: most
   * releases in a process concern other memory, and each pushed one costs a ring cell (see
   * release_hook). One span over a heap region and an mmap-area region would cover nearly every
   * mapping between them. */
  _Atomic uintptr_t span_start[2], span_end[2];
  bool span_stale; /* a region left the index since the span was computed */
  _Atomic uint64_t releases_examined; /* releases the hook did not pass over (statistics) */
  /* rc_pending_claimed() when a stuck ring cell last made the drain invalidate everything: the
   * ranges claimed up to then are covered (see drain_rounds). */
  size_t stuck_covered;
  bool stuck_covered_valid;
  struct rc_region *last; /* the region the last lookup returned, while indexed: reuse of one
                           * buffer skips the tree walk */
  struct rc_list idle; /* oldest first: the eviction order */
  struct rc_list retired; /* held regions no longer in the index (their memory was released, or
                           * a newer region replaced them): deregistered at their last release */
  struct rc_region *graveyard; /* deregistered, to be freed outside any hook */
  /* Front words (see rcache.h) and the region each is bound to; static so that no hook allocates
   * and TypeScript's view of the words never moves. */
  _Atomic uint32_t front[RCACHE_FRONT_SLOTS];
  struct rc_region *front_owner[RCACHE_FRONT_SLOTS];
  uint64_t stats[RCACHE_STAT_COUNT];
  struct rcache_result result;
  struct rcache_release_queue releases;
  struct rc_pending_ring pending;
};

static struct rc_cache caches[RCACHE_MAX_CACHES];
/* The cells rcache_testing_jam_rings claimed (tests only); forgotten in a forked child. */
static size_t jammed_at[RCACHE_MAX_CACHES];
static bool jammed[RCACHE_MAX_CACHES];
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int hooks_status = OPAL_SUCCESS;
static _Atomic int hooks_level;

/*
 * fork() in a process where another thread holds a cache lock would leave the child with a lock
 * nobody can release, and the child's first munmap would block in the release hook forever. So
 * the forking thread takes every lock first (create lock, then the slots in order: the order every
 * other path uses), and both sides release them after. glibc runs these handlers before it locks
 * the allocator, so a lock holder that is inside free() can finish.
 */
static void before_fork(void) {
  pthread_mutex_lock(&create_lock);
  for (int i = 0; i < RCACHE_MAX_CACHES; i++) pthread_mutex_lock(&caches[i].lock);
}

static void after_fork_parent(void) {
  for (int i = RCACHE_MAX_CACHES - 1; i >= 0; i--) pthread_mutex_unlock(&caches[i].lock);
  pthread_mutex_unlock(&create_lock);
}

/*
 * The child shares the parent's device handles (the same uverbs file): a deregistration there
 * would destroy the parent's memory regions in the kernel. So its copies of the caches are closed
 * without deregistering anything: the release hook skips them, and their operations fail (EBADF).
 */
static void after_fork_child(void) {
  for (int i = RCACHE_MAX_CACHES - 1; i >= 0; i--) {
    atomic_store_explicit(&caches[i].live, 0, memory_order_relaxed);
    atomic_store_explicit(&caches[i].owner, 0, memory_order_relaxed);
    /* A cell another thread had claimed would never be filled here. */
    rc_pending_init(&caches[i].pending);
    caches[i].stuck_covered_valid = false;
    jammed[i] = false;
    pthread_mutex_unlock(&caches[i].lock);
  }
  pthread_mutex_unlock(&create_lock);
}

static void init_slots(void) {
  for (int i = 0; i < RCACHE_MAX_CACHES; i++) {
    pthread_mutex_init(&caches[i].lock, NULL);
    rc_pending_init(&caches[i].pending);
  }
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

static void lock_cache(struct rc_cache *c) {
  pthread_mutex_lock(&c->lock);
  atomic_store_explicit(&c->owner, (uintptr_t)pthread_self(), memory_order_relaxed);
}

static void unlock_cache(struct rc_cache *c) {
  atomic_store_explicit(&c->owner, 0, memory_order_relaxed);
  pthread_mutex_unlock(&c->lock);
}

/* ---- The span of the index (lock held) ---------------------------------------------------- */

/*
 * Where the two spans divide, on x86-64 Linux: executables and their brk heap sit below (PIE at
 * 0x55..-0x56.., others lower), the mmap area below the stack, near 0x7f... A wrong guess costs
 * precision only: between them the spans always cover every region.
 */
#define SPAN_SPLIT ((uintptr_t)0x600000000000)

static int span_of(uintptr_t start) { return start >= SPAN_SPLIT; }

static void span_set(struct rc_cache *c, int which, uintptr_t start, uintptr_t end) {
  atomic_store(&c->span_start[which], start);
  atomic_store(&c->span_end[which], end);
}

static void span_clear(struct rc_cache *c) {
  span_set(c, 0, UINTPTR_MAX, 0);
  span_set(c, 1, UINTPTR_MAX, 0);
}

/* The region with the smallest start >= addr, or NULL. */
static struct rc_region *index_ceiling(struct rc_region *node, uintptr_t addr) {
  struct rc_region *best = NULL;
  while (node) {
    if (node->start >= addr) {
      best = node;
      node = node->left;
    } else {
      node = node->right;
    }
  }
  return best;
}

/* Shrinks the spans to the index after removals (never leaves a region outside them). */
static void span_refresh(struct rc_cache *c) {
  if (!c->span_stale) return;
  c->span_stale = false;
  struct rc_region *low_first = index_ceiling(c->root, 0);
  struct rc_region *low_last = rc_index_below(c->root, SPAN_SPLIT);
  struct rc_region *high_first = index_ceiling(c->root, SPAN_SPLIT);
  struct rc_region *high_last = rc_index_floor(c->root, UINTPTR_MAX);
  if (low_last) {
    span_set(c, 0, low_first->start, low_last->end);
  } else {
    span_set(c, 0, UINTPTR_MAX, 0);
  }
  if (high_first) {
    span_set(c, 1, high_first->start, high_last->end);
  } else {
    span_set(c, 1, UINTPTR_MAX, 0);
  }
}

/* Whether [start, end) overlaps a span: only then can it concern a region. */
static bool span_touches(struct rc_cache *c, uintptr_t start, uintptr_t end) {
  for (int which = 0; which < 2; which++) {
    if (end > atomic_load(&c->span_start[which]) && start < atomic_load(&c->span_end[which])) {
      return true;
    }
  }
  return false;
}

/* Takes `r` out of the tree; the span shrinks at the end of the operation (span_refresh). */
static void index_remove(struct rc_cache *c, struct rc_region *r) {
  rc_index_remove(&c->root, r);
  c->span_stale = true;
}

/* Before registering [start, end): from here on the hook sees releases of that memory. */
static void span_widen(struct rc_cache *c, uintptr_t start, uintptr_t end) {
  int which = span_of(start);
  if (start < atomic_load_explicit(&c->span_start[which], memory_order_relaxed)) {
    atomic_store(&c->span_start[which], start);
  }
  if (end > atomic_load_explicit(&c->span_end[which], memory_order_relaxed)) {
    atomic_store(&c->span_end[which], end);
  }
}

/* ---- Front words (lock held) ----------------------------------------------------------------- */

/* Holds taken through `r`'s front word and not yet released. */
static uint32_t front_holds(struct rc_cache *c, const struct rc_region *r) {
  if (r->front < 0) return 0;
  return atomic_load_explicit(&c->front[r->front], memory_order_acquire) & RCACHE_FRONT_HOLDS;
}

static uint32_t all_holders(struct rc_cache *c, const struct rc_region *r) {
  return r->holders + front_holds(c, r);
}

static void front_unbind(struct rc_cache *c, struct rc_region *r) {
  c->front_owner[r->front] = NULL;
  r->front = -1;
}

/*
 * Closes `r`'s front word, whatever it counts: the holds it counted become ordinary holders. A
 * region on the idle list that TypeScript had taken leaves the list (it is in use).
 */
static void front_close(struct rc_cache *c, struct rc_region *r) {
  if (r->front < 0) return;
  uint32_t word = atomic_exchange_explicit(&c->front[r->front], RCACHE_FRONT_CLOSED,
                                           memory_order_acq_rel);
  r->holders += word & RCACHE_FRONT_HOLDS;
  front_unbind(c, r);
  if (r->holders && (r->flags & RC_REGION_IDLE)) {
    rc_list_remove(&c->idle, r);
    r->flags &= (uint8_t)~RC_REGION_IDLE;
  }
}

/* Closes `r`'s front word if it counts no hold; false when TypeScript holds the region. */
static bool front_close_unheld(struct rc_cache *c, struct rc_region *r) {
  if (r->front < 0) return true;
  uint32_t unheld = 0;
  if (!atomic_compare_exchange_strong_explicit(&c->front[r->front], &unheld, RCACHE_FRONT_CLOSED,
                                               memory_order_acq_rel, memory_order_acquire)) {
    return false;
  }
  front_unbind(c, r);
  return true;
}

/* Takes one released hold off `r`'s front word; false when it counts none. */
static bool front_release(struct rc_cache *c, struct rc_region *r) {
  if (r->front < 0) return false;
  _Atomic uint32_t *word = &c->front[r->front];
  uint32_t value = atomic_load_explicit(word, memory_order_acquire);
  /* Only TypeScript adds (and only to an open word); only lock holders subtract or close. */
  while (value & RCACHE_FRONT_HOLDS) {
    if (atomic_compare_exchange_weak_explicit(word, &value, value - 1, memory_order_acq_rel,
                                              memory_order_acquire)) {
      return true;
    }
  }
  return false;
}

/* Binds front word `index` to `r`, closing it for the region it stood for before. */
static void front_bind(struct rc_cache *c, struct rc_region *r, int32_t index) {
  struct rc_region *previous = c->front_owner[index];
  if (previous) front_close(c, previous);
  c->front_owner[index] = r;
  r->front = index;
  atomic_store_explicit(&c->front[index], 0, memory_order_release);
}

/* ---- Region life cycle (lock held) ---------------------------------------------------------- */

/* Deregisters `r`; when count_path, `path` is the stat that says why it happened now. */
static void deregister(struct rc_cache *c, struct rc_region *r, enum rcache_stat path,
                       bool count_path) {
  front_close(c, r); /* already closed on every path; a region dies with its word closed */
  size_t length = r->end - r->start;
  if (c->registrar.dereg(c->registrar.context, r->mr, length) != 0) {
    c->stats[RCACHE_STAT_DEREGISTRATION_FAILURES]++;
  }
  c->stats[RCACHE_STAT_DEREGISTRATIONS]++;
  if (count_path) c->stats[path]++;
  c->stats[RCACHE_STAT_REGIONS]--;
  c->stats[RCACHE_STAT_BYTES] -= length;
}

/* Freed at the next drain outside a hook: hooks never call free. */
static void bury(struct rc_cache *c, struct rc_region *r) {
  r->next = c->graveyard;
  c->graveyard = r;
}

/*
 * Drops an unheld region completely, unless TypeScript has taken it through its front
 * word since it became idle: then it only leaves the list (it is in use; its release puts it back).
 */
static void discard_idle(struct rc_cache *c, struct rc_region *r, enum rcache_stat path,
                         bool count_path) {
  if (r->flags & RC_REGION_IDLE) {
    rc_list_remove(&c->idle, r);
    r->flags &= (uint8_t)~RC_REGION_IDLE;
  }
  if (r->holders || !front_close_unheld(c, r)) return;
  if (c->last == r) c->last = NULL;
  index_remove(c, r); /* idle regions are always indexed */
  c->stats[RCACHE_STAT_INDEXED]--;
  deregister(c, r, path, count_path);
  bury(c, r);
}

/*
 * Takes `r` out of the index: no lookup returns it again. An idle region is deregistered now; a held
 * one stays registered until its last holder releases it (rcache_put).
 */
static void retire(struct rc_cache *c, struct rc_region *r, enum rcache_stat path, bool count_path) {
  front_close(c, r); /* from here on no hold can be taken without a lookup */
  if (r->holders == 0) {
    discard_idle(c, r, path, count_path);
  } else {
    if (c->last == r) c->last = NULL;
    index_remove(c, r);
    c->stats[RCACHE_STAT_INDEXED]--;
    rc_list_append(&c->retired, r);
    atomic_fetch_add_explicit(&c->releases.retired, 1, memory_order_relaxed);
  }
}

/* Retires every indexed region overlapping [start, end); returns how many. */
static unsigned retire_overlapping(struct rc_cache *c, uintptr_t start, uintptr_t end,
                                   enum rcache_stat path, bool count_path) {
  unsigned retired = 0;
  for (;;) {
    /* Regions do not overlap, so those overlapping the range are consecutive and end with the
     * last one starting below `end`. */
    struct rc_region *r = rc_index_below(c->root, end);
    if (!r || r->end <= start) return retired;
    retire(c, r, path, count_path);
    retired++;
  }
}

/* Memory in [start, end) was or is being released. */
static void invalidate_range(struct rc_cache *c, uintptr_t start, uintptr_t end,
                             enum rcache_stat path) {
  c->stats[RCACHE_STAT_INVALIDATIONS] += retire_overlapping(c, start, end, path, true);
}

static void invalidate_everything(struct rc_cache *c, enum rcache_stat path) {
  while (c->root) {
    retire(c, c->root, path, true);
    c->stats[RCACHE_STAT_INVALIDATIONS]++;
  }
}

static void free_graveyard(struct rc_cache *c) {
  while (c->graveyard) {
    struct rc_region *r = c->graveyard;
    c->graveyard = r->next;
    free(r); /* may trim the heap and re-enter the hook, which defers: we hold the lock */
  }
}

/* Applies what the pending ring and the graveyard hold, until a round finds nothing more. False
 * when a stuck ring cell was met (everything was invalidated instead). */
static bool drain_rounds(struct rc_cache *c, bool in_hook) {
  for (int round = 0; round < 8; round++) {
    bool worked = false;
    if (rc_pending_take_overflow(&c->pending)) {
      invalidate_everything(c, RCACHE_STAT_DEREGISTRATIONS_DEFERRED);
      worked = true;
    }
    uintptr_t start, end;
    int popped;
    while ((popped = rc_pending_pop(&c->pending, &start, &end)) > 0) {
      invalidate_range(c, start, end, RCACHE_STAT_DEREGISTRATIONS_DEFERRED);
      worked = true;
    }
    if (popped < 0) {
      /*
       * A stuck cell hides the ranges behind it, whose memory may be gone: like an overflow,
       * release everything, unless no cell was claimed since the last time (all covered then).
       * The ring stays where it is; the caller keeps the deferred bit set so later operations
       * come back here until the cell is filled.
       */
      size_t claimed = rc_pending_claimed(&c->pending);
      if (!c->stuck_covered_valid || c->stuck_covered != claimed) {
        invalidate_everything(c, RCACHE_STAT_DEREGISTRATIONS_DEFERRED);
        atomic_fetch_add(&c->pending.overflows, 1); /* counted as an overflow: the same remedy */
        c->stuck_covered = claimed;
        c->stuck_covered_valid = true;
      }
      if (!in_hook && c->graveyard) free_graveyard(c);
      return false;
    }
    if (!in_hook && c->graveyard) {
      free_graveyard(c);
      worked = true;
    }
    if (!worked) return true;
  }
  return true;
}

/*
 * Applies deferred releases. Deregistering them here is safe: this thread is not inside the
 * allocator or libibverbs. Loops because deregistering and freeing can release more memory.
 */
static void drain_pending(struct rc_cache *c, bool in_hook) {
  if (!atomic_load_explicit(&c->releases.deferred, memory_order_relaxed) &&
      !rc_pending_maybe(&c->pending) && !c->graveyard) {
    return; /* the hit path's usual case */
  }
  /*
   * DRAINING replaces DEFERRED in one exchange, so the word never reads 0 while a range this drain
   * has popped is not applied yet: TypeScript, on another thread, may be about to take a hold
   * through the front word of a region in that range. DEFERRED is cleared before the ring is
   * read: a hook that defers pushes first and sets DEFERRED last, so either this drain pops its
   * range or the bit stays set after it.
   */
  atomic_exchange_explicit(&c->releases.deferred, RCACHE_DRAINING, memory_order_seq_cst);
  if (!drain_rounds(c, in_hook)) {
    /* Ranges are still hidden in the ring: hits keep coming here (set before DRAINING goes). */
    atomic_fetch_or_explicit(&c->releases.deferred, RCACHE_DEFERRED, memory_order_seq_cst);
  }
  atomic_fetch_and_explicit(&c->releases.deferred, ~RCACHE_DRAINING, memory_order_seq_cst);
}

static void evict_to_limits(struct rc_cache *c) {
  while (c->idle.oldest && ((c->max_regions && c->stats[RCACHE_STAT_REGIONS] > c->max_regions) ||
                            (c->max_bytes && c->stats[RCACHE_STAT_BYTES] > c->max_bytes))) {
    discard_idle(c, c->idle.oldest, RCACHE_STAT_EVICTIONS, true);
  }
}

static void evict_all_idle(struct rc_cache *c, bool count_evictions) {
  while (c->idle.oldest) discard_idle(c, c->idle.oldest, RCACHE_STAT_EVICTIONS, count_evictions);
}

/* Held regions are on no list (only retired ones are), except those TypeScript took through a
 * front word while they were idle. */
static void hold(struct rc_cache *c, struct rc_region *r) {
  r->holders++;
  if (r->flags & RC_REGION_IDLE) {
    rc_list_remove(&c->idle, r);
    r->flags &= (uint8_t)~RC_REGION_IDLE;
  }
}

/* One holder gives `r` back. Deregistering here is allowed: callers are cache operations and the
 * direct path of the release hook. */
static int put_region(struct rc_cache *c, struct rc_region *r) {
  if (!r) return RCACHE_ERR_STATE;
  /* Which count the release comes off does not matter, only the sum; `holders` first, so a
   * TypeScript add racing with this never meets a front word that is about to drop. */
  if (r->holders) {
    r->holders--;
  } else if (!front_release(c, r)) {
    return RCACHE_ERR_STATE;
  }
  if (all_holders(c, r) == 0) {
    if (r->flags & RC_REGION_INDEXED) {
      if (r->flags & RC_REGION_IDLE) rc_list_remove(&c->idle, r); /* back to newest */
      rc_list_append(&c->idle, r);
      r->flags |= RC_REGION_IDLE;
      evict_to_limits(c);
    } else {
      /* Retired while held (its memory was released, or a newer region replaced it). */
      rc_list_remove(&c->retired, r);
      atomic_fetch_sub_explicit(&c->releases.retired, 1, memory_order_relaxed);
      deregister(c, r, RCACHE_STAT_DEREGISTRATIONS, false);
      bury(c, r);
    }
  }
  return 0;
}

/* Applies the releases TypeScript queued (see struct rcache_release_queue). */
static void apply_releases(struct rc_cache *c) {
  struct rcache_release_queue *q = &c->releases;
  uint32_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
  uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
  if (head == tail) return;
  for (; head != tail; head++) {
    double handle = q->handles[head & (RCACHE_RELEASE_SLOTS - 1)];
    if (put_region(c, (struct rc_region *)(uintptr_t)(uint64_t)handle) != 0) {
      c->stats[RCACHE_STAT_BAD_RELEASES]++;
    }
  }
  atomic_store_explicit(&q->head, head, memory_order_release);
}

/* ---- The release hook ------------------------------------------------------------------------ */

static void release_hook(void *buf, size_t length, void *cbdata, bool from_alloc) {
  (void)cbdata;
  if (length == 0) return;
  uintptr_t start = (uintptr_t)buf;
  uintptr_t end = start + length < start ? UINTPTR_MAX : start + length;
  /*
   * The allocator may hold its arena lock (ibv_dereg_mr calls free, and a lock holder of ours may
   * be waiting in malloc for that arena), and libibverbs may hold its own locks: in both cases only
   * record the range. The next cache operation applies it before any lookup.
   */
  bool must_defer = from_alloc || rc_verbs_text_contains(memhooks_release_caller());
  uintptr_t self = (uintptr_t)pthread_self();
  for (int i = 0; i < RCACHE_MAX_CACHES; i++) {
    struct rc_cache *c = &caches[i];
    if (!atomic_load_explicit(&c->live, memory_order_acquire)) continue;
    /* Outside every region: nothing to do. A region registered while its memory is being
     * released could be missed, but registering memory another thread is unmapping is already
     * undefined (ibv_reg_mr may pin either side of the unmap). */
    if (!span_touches(c, start, end)) continue;
    atomic_fetch_add_explicit(&c->releases_examined, 1, memory_order_relaxed);
    if (must_defer || atomic_load_explicit(&c->owner, memory_order_relaxed) == self) {
      rc_pending_push(&c->pending, start, end);
      atomic_fetch_or_explicit(&c->releases.deferred, RCACHE_DEFERRED, memory_order_seq_cst);
      continue;
    }
    lock_cache(c);
    if (atomic_load_explicit(&c->live, memory_order_relaxed)) {
      apply_releases(c); /* released before this memory went: idle, so deregistered now */
      drain_pending(c, true);
      invalidate_range(c, start, end, RCACHE_STAT_DEREGISTRATIONS_IN_RELEASE);
      span_refresh(c);
    }
    unlock_cache(c);
  }
}

/* ---- Operations ------------------------------------------------------------------------------ */

static int ensure_hooks(void) {
  int level = opal_mem_hooks_support_level();
  if ((level & NEEDED_SUPPORT) != NEEDED_SUPPORT) {
    atomic_store(&hooks_status, opal_mem_hooks_init());
    level = opal_mem_hooks_support_level();
  }
  atomic_store(&hooks_level, level);
  if ((level & NEEDED_SUPPORT) != NEEDED_SUPPORT) return RCACHE_ERR_UNSUPPORTED;
  /* Registered once for all caches; OPAL_EXISTS just means it already is. Registering again on
   * every creation restores it after an opal_mem_hooks_finalize. */
  int rc = opal_mem_hooks_register_release(release_hook, caches);
  atomic_store(&hooks_status, rc);
  if (rc != OPAL_SUCCESS && rc != OPAL_EXISTS) return RCACHE_ERR_HOOKS;
  return 0;
}

int rcache_create(void *pd, int use_double, double double_pin_limit, double max_regions,
                  double max_bytes, int merge) {
  pthread_once(&slots_once, init_slots);
  pthread_mutex_lock(&create_lock);
  memhooks_hold(); /* first: a finalize from now on refuses, so the hooks stay once registered */
  int status = ensure_hooks();
  int slot = RCACHE_ERR_TOO_MANY;
  for (int i = 0; status == 0 && i < RCACHE_MAX_CACHES; i++) {
    if (!atomic_load(&caches[i].live)) {
      slot = i;
      break;
    }
  }
  if (status == 0 && slot < 0) status = slot; /* every slot in use */
  if (status == 0) {
    if (!use_double) rc_verbs_text_scan();
    struct rc_cache *c = &caches[slot];
    lock_cache(c);
    /* Releases pushed while the slot was free concern a cache that no longer exists (a stuck
     * cell stops this; what stays behind it only costs the new cache a spurious invalidation). */
    uintptr_t start, end;
    while (rc_pending_pop(&c->pending, &start, &end) > 0) {
    }
    c->stuck_covered_valid = false;
    rc_pending_take_overflow(&c->pending);
    atomic_store(&c->pending.overflows, 0);
    c->registrar = use_double ? rc_registrar_double((uint64_t)double_pin_limit) : rc_verbs_registrar(pd);
    c->max_regions = (uint64_t)max_regions;
    c->max_bytes = (uint64_t)max_bytes;
    c->merge = merge != 0;
    c->root = NULL;
    span_clear(c);
    c->span_stale = false;
    c->last = NULL;
    c->idle = (struct rc_list){0};
    c->retired = (struct rc_list){0};
    c->graveyard = NULL;
    for (int s = 0; s < RCACHE_STAT_COUNT; s++) c->stats[s] = 0;
    atomic_store(&c->releases_examined, 0);
    c->result = (struct rcache_result){0};
    atomic_store(&c->releases.head, 0);
    atomic_store(&c->releases.tail, 0);
    atomic_store(&c->releases.retired, 0);
    atomic_store(&c->releases.deferred, 0);
    for (int i = 0; i < RCACHE_FRONT_SLOTS; i++) {
      atomic_store_explicit(&c->front[i], RCACHE_FRONT_CLOSED, memory_order_relaxed);
      c->front_owner[i] = NULL;
    }
    atomic_store_explicit(&c->live, 1, memory_order_release);
    unlock_cache(c);
    status = slot;
  }
  if (status < 0) memhooks_unhold();
  pthread_mutex_unlock(&create_lock);
  return status;
}

/* The cache in `slot`, locked, with deferred releases applied; NULL when there is none. */
static struct rc_cache *enter(int slot) {
  if (slot < 0 || slot >= RCACHE_MAX_CACHES) return NULL;
  struct rc_cache *c = &caches[slot];
  if (!atomic_load_explicit(&c->live, memory_order_acquire)) return NULL;
  lock_cache(c);
  if (!atomic_load_explicit(&c->live, memory_order_relaxed)) {
    unlock_cache(c);
    return NULL;
  }
  apply_releases(c);
  drain_pending(c, false);
  return c;
}

static void leave(struct rc_cache *c) {
  drain_pending(c, false);
  span_refresh(c);
  unlock_cache(c);
}

int rcache_destroy(int slot) {
  struct rc_cache *c = enter(slot);
  if (!c) return RCACHE_ERR_CLOSED;
  atomic_store_explicit(&c->live, 0, memory_order_release);
  for (int i = 0; i < RCACHE_FRONT_SLOTS; i++) {
    if (c->front_owner[i]) front_close(c, c->front_owner[i]);
  }
  evict_all_idle(c, false);
  c->last = NULL;
  while (c->root) { /* held and indexed */
    struct rc_region *r = c->root;
    rc_index_remove(&c->root, r);
    deregister(c, r, RCACHE_STAT_DEREGISTRATIONS, false);
    bury(c, r);
  }
  while (c->retired.oldest) {
    struct rc_region *r = c->retired.oldest;
    rc_list_remove(&c->retired, r);
    deregister(c, r, RCACHE_STAT_DEREGISTRATIONS, false);
    bury(c, r);
  }
  free_graveyard(c);
  unlock_cache(c);
  memhooks_unhold();
  return 0;
}

struct rcache_result *rcache_result(int slot) {
  if (slot < 0 || slot >= RCACHE_MAX_CACHES) return NULL;
  return &caches[slot].result;
}

static void describe(struct rc_cache *c, struct rc_region *r) {
  c->result.region = (double)(uintptr_t)r;
  c->result.region_start = (double)r->start;
  c->result.region_end = (double)r->end;
  c->result.lkey = r->lkey;
  c->result.rkey = r->rkey;
  c->result.access = r->access;
  c->result.error = 0;
  c->result.front = r->front;
}

/* Registers `reg_start..reg_end` with the registrar; on a locked-memory limit evicts every idle
 * region and retries once. */
static int register_with_retry(struct rc_cache *c, uintptr_t start, uintptr_t end, uint32_t access,
                               struct rc_registration *out) {
  int err = c->registrar.reg(c->registrar.context, start, end - start, access, out);
  if ((err == ENOMEM || err == EAGAIN) && c->idle.oldest) {
    c->stats[RCACHE_STAT_LIMIT_RETRIES]++;
    evict_all_idle(c, true);
    err = c->registrar.reg(c->registrar.context, start, end - start, access, out);
  }
  return err;
}

/* Whether a region registered with `have` serves a request for `want`: see
 * RCACHE_PERMISSION_ACCESS. */
static bool access_serves(uint32_t have, uint32_t want) {
  return (have & want) == want &&
         (have & ~RCACHE_PERMISSION_ACCESS) == (want & ~RCACHE_PERMISSION_ACCESS);
}

static int register_range(struct rc_cache *c, uintptr_t start, uintptr_t end, uint32_t access,
                          struct rc_region **out) {
  /*
   * With merging, grow the range over indexed regions of the same access that overlap or touch it.
   * Their bytes are mapped (a release would have removed them) and were asked for with this same
   * access, so the union neither spans unmapped memory nor exposes bytes nobody asked to expose.
   */
  uintptr_t union_start = start, union_end = end;
  if (c->merge) {
    for (struct rc_region *r = rc_index_floor(c->root, end); r && r->end >= start;
         r = rc_index_below(c->root, r->start)) {
      if (r->access != access) continue;
      if (r->start < union_start) union_start = r->start;
      if (r->end > union_end) union_end = r->end;
    }
  }
  struct rc_region *region = malloc(sizeof *region);
  if (!region) return RCACHE_ERR_NO_MEMORY;
  span_widen(c, union_start, union_end); /* the union covers the exact range's fallback too */
  struct rc_registration reg;
  int err = -1;
  if (union_start != start || union_end != end) {
    err = c->registrar.reg(c->registrar.context, union_start, union_end - union_start, access, &reg);
    /* The union can fail where the exact range would not (protections differ, a region's memory
     * was released on a thread whose release is still pending): fall back to the exact range. */
    if (err) {
      union_start = start;
      union_end = end;
    }
  }
  if (err) err = register_with_retry(c, start, end, access, &reg);
  if (err) {
    free(region);
    c->result.error = err;
    return err == ENOMEM || err == EAGAIN ? RCACHE_ERR_LIMIT : RCACHE_ERR_REGISTER;
  }
  /* Whatever overlaps the new region leaves the index, so regions stay disjoint. Different access
   * overlapping: retired too, never widened. */
  retire_overlapping(c, union_start, union_end, RCACHE_STAT_DEREGISTRATIONS, false);
  if (union_start != start || union_end != end) c->stats[RCACHE_STAT_MERGES]++;
  *region = (struct rc_region){.start = union_start,
                               .end = union_end,
                               .mr = reg.mr,
                               .lkey = reg.lkey,
                               .rkey = reg.rkey,
                               .access = access,
                               .front = -1};
  rc_index_insert(&c->root, region);
  c->stats[RCACHE_STAT_INDEXED]++;
  c->stats[RCACHE_STAT_REGISTRATIONS]++;
  c->stats[RCACHE_STAT_REGIONS]++;
  c->stats[RCACHE_STAT_BYTES] += union_end - union_start;
  hold(c, region);
  c->last = region;
  evict_to_limits(c);
  *out = region;
  return RCACHE_MISS;
}

int rcache_get(int slot, double address, double length, uint32_t access, int32_t front) {
  /* TypeScript passes integers (pointers, or checked safe integers); the comparisons also reject
   * NaN. The limit keeps every bound exact in a double. */
  if (!(address >= 1 && length >= 1 && address + length <= 9007199254740992.0)) {
    return RCACHE_ERR_RANGE;
  }
  uint64_t addr = (uint64_t)address;
  struct rc_cache *c = enter(slot);
  if (!c) return RCACHE_ERR_CLOSED;
  uintptr_t start = (uintptr_t)addr, end = (uintptr_t)(addr + (uint64_t)length);
  c->result.address = (double)start;
  c->stats[RCACHE_STAT_GETS]++;
  int status;
  struct rc_region *r = c->last;
  if (!r || r->start > start || r->end < end) r = rc_index_floor(c->root, start);
  if (r && r->end >= end && access_serves(r->access, access)) {
    if (r->holders >= RCACHE_MAX_HOLDERS) {
      leave(c);
      return RCACHE_ERR_HOLDS; /* one more would wrap the count, and a held region could go */
    }
    c->stats[RCACHE_STAT_HITS]++;
    hold(c, r);
    c->last = r;
    status = RCACHE_HIT;
  } else {
    c->stats[RCACHE_STAT_MISSES]++;
    status = register_range(c, start, end, access, &r);
  }
  if (status >= 0) {
    /* Only a region found again gets a word: one registered and never reused costs nothing. */
    if (status == RCACHE_HIT && r->front < 0 && front >= 0 && front < RCACHE_FRONT_SLOTS) {
      front_bind(c, r, front);
    }
    describe(c, r);
  }
  leave(c);
  return status;
}

int rcache_get_buffer(int slot, const uint8_t *buffer, double length, uint32_t access,
                      int32_t front) {
  return rcache_get(slot, (double)(uintptr_t)buffer, length, access, front);
}

_Atomic uint32_t *rcache_front(int slot) {
  if (slot < 0 || slot >= RCACHE_MAX_CACHES) return NULL;
  return caches[slot].front;
}

int rcache_put(int slot, double handle) {
  struct rc_cache *c = enter(slot);
  if (!c) return RCACHE_ERR_CLOSED;
  int status = put_region(c, (struct rc_region *)(uintptr_t)(uint64_t)handle);
  leave(c);
  return status;
}

int rcache_discard(int slot, double handle) {
  struct rc_cache *c = enter(slot);
  if (!c) return RCACHE_ERR_CLOSED;
  struct rc_region *r = (struct rc_region *)(uintptr_t)(uint64_t)handle;
  int status = put_region(c, r);
  if (status == 0 && (r->flags & RC_REGION_IDLE)) discard_idle(c, r, RCACHE_STAT_EVICTIONS, false);
  leave(c);
  return status;
}

int rcache_region_bounds(int slot, double handle) {
  if (slot < 0 || slot >= RCACHE_MAX_CACHES) return RCACHE_ERR_CLOSED;
  /* The caller holds the region, so it is alive, and its bounds never change: no lock needed. */
  const struct rc_region *r = (const struct rc_region *)(uintptr_t)(uint64_t)handle;
  caches[slot].result.region_start = (double)r->start;
  caches[slot].result.region_end = (double)r->end;
  return 0;
}

struct rcache_release_queue *rcache_release_queue(int slot) {
  if (slot < 0 || slot >= RCACHE_MAX_CACHES) return NULL;
  return &caches[slot].releases;
}

int rcache_flush(int slot) {
  struct rc_cache *c = enter(slot);
  if (!c) return RCACHE_ERR_CLOSED;
  evict_all_idle(c, false);
  leave(c);
  return 0;
}

int rcache_stats(int slot, double *out, int count) {
  struct rc_cache *c = enter(slot);
  if (!c) return RCACHE_ERR_CLOSED;
  c->stats[RCACHE_STAT_PENDING_OVERFLOWS] = atomic_load(&c->pending.overflows);
  c->stats[RCACHE_STAT_RELEASES_EXAMINED] = atomic_load(&c->releases_examined);
  /* In use: every live region but the idle ones (those on the idle list that TypeScript has not
   * taken since). Counted here rather than kept, because front holds are taken without a call. */
  uint64_t idle = 0;
  for (struct rc_region *r = c->idle.oldest; r; r = r->next) idle += front_holds(c, r) == 0;
  c->stats[RCACHE_STAT_IN_USE] = c->stats[RCACHE_STAT_REGIONS] - idle;
  for (int i = 0; i < count && i < RCACHE_STAT_COUNT; i++) out[i] = (double)c->stats[i];
  leave(c);
  return RCACHE_STAT_COUNT;
}

double rcache_memlock_limit(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return -1;
  return (double)limit.rlim_cur;
}

int rcache_hooks_support_level(void) { return atomic_load(&hooks_level); }

int rcache_hooks_status(void) { return atomic_load(&hooks_status); }

void rcache_double_set_dereg_delay(double ns) { rc_registrar_double_set_dereg_delay((uint64_t)ns); }

/*
 * The test-only entry points below change a cache's state behind its back, so they do nothing
 * unless the process opted in with DENO_RDMA_TESTING=1 in its environment.
 */
static bool testing_enabled(void) {
  const char *value = getenv("DENO_RDMA_TESTING");
  return value != NULL && value[0] == '1' && value[1] == 0;
}

int rcache_testing_add_holds(double address, double count, int through_front) {
  /* Counts wrap modulo 2^32 on purpose: a test takes holds back by adding 2^32 - n. */
  if (!testing_enabled() || !(count >= 0 && count < 4294967296.0)) return -1;
  int changed = 0;
  for (int i = 0; i < RCACHE_MAX_CACHES; i++) {
    struct rc_cache *c = enter(i);
    if (!c) continue;
    struct rc_region *r = rc_index_floor(c->root, (uintptr_t)address);
    if (r && r->start == (uintptr_t)address) {
      if (!through_front) {
        r->holders += (uint32_t)count;
      } else if (r->front >= 0) {
        atomic_fetch_add(&c->front[r->front], (uint32_t)count);
      }
      changed++;
    }
    leave(c);
  }
  return changed;
}

int rcache_testing_jam_rings(int jam) {
  if (!testing_enabled()) return -1;
  int changed = 0;
  for (int i = 0; i < RCACHE_MAX_CACHES; i++) {
    struct rc_pending_ring *ring = &caches[i].pending;
    if (jam && atomic_load(&caches[i].live) && !jammed[i]) {
      /* Claimed as a pusher claims it, and only if it is free (a full ring is left alone). */
      size_t at = atomic_load(&ring->enqueue_at);
      if (atomic_load(&ring->cells[at & (RC_PENDING_SLOTS - 1)].sequence) != at ||
          !atomic_compare_exchange_strong(&ring->enqueue_at, &at, at + 1)) {
        continue;
      }
      jammed_at[i] = at;
      jammed[i] = true;
      changed++;
    } else if (!jam && jammed[i]) {
      struct rc_pending_cell *cell = &ring->cells[jammed_at[i] & (RC_PENDING_SLOTS - 1)];
      cell->start = cell->end = 0; /* an empty range: invalidates nothing */
      atomic_store_explicit(&cell->sequence, jammed_at[i] + 1, memory_order_release);
      jammed[i] = false;
      changed++;
    }
  }
  return changed;
}

int rcache_double_counters(double *out, int count) {
  struct rc_registrar_double_counters counters;
  rc_registrar_double_read(&counters);
  double values[] = {(double)counters.registrations, (double)counters.deregistrations,
                     (double)counters.failures, (double)counters.pinned_bytes,
                     (double)counters.pin_limit, (double)counters.deregistrations_started};
  int n = (int)(sizeof values / sizeof values[0]);
  for (int i = 0; i < count && i < n; i++) out[i] = values[i];
  return n;
}
