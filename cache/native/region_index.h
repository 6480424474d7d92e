/*
 * The cache's index of registered regions: an intrusive AVL tree keyed by start address (regions in
 * the tree never overlap, so "the region containing an address" is one floor search) and intrusive
 * doubly linked lists. The cache keeps two: idle regions in LRU order, and retired ones (held, but
 * no longer in the tree); a held region in the tree is on no list, except one TypeScript took
 * through its front word while it was idle (no native call saw that hold). Nothing here allocates
 * or locks: the caller owns the memory and the lock, which is what lets the release hook edit the
 * index in place.
 */
#ifndef RCACHE_REGION_INDEX_H
#define RCACHE_REGION_INDEX_H

#include <stdint.h>

#include "visibility.h"

/* Flags of struct rc_region. */
#define RC_REGION_INDEXED 0x01u /* in the tree: lookups may return it */
#define RC_REGION_IDLE 0x02u    /* on the idle (LRU) list: no holder, evictable */

struct rc_region {
    struct rc_region *left, *right; /* tree links */
    struct rc_region *prev, *next;  /* idle or retired list; next also links the graveyard */
    uintptr_t start, end;           /* registered bytes [start, end) */
    void *mr;                       /* the registrar's handle (struct ibv_mr * for the real one) */
    uint32_t lkey, rkey;
    uint32_t access;  /* IBV_ACCESS_* bits it was registered with */
    uint32_t holders; /* registrations handed out and not yet released, besides those counted in
                       * the front word */
    int32_t front;    /* index of the region's front word, -1 when none (see rcache.h) */
    int8_t height;    /* AVL height of the subtree rooted here */
    uint8_t flags;
};

/* The design budget: at most 128 bytes of bookkeeping per cached region. */
_Static_assert(sizeof(struct rc_region) <= 128, "per-region bookkeeping exceeds 128 bytes");

struct rc_list {
    struct rc_region *oldest, *newest;
};

/* Tree: all O(log n), recursion depth bounded by the AVL height (< 64 for any address space). */
void rc_index_insert(struct rc_region **root, struct rc_region *region);
void rc_index_remove(struct rc_region **root, struct rc_region *region);
/* The region with the greatest start <= addr, or NULL. */
RCACHE_TESTABLE struct rc_region *rc_index_floor(struct rc_region *root, uintptr_t addr);
/* The region with the greatest start < addr, or NULL. */
struct rc_region *rc_index_below(struct rc_region *root, uintptr_t addr);

/* Doubly linked lists, oldest first: append as newest, remove from anywhere. */
void rc_list_append(struct rc_list *list, struct rc_region *region);
void rc_list_remove(struct rc_list *list, struct rc_region *region);

#endif /* RCACHE_REGION_INDEX_H */
