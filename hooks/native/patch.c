/*
 * Patching the code of libc's memory functions (x86_64, any glibc whose code the decoder proves).
 *
 * Each function's entry is redirected to a stub near libc (`movabs r11, hook; jmp r11`). The bytes
 * are written with one cmpxchg16b over their aligned 16-byte block, so a thread running the
 * function sees either the old code or the new, and no thread can be returning into the overwritten
 * bytes (they precede every syscall and call).
 *
 * Before anything is written the whole function is decoded (x86_insn.c), from its entry to the end
 * its symbol's size gives: an instruction the decoder does not know, or a branch landing inside the
 * bytes to be replaced, refuses it. When the first instruction is at least 5 bytes long (`mov eax,
 * NR` in the syscall wrappers, `cmp byte [rip+d32], 0`) it is replaced by one `jmp rel32` to the
 * stub. When it is shorter (`mov r10d, ecx`, `push r12`), a 5-byte jump would have an instruction
 * boundary inside it: a thread that had just run the first instruction would resume in the middle
 * of the jump. Then only the first instruction's first 2 bytes are replaced, by a `jmp rel8` to 5
 * bytes no thread executes, where a `jmp rel32` to the stub was written first: the alignment
 * padding in front of the function, else a NOP run after a `ret` or `jmp` inside it (or after its
 * end) that no branch lands in. A thread is either before the entry (it takes the jump) or past the
 * first instruction (it runs the original code to its end). Without such bytes the function is
 * refused (MEMHOOKS_PATCH_NO_SAFE_ENTRY), never patched with a window.
 *
 * The replaced instructions are never run elsewhere (the hook replaces the whole function), so
 * their rip-relative operands need no relocation; the decoder only has to know their lengths.
 * A prologue that already starts with a jump belongs to another interceptor and is refused rather
 * than overwritten. memhooks_patch_reason() says, per function, what decided its status.
 */
#if defined(__x86_64__) /* the aarch64 patcher is arch/aarch64.c */

#include <dlfcn.h>
#include <link.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memhooks_internal.h"

#define JMP_LEN 5
#define SHORT_JMP_LEN 2
#define STUB_SIZE 16

struct target {
    struct mh_patch_slot s; /* name, hook, self-test bits, status, reason */
    uint8_t *code;          /* libc's entry point */
    uint8_t original[JMP_LEN];
    uint8_t jump[JMP_LEN];
    size_t length;    /* bytes of the entry replaced: JMP_LEN, or SHORT_JMP_LEN via the padding */
    uint8_t *padding; /* where the padding's jmp rel32 was written (it stays: see remove) */
};

#define TARGET(n, bits)                  \
    {                                    \
        .s = MH_PATCH_SLOT_INIT(n, bits) \
    }
static struct target targets[] = {
    TARGET(munmap, MH_SEEN_MUNMAP),   TARGET(mremap, MH_SEEN_MREMAP),
    TARGET(madvise, MH_SEEN_MADVISE), TARGET(mmap, MH_SEEN_MMAP_FIXED | MH_SEEN_MMAP_ALLOC),
    TARGET(brk, MH_SEEN_BRK),         TARGET(sbrk, MH_SEEN_SBRK),
    TARGET(shmat, MH_SEEN_SHMAT),     TARGET(shmdt, MH_SEEN_SHMDT),
};
#undef TARGET
#define TARGET_COUNT ((int)(sizeof targets / sizeof targets[0]))

struct mh_patch_slot *mh_patch_slot(int index)
{
    return index >= 0 && index < TARGET_COUNT ? &targets[index].s : NULL;
}

static uint8_t *stubs; /* one page near libc, never unmapped: a thread may still be jumping there */
static bool sync_core;

/* Signatures of a function someone already redirected. */
static bool foreign_jump(const uint8_t *p, size_t avail)
{
    if (avail >= 1 && (p[0] == 0xe9 || p[0] == 0xeb || p[0] == 0xcc || p[0] == 0x68))
        return true; /* jmp rel32, jmp rel8, int3 breakpoint, push imm32 (push; ret) */
    if (avail >= 2 && p[0] == 0xff && p[1] == 0x25)
        return true; /* jmp [rip + disp32] */
    if (avail >= 2 && (p[0] == 0x48 || p[0] == 0x49) && p[1] >= 0xb8 && p[1] <= 0xbf)
        return true; /* movabs reg, imm64: the start of `movabs; jmp reg` */
    return false;
}

/* "at +N: xx xx xx xx" for the bytes at `at`, never reading past `avail`. */
static void describe_bytes(char *out, size_t size, const char *what, const uint8_t *code, size_t at,
                           size_t avail)
{
    int n = snprintf(out, size, "%s at +%zu:", what, at);
    for (size_t i = at; i < avail && i < at + 4 && n > 0 && (size_t)n < size; i++)
        n += snprintf(out + n, size - (size_t)n, " %02x", code[i]);
}

/*
 * The instructions covering the first JMP_LEN bytes must all fall through to the next one: no
 * branch, call, syscall or return, so no thread can be returning into, or resuming at, a byte we
 * overwrite. Their rip-relative operands need no relocation: the hook replaces the whole function,
 * so the overwritten instructions never run anywhere else.
 */
static int decode_prologue(const uint8_t *code, size_t avail, size_t *covered, size_t *first,
                           char *why, size_t why_size)
{
    size_t at = 0;
    *first = 0;
    if (foreign_jump(code, avail)) {
        describe_bytes(why, why_size, "another library's jump", code, 0, avail);
        return MEMHOOKS_PATCH_FOREIGN;
    }
    while (at < JMP_LEN) {
        struct mh_x86_insn insn;
        size_t n = mh_x86_decode(code + at, avail - at, &insn);
        if (n == 0) {
            describe_bytes(why, why_size, "unknown instruction", code, at, avail);
            return MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
        }
        if (insn.kind != MH_X86_OTHER && insn.kind != MH_X86_NOP) {
            describe_bytes(why, why_size, "branch, call or syscall in the first 5 bytes", code, at,
                           avail);
            return MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
        }
        if (at == 0)
            *first = n;
        at += n;
    }
    *covered = at;
    return MEMHOOKS_PATCH_OK;
}

int memhooks_decode_prologue(const uint8_t *code, size_t avail, size_t *covered)
{
    size_t got = 0, first;
    char why[96];
    int status = code ? decode_prologue(code, avail, &got, &first, why, sizeof why)
                      : MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
    if (covered)
        *covered = status == MEMHOOKS_PATCH_OK ? got : 0;
    return status;
}

/* A page within +-2 GiB of libc's text, so that a jmp rel32 reaches it. */
static uint8_t *map_stub_page(void)
{
    return mh_map_page_near_libc(16384);
}

static void write_stub(uint8_t *stub, void *hook)
{
    uint64_t target = (uint64_t)(uintptr_t)hook;
    stub[0] = 0x49; /* movabs r11, imm64 */
    stub[1] = 0xbb;
    memcpy(stub + 2, &target, 8);
    stub[10] = 0x41; /* jmp r11 */
    stub[11] = 0xff;
    stub[12] = 0xe3;
    memset(stub + 13, 0xcc, STUB_SIZE - 13);
}

/* Replaces `length` bytes `expect` by `bytes` at `code` in one atomic 16-byte store. */
static bool write_code(uint8_t *code, const uint8_t *expect, const uint8_t *bytes, size_t length)
{
    typedef unsigned __int128 block_t;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t block_addr = (uintptr_t)code & ~(uintptr_t)15;
    size_t offset = (uintptr_t)code - block_addr;
    if (offset + length > 16)
        return false;
    uintptr_t page_addr = block_addr & ~(uintptr_t)(page - 1);
    if (raw_syscall(SYS_mprotect, page_addr, page, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
        return false;
    block_t *block = (block_t *)block_addr;
    /* A torn first read only makes the first compare-and-swap fail and return the real value. */
    block_t old = *(volatile block_t *)block, update;
    bool ok = false;
    for (int tries = 0; tries < 100 && !ok; tries++) {
        uint8_t buf[16];
        memcpy(buf, &old, 16);
        if (memcmp(buf + offset, expect, length) != 0)
            break; /* changed under us: someone else patches too */
        memcpy(buf + offset, bytes, length);
        memcpy(&update, buf, 16);
        block_t seen = __sync_val_compare_and_swap(block, old, update);
        ok = seen == old;
        old = seen;
    }
    raw_syscall(SYS_mprotect, page_addr, page, PROT_READ | PROT_EXEC);
    if (sync_core)
        raw_syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0);
    return ok;
}

/*
 * GNU as' alignment NOPs (x86-64), and the instruction endings after which code never falls
 * through into the padding: what tells alignment padding from code that runs.
 */
static const uint8_t *const nops[] = {
    (const uint8_t[]){0x90},
    (const uint8_t[]){0x66, 0x90},
    (const uint8_t[]){0x0f, 0x1f, 0x00},
    (const uint8_t[]){0x0f, 0x1f, 0x40, 0x00},
    (const uint8_t[]){0x0f, 0x1f, 0x44, 0x00, 0x00},
    (const uint8_t[]){0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
    (const uint8_t[]){0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
    (const uint8_t[]){0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
    (const uint8_t[]){0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
    (const uint8_t[]){0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
};
static const size_t nop_lengths[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

/* Length of the longest NOP (with any extra 0x66 prefixes) that ends right before `end`. */
static size_t nop_ending_at(const uint8_t *end, size_t avail)
{
    size_t best = 0;
    for (size_t i = 0; i < sizeof nop_lengths / sizeof nop_lengths[0]; i++) {
        size_t n = nop_lengths[i];
        if (n > avail || memcmp(end - n, nops[i], n) != 0)
            continue;
        while (n < avail && n < 15 && end[-(ptrdiff_t)n - 1] == 0x66 && nops[i][0] == 0x66)
            n++; /* data16 prefixes GNU as adds to the 10-byte form */
        if (n > best)
            best = n;
    }
    return best;
}

/* An instruction ending at `end` after which execution never reaches `end`. */
static bool ends_without_fallthrough(const uint8_t *end)
{
    return end[-1] == 0xc3                          /* ret */
           || end[-2] == 0xeb                       /* jmp rel8 */
           || end[-5] == 0xe9                       /* jmp rel32 */
           || end[-5] == 0xe8                       /* call of a noreturn function: C code
                                                     * never falls into the next function */
           || (end[-2] == 0x0f && end[-1] == 0x0b); /* ud2 */
}

/* Start of JMP_LEN bytes of alignment padding right before `code` that no thread executes, or
 * NULL. Reading up to 32 bytes back stays inside libc's text: no patched function is its first. */
static uint8_t *padding_before(uint8_t *code)
{
    if ((uintptr_t)code - 32 < mh_libc_text_lo)
        return NULL;
    size_t covered = 0, n;
    while (covered < 16 && (n = nop_ending_at(code - covered, 32 - covered)) > 0)
        covered += n;
    if (covered < JMP_LEN || !ends_without_fallthrough(code - covered))
        return NULL;
    return code - JMP_LEN;
}

/* Writes padding bytes no thread executes (plain stores; the page may precede the code's). */
static bool write_padding(uint8_t *at, const uint8_t *bytes)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)at & ~(uintptr_t)(page - 1);
    uintptr_t hi = ((uintptr_t)at + JMP_LEN + page - 1) & ~(uintptr_t)(page - 1);
    if (raw_syscall(SYS_mprotect, lo, hi - lo, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
        return false;
    memcpy(at, bytes, JMP_LEN);
    raw_syscall(SYS_mprotect, lo, hi - lo, PROT_READ | PROT_EXEC);
    if (sync_core) /* every core sees the padding's jump before any can take the entry's */
        raw_syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0);
    return true;
}

static bool rel32_to(const uint8_t *from_end, const uint8_t *to, int32_t *rel32)
{
    int64_t rel = (int64_t)((intptr_t)to - (intptr_t)from_end);
    if (rel < INT32_MIN || rel > INT32_MAX)
        return false;
    *rel32 = (int32_t)rel;
    return true;
}

/* What a linear decode of a whole function found (its extent comes from libc's symbol table). */
#define SWEEP_MAX_TARGETS 256
#define SWEEP_MAX_GAPS 16
struct sweep {
    size_t size;                       /* the function's length in bytes */
    size_t targets[SWEEP_MAX_TARGETS]; /* offsets of branch targets inside it */
    size_t target_count;
    size_t gap_at[SWEEP_MAX_GAPS];  /* NOP runs after an instruction that never falls */
    size_t gap_len[SWEEP_MAX_GAPS]; /* through, inside or right after the function */
    size_t gap_count;
};

static void add_gap(struct sweep *sw, size_t at, size_t len)
{
    if (len >= JMP_LEN && sw->gap_count < SWEEP_MAX_GAPS) {
        sw->gap_at[sw->gap_count] = at;
        sw->gap_len[sw->gap_count++] = len;
    }
}

/*
 * Decodes `code` to its end instruction by instruction. Returns false, with the reason, when its
 * extent is unknown or an instruction is not one the decoder knows: then no byte of it is
 * rewritten, since a branch target inside the bytes a patch replaces could not be ruled out.
 */
static bool sweep_function(uint8_t *code, struct sweep *sw, char *why, size_t why_size)
{
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    memset(sw, 0, sizeof *sw);
    if (!dladdr1(code, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || info.dli_saddr != code ||
        sym->st_size == 0 || sym->st_size > 4096 ||
        (uintptr_t)code + sym->st_size + 32 > mh_libc_text_hi) {
        snprintf(why, why_size, "no symbol size to decode the function by");
        return false;
    }
    sw->size = sym->st_size;
    size_t at = 0, gap_start = 0;
    bool after_stop = false, in_gap = false;
    while (at < sw->size) {
        struct mh_x86_insn insn;
        size_t n = mh_x86_decode(code + at, sw->size + 16 - at, &insn);
        if (n == 0) {
            describe_bytes(why, why_size, "unknown instruction", code, at, sw->size + 16);
            return false;
        }
        if (insn.has_target) {
            int64_t to = (int64_t)(at + n) + insn.rel;
            if (to >= 0 && (uint64_t)to < sw->size) {
                if (sw->target_count == SWEEP_MAX_TARGETS) {
                    snprintf(why, why_size, "too many branches to check");
                    return false;
                }
                sw->targets[sw->target_count++] = (size_t)to;
            }
        }
        if (insn.kind == MH_X86_NOP && (after_stop || in_gap)) {
            if (!in_gap)
                gap_start = at;
            in_gap = true;
        } else {
            if (in_gap)
                add_gap(sw, gap_start, at - gap_start);
            in_gap = false;
        }
        after_stop =
            insn.kind == MH_X86_STOP || insn.kind == MH_X86_JMP || insn.kind == MH_X86_JMP_INDIRECT;
        at += n;
    }
    if (at != sw->size) {
        snprintf(why, why_size, "instructions overrun the symbol's size (%zu)", sw->size);
        return false;
    }
    if (in_gap)
        add_gap(sw, gap_start, at - gap_start);
    /* The alignment fill after the function, up to the next 16-byte boundary. */
    if (after_stop || in_gap) {
        size_t fill = in_gap ? gap_start : at;
        while (((uintptr_t)code + at) & 15) {
            struct mh_x86_insn insn;
            size_t n = mh_x86_decode(code + at, 16, &insn);
            if (n == 0 || (insn.kind != MH_X86_NOP && code[at] != 0xcc))
                break;
            at += n;
        }
        if (!(((uintptr_t)code + at) & 15))
            add_gap(sw, fill, at - fill);
    }
    return true;
}

/* Whether some branch of the function lands in [from, to) (offsets from its entry). */
static bool branch_into(const struct sweep *sw, size_t from, size_t to)
{
    for (size_t i = 0; i < sw->target_count; i++)
        if (sw->targets[i] >= from && sw->targets[i] < to)
            return true;
    return false;
}

/*
 * JMP_LEN bytes no thread executes within a jmp rel8 of the entry's end: the padding in front of
 * the function, else a NOP run after a ret or jmp inside it or right after it that no branch
 * lands in. NULL when there is none.
 */
static uint8_t *padding_near(uint8_t *code, const struct sweep *sw)
{
    uint8_t *from = code + SHORT_JMP_LEN;
    uint8_t *before = padding_before(code);
    if (before)
        return before;
    for (size_t g = 0; g < sw->gap_count; g++) {
        for (size_t at = sw->gap_at[g]; at + JMP_LEN <= sw->gap_at[g] + sw->gap_len[g]; at++) {
            ptrdiff_t rel = (code + at) - from;
            if (rel < -128 || rel > 127 || branch_into(sw, at, at + JMP_LEN))
                continue;
            return code + at;
        }
    }
    return NULL;
}

static void patch_one(struct target *t, uint8_t *stub)
{
    t->code = (uint8_t *)mh_libc_symbol(t->s.name);
    if (!t->code) {
        t->s.status = MEMHOOKS_PATCH_NO_SYMBOL;
        snprintf(t->s.reason, sizeof t->s.reason, "libc has no %s", t->s.name);
        return;
    }
    size_t covered, first;
    /* 16 bytes are readable: every entry point sits in libc's text with code after it. */
    int status = decode_prologue(t->code, 16, &covered, &first, t->s.reason, sizeof t->s.reason);
    if (status != MEMHOOKS_PATCH_OK) {
        t->s.status = status;
        return;
    }
    struct sweep sw;
    if (!sweep_function(t->code, &sw, t->s.reason, sizeof t->s.reason)) {
        t->s.status = MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
        return;
    }
    uint8_t *padding = NULL;
    if (first < SHORT_JMP_LEN) {
        t->s.status = MEMHOOKS_PATCH_NO_SAFE_ENTRY;
        snprintf(t->s.reason, sizeof t->s.reason,
                 "first instruction is 1 byte: even a jmp rel8 would "
                 "cover an instruction boundary");
        return;
    }
    if (first < JMP_LEN) {
        padding = t->padding ? t->padding : padding_near(t->code, &sw);
        if (!padding) {
            t->s.status = MEMHOOKS_PATCH_NO_SAFE_ENTRY;
            snprintf(t->s.reason, sizeof t->s.reason,
                     "first instruction is %zu bytes and no %d bytes of padding are within a "
                     "jmp rel8",
                     first, JMP_LEN);
            return;
        }
    }
    size_t length = padding ? SHORT_JMP_LEN : JMP_LEN;
    if (branch_into(&sw, 1, length)) {
        t->s.status = MEMHOOKS_PATCH_NO_SAFE_ENTRY;
        snprintf(t->s.reason, sizeof t->s.reason, "a branch lands inside the first %zu bytes",
                 length);
        return;
    }
    if (!padding) {
        /* One jmp rel32 over whole instructions (the first is at least as long as the jump). */
        int32_t rel32;
        if (!rel32_to(t->code + JMP_LEN, stub, &rel32)) {
            t->s.status = MEMHOOKS_PATCH_NO_TRAMPOLINE;
            snprintf(t->s.reason, sizeof t->s.reason, "no stub page within 2 GiB");
            return;
        }
        t->length = JMP_LEN;
        t->jump[0] = 0xe9;
        memcpy(t->jump + 1, &rel32, 4);
        snprintf(t->s.reason, sizeof t->s.reason, "jmp rel32 over a %zu-byte first instruction",
                 first);
    } else {
        /* jmp rel8 at the entry, into the padding's jmp rel32 to the stub. */
        uint8_t far[JMP_LEN] = {0xe9};
        int32_t rel32;
        if (!rel32_to(padding + JMP_LEN, stub, &rel32)) {
            t->s.status = MEMHOOKS_PATCH_NO_TRAMPOLINE;
            snprintf(t->s.reason, sizeof t->s.reason, "no stub page within 2 GiB");
            return;
        }
        memcpy(far + 1, &rel32, 4);
        if (!t->padding && !write_padding(padding, far)) {
            t->s.status = MEMHOOKS_PATCH_WRITE_FAILED;
            snprintf(t->s.reason, sizeof t->s.reason, "the padding could not be written");
            return;
        }
        t->padding = padding;
        t->length = SHORT_JMP_LEN;
        t->jump[0] = 0xeb;
        t->jump[1] = (uint8_t)(int8_t)(padding - (t->code + SHORT_JMP_LEN));
        snprintf(t->s.reason, sizeof t->s.reason,
                 "jmp rel8 over a %zu-byte first instruction into the padding at %+td", first,
                 padding - t->code);
    }
    memcpy(t->original, t->code, t->length);
    if (write_code(t->code, t->original, t->jump, t->length)) {
        t->s.status = MEMHOOKS_PATCH_OK;
    } else {
        t->s.status = MEMHOOKS_PATCH_WRITE_FAILED;
        snprintf(t->s.reason, sizeof t->s.reason, "the entry could not be written");
    }
}

int mh_patch_install(void)
{
#if !defined(__x86_64__)
    for (int i = 0; i < TARGET_COUNT; i++)
        targets[i].s.status = MEMHOOKS_PATCH_UNSUPPORTED;
    return OPAL_ERR_NOT_SUPPORTED;
#else
    if (!mh_patch_open_libc())
        return OPAL_ERR_NOT_SUPPORTED;
    if (!stubs) {
        sync_core = mh_patch_register_sync_core();
        uint8_t *page = map_stub_page();
        if (!page) {
            for (int i = 0; i < TARGET_COUNT; i++)
                targets[i].s.status = MEMHOOKS_PATCH_NO_TRAMPOLINE;
            return OPAL_ERR_NOT_SUPPORTED;
        }
        for (int i = 0; i < TARGET_COUNT; i++)
            write_stub(page + i * STUB_SIZE, targets[i].s.hook);
        raw_syscall(SYS_mprotect, page, sysconf(_SC_PAGESIZE), PROT_READ | PROT_EXEC);
        stubs = page;
    }
    int patched = 0;
    for (int i = 0; i < TARGET_COUNT; i++) {
        if (targets[i].s.status == MEMHOOKS_PATCH_OK)
            continue;
        patch_one(&targets[i], stubs + i * STUB_SIZE);
        patched += targets[i].s.status == MEMHOOKS_PATCH_OK;
    }
    return patched > 0 ? OPAL_SUCCESS : OPAL_ERR_NOT_SUPPORTED;
#endif
}

void mh_patch_check_seen(int seen, int tested)
{
    for (int i = 0; i < TARGET_COUNT; i++) {
        struct target *t = &targets[i];
        int want = t->s.seen & tested;
        if (t->s.status != MEMHOOKS_PATCH_OK || (seen & want) == want)
            continue;
        /* Restored like finalize does: a hook that does not fire must not stay in the way. */
        mh_patch_unseen(&t->s, write_code(t->code, t->jump, t->original, t->length));
    }
}

void mh_patch_remove(void)
{
    /* Safe to undo: the jump is one instruction at the entry, so no thread is inside its bytes,
     * and a thread already past it runs our hook, whose code and stub stay mapped. The padding's
     * jump stays (a thread may be between the two jumps); a later install reuses it. */
    for (int i = 0; i < TARGET_COUNT; i++) {
        struct target *t = &targets[i];
        if (t->s.status != MEMHOOKS_PATCH_OK)
            continue;
        /* write_code compares first: a jump another library wrote over ours stays. */
        if (write_code(t->code, t->jump, t->original, t->length))
            t->s.status = MEMHOOKS_PATCH_NOT_INSTALLED;
        else
            t->s.status = memcmp(t->code, t->jump, t->length) != 0 ? MEMHOOKS_PATCH_FOREIGN
                                                                   : MEMHOOKS_PATCH_WRITE_FAILED;
    }
}

uint8_t *mh_patch_entry(int index, const uint8_t **jump, size_t *length)
{
    if (index < 0 || index >= TARGET_COUNT)
        return NULL;
    struct target *t = &targets[index];
    bool ours = t->s.status == MEMHOOKS_PATCH_OK;
    *jump = t->jump;
    *length = ours ? t->length : 0;
    return t->code;
}

bool mh_patch_in_place(int index)
{
    const struct target *t = &targets[index];
    return t->length && memcmp(t->code, t->jump, t->length) == 0;
}

#endif /* __x86_64__ */
