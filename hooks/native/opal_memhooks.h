/*
 * Memory hooks: callbacks when memory is allocated or about to be released.
 *
 * The first part is the Open MPI "opal memory hooks" API with its original names, signatures and
 * return codes, so C code written against Open MPI's opal/memoryhooks/memory.h compiles against it.
 * The second part (memhooks_*) is this project's extension: the event queue the TypeScript side
 * drains, and facts about the release being dispatched on the calling thread.
 *
 * Release callbacks run synchronously on the releasing thread, before the memory is released.
 */
#ifndef OPAL_MEMHOOKS_H
#define OPAL_MEMHOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes (values as in Open MPI's opal/constants.h). */
#define OPAL_SUCCESS 0
#define OPAL_ERR_NOT_SUPPORTED (-8)
#define OPAL_ERR_NOT_FOUND (-13)
#define OPAL_EXISTS (-14)

/* Support bits reported by opal_mem_hooks_support_level(). */
#define OPAL_MEMORY_FREE_SUPPORT 0x0001
#define OPAL_MEMORY_MALLOC_SUPPORT 0x0002
#define OPAL_MEMORY_CHUNK_SUPPORT 0x0004
#define OPAL_MEMORY_MMAP_SUPPORT 0x0008

/*
 * buf, length: the range allocated or about to be released.
 * cbdata: the pointer given at registration.
 * from_alloc: true when the allocator (malloc, free, realloc, heap trim) caused the event, false when
 * the program called munmap/madvise/mremap/... directly.
 */
typedef void(opal_mem_hooks_callback_fn_t)(void *buf, size_t length, void *cbdata,
                                           bool from_alloc);

int opal_mem_hooks_init(void);
int opal_mem_hooks_finalize(void);
int opal_mem_hooks_support_level(void);
int opal_mem_hooks_register_alloc(opal_mem_hooks_callback_fn_t *func, void *cbdata);
int opal_mem_hooks_register_release(opal_mem_hooks_callback_fn_t *func, void *cbdata);
int opal_mem_hooks_unregister_alloc(opal_mem_hooks_callback_fn_t *func);
int opal_mem_hooks_unregister_release(opal_mem_hooks_callback_fn_t *func);

/* ---- Extension ---------------------------------------------------------------------------- */

/*
 * Return address of the call into the hooked function (munmap, madvise, brk, ...) whose release is
 * being dispatched on this thread, or 0 outside a dispatch. A release callback uses it to tell
 * whether the releasing code is inside a library where re-entering it is unsafe (libibverbs, a
 * provider, the allocator).
 */
uintptr_t memhooks_release_caller(void);

#ifdef __cplusplus
}
#endif

#endif /* OPAL_MEMHOOKS_H */
