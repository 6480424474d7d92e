/*
 * Init's self-test: after patching, calls each patched function through libc's own entry point on
 * scratch memory and checks that its hook saw the call. The support level reports only what it
 * proved.
 */
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memhooks_internal.h"

/* The address the hook being tested is expected to report, and the MH_SEEN_* bits noted so far. */
static _Atomic uintptr_t selftest_addr;
static _Atomic int selftest_seen;
/* The MH_SEEN_* bit of the call being made, for imported events (they do not say which call). */
static _Atomic int selftest_bit;
/* The probe's mapped malloc chunk, and what its free() showed (mh_free_may_tail_call). */
static _Atomic uintptr_t selftest_chunk;
static _Atomic bool free_tail_calls = true;

static void expect(uintptr_t addr, int bit)
{
    atomic_store(&selftest_bit, bit);
    atomic_store(&selftest_addr, addr);
}

void mh_selftest_note(uintptr_t addr, int seen_bit)
{
    if (!(atomic_load_explicit(&mh_work, memory_order_relaxed) & MH_WORK_SELFTEST))
        return;
    if (addr == atomic_load(&selftest_addr))
        atomic_fetch_or(&selftest_seen, seen_bit);
}

void mh_selftest_note_range(uintptr_t addr, size_t len, bool alloc)
{
    if (!(atomic_load_explicit(&mh_work, memory_order_relaxed) & MH_WORK_SELFTEST))
        return;
    uintptr_t want = atomic_load(&selftest_addr);
    if (want < addr || want - addr >= len)
        return;
    int bit = atomic_load(&selftest_bit);
    if (alloc)
        bit = bit == MH_SEEN_MMAP_FIXED ? MH_SEEN_MMAP_ALLOC : 0;
    atomic_fetch_or(&selftest_seen, bit);
}

void mh_selftest_note_free(uintptr_t addr, bool caller_in_libc)
{
    if (!(atomic_load_explicit(&mh_work, memory_order_relaxed) & MH_WORK_SELFTEST))
        return;
    if (addr == atomic_load(&selftest_chunk))
        atomic_store(&free_tail_calls, !caller_in_libc);
}

bool mh_free_may_tail_call(void)
{
    return atomic_load_explicit(&free_tail_calls, memory_order_relaxed);
}

/*
 * Frees a block malloc maps for itself (64 MiB is above glibc's largest dynamic mmap threshold)
 * through libc's own malloc and free: munmap's hook says whether free's call came from inside
 * libc. Without that proof (no mapped chunk, no event) free is assumed to tail-call.
 */
static void probe_free(void)
{
    typedef void *(*malloc_fn)(size_t);
    typedef void (*free_fn)(void *);
    malloc_fn do_malloc = (malloc_fn)mh_libc_symbol("malloc");
    free_fn do_free = (free_fn)mh_libc_symbol("free");
    atomic_store(&free_tail_calls, true);
    if (!do_malloc || !do_free)
        return;
    size_t *block = do_malloc((size_t)64 << 20);
    if (!block)
        return;
    /* glibc's header of a mapped chunk: prev_size 0, then the size with IS_MMAPPED (2). */
    if (block[-2] == 0 && (block[-1] & 7) == 2)
        atomic_store(&selftest_chunk, (uintptr_t)(block - 2));
    do_free(block);
    atomic_store(&selftest_chunk, 0);
}

/* Calls each patched function through libc's own entry point and checks its hook saw it. */
int mh_selftest_run(int *seen_out, int *tested_out)
{
    *seen_out = *tested_out = 0;
    typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
    typedef int (*munmap_fn)(void *, size_t);
    typedef int (*madvise_fn)(void *, size_t, int);
    typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);
    typedef int (*brk_fn)(void *);
    typedef void *(*sbrk_fn)(intptr_t);
    mmap_fn do_mmap = (mmap_fn)mh_libc_symbol("mmap");
    munmap_fn do_munmap = (munmap_fn)mh_libc_symbol("munmap");
    madvise_fn do_madvise = (madvise_fn)mh_libc_symbol("madvise");
    mremap_fn do_mremap = (mremap_fn)mh_libc_symbol("mremap");
    brk_fn do_brk = (brk_fn)mh_libc_symbol("brk");
    sbrk_fn do_sbrk = (sbrk_fn)mh_libc_symbol("sbrk");
    if (!do_mmap || !do_munmap || !do_madvise || !do_mremap || !do_brk || !do_sbrk)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    int seen = 0;
    atomic_store(&selftest_seen, 0);
    atomic_fetch_or(&mh_work, MH_WORK_SELFTEST);

    /* The scratch mapping is reserved with a raw syscall so that its address is known first. */
    long base = raw_syscall6(SYS_mmap, 0, 4 * page, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if ((unsigned long)base < -4096UL) {
        char *p = (char *)base;
        expect((uintptr_t)(p + 3 * page), MH_SEEN_MMAP_FIXED);
        do_mmap(p + 3 * page, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                -1, 0);
        expect((uintptr_t)(p + 2 * page), MH_SEEN_MADVISE);
        do_madvise(p + 2 * page, page, MADV_DONTNEED);
        expect((uintptr_t)(p + 3 * page), MH_SEEN_MREMAP);
        do_mremap(p + 2 * page, 2 * page, page, 0);
        expect((uintptr_t)p, MH_SEEN_MUNMAP);
        do_munmap(p, 3 * page);
    }
    /* System V shared memory, when the system has it: shmat over an attachment with SHM_REMAP,
     * then shmdt. The segment is created and attached with raw system calls. */
    bool shm_tested = false;
    typedef void *(*shmat_fn)(int, const void *, int);
    typedef int (*shmdt_fn)(const void *);
    shmat_fn do_shmat = (shmat_fn)mh_libc_symbol("shmat");
    shmdt_fn do_shmdt = (shmdt_fn)mh_libc_symbol("shmdt");
    long shmid = raw_syscall(SYS_shmget, IPC_PRIVATE, page, IPC_CREAT | 0600);
    if (shmid >= 0 && do_shmat && do_shmdt) {
        long at = raw_syscall(SYS_shmat, shmid, 0, 0);
        if ((unsigned long)at < -4096UL) {
            shm_tested = true;
            expect((uintptr_t)at, MH_SEEN_SHMAT);
            do_shmat((int)shmid, (void *)at, SHM_REMAP);
            expect((uintptr_t)at, MH_SEEN_SHMDT);
            do_shmdt((void *)at);
        }
        raw_syscall(SYS_shmctl, shmid, IPC_RMID, 0);
    }

    /* brk to the current break and sbrk(0) release nothing; the hooks still note the call. */
    long cur = raw_syscall(SYS_brk, 0, 0, 0);
    atomic_store(&selftest_addr, (uintptr_t)cur);
    do_sbrk(0);
    do_brk((void *)cur);
    probe_free();
    seen = atomic_load(&selftest_seen) | mh_foreign_assumed_bits();
    atomic_fetch_and(&mh_work, ~MH_WORK_SELFTEST);
    atomic_store(&selftest_addr, 0);

    int level = 0;
    int release_bits = MH_SEEN_MUNMAP | MH_SEEN_MADVISE | MH_SEEN_MREMAP | MH_SEEN_MMAP_FIXED |
                       MH_SEEN_BRK | (mh_patch_sbrk_through_brk() ? 0 : MH_SEEN_SBRK) |
                       (shm_tested ? MH_SEEN_SHMAT | MH_SEEN_SHMDT : 0);
    *seen_out = seen;
    *tested_out = release_bits | MH_SEEN_MMAP_ALLOC;
    if ((seen & release_bits) == release_bits)
        level |= OPAL_MEMORY_FREE_SUPPORT | OPAL_MEMORY_CHUNK_SUPPORT;
    if (seen & MH_SEEN_MMAP_ALLOC)
        level |= OPAL_MEMORY_MMAP_SUPPORT;
    if (mh_preload_active())
        level |= OPAL_MEMORY_MALLOC_SUPPORT;
    return level;
}
