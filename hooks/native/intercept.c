/*
 * The hooks that replace libc's memory functions once patched (see patch.c).
 *
 * Each one reports a release before calling the kernel, so callbacks can still read the memory,
 * and an allocation after. They reach the kernel with raw_syscall(), never through libc's patched
 * wrappers, and take no lock and allocate nothing. The fast path, with nobody listening, is one
 * relaxed load of mh_work besides the system call.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "memhooks_internal.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4 /* Linux 5.7; glibc's headers have it from 2.32 */
#endif

#define PAGE 4096UL
#define PAGE_UP(n) (((n) + PAGE - 1) & ~(PAGE - 1))
#define CALLER ((uintptr_t)__builtin_return_address(0))

/* glibc's record of the program break, which brk() and sbrk() keep up to date. */
extern void *__curbrk;

/* Converts a raw result into libc's convention: -1 with errno set. */
static long syscall_result(long ret)
{
    if ((unsigned long)ret > -4096UL) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}

static inline int work_for(int kind)
{
    return atomic_load_explicit(&mh_work, memory_order_relaxed) & (kind | MH_WORK_SELFTEST);
}

/*
 * Whether munmap(addr, len) gives back a chunk glibc's malloc mapped for one large block: its
 * header (prev_size 0, then the size with only IS_MMAPPED set) is at the start of the mapping.
 * free() reaches munmap by tail calls in some versions (2.31: free, munmap_chunk, munmap), which
 * leaves the caller of free as the return address, outside libc. Read without faulting: the
 * range may not be mapped at all.
 */
static bool unmaps_malloc_chunk(void *addr, size_t len)
{
    size_t header[2];
    struct iovec local = {.iov_base = header, .iov_len = sizeof header};
    struct iovec remote = {.iov_base = addr, .iov_len = sizeof header};
    if (len < PAGE || ((uintptr_t)addr & (PAGE - 1)) ||
        raw_syscall6(SYS_process_vm_readv, raw_syscall(SYS_getpid, 0, 0, 0), (long)&local, 1,
                     (long)&remote, 1, 0) != (long)sizeof header)
        return false;
    return header[0] == 0 && header[1] == (PAGE_UP(len) | 2 /* IS_MMAPPED */);
}

int mh_hook_munmap(void *addr, size_t len)
{
    if (work_for(MH_WORK_RELEASE)) {
        uintptr_t caller = CALLER;
        bool in_libc = mh_libc_text_contains(caller);
        mh_selftest_note((uintptr_t)addr, MH_SEEN_MUNMAP);
        mh_selftest_note_free((uintptr_t)addr, in_libc);
        /* A malloc chunk unmapped from outside libc came through free()'s tail calls. */
        bool chunk = !in_libc && mh_free_may_tail_call() && unmaps_malloc_chunk(addr, len);
        mh_in_allocator += chunk;
        mh_release(addr, PAGE_UP(len), caller);
        mh_in_allocator -= chunk;
    }
    return (int)syscall_result(raw_syscall(SYS_munmap, addr, len, 0));
}

static bool releasing_advice(int advice)
{
    return advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE ||
           advice == 24 /* MADV_DONTNEED_LOCKED, Linux 5.18 */ ||
           advice == 102 /* MADV_GUARD_INSTALL, Linux 6.13: zaps the pages it guards */;
}

int mh_hook_madvise(void *addr, size_t len, int advice)
{
    if (releasing_advice(advice) && work_for(MH_WORK_RELEASE)) {
        mh_selftest_note((uintptr_t)addr, MH_SEEN_MADVISE);
        mh_release(addr, PAGE_UP(len), CALLER);
    }
    return (int)syscall_result(raw_syscall(SYS_madvise, addr, len, advice));
}

void *mh_hook_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
    uintptr_t caller = CALLER;
    /* MAP_FIXED replaces whatever was mapped there; MAP_FIXED_NOREPLACE never does. */
    if ((flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE) && work_for(MH_WORK_RELEASE)) {
        mh_selftest_note((uintptr_t)addr, MH_SEEN_MMAP_FIXED);
        mh_release(addr, PAGE_UP(len), caller);
    }
    long ret = syscall_result(
        raw_syscall6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, (long)offset));
    if (ret != -1 && work_for(MH_WORK_ALLOC)) {
        mh_selftest_note((uintptr_t)ret, MH_SEEN_MMAP_ALLOC);
        mh_alloc((void *)ret, PAGE_UP(len), caller);
    }
    return (void *)ret;
}

/* The releases an mremap implies, in whole pages (see the table in hooks/README.md). */
static void mremap_release(void *old, size_t old_len, size_t new_len, int flags, void *new_addr,
                           uintptr_t caller)
{
    if (work_for(MH_WORK_RELEASE)) {
        if (flags & (MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) {
            /* It may move: the whole old range goes (a move that did not happen is harmless). */
            if (new_len < old_len && !(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)))
                mh_selftest_note((uintptr_t)old + new_len, MH_SEEN_MREMAP);
            mh_release(old, old_len, caller);
            if (flags & MREMAP_FIXED)
                mh_release(new_addr, new_len, caller);
        } else if (new_len < old_len) {
            mh_selftest_note((uintptr_t)old + new_len, MH_SEEN_MREMAP);
            mh_release((char *)old + new_len, old_len - new_len, caller);
        }
    }
}

/* Non-variadic on purpose: the fifth argument is in r8 whether or not the caller passed it. */
void *mh_hook_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr)
{
    uintptr_t caller = CALLER;
    if (!(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)))
        new_addr = NULL; /* as glibc: the kernel must not see a stray fifth argument */
    /* The events use whole pages, as the kernel does; the kernel gets the caller's lengths. */
    size_t old_pages = PAGE_UP(old_len), new_pages = PAGE_UP(new_len);
    mremap_release(old, old_pages, new_pages, flags, new_addr, caller);
    long ret = syscall_result(raw_syscall6(SYS_mremap, (long)old, (long)old_len, (long)new_len,
                                           flags, (long)new_addr, 0));
    if (ret != -1 && work_for(MH_WORK_ALLOC)) {
        if ((void *)ret != old)
            mh_alloc((void *)ret, new_pages, caller);
        else if (new_pages > old_pages)
            mh_alloc((char *)old + old_pages, new_pages - old_pages, caller);
    }
    return (void *)ret;
}

/* The program break moves to `target`: reports the change, calls the kernel, updates __curbrk. */
static int move_break(void *target, uintptr_t caller)
{
    char *cur = __curbrk;
    if (cur && (char *)target < cur && work_for(MH_WORK_RELEASE))
        mh_release(target, (size_t)(cur - (char *)target), caller);
    char *now = (char *)raw_syscall(SYS_brk, target, 0, 0);
    __curbrk = now;
    if (now < (char *)target) {
        errno = ENOMEM;
        return -1;
    }
    if (cur && now > cur && work_for(MH_WORK_ALLOC))
        mh_alloc(cur, (size_t)(now - cur), caller);
    return 0;
}

int mh_hook_brk(void *addr)
{
    mh_selftest_note((uintptr_t)addr, MH_SEEN_BRK);
    return move_break(addr, CALLER);
}

int mh_hook_brk_for(void *addr, uintptr_t caller)
{
    mh_selftest_note((uintptr_t)addr, MH_SEEN_BRK);
    return move_break(addr, caller);
}

void *mh_hook_sbrk(intptr_t increment)
{
    uintptr_t caller = CALLER;
    if (!__curbrk)
        __curbrk = (void *)raw_syscall(SYS_brk, 0, 0, 0);
    char *old = __curbrk;
    mh_selftest_note((uintptr_t)old, MH_SEEN_SBRK);
    if (increment == 0)
        return old;
    if ((increment > 0 && (uintptr_t)old + (uintptr_t)increment < (uintptr_t)old) ||
        (increment < 0 && (uintptr_t)old < (uintptr_t)-increment)) {
        errno = ENOMEM;
        return (void *)-1;
    }
    if (move_break(old + increment, caller) != 0)
        return (void *)-1;
    return old;
}

static size_t shm_segment_size(int shmid)
{
    struct shmid_ds ds;
    if (raw_syscall(SYS_shmctl, shmid, IPC_STAT, &ds) != 0)
        return 0;
    return PAGE_UP(ds.shm_segsz);
}

void *mh_hook_shmat(int shmid, const void *shmaddr, int shmflg)
{
    uintptr_t caller = CALLER;
    size_t size = 0;
    if (work_for(MH_WORK_RELEASE | MH_WORK_ALLOC))
        size = shm_segment_size(shmid);
    if ((shmflg & SHM_REMAP) && shmaddr && size && work_for(MH_WORK_RELEASE)) {
        uintptr_t at = (uintptr_t)shmaddr;
        if (shmflg & SHM_RND)
            at &= ~(uintptr_t)(SHMLBA - 1);
        mh_selftest_note(at, MH_SEEN_SHMAT);
        mh_release((void *)at, size, caller);
    }
    long ret = syscall_result(raw_syscall(SYS_shmat, shmid, shmaddr, shmflg));
    if (ret != -1 && size && work_for(MH_WORK_ALLOC))
        mh_alloc((void *)ret, size, caller);
    return (void *)ret;
}

static unsigned long parse_hex(const char **p)
{
    unsigned long v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9')
            v = v * 16 + (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (unsigned long)(c - 'a' + 10);
        else
            return v;
    }
}

static void skip_field(const char **p, const char *end)
{
    while (*p < end && **p != ' ')
        (*p)++;
    while (*p < end && **p == ' ')
        (*p)++;
}

/* shmdt's span when /proc/self/maps cannot be read: everything from the address up. */
#define SHMDT_SPAN_UNKNOWN ((size_t)-1)

/*
 * How much shmdt(addr) may unmap, as one span from `addr`. The kernel takes the first System V
 * shared-memory mapping at or above `addr` that sits where its file offset says (start - addr ==
 * offset), then unmaps every later mapping of the same segment placed the same way: it walks past
 * holes (a page unmapped in the middle) and past other mappings in them. This reads
 * /proc/self/maps the same way and returns the end of the last such mapping minus `addr`; 0 when
 * there is none (shmdt fails with EINVAL), SHMDT_SPAN_UNKNOWN when the maps cannot be read (too
 * many open files, no /proc), so that the caller reports too much rather than nothing.
 * Raw system calls into a stack buffer: no allocation.
 */
static size_t shmdt_span(uintptr_t addr)
{
    int fd = (int)raw_syscall6(SYS_openat, AT_FDCWD, (long)"/proc/self/maps", O_RDONLY | O_CLOEXEC,
                               0, 0, 0);
    if (fd < 0)
        return SHMDT_SPAN_UNKNOWN;
    char buf[1024];
    size_t have = 0;
    uintptr_t span_end = 0;
    unsigned long inode = 0, dev_major = 0, dev_minor = 0;
    bool found = false, skipping = false, read_error = false;
    for (;;) {
        long n = raw_syscall(SYS_read, fd, buf + have, sizeof buf - have);
        if (n < 0)
            read_error = true;
        if (n <= 0)
            break;
        have += (size_t)n;
        const char *line = buf, *end = buf + have;
        for (;;) {
            const char *nl = line;
            while (nl < end && *nl != '\n')
                nl++;
            /* A line longer than the buffer: its fields are at its start, the rest is skipped. */
            bool long_line = nl == end && line == buf && have == sizeof buf;
            if (nl == end && !long_line)
                break;
            if (skipping) { /* the tail of such a line */
                skipping = long_line;
                line = long_line ? end : nl + 1;
                if (long_line)
                    break;
                continue;
            }
            const char *p = line;
            uintptr_t start = parse_hex(&p);
            p++;
            uintptr_t stop = parse_hex(&p);
            skip_field(&p, nl); /* to perms */
            skip_field(&p, nl); /* to offset */
            uintptr_t offset = parse_hex(&p);
            skip_field(&p, nl); /* to device, major:minor */
            unsigned long major = parse_hex(&p);
            if (p < nl && *p == ':')
                p++;
            unsigned long minor = parse_hex(&p);
            skip_field(&p, nl); /* to inode */
            unsigned long ino = 0;
            while (p < nl && *p >= '0' && *p <= '9')
                ino = ino * 10 + (unsigned long)(*p++ - '0');
            skip_field(&p, nl); /* to the path: "/SYSV<key> (deleted)" for System V segments */
            bool placed = start >= addr && start - addr == offset;
            if (placed && !found && ino != 0 && nl - p >= 5 && p[0] == '/' && p[1] == 'S' &&
                p[2] == 'Y' && p[3] == 'S' && p[4] == 'V') {
                found = true;
                inode = ino;
                dev_major = major;
                dev_minor = minor;
                span_end = stop;
            } else if (placed && found && ino == inode && major == dev_major &&
                       minor == dev_minor) {
                span_end = stop;
            }
            if (long_line) {
                skipping = true;
                line = end;
                break;
            }
            line = nl + 1;
        }
        size_t rest = (size_t)(end - line);
        for (size_t i = 0; i < rest; i++)
            buf[i] = line[i];
        have = rest;
    }
    raw_syscall(SYS_close, fd, 0, 0);
    if (read_error)
        return SHMDT_SPAN_UNKNOWN;
    return found ? span_end - addr : 0;
}

int mh_hook_shmdt(const void *shmaddr)
{
    if (work_for(MH_WORK_RELEASE)) {
        uintptr_t addr = (uintptr_t)shmaddr;
        size_t len = shmdt_span(addr);
        if (len == SHMDT_SPAN_UNKNOWN)
            len = UINTPTR_MAX - addr; /* [addr, top): invalidates too much, never too little */
        mh_selftest_note(addr, MH_SEEN_SHMDT);
        if (len)
            mh_release((void *)shmaddr, len, CALLER);
    }
    return (int)syscall_result(raw_syscall(SYS_shmdt, shmaddr, 0, 0));
}
