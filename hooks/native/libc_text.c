/*
 * Where libc's code is, for both patchers (patch.c on x86_64, arch/aarch64.c): its executable
 * segment, found once, and a page mapped within a branch's reach of it for the stubs.
 */
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memhooks_internal.h"

uintptr_t mh_libc_text_lo, mh_libc_text_hi;

bool mh_libc_text_contains(uintptr_t addr)
{
    return addr >= mh_libc_text_lo && addr < mh_libc_text_hi;
}

static int find_libc_text(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libc.so.6"))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            mh_libc_text_lo = info->dlpi_addr + ph->p_vaddr;
            mh_libc_text_hi = mh_libc_text_lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

bool mh_find_libc_text(void)
{
    return mh_libc_text_hi != 0 || dl_iterate_phdr(find_libc_text, NULL) != 0;
}

void *mh_map_page_near_libc(long steps)
{
    long page = sysconf(_SC_PAGESIZE);
    for (long step = 1; step < steps; step++) {
        for (int side = 0; side < 2; side++) {
            uintptr_t hint =
                side == 0 ? (mh_libc_text_lo & ~(uintptr_t)(page - 1)) - step * 65536
                          : ((mh_libc_text_hi + page - 1) & ~(uintptr_t)(page - 1)) + step * 65536;
            long got = raw_syscall6(SYS_mmap, (long)hint, page, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            if ((unsigned long)got >= -4096UL)
                continue;
            if ((uintptr_t)got == hint)
                return (void *)got;
            raw_syscall(SYS_munmap, got, page, 0); /* kernel without MAP_FIXED_NOREPLACE */
        }
    }
    return NULL;
}
