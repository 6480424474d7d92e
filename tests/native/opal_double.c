/*
 * Test double of another library with Open MPI's memory hooks API (named as such: it is not Open
 * MPI): it exports its own opal_mem_hooks_register_release / _unregister_release, and patches
 * libc's shmdt with a jump to its own hook, which calls the registered callback with the page
 * being detached, then the kernel. The hooks must import its events (foreign.c) rather than
 * refuse. For tests/host/hooks_coexist.test.ts, in a process of its own.
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "foreign_jump.h"

#define PAGE 4096

typedef void(opal_mem_hooks_callback_fn_t)(void *buf, size_t length, void *cbdata, bool from_alloc);

static opal_mem_hooks_callback_fn_t *_Atomic registered;
static void *_Atomic registered_data;
static _Atomic int hook_calls;

int opal_mem_hooks_register_release(opal_mem_hooks_callback_fn_t *func, void *cbdata)
{
    opal_mem_hooks_callback_fn_t *none = NULL;
    atomic_store(&registered_data, cbdata);
    return atomic_compare_exchange_strong(&registered, &none, func) ? 0 : -1;
}

int opal_mem_hooks_unregister_release(opal_mem_hooks_callback_fn_t *func)
{
    return atomic_compare_exchange_strong(&registered, &func, NULL) ? 0 : -13;
}

static int double_shmdt(const void *addr)
{
    atomic_fetch_add(&hook_calls, 1);
    opal_mem_hooks_callback_fn_t *fn = atomic_load(&registered);
    if (fn)
        fn((void *)addr, PAGE, atomic_load(&registered_data), false);
    return (int)syscall(SYS_shmdt, addr);
}

/* Writes another interceptor's jump to double_shmdt over libc's shmdt (foreign_jump.h). */
int opal_double_patch_shmdt(void)
{
    void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    unsigned char *code = libc ? dlsym(libc, "shmdt") : NULL;
    return code ? write_foreign_jump(code, (const void *)double_shmdt) : -1;
}

/* Whether a callback is registered with the double now. */
int opal_double_registered(void)
{
    return atomic_load(&registered) != NULL;
}

int opal_double_hook_calls(void)
{
    return atomic_load(&hook_calls);
}

/* A one-page segment attached with a raw system call (at `at` when not NULL); NULL on failure. */
void *opal_double_attach(void *at)
{
    long id = syscall(SYS_shmget, IPC_PRIVATE, PAGE, IPC_CREAT | 0600);
    if (id < 0)
        return NULL;
    long addr = syscall(SYS_shmat, id, at, 0);
    syscall(SYS_shmctl, id, IPC_RMID, NULL);
    return (unsigned long)addr > -4096UL ? NULL : (void *)addr;
}

/* libc's shmdt (patched: the double's hook). */
int opal_double_detach(void *addr)
{
    return shmdt(addr);
}
