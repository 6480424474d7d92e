/*
 * Records shared by C and TypeScript, described once.
 *
 * A record is a list macro of its fields, LIST(FIELD, tag), each FIELD(tag, type, name, dims);
 * RECORD_STRUCT declares the C struct from it, and RECORD_ENTRIES lists its size and every field's
 * offset for records_text(). A constant set is a list macro of CONSTANT(set, name, value). Each
 * native library exports one function returning records_text() of all its entries;
 * tools/records.ts writes the TypeScript constants from that text (one module in ffi/records/ per
 * library), and a host test fails when a checked-in file differs from what the built library says.
 */
#ifndef DENO_RDMA_RECORDS_H
#define DENO_RDMA_RECORDS_H

#include <stddef.h>
#include <stdio.h>

/* One line of the description: "group.key=value" (group may be empty: "key=value"). */
struct record_entry {
    const char *group;
    const char *key;
    long long value;
};

#define RECORD_DECLARE_FIELD(tag, type, name, dims) type name dims;
/* struct tag { the fields of LIST }; */
#define RECORD_STRUCT(tag, LIST)        \
    struct tag {                        \
        LIST(RECORD_DECLARE_FIELD, tag) \
    }

/* Field callbacks get ctx = (ts_name, tag): both the TypeScript group and the C struct. */
#define RECORD_FIRST(a, b) a
#define RECORD_SECOND(a, b) b
#define RECORD_STRING(x) RECORD_STRING_(x)
#define RECORD_STRING_(x) #x
#define RECORD_FIELD_AT(ts_name, tag, name) \
    {RECORD_STRING(ts_name), #name, (long long)offsetof(struct tag, name)},
#define RECORD_FIELD_ENTRY(ctx, type, name, dims) \
    RECORD_FIELD_AT(RECORD_FIRST ctx, RECORD_SECOND ctx, name)
/* The entries of record `tag`, named `ts_name` in TypeScript: its size, then each field's offset.
 */
#define RECORD_ENTRIES(ts_name, tag, LIST) \
    {#ts_name, "size", (long long)sizeof(struct tag)}, LIST(RECORD_FIELD_ENTRY, (ts_name, tag))

#define CONSTANT_ENTRY(set, name, value) {#set, #name, (long long)(value)},
/* A single constant, exported in TypeScript as `ts_name`. */
#define CONSTANT_VALUE(ts_name, value) {"", #ts_name, (long long)(value)},

/*
 * "group.key=value;" for every entry (or "key=value;" without a group) into `out`, NUL-terminated;
 * returns `out`, or NULL when `cap` is too small.
 */
static inline const char *records_text(const struct record_entry *entries, size_t count, char *out,
                                       size_t cap)
{
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        const struct record_entry *e = &entries[i];
        int n = snprintf(out + used, cap - used, "%s%s%s=%lld;", e->group, e->group[0] ? "." : "",
                         e->key, e->value);
        if (n < 0 || (size_t)n >= cap - used)
            return NULL;
        used += (size_t)n;
    }
    return out;
}

#endif
