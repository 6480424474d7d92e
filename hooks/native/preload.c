/*
 * Allocator wrappers for LD_PRELOAD mode.
 *
 * Loaded with LD_PRELOAD, this library's malloc, calloc, realloc, free and the aligned
 * allocators take the place of glibc's for the whole process. They forward to glibc's own
 * implementations (__libc_malloc and friends, so no dlsym bootstrap is needed), fire alloc events
 * for what they return and release events for what they free, and mark the thread as "inside the
 * allocator" so that releases glibc makes meanwhile (munmap of a large chunk, heap trim) are
 * flagged from_alloc exactly. Loaded any other way (dlopen), these definitions do not interpose and
 * are never called. Until opal_mem_hooks_init() they only forward.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "memhooks_internal.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_memalign(size_t alignment, size_t size);

MH_TLS int mh_in_allocator;

static _Atomic bool malloc_seen;

static void *allocated(void *p, size_t size)
{
    if (p) {
        atomic_store_explicit(&malloc_seen, true, memory_order_relaxed);
        if (atomic_load_explicit(&mh_work, memory_order_relaxed) & MH_WORK_ALLOC) {
            mh_in_allocator++;
            mh_alloc(p, size, 0);
            mh_in_allocator--;
        }
    }
    return p;
}

static void releasing(void *p)
{
    if (p && (atomic_load_explicit(&mh_work, memory_order_relaxed) & MH_WORK_RELEASE)) {
        mh_in_allocator++;
        mh_release(p, malloc_usable_size(p), 0);
        mh_in_allocator--;
    }
}

void *malloc(size_t size)
{
    mh_in_allocator++;
    void *p = __libc_malloc(size);
    mh_in_allocator--;
    return allocated(p, size);
}

void *calloc(size_t n, size_t size)
{
    mh_in_allocator++;
    void *p = __libc_calloc(n, size);
    mh_in_allocator--;
    return allocated(p, n * size);
}

void *realloc(void *ptr, size_t size)
{
    /* The old block may move or shrink: report it released first (a larger release is safe). */
    releasing(ptr);
    mh_in_allocator++;
    void *p = __libc_realloc(ptr, size);
    mh_in_allocator--;
    return allocated(p, size);
}

void free(void *ptr)
{
    if (!ptr)
        return;
    releasing(ptr);
    mh_in_allocator++;
    __libc_free(ptr);
    mh_in_allocator--;
}

void *memalign(size_t alignment, size_t size)
{
    mh_in_allocator++;
    void *p = __libc_memalign(alignment, size);
    mh_in_allocator--;
    return allocated(p, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    return memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 || alignment == 0)
        return EINVAL;
    void *p = memalign(alignment, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t size)
{
    return memalign(4096, size);
}

void *pvalloc(size_t size)
{
    return memalign(4096, (size + 4095) & ~(size_t)4095);
}

bool mh_preload_active(void)
{
    /* The wrappers only ever run when they interpose glibc's, that is when preloaded. */
    return atomic_load(&malloc_seen);
}
