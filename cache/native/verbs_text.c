/*
 * Executable ranges of libibverbs and provider libraries (see verbs_text.h).
 */
#include "verbs_text.h"

#include <link.h>
#include <stdatomic.h>
#include <string.h>

#define MAX_RANGES 32

static uintptr_t range_start[MAX_RANGES], range_end[MAX_RANGES];
static _Atomic int range_count;

/* libibverbs itself, providers under .../libibverbs/ (librxe-rdmav34.so) and direct-verbs
 * libraries named lib<provider>.so (libmlx5, libefa, ...) that call into it. */
static bool is_verbs_library(const char *name)
{
    static const char *const markers[] = {"libibverbs", "-rdmav", "libmlx4",  "libmlx5",
                                          "libefa",     "libhns", "librdmacm"};
    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++) {
        if (strstr(name, markers[i]))
            return true;
    }
    return false;
}

static int record_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    int *count = data;
    if (!info->dlpi_name || !is_verbs_library(info->dlpi_name))
        return 0;
    for (int i = 0; i < info->dlpi_phnum && *count < MAX_RANGES; i++) {
        const ElfW(Phdr) *segment = &info->dlpi_phdr[i];
        if (segment->p_type != PT_LOAD || !(segment->p_flags & PF_X))
            continue;
        range_start[*count] = info->dlpi_addr + segment->p_vaddr;
        range_end[*count] = info->dlpi_addr + segment->p_vaddr + segment->p_memsz;
        (*count)++;
    }
    return 0;
}

void rc_verbs_text_scan(void)
{
    /* dl_iterate_phdr lists objects in load order, so a rescan rewrites the entries a concurrent
     * hook may be reading with the same values and only appends libraries loaded since. */
    int found = 0;
    dl_iterate_phdr(record_object, &found);
    atomic_store_explicit(&range_count, found, memory_order_release);
}

bool rc_verbs_text_contains(uintptr_t addr)
{
    int count = atomic_load_explicit(&range_count, memory_order_acquire);
    for (int i = 0; i < count; i++) {
        if (addr >= range_start[i] && addr < range_end[i])
            return true;
    }
    return false;
}
