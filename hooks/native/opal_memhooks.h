/*
 * Memory hooks: callbacks when memory is allocated or about to be released.
 *
 * The first part is the Open MPI "opal memory hooks" API with its original names, signatures and
 * return codes, so C code written against Open MPI's opal/memoryhooks/memory.h compiles against it.
 * The second part (memhooks_*) is this project's extension: the event queues the TypeScript side
 * drains (one per JavaScript isolate), and facts about the release being dispatched on the calling
 * thread.
 *
 * Release callbacks run synchronously on the releasing thread, before the memory is released.
 *
 * The two structs the TypeScript side reads are declared from field lists, FIELD(ctx, type, name,
 * dims) for each field in order (the form of ffi/native/records.h): memhooks_records() describes
 * them, and the constants below, to TypeScript from the same source.
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
#define OPAL_ERR_OUT_OF_RESOURCE (-2)
#define OPAL_ERR_RESOURCE_BUSY (-4)
#define OPAL_ERR_BAD_PARAM (-5)
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
 * from_alloc: true when the allocator (malloc, free, realloc, heap trim) caused the event, false
 * when the program called munmap/madvise/mremap/... directly.
 */
typedef void(opal_mem_hooks_callback_fn_t)(void *buf, size_t length, void *cbdata, bool from_alloc);

int opal_mem_hooks_init(void);
int opal_mem_hooks_finalize(void); /* refused while the hooks are in use: see memhooks_hold */
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

/* Event flags. */
#define MEMHOOKS_EVENT_RELEASE 0x1
#define MEMHOOKS_EVENT_ALLOC 0x2
#define MEMHOOKS_EVENT_FROM_ALLOC 0x4
#define MEMHOOKS_EVENT_COALESCED 0x8 /* covers several events that overflowed the queue */
#define MEMHOOKS_EVENT_NESTED 0x10   /* released by a callback while it ran */

/* Declares one field of the lists below. */
#define MEMHOOKS_DECLARE_FIELD(ctx, type, name, dims) type name dims;

/* One queued event, as the TypeScript side reads it (24 bytes). */
#define MEMHOOKS_EVENT_FIELDS(FIELD, ctx)                \
    FIELD(ctx, uint64_t, addr, )                         \
    FIELD(ctx, uint64_t, len, )                          \
    FIELD(ctx, uint32_t, flags, ) /* MEMHOOKS_EVENT_* */ \
    FIELD(ctx, uint32_t, reserved, )
struct memhooks_event {
    MEMHOOKS_EVENT_FIELDS(MEMHOOKS_DECLARE_FIELD, )
};

/*
 * The event queues the TypeScript side drains. Each consumer (each JavaScript isolate: the main
 * thread and every Worker) takes its own subscriber: a bounded ring of 4096 events, covering ranges
 * for what overflows it, and a pending word. Every event goes to every subscriber that records its
 * kind, so what one consumer drains, enables or gives back never changes what another gets.
 */
#define MEMHOOKS_QUEUE_SUBSCRIBERS 32
#define MEMHOOKS_QUEUE_RELEASE 0x1
#define MEMHOOKS_QUEUE_ALLOC 0x2
/*
 * A subscriber id (0 .. MEMHOOKS_QUEUE_SUBSCRIBERS - 1) recording nothing yet, or
 * OPAL_ERR_OUT_OF_RESOURCE when every one is taken. It belongs to the calling thread: subscribers
 * whose subscribing thread has ended are taken back first (a terminated Worker cannot give its own
 * back); a subscriber whose thread is alive is never taken.
 */
int memhooks_queue_subscribe(void);
/*
 * Which events `subscriber` records (MEMHOOKS_QUEUE_* bits; 0: none, its queued events stay).
 * OPAL_ERR_BAD_PARAM for other bits or a subscriber not taken, OPAL_ERR_NOT_SUPPORTED for nonzero
 * kinds before opal_mem_hooks_init().
 */
int memhooks_queue_enable(int subscriber, int kinds);
/* Moves up to `max` of the subscriber's queued events, oldest first, into `out`; returns how many
 * (0 for a subscriber not taken). One consumer per subscriber. */
size_t memhooks_queue_drain(int subscriber, struct memhooks_event *out, size_t max);
/* An int32 that is nonzero whenever the subscriber's events may be waiting (NULL for a subscriber
 * not taken). Its address stays valid: the subscribers are static. */
int32_t *memhooks_queue_pending_word(int subscriber);
/* Gives the subscriber back, dropping its queued events (OPAL_ERR_NOT_FOUND if not taken). Waits
 * for hooks still writing to it, so it must not be called from a signal handler. */
int memhooks_queue_unsubscribe(int subscriber);
/* Tests only: `jam` 1 claims a cell of the subscriber's ring without filling it, as a producer
 * stopped between the two would; 0 fills it with an empty release. Returns 1 when it changed
 * something. */
int memhooks_testing_jam_queue(int subscriber, int jam);

/*
 * Counters since the library was loaded. releases and allocs are counted without a locked
 * increment, so concurrent hooks may undercount them slightly.
 */
#define MEMHOOKS_STATS_FIELDS(FIELD, ctx)                                                      \
    FIELD(ctx, uint64_t, releases, )  /* release events seen by the hooks */                   \
    FIELD(ctx, uint64_t, allocs, )    /* alloc events seen by the hooks */                     \
    FIELD(ctx, uint64_t, nested, )    /* releases by callbacks, dispatched after the outer */  \
    FIELD(ctx, uint64_t, coalesced, ) /* folds into a covering range (per queue, or nested) */ \
    FIELD(ctx, uint64_t, queued, )    /* events offered to the queues (once each) */
struct memhooks_stats {
    MEMHOOKS_STATS_FIELDS(MEMHOOKS_DECLARE_FIELD, )
};
void memhooks_stats(struct memhooks_stats *out);

/*
 * Users that rely on the hooks staying in place (a registration cache): while any hold them, or a
 * queue subscriber whose thread is alive remains, opal_mem_hooks_finalize() refuses with
 * OPAL_ERR_RESOURCE_BUSY and changes nothing, rather than leave them blind.
 */
void memhooks_hold(void);
void memhooks_unhold(void);
int memhooks_holders(void);

/* Per-function patch status (index 0 .. memhooks_patch_count() - 1). */
#define MEMHOOKS_PATCH_OK 0
#define MEMHOOKS_PATCH_NOT_INSTALLED 1    /* not attempted yet, or removed by finalize */
#define MEMHOOKS_PATCH_NO_SYMBOL 2        /* libc has no such function */
#define MEMHOOKS_PATCH_UNKNOWN_PROLOGUE 3 /* instructions the decoder does not know: left alone */
#define MEMHOOKS_PATCH_FOREIGN 4          /* already redirected by another library: left alone */
#define MEMHOOKS_PATCH_NO_TRAMPOLINE 5    /* no page within reach of a jmp rel32 */
#define MEMHOOKS_PATCH_WRITE_FAILED 6     /* the code could not be written */
#define MEMHOOKS_PATCH_UNSUPPORTED 7      /* no patching backend for this architecture */
#define MEMHOOKS_PATCH_NO_SAFE_ENTRY 8    /* short first instruction, no padding within reach */
#define MEMHOOKS_PATCH_NOT_SEEN 9         /* patched, the self-test missed its event: restored */
int memhooks_patch_count(void);
const char *memhooks_patch_name(int index);
int memhooks_patch_status(int index);
/* Why the function has its status, with the bytes that decided it, e.g. "unknown instruction at
 * +7: 0f 0b ..." or "jmp rel8 into the padding at -5": a static string, "" before init. */
const char *memhooks_patch_reason(int index);

/*
 * Other interceptors (foreign.c). Another library (UCX's ucm, libfabric, Open MPI) may patch the
 * same entry points, before our init or over our jumps later. memhooks_verify() compares every
 * entry's first bytes with the last verified ones (a few loads when nothing changed); on a change
 * it finds which library each entry now leads to, imports that library's events where it has an
 * API for them (ucm_set_event_handler, opal_mem_hooks_register_release), and counts a loss: events
 * may have been missed since the last verification, so whoever relies on them must drop what they
 * derived. Returns the number of losses so far (compare with the last value seen).
 */
#define MEMHOOKS_SOURCE_PATCH 0x1 /* our own patches */
#define MEMHOOKS_SOURCE_UCM 0x2   /* events imported from UCX's ucm */
#define MEMHOOKS_SOURCE_OPAL 0x4  /* events imported from another opal_mem_hooks library */
int memhooks_verify(void);
/* Whether every release entry point leads to a source of events (our hooks or an import). */
int memhooks_intercepted(void);
/* The MEMHOOKS_SOURCE_* bits events come from now. */
int memhooks_event_sources(void);
/* The library entry `index` leads to when it is not ours (NULL: ours, unpatched or unknown). */
const char *memhooks_patch_owner(int index);
/*
 * For readers that cannot call memhooks_verify() cheaply (TypeScript's hits without a native
 * call): memhooks_guard_words() is 8-byte aligned, and its 64-bit word i (int32s 2i and 2i+1) is
 * what the 8 bytes at memhooks_guard_entry(i) must hold, i < memhooks_patch_count() (the entry's
 * address rounded down to 4 bytes; NULL when libc has no such function). When interception is lost
 * they are set to bytes the entries cannot hold, so the comparison fails until it is
 * re-established.
 */
#define MEMHOOKS_GUARD_WORDS 16
const int32_t *memhooks_guard_words(void);
const void *memhooks_guard_entry(int index);
/* Publishes the guard words verified at loss count `seen_losses`, once the caller dropped what the
 * losses up to it may have made stale (nothing happens if another loss came since). */
void memhooks_guard_publish(int seen_losses);

/*
 * The prologue decoder used before patching, exposed for tests: returns MEMHOOKS_PATCH_OK and the
 * number of bytes of whole instructions covering the 5-byte jump, or why the code is refused.
 */
int memhooks_decode_prologue(const uint8_t *code, size_t avail, size_t *covered);

/*
 * The records and constants this header shares with TypeScript (the two structs, the
 * MEMHOOKS_EVENT_*, MEMHOOKS_PATCH_* and MEMHOOKS_QUEUE_* constants, the OPAL_* return codes and
 * support bits), as "group.key=value;" entries (ffi/native/records.h). A static string.
 */
const char *memhooks_records(void);

#ifdef __cplusplus
}
#endif

#endif /* OPAL_MEMHOOKS_H */
