/*
 * Other interceptors for the coexistence tests (tests/host/hooks_coexist*.ts): UCX's ucm loaded
 * the way a Deno program loads a UCX-based library (dlopen, local scope), with a handler of its
 * own that counts what ucm reports; and a foreign jump written by hand over one of the hooks'
 * entries, then put back. For test processes of their own. ucm's ABI is described by hand (its
 * header is not needed to build).
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "foreign_jump.h"

#define UCM_EVENT_VM_UNMAPPED (1 << 17)
#define PAGE 4096

struct ucm_vm_event {
    void *address;
    size_t size;
};
typedef void (*ucm_callback_fn)(int event_type, void *event, void *arg);
typedef int (*ucm_set_handler_fn)(int events, int priority, ucm_callback_fn cb, void *arg);

static void *ucs;
static _Atomic uint64_t ucm_seen;
static _Atomic uintptr_t watch_addr;
static _Atomic uint64_t watch_seen;

static void count_unmapped(int event_type, void *event, void *arg)
{
    (void)arg;
    if (event_type != UCM_EVENT_VM_UNMAPPED)
        return;
    const struct ucm_vm_event *e = event;
    atomic_fetch_add(&ucm_seen, 1);
    uintptr_t w = atomic_load(&watch_addr);
    if (w && (uintptr_t)e->address <= w && w - (uintptr_t)e->address < e->size)
        atomic_fetch_add(&watch_seen, 1);
}

/*
 * Loads libucs (and with it libucm) locally, and sets a VM_UNMAPPED handler, which makes ucm patch
 * libc (its bistro) as UCX's own rcache does. 0 on success, -1 when libucx0 is not installed, the
 * ucs_status_t otherwise.
 */
int probe_ucm_start(void)
{
    if (!ucs)
        ucs = dlopen("libucs.so.0", RTLD_NOW | RTLD_LOCAL);
    void *ucm = dlopen("libucm.so.0", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    ucm_set_handler_fn set = ucm ? (ucm_set_handler_fn)dlsym(ucm, "ucm_set_event_handler") : NULL;
    if (!ucs || !set)
        return -1;
    return set(UCM_EVENT_VM_UNMAPPED, 1000, count_unmapped, NULL);
}

/* VM_UNMAPPED events ucm's own handler saw so far. */
uint64_t probe_ucm_seen(void)
{
    return atomic_load(&ucm_seen);
}

/* From now on, counts ucm's events covering `addr` (0: none). */
void probe_ucm_watch(void *addr)
{
    atomic_store(&watch_seen, 0);
    atomic_store(&watch_addr, (uintptr_t)addr);
}

uint64_t probe_ucm_watch_seen(void)
{
    return atomic_load(&watch_seen);
}

/* ---- A foreign jump by hand ---------------------------------------------------------------- */

static unsigned char saved[16]; /* the bytes the longest hand-written jump covers */
static unsigned char *saved_at;
static _Atomic int hand_calls;

static int hand_munmap(void *addr, size_t len)
{
    atomic_fetch_add(&hand_calls, 1);
    return (int)syscall(SYS_munmap, addr, len);
}

static int write_entry(unsigned char *code, const unsigned char *bytes, size_t n)
{
    uintptr_t page = (uintptr_t)code & ~(uintptr_t)(PAGE - 1);
    if (mprotect((void *)page, 2 * PAGE, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
        return -1;
    memcpy(code, bytes, n);
    __builtin___clear_cache((char *)code, (char *)code + n);
    return mprotect((void *)page, 2 * PAGE, PROT_READ | PROT_EXEC);
}

/* Writes another interceptor's jump to hand_munmap over libc's munmap, whatever is there. */
int probe_hand_patch_munmap(void)
{
    void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    unsigned char *code = libc ? dlsym(libc, "munmap") : NULL;
    if (!code || saved_at)
        return -1;
    memcpy(saved, code, sizeof saved);
    saved_at = code;
    return write_foreign_jump(code, (const void *)hand_munmap);
}

/* Puts back the bytes probe_hand_patch_munmap found. */
int probe_hand_unpatch_munmap(void)
{
    if (!saved_at)
        return -1;
    int rc = write_entry(saved_at, saved, sizeof saved);
    saved_at = NULL;
    return rc;
}

int probe_hand_calls(void)
{
    return atomic_load(&hand_calls);
}
