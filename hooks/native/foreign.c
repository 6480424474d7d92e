/*
 * Other interceptors in the process: UCX's ucm, libfabric and Open MPI patch the same libc entry
 * points, with the same technique, and each sends the calls it catches straight to the kernel.
 * Whoever patched an entry last is the only one that sees its calls. So the entries are never
 * trusted, only checked:
 *
 * - memhooks_verify() compares each entry's first 8 bytes with those last verified. When they
 *   changed, it follows the jumps from the entry to the code they end in and asks the dynamic
 *   linker which library that is: ours (the entry still leads to our hook), libc (nobody's), or a
 *   foreign one.
 * - A foreign library with an API for its events is subscribed to: ucm through
 *   ucm_set_event_handler (VM_UNMAPPED before, VM_MAPPED after the call; with
 *   UCM_EVENT_FLAG_NO_INSTALL, so ucm patches nothing for us), another opal_mem_hooks library
 *   through its opal_mem_hooks_register_release. Its events go through the same dispatch as our
 *   hooks' (mh_release), flagged as from the allocator: we cannot see the caller, and ucm calls us
 *   with its own lock held, so the cache defers its deregistrations.
 * - Every change counts a loss: releases made between the overwrite and its detection were seen by
 *   the other library only, so whoever derived state from our events must drop it (the cache
 *   invalidates every region). The words TypeScript compares on its hits without a native call
 *   (memhooks_guard_words) are published only by memhooks_guard_publish(), after that.
 *
 * The imported libraries' ABI is described here by hand (their headers are not needed to build):
 * ucm's event bits and the layout of its vm_mapped/vm_unmapped event are stable since UCX 1.3.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "memhooks_internal.h"

#define MAX_TARGETS 8
#define FOLLOW_HOPS 8
#define OWNER_LEN 256

/* ucm/api/ucm.h */
#define UCM_EVENT_VM_MAPPED (1 << 16)
#define UCM_EVENT_VM_UNMAPPED (1 << 17)
#define UCM_EVENT_FLAG_NO_INSTALL (1 << 24)
struct ucm_vm_event {
    void *address;
    size_t size;
};
typedef void (*ucm_callback_fn)(int event_type, void *event, void *arg);
typedef int (*ucm_set_handler_fn)(int events, int priority, ucm_callback_fn cb, void *arg);
typedef void (*ucm_unset_handler_fn)(int events, ucm_callback_fn cb, void *arg);
typedef int (*opal_register_fn)(opal_mem_hooks_callback_fn_t *func, void *cbdata);

enum owner_kind { OWNER_NONE, OWNER_OURS, OWNER_LIBC, OWNER_UCM, OWNER_OPAL, OWNER_OTHER };

static int target_count;
/* Each entry's first 8 bytes at the last verification; read without the lock by memhooks_verify. */
static _Atomic uint64_t verified[MAX_TARGETS];
/* One 64-bit word per entry (TypeScript reads each with one load); pending until published. */
static _Atomic uint64_t guard[MEMHOOKS_GUARD_WORDS / 2];
static uint64_t guard_pending[MEMHOOKS_GUARD_WORDS / 2];
static int owner_kind[MAX_TARGETS];
static char owner_name[MAX_TARGETS][OWNER_LEN];
static _Atomic int losses;
static _Atomic int intercepted, sources;
static _Atomic bool armed; /* verification runs between init and finalize */
static uintptr_t
    foreign_caller; /* an address in libc's text: imported events count as from_alloc */

static char ucm_file[OWNER_LEN];              /* the ucm subscribed to */
static ucm_unset_handler_fn ucm_unset;        /* set while subscribed */
static opal_register_fn opal_unregister_from; /* the other library's unregister, while subscribed */
static char opal_file[OWNER_LEN];

static void copy_name(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n >= OWNER_LEN)
        n = OWNER_LEN - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static const char *our_file(void)
{
    static const char *file;
    Dl_info info;
    if (!file && dladdr((void *)memhooks_verify, &info) && info.dli_fname)
        file = info.dli_fname;
    return file;
}

/* The entry's 4-byte aligned 8 bytes: they cover its first 5 (glibc aligns entries to 16). */
static const uint8_t *guard_block(const uint8_t *code)
{
    return (const uint8_t *)((uintptr_t)code & ~(uintptr_t)3);
}

/* The 8 bytes TypeScript compares for `code` (another library may be writing them: a torn read
 * only makes them differ). */
static uint64_t live_bytes(const uint8_t *code)
{
    uint64_t w;
    memcpy(&w, guard_block(code), 8);
    return w;
}

/* ---- Where an entry leads ------------------------------------------------------------------- */

/*
 * Reads `n` bytes at `at` without faulting: another library may be writing an entry right now, and
 * a half-written jump leads anywhere.
 */
static bool read_code(const uint8_t *at, void *out, size_t n)
{
    struct iovec local = {.iov_base = out, .iov_len = n};
    struct iovec remote = {.iov_base = (void *)at, .iov_len = n};
    return raw_syscall6(SYS_process_vm_readv, raw_syscall(SYS_getpid, 0, 0, 0), (long)&local, 1,
                        (long)&remote, 1, 0) == (long)n;
}

/* Follows the jumps interceptors write (and endbr64) from `p`; the first other instruction, or
 * NULL when a jump leads to unreadable memory. */
static const uint8_t *follow(const uint8_t *p)
{
#if defined(__aarch64__)
    return mh_patch_follow(p); /* arch/aarch64.c: its jumps, and entries that reach our svc patch */
#endif
    for (int hop = 0; hop < FOLLOW_HOPS; hop++) {
        uint8_t c[16];
        int32_t rel32;
        uint64_t abs;
        if (!read_code(p, c, sizeof c))
            return NULL;
        if (c[0] == 0xf3 && c[1] == 0x0f && c[2] == 0x1e && c[3] == 0xfa) {
            p += 4;
        } else if (c[0] == 0xe9) {
            memcpy(&rel32, c + 1, 4);
            p = p + 5 + rel32;
        } else if (c[0] == 0xeb) {
            p = p + 2 + (int8_t)c[1];
        } else if (c[0] == 0xff && c[1] == 0x25) { /* jmp [rip + d32] */
            memcpy(&rel32, c + 2, 4);
            if (!read_code(p + 6 + rel32, &abs, 8))
                return NULL;
            p = (const uint8_t *)(uintptr_t)abs;
        } else if ((c[0] == 0x49 && c[1] == 0xbb && c[10] == 0x41 && c[11] == 0xff &&
                    c[12] == 0xe3) || /* movabs r11, imm64; jmp r11 */
                   (c[0] == 0x48 && c[1] == 0xb8 && c[10] == 0xff && c[11] == 0xe0)) { /* rax */
            memcpy(&abs, c + 2, 8);
            p = (const uint8_t *)(uintptr_t)abs;
        } else {
            return p;
        }
    }
    return p;
}

static bool defines(const char *file, const char *symbol, void **out)
{
    void *h = dlopen(file, RTLD_NOLOAD | RTLD_LAZY);
    if (!h)
        return false;
    void *sym = dlsym(h, symbol);
    dlclose(h);
    if (out)
        *out = sym;
    return sym != NULL;
}

/* Which library the code at `entry` ends in; its file name into `name`. */
static int classify(const uint8_t *entry, char *name)
{
    const uint8_t *end = follow(entry);
    name[0] = 0;
    if (!end) {
        copy_name(name, "a jump to unmapped memory");
        return OWNER_OTHER;
    }
    if (end == entry)
        return OWNER_LIBC; /* no jump: nobody intercepts it */
    Dl_info info;
    if (!dladdr(end, &info) || !info.dli_fname) {
        strcpy(name, "anonymous code");
        return OWNER_OTHER;
    }
    copy_name(name, info.dli_fname);
    if (our_file() && strcmp(info.dli_fname, our_file()) == 0)
        return OWNER_OURS;
    if (defines(info.dli_fname, "ucm_set_event_handler", NULL))
        return OWNER_UCM;
    void *reg;
    if (defines(info.dli_fname, "opal_mem_hooks_register_release", &reg) &&
        reg != (void *)opal_mem_hooks_register_release)
        return OWNER_OPAL;
    if (mh_libc_text_contains((uintptr_t)end))
        return OWNER_LIBC;
    return OWNER_OTHER;
}

/* ---- Imported events ------------------------------------------------------------------------- */

static void round_to_pages(uintptr_t *addr, size_t *len)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = *addr & ~(page - 1);
    uintptr_t end = (*addr + *len + page - 1) & ~(page - 1);
    *addr = start;
    *len = end > start ? end - start : 0;
}

static void ucm_events(int event_type, void *event, void *arg)
{
    (void)arg;
    if (!(atomic_load_explicit(&mh_work, memory_order_relaxed) &
          (MH_WORK_RELEASE | MH_WORK_ALLOC | MH_WORK_SELFTEST)))
        return;
    const struct ucm_vm_event *e = event;
    uintptr_t addr = (uintptr_t)e->address;
    size_t len = e->size;
    round_to_pages(&addr, &len);
    if (event_type == UCM_EVENT_VM_UNMAPPED) {
        mh_selftest_note_range(addr, len, false);
        mh_release((void *)addr, len, foreign_caller);
    } else if (event_type == UCM_EVENT_VM_MAPPED) {
        mh_selftest_note_range(addr, len, true);
        mh_alloc((void *)addr, len, foreign_caller);
    }
}

static void opal_events(void *buf, size_t length, void *cbdata, bool from_alloc)
{
    (void)cbdata;
    (void)from_alloc;
    uintptr_t addr = (uintptr_t)buf;
    round_to_pages(&addr, &length);
    mh_selftest_note_range(addr, length, false);
    mh_release((void *)addr, length, foreign_caller);
}

/* Subscribes to the ucm in `file` (whoever loaded it: the symbol may not be in the global scope,
 * since Deno.dlopen opens libraries locally). */
static bool import_ucm(const char *file)
{
    if (ucm_unset)
        return strcmp(file, ucm_file) == 0;
    void *set, *unset;
    if (!defines(file, "ucm_set_event_handler", &set) ||
        !defines(file, "ucm_unset_event_handler", &unset))
        return false;
    /* Priority -1: before the handlers of ucm's own users (UCX's rcache registers at 1000). */
    if (((ucm_set_handler_fn)set)(UCM_EVENT_VM_UNMAPPED | UCM_EVENT_VM_MAPPED |
                                      UCM_EVENT_FLAG_NO_INSTALL,
                                  -1, ucm_events, NULL) != 0)
        return false;
    ucm_unset = (ucm_unset_handler_fn)unset;
    copy_name(ucm_file, file);
    return true;
}

static bool import_opal(const char *file)
{
    if (opal_unregister_from)
        return strcmp(file, opal_file) == 0;
    void *reg, *unreg;
    if (!defines(file, "opal_mem_hooks_register_release", &reg) ||
        !defines(file, "opal_mem_hooks_unregister_release", &unreg))
        return false;
    int rc = ((opal_register_fn)reg)(opal_events, NULL);
    if (rc != OPAL_SUCCESS && rc != OPAL_EXISTS)
        return false;
    opal_unregister_from = (opal_register_fn)unreg;
    copy_name(opal_file, file);
    return true;
}

/* ---- Verification -------------------------------------------------------------------------- */

/* Reclassifies every entry, imports what it can; returns whether all lead to a source. API lock
 * held. */
static bool reclassify(void)
{
    bool all = true, any = false;
    int src = 0;
    for (int i = 0; i < target_count; i++) {
        const uint8_t *jump;
        size_t length;
        uint8_t *code = mh_patch_entry(i, &jump, &length);
        if (!code)
            continue;
        any = true;
        atomic_store_explicit(&verified[i], live_bytes(code), memory_order_release);
        int kind = classify(code, owner_name[i]);
        bool covered = false;
        if (kind == OWNER_OURS) {
            covered = true;
            src |= MEMHOOKS_SOURCE_PATCH;
            owner_name[i][0] = 0;
        } else if (kind == OWNER_UCM) {
            covered = import_ucm(owner_name[i]);
            src |= covered ? MEMHOOKS_SOURCE_UCM : 0;
        } else if (kind == OWNER_OPAL) {
            covered = import_opal(owner_name[i]);
            src |= covered ? MEMHOOKS_SOURCE_OPAL : 0;
        }
        mh_patch_set_owned(i, kind == OWNER_OURS);
        owner_kind[i] = kind;
        all = all && covered;
    }
    all = all && any;
    for (int i = 0; i < target_count; i++) {
        const uint8_t *jump;
        size_t length;
        uint64_t w = 0;
        if (mh_patch_entry(i, &jump, &length))
            w = atomic_load(&verified[i]);
        guard_pending[i] = w;
    }
    if (!all) /* no entry holds bytes these cannot be: every hit goes native */
        for (int i = 0; i < target_count; i++)
            guard_pending[i] = ~guard_pending[i];
    atomic_store(&sources, src);
    atomic_store(&intercepted, all);
    return all;
}

static bool entries_unchanged(void)
{
    for (int i = 0; i < target_count; i++) {
        const uint8_t *jump;
        size_t length;
        const uint8_t *code = mh_patch_entry(i, &jump, &length);
        if (code && live_bytes(code) != atomic_load(&verified[i]))
            return false;
    }
    return true;
}

void mh_foreign_init(void)
{
    target_count = memhooks_patch_count();
    if (target_count > MAX_TARGETS)
        target_count = MAX_TARGETS;
    foreign_caller = (uintptr_t)mh_libc_symbol("munmap");
    reclassify();
    for (int i = 0; i < MEMHOOKS_GUARD_WORDS / 2; i++)
        atomic_store(&guard[i], guard_pending[i]);
    atomic_store(&armed, true);
}

int mh_foreign_assumed_bits(void)
{
    /* brk to the current break and sbrk(0) release nothing, so ucm reports nothing for them; its
     * subscription is what vouches for them. */
    int bits = 0;
    for (int i = 0; i < target_count; i++) {
        if (owner_kind[i] != OWNER_UCM && owner_kind[i] != OWNER_OPAL)
            continue;
        const char *name = memhooks_patch_name(i);
        if (strcmp(name, "brk") == 0)
            bits |= MH_SEEN_BRK;
        else if (strcmp(name, "sbrk") == 0)
            bits |= MH_SEEN_SBRK;
    }
    return bits;
}

void mh_foreign_finalize(void)
{
    atomic_store(&armed, false);
    if (ucm_unset) {
        /* The same bits as set, flag included: ucm keeps a handler while any bit is left. */
        ucm_unset(UCM_EVENT_VM_UNMAPPED | UCM_EVENT_VM_MAPPED | UCM_EVENT_FLAG_NO_INSTALL,
                  ucm_events, NULL);
        ucm_unset = NULL;
    }
    if (opal_unregister_from) {
        opal_unregister_from(opal_events, NULL);
        opal_unregister_from = NULL;
    }
    atomic_store(&sources, 0);
    atomic_store(&intercepted, 0);
}

int mh_foreign_verify_locked(void)
{
    if (!atomic_load(&armed) || entries_unchanged())
        return atomic_load(&losses);
    /* Counted before the new bytes are recorded as verified: a thread that finds them unchanged
     * then reads this count and sees the loss. */
    atomic_fetch_add(&losses, 1);
    reclassify();
    return atomic_load(&losses);
}

int memhooks_verify(void)
{
    if (!atomic_load_explicit(&armed, memory_order_acquire))
        return atomic_load(&losses);
    /* Unlocked look first: the bytes are read as they are now; a change is handled under the
     * API lock. Compared as whole 8-byte words. */
    bool same = true;
    for (int i = 0; i < target_count && same; i++) {
        const uint8_t *jump;
        size_t length;
        const uint8_t *code = mh_patch_entry(i, &jump, &length);
        if (code)
            same = live_bytes(code) == atomic_load_explicit(&verified[i], memory_order_acquire);
    }
    if (same)
        return atomic_load(&losses);
    mh_api_lock();
    int n = mh_foreign_verify_locked();
    mh_api_unlock();
    return n;
}

void memhooks_guard_publish(int seen_losses)
{
    mh_api_lock();
    if (seen_losses == atomic_load(&losses) && entries_unchanged()) {
        for (int i = 0; i < MEMHOOKS_GUARD_WORDS / 2; i++)
            atomic_store(&guard[i], guard_pending[i]);
    }
    mh_api_unlock();
}

int memhooks_intercepted(void)
{
    return atomic_load(&intercepted);
}

int memhooks_event_sources(void)
{
    return atomic_load(&sources);
}

const char *memhooks_patch_owner(int index)
{
    if (index < 0 || index >= target_count || !owner_name[index][0])
        return NULL;
    return owner_name[index];
}

const int32_t *memhooks_guard_words(void)
{
    return (const int32_t *)guard;
}

const void *memhooks_guard_entry(int index)
{
    const uint8_t *jump;
    size_t length;
    if (index < 0 || index >= target_count)
        return NULL;
    const uint8_t *code = mh_patch_entry(index, &jump, &length);
    return code ? guard_block(code) : NULL;
}
