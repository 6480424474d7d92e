/*
 * Declarations shared by the C files of the hooks library; not part of the public API.
 *
 * Everything reachable from a hook obeys three rules: no malloc, no lock, no call into a patched
 * libc function (the kernel is reached with raw_syscall()).
 */
#ifndef MEMHOOKS_INTERNAL_H
#define MEMHOOKS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opal_memhooks.h"

/*
 * Thread-locals must use the initial-exec model: the general-dynamic model of a dlopened library
 * allocates the variable with malloc on the first access, and that first access may be in a hook.
 */
#define MH_TLS __thread __attribute__((tls_model("initial-exec")))

/* Bits of mh_work: what a hook has to do besides calling the kernel. */
enum {
    MH_WORK_RELEASE = 1, /* release callbacks or the release queue are active */
    MH_WORK_ALLOC = 2,   /* alloc callbacks or the alloc queue are active */
    MH_WORK_SELFTEST = 4 /* init's self-test is watching for its own events */
};

/* Read by every hook with one relaxed load; zero means "go straight to the kernel". */
extern _Atomic int mh_work;

/*
 * mh_work and the API lock (lifecycle.c). The lock serializes register, unregister, init, finalize
 * and the queue subscriptions; taken around fork(). With it held: mh_supported() says whether init
 * succeeded with a nonzero support level, and mh_update_work() recomputes mh_work from the
 * callbacks and the queue subscribers (every change to either calls it).
 */
void mh_api_lock(void);
void mh_api_unlock(void);
bool mh_supported(void);
void mh_update_work(void);

/* Set by the allocator wrappers (LD_PRELOAD mode) while glibc's allocator runs on this thread. */
extern MH_TLS int mh_in_allocator;

/* The dispatch (dispatch.c). Called by the hooks: release before the memory goes, alloc after the
 * memory is there. */
void mh_release(void *addr, size_t len, uintptr_t caller);
void mh_alloc(void *addr, size_t len, uintptr_t caller);
/* Whether a hook call made from `caller` counts as made by the allocator. */
bool mh_from_alloc(uintptr_t caller);
/* With the API lock held: the MH_WORK_RELEASE / MH_WORK_ALLOC bits of the kinds some C callback
 * is registered for; finalize's removal of every callback. */
int mh_callback_work(void);
void mh_callbacks_clear(void);
/* Returns once no dispatch that could have read a callback slot before it was cleared still runs
 * (this thread's own excepted). */
void mh_wait_for_dispatches(void);
/* In a forked child: forgets the dispatches of the parent's other threads. */
void mh_dispatch_after_fork_child(void);

/* Init's self-test (selftest.c): returns the OPAL_MEMORY_* bits it proved, and the MH_SEEN_* bits
 * it saw and those it tested. While it runs, a hook reports that it ran for `addr` with
 * mh_selftest_note (bit = one of MH_SEEN_*). */
int mh_selftest_run(int *seen, int *tested);
enum {
    MH_SEEN_MUNMAP = 1 << 0,
    MH_SEEN_MADVISE = 1 << 1,
    MH_SEEN_MREMAP = 1 << 2,
    MH_SEEN_MMAP_FIXED = 1 << 3,
    MH_SEEN_BRK = 1 << 4,
    MH_SEEN_SBRK = 1 << 5,
    MH_SEEN_SHMDT = 1 << 6,
    MH_SEEN_SHMAT = 1 << 7,
    MH_SEEN_MMAP_ALLOC = 1 << 8,
    MH_SEEN_MALLOC = 1 << 9,
    MH_SEEN_FREE = 1 << 10
};
void mh_selftest_note(uintptr_t addr, int seen_bit);
/*
 * Whether free() may reach munmap by tail calls, leaving a return address outside libc (glibc
 * 2.31: free, munmap_chunk, munmap). True until the self-test's free of a mapped block was seen
 * from inside libc; munmap's hook then skips the chunk-header read (two system calls).
 */
bool mh_free_may_tail_call(void);
/* munmap's hook, while the self-test runs: a free()'s unmapping of the probe's block. */
void mh_selftest_note_free(uintptr_t addr, bool caller_in_libc);

/* The event queues the TypeScript side drains (queue.c). The push is called by hooks; the rest
 * with the API lock held. */
void mh_queue_push(uintptr_t addr, size_t len, uint32_t flags);
int mh_queue_subscribe(void);
int mh_queue_set_kinds(int subscriber, int kinds);
int mh_queue_unsubscribe(int subscriber);
int mh_queue_kinds(void);            /* MEMHOOKS_QUEUE_* bits some subscriber records */
int mh_queue_live_subscribers(void); /* takes back those of ended threads, counts the rest */
void mh_queue_before_fork(void);
void mh_queue_after_fork_child(void);

/* fork(): installs the pthread_atfork handlers, once (fork.c). */
void mh_fork_handlers_install(void);

/* Statistics counters (stats.c). */
extern _Atomic uint64_t mh_stat_release, mh_stat_alloc, mh_stat_nested, mh_stat_coalesced,
    mh_stat_queued;

/*
 * The release and alloc totals are statistics only: a plain load and store instead of a locked
 * increment keeps them off the hot path's cost; concurrent hooks may undercount them slightly.
 */
static inline void mh_count_event(_Atomic uint64_t *counter)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Code patching (patch.c on x86_64, arch/aarch64.c on aarch64). */
int mh_patch_install(void);
void mh_patch_remove(void);
/* After the self-test: a patched function whose tested events were not all seen is restored and
 * marked MEMHOOKS_PATCH_NOT_SEEN. */
void mh_patch_check_seen(int seen, int tested);
#if defined(__aarch64__)
/* sbrk reaches the kernel only through brk (its calls of brk's entry are retargeted to brk's hook),
 * so the self-test's brk event proves it; sbrk(0) with a known break calls nothing. */
bool mh_patch_sbrk_through_brk(void);
/* foreign.c's follow() on aarch64: where the code at `p` leads (see arch/aarch64.c). */
const uint8_t *mh_patch_follow(const uint8_t *p);
#else
static inline bool mh_patch_sbrk_through_brk(void)
{
    return false;
}
#endif
/*
 * What each patcher keeps per function and reports (patch_slots.c has the accessors): the first
 * member of its own per-function record. mh_patch_slot() is the patcher's: slot `index`, or NULL
 * outside 0 .. count - 1.
 */
struct mh_patch_slot {
    const char *name;
    void *hook;
    int seen; /* the MH_SEEN_* bits the self-test must see for it */
    int status;
    char reason[112]; /* memhooks_patch_reason() */
};
#define MH_PATCH_SLOT_INIT(n, bits)                            \
    {                                                          \
        .name = #n, .hook = (void *)mh_hook_##n, .seen = bits, \
        .status = MEMHOOKS_PATCH_NOT_INSTALLED                 \
    }
struct mh_patch_slot *mh_patch_slot(int index);
/* libc's handle (for mh_libc_symbol) and text; false when either cannot be found. */
bool mh_patch_open_libc(void);
/* Registers for MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE; false where the kernel lacks it. */
bool mh_patch_register_sync_core(void);
/* The self-test did not see the slot's hook: NOT_SEEN if its patch was restored, else
 * WRITE_FAILED, with the reason. */
void mh_patch_unseen(struct mh_patch_slot *slot, bool restored);
/* Whether the patcher's patch of function `index` is in place (its bytes, leading to us). */
bool mh_patch_in_place(int index);

/* libc's executable segment (libc_text.c), found by mh_find_libc_text(); 0 until then. */
extern uintptr_t mh_libc_text_lo, mh_libc_text_hi;
bool mh_libc_text_contains(uintptr_t addr);
/* Finds libc's executable segment once; false when it cannot. */
bool mh_find_libc_text(void);
/* A read-write page within `steps` 64 KiB steps of libc's text (a branch's reach), or NULL. */
void *mh_map_page_near_libc(long steps);
/* For foreign.c: entry `index`'s code (NULL when libc has none), the jump we wrote there and its
 * length (0 unless our patch is in place); and the status an entry gets once foreign.c found who
 * owns it (ours: our jump is back; not ours: written over, finalize must leave it). */
uint8_t *mh_patch_entry(int index, const uint8_t **jump, size_t *length);
void mh_patch_set_owned(int index, bool ours);

/* Other interceptors (foreign.c), with the API lock held: init finds who owns each entry and
 * imports foreign events; finalize gives the imports back; verify is memhooks_verify's locked
 * part. Assumed bits: the self-test bits an import vouches for (calls that release nothing). */
void mh_foreign_init(void);
void mh_foreign_finalize(void);
int mh_foreign_verify_locked(void);
int mh_foreign_assumed_bits(void);
/* An imported event covering [addr, addr + len) during init's self-test. */
void mh_selftest_note_range(uintptr_t addr, size_t len, bool alloc);

/* libc's own entry points (found with dlsym on libc), used by the self-test to call the real
 * functions, never our LD_PRELOAD definitions. */
void *mh_libc_symbol(const char *name);

/* x86-64 instruction lengths (x86_insn.c), for the code patch.c reads before rewriting it. */
enum mh_x86_kind {
    MH_X86_OTHER,        /* falls through to the next instruction */
    MH_X86_NOP,          /* 90 or 0F 1F /0, with any prefixes: alignment padding */
    MH_X86_STOP,         /* ret, ud2, hlt, int3: never falls through */
    MH_X86_JMP,          /* jmp rel8/rel32 */
    MH_X86_JMP_INDIRECT, /* jmp r/m */
    MH_X86_JCC,          /* conditional branch, loop, jrcxz */
    MH_X86_CALL,         /* call rel32 or r/m */
    MH_X86_SYSCALL
};
struct mh_x86_insn {
    uint8_t len;
    uint8_t kind;      /* enum mh_x86_kind */
    bool has_target;   /* a relative branch or call: `rel` from the next instruction */
    bool rip_relative; /* a [rip + disp32] operand, its disp32 at byte `disp_at` */
    uint8_t disp_at;
    int32_t rel;
};
/* Decodes the instruction at `p` (at most `avail` bytes readable): its length, or 0 when it is
 * not one this decoder knows. */
size_t mh_x86_decode(const uint8_t *p, size_t avail, struct mh_x86_insn *insn);

/* The hooks (intercept.c), with libc's signatures. */
#include <sys/types.h>
int mh_hook_munmap(void *addr, size_t len);
int mh_hook_madvise(void *addr, size_t len, int advice);
void *mh_hook_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset);
void *mh_hook_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr);
int mh_hook_brk(void *addr);
/* brk's hook for a call made on behalf of `caller` (aarch64's sbrk calls brk's entry itself). */
int mh_hook_brk_for(void *addr, uintptr_t caller);
void *mh_hook_sbrk(intptr_t increment);
void *mh_hook_shmat(int shmid, const void *shmaddr, int shmflg);
int mh_hook_shmdt(const void *shmaddr);

/* Allocator wrappers (preload.c). */
bool mh_preload_active(void);

/* Raw system calls: the hooks never go back through libc's (patched) wrappers. */
#if defined(__x86_64__)
static inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
/* The number in x8, arguments in x0..x5, the result in x0; the kernel preserves the rest. */
static inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc #0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}
#else
#error "the memory hooks support x86_64 and aarch64"
#endif

#define raw_syscall(nr, a, b, c) raw_syscall6((nr), (long)(a), (long)(b), (long)(c), 0, 0, 0)

#endif /* MEMHOOKS_INTERNAL_H */
