/*
 * The records and constants of opal_memhooks.h that the TypeScript side shares, described once
 * (ffi/native/records.h): memhooks_records() reports them, and `deno task build` writes
 * ffi/records/memhooks.ts from that. The structs come from their field lists in the header; each
 * constant's value from its #define there, listed here as CONSTANT(set, TypeScript name, value).
 */
#include "../../ffi/native/records.h"
#include "memhooks_internal.h"

/* OPAL.*: the return codes (Open MPI's values). */
#define OPAL_RETURN_CODES(CONSTANT)                               \
    CONSTANT(OPAL, SUCCESS, OPAL_SUCCESS)                         \
    CONSTANT(OPAL, ERR_OUT_OF_RESOURCE, OPAL_ERR_OUT_OF_RESOURCE) \
    CONSTANT(OPAL, ERR_RESOURCE_BUSY, OPAL_ERR_RESOURCE_BUSY)     \
    CONSTANT(OPAL, ERR_BAD_PARAM, OPAL_ERR_BAD_PARAM)             \
    CONSTANT(OPAL, ERR_NOT_SUPPORTED, OPAL_ERR_NOT_SUPPORTED)     \
    CONSTANT(OPAL, ERR_NOT_FOUND, OPAL_ERR_NOT_FOUND)             \
    CONSTANT(OPAL, EXISTS, OPAL_EXISTS)

/* OPAL_MEMORY.*: the support bits. */
#define OPAL_SUPPORT_BITS(CONSTANT)                                   \
    CONSTANT(OPAL_MEMORY, FREE_SUPPORT, OPAL_MEMORY_FREE_SUPPORT)     \
    CONSTANT(OPAL_MEMORY, MALLOC_SUPPORT, OPAL_MEMORY_MALLOC_SUPPORT) \
    CONSTANT(OPAL_MEMORY, CHUNK_SUPPORT, OPAL_MEMORY_CHUNK_SUPPORT)   \
    CONSTANT(OPAL_MEMORY, MMAP_SUPPORT, OPAL_MEMORY_MMAP_SUPPORT)

/* EVENT_FLAG.*: the bits of struct memhooks_event's flags. */
#define EVENT_FLAGS(CONSTANT)                                   \
    CONSTANT(EVENT_FLAG, RELEASE, MEMHOOKS_EVENT_RELEASE)       \
    CONSTANT(EVENT_FLAG, ALLOC, MEMHOOKS_EVENT_ALLOC)           \
    CONSTANT(EVENT_FLAG, FROM_ALLOC, MEMHOOKS_EVENT_FROM_ALLOC) \
    CONSTANT(EVENT_FLAG, COALESCED, MEMHOOKS_EVENT_COALESCED)   \
    CONSTANT(EVENT_FLAG, NESTED, MEMHOOKS_EVENT_NESTED)

/* QUEUE_KIND.*: what a subscriber records (memhooks_queue_enable). */
#define QUEUE_KINDS(CONSTANT)                             \
    CONSTANT(QUEUE_KIND, RELEASE, MEMHOOKS_QUEUE_RELEASE) \
    CONSTANT(QUEUE_KIND, ALLOC, MEMHOOKS_QUEUE_ALLOC)

/* PATCH.*: memhooks_patch_status() values. */
#define PATCH_STATUSES(CONSTANT)                                       \
    CONSTANT(PATCH, OK, MEMHOOKS_PATCH_OK)                             \
    CONSTANT(PATCH, NOT_INSTALLED, MEMHOOKS_PATCH_NOT_INSTALLED)       \
    CONSTANT(PATCH, NO_SYMBOL, MEMHOOKS_PATCH_NO_SYMBOL)               \
    CONSTANT(PATCH, UNKNOWN_PROLOGUE, MEMHOOKS_PATCH_UNKNOWN_PROLOGUE) \
    CONSTANT(PATCH, FOREIGN, MEMHOOKS_PATCH_FOREIGN)                   \
    CONSTANT(PATCH, NO_TRAMPOLINE, MEMHOOKS_PATCH_NO_TRAMPOLINE)       \
    CONSTANT(PATCH, WRITE_FAILED, MEMHOOKS_PATCH_WRITE_FAILED)         \
    CONSTANT(PATCH, UNSUPPORTED, MEMHOOKS_PATCH_UNSUPPORTED)           \
    CONSTANT(PATCH, NO_SAFE_ENTRY, MEMHOOKS_PATCH_NO_SAFE_ENTRY)       \
    CONSTANT(PATCH, NOT_SEEN, MEMHOOKS_PATCH_NOT_SEEN)

/* SOURCE.*: memhooks_event_sources() bits. */
#define EVENT_SOURCES(CONSTANT)                    \
    CONSTANT(SOURCE, PATCH, MEMHOOKS_SOURCE_PATCH) \
    CONSTANT(SOURCE, UCM, MEMHOOKS_SOURCE_UCM)     \
    CONSTANT(SOURCE, OPAL, MEMHOOKS_SOURCE_OPAL)

/* The single constants, as CONSTANT(TypeScript name, value). */
#define SINGLE_CONSTANTS(CONSTANT)                          \
    CONSTANT(QUEUE_SUBSCRIBERS, MEMHOOKS_QUEUE_SUBSCRIBERS) \
    CONSTANT(GUARD_WORDS, MEMHOOKS_GUARD_WORDS)

/* Each entry list ends in a comma, which clang-format cannot see: kept one list per line. */
/* clang-format off */
static const struct record_entry records[] = {
    RECORD_ENTRIES(EVENT, memhooks_event, MEMHOOKS_EVENT_FIELDS)
    RECORD_ENTRIES(STATS, memhooks_stats, MEMHOOKS_STATS_FIELDS)
    EVENT_FLAGS(CONSTANT_ENTRY)
    QUEUE_KINDS(CONSTANT_ENTRY)
    PATCH_STATUSES(CONSTANT_ENTRY)
    EVENT_SOURCES(CONSTANT_ENTRY)
    OPAL_RETURN_CODES(CONSTANT_ENTRY)
    OPAL_SUPPORT_BITS(CONSTANT_ENTRY)
    SINGLE_CONSTANTS(CONSTANT_VALUE)
};
/* clang-format on */

const char *memhooks_records(void)
{
    /* Built once; static so that TypeScript reads it as a C string. */
    static char text[4096];
    if (!text[0] && !records_text(records, sizeof records / sizeof records[0], text, sizeof text))
        return "";
    return text;
}
