/*
 * What both patchers (patch.c on x86_64, arch/aarch64.c) keep and report per function: its slot
 * (name, hook, status, reason), the public status accessors, libc's handle, the registration for
 * core-serialising membarriers, and the self-test's verdict on a hook it did not see.
 */
#include <dlfcn.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <sys/syscall.h>

#include "memhooks_internal.h"

static void *libc_handle;

int memhooks_patch_count(void)
{
    int n = 0;
    while (mh_patch_slot(n))
        n++;
    return n;
}

const char *memhooks_patch_name(int index)
{
    struct mh_patch_slot *slot = mh_patch_slot(index);
    return slot ? slot->name : NULL;
}

int memhooks_patch_status(int index)
{
    struct mh_patch_slot *slot = mh_patch_slot(index);
    return slot ? slot->status : MEMHOOKS_PATCH_NO_SYMBOL;
}

const char *memhooks_patch_reason(int index)
{
    struct mh_patch_slot *slot = mh_patch_slot(index);
    return slot ? slot->reason : "";
}

void *mh_libc_symbol(const char *name)
{
    return libc_handle ? dlsym(libc_handle, name) : NULL;
}

bool mh_patch_open_libc(void)
{
    if (!libc_handle)
        libc_handle = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    return libc_handle && mh_find_libc_text();
}

bool mh_patch_register_sync_core(void)
{
    long q = raw_syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    return q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) &&
           raw_syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) ==
               0;
}

void mh_patch_unseen(struct mh_patch_slot *slot, bool restored)
{
    if (restored) {
        slot->status = MEMHOOKS_PATCH_NOT_SEEN;
        snprintf(slot->reason, sizeof slot->reason,
                 "patched, but the self-test did not see its event: restored");
    } else {
        slot->status = MEMHOOKS_PATCH_WRITE_FAILED;
        snprintf(slot->reason, sizeof slot->reason, "the self-test missed it; restoring failed");
    }
}

void mh_patch_set_owned(int index, bool ours)
{
    struct mh_patch_slot *slot = mh_patch_slot(index);
    if (!ours && slot->status == MEMHOOKS_PATCH_OK) {
        slot->status = MEMHOOKS_PATCH_FOREIGN; /* finalize leaves it */
        snprintf(slot->reason, sizeof slot->reason,
                 "patched, then another library wrote its jump over ours");
    } else if (ours && slot->status == MEMHOOKS_PATCH_FOREIGN && mh_patch_in_place(index)) {
        slot->status = MEMHOOKS_PATCH_OK;
        snprintf(slot->reason, sizeof slot->reason,
                 "patched; another library's jump over ours was taken back");
    }
}
