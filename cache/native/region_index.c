/*
 * Intrusive AVL tree and lists for the registration cache (see region_index.h).
 */
#include "region_index.h"

#include <stddef.h>

static int height_of(const struct rc_region *node)
{
    return node ? node->height : 0;
}

static void update_height(struct rc_region *node)
{
    int l = height_of(node->left), r = height_of(node->right);
    node->height = (int8_t)((l > r ? l : r) + 1);
}

static struct rc_region *rotate_right(struct rc_region *node)
{
    struct rc_region *pivot = node->left;
    node->left = pivot->right;
    pivot->right = node;
    update_height(node);
    update_height(pivot);
    return pivot;
}

static struct rc_region *rotate_left(struct rc_region *node)
{
    struct rc_region *pivot = node->right;
    node->right = pivot->left;
    pivot->left = node;
    update_height(node);
    update_height(pivot);
    return pivot;
}

/* Restores the AVL balance of `node` after one insertion or removal below it. */
static struct rc_region *rebalance(struct rc_region *node)
{
    update_height(node);
    int balance = height_of(node->left) - height_of(node->right);
    if (balance > 1) {
        if (height_of(node->left->left) < height_of(node->left->right)) {
            node->left = rotate_left(node->left);
        }
        return rotate_right(node);
    }
    if (balance < -1) {
        if (height_of(node->right->right) < height_of(node->right->left)) {
            node->right = rotate_right(node->right);
        }
        return rotate_left(node);
    }
    return node;
}

static struct rc_region *insert_at(struct rc_region *node, struct rc_region *region)
{
    if (!node)
        return region;
    if (region->start < node->start) {
        node->left = insert_at(node->left, region);
    } else {
        node->right = insert_at(node->right, region);
    }
    return rebalance(node);
}

void rc_index_insert(struct rc_region **root, struct rc_region *region)
{
    region->left = region->right = NULL;
    region->height = 1;
    *root = insert_at(*root, region);
    region->flags |= RC_REGION_INDEXED;
}

/* Detaches the leftmost node of the subtree into *min and returns the rebalanced rest. */
static struct rc_region *remove_min(struct rc_region *node, struct rc_region **min)
{
    if (!node->left) {
        *min = node;
        return node->right;
    }
    node->left = remove_min(node->left, min);
    return rebalance(node);
}

/* Starts are unique in the tree (regions never overlap), so the key finds exactly `region`. */
static struct rc_region *remove_at(struct rc_region *node, struct rc_region *region)
{
    if (!node)
        return NULL;
    if (region->start < node->start) {
        node->left = remove_at(node->left, region);
    } else if (region->start > node->start) {
        node->right = remove_at(node->right, region);
    } else {
        struct rc_region *left = node->left, *right = node->right;
        if (!right)
            return left;
        struct rc_region *successor;
        right = remove_min(right, &successor);
        successor->left = left;
        successor->right = right;
        return rebalance(successor);
    }
    return rebalance(node);
}

void rc_index_remove(struct rc_region **root, struct rc_region *region)
{
    *root = remove_at(*root, region);
    region->left = region->right = NULL;
    region->flags &= (uint8_t)~RC_REGION_INDEXED;
}

struct rc_region *rc_index_floor(struct rc_region *node, uintptr_t addr)
{
    struct rc_region *best = NULL;
    while (node) {
        if (node->start <= addr) {
            best = node;
            node = node->right;
        } else {
            node = node->left;
        }
    }
    return best;
}

struct rc_region *rc_index_below(struct rc_region *node, uintptr_t addr)
{
    return addr == 0 ? NULL : rc_index_floor(node, addr - 1);
}

void rc_list_append(struct rc_list *list, struct rc_region *region)
{
    region->next = NULL;
    region->prev = list->newest;
    if (list->newest) {
        list->newest->next = region;
    } else {
        list->oldest = region;
    }
    list->newest = region;
}

void rc_list_remove(struct rc_list *list, struct rc_region *region)
{
    if (region->prev) {
        region->prev->next = region->next;
    } else {
        list->oldest = region->next;
    }
    if (region->next) {
        region->next->prev = region->prev;
    } else {
        list->newest = region->prev;
    }
    region->prev = region->next = NULL;
}
