/*
 * Patching the code of libc's memory functions (x86_64, glibc 2.36).
 *
 * Each function's entry is redirected to a stub near libc (`movabs r11, hook; jmp r11`). The bytes
 * are written with one cmpxchg16b over their aligned 16-byte block, so a thread running the
 * function sees either the old code or the new, and no thread can be returning into the overwritten
 * bytes (they precede every syscall and call).
 *
 * When the first instruction is at least 5 bytes long (`mov eax, NR` in the syscall wrappers) it is
 * replaced by one `jmp rel32` to the stub. When it is shorter (mmap's `mov r10d, ecx`, sbrk's
 * `push r12`), a 5-byte jump over the first few instructions would have an instruction boundary
 * inside it: a thread that had just run the first instruction would resume in the middle of the
 * jump. Then only the first instruction's first 2 bytes are replaced, by a `jmp rel8` into the
 * alignment padding in front of the function, where a `jmp rel32` to the stub was written first
 * (no thread ever executes padding). A thread is either before the entry (it takes the jump) or
 * past the first instruction (it runs the original code to its end).
 *
 * Only prologues made of instructions the decoder knows are patched; a prologue that already starts
 * with a jump belongs to another interceptor and is refused rather than overwritten.
 */
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <link.h>
#include <linux/membarrier.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "memhooks_internal.h"

#define JMP_LEN 5
#define SHORT_JMP_LEN 2
#define STUB_SIZE 16

struct target {
    const char *name;
    void *hook;
    uint8_t *code; /* libc's entry point */
    uint8_t original[JMP_LEN];
    uint8_t jump[JMP_LEN];
    size_t length;    /* bytes of the entry replaced: JMP_LEN, or SHORT_JMP_LEN via the padding */
    uint8_t *padding; /* where the padding's jmp rel32 was written (it stays: see remove) */
    int status;
};

static struct target targets[] = {
    {.name = "munmap", .hook = (void *)mh_hook_munmap, .status = MEMHOOKS_PATCH_NOT_INSTALLED},
    {.name = "mremap", .hook = (void *)mh_hook_mremap, .status = MEMHOOKS_PATCH_NOT_INSTALLED},
    {.name = "madvise", .hook = (void *)mh_hook_madvise, .status = MEMHOOKS_PATCH_NOT_INSTALLED},
    {.name = "mmap", .hook = (void *)mh_hook_mmap, .status = MEMHOOKS_PATCH_NOT_INSTALLED},
    {.name = "brk", .hook = (void *)mh_hook_brk, .status = MEMHOOKS_PATCH_NOT_INSTALLED},
    {.name = "sbrk", .hook = (void *)mh_hook_sbrk, .status = MEMHOOKS_PATCH_NOT_INSTALLED},
    {.name = "shmat", .hook = (void *)mh_hook_shmat, .status = MEMHOOKS_PATCH_NOT_INSTALLED},
    {.name = "shmdt", .hook = (void *)mh_hook_shmdt, .status = MEMHOOKS_PATCH_NOT_INSTALLED},
};
#define TARGET_COUNT ((int)(sizeof targets / sizeof targets[0]))

static void *libc_handle;
static uintptr_t libc_text_lo, libc_text_hi;
static uint8_t *stubs; /* one page near libc, never unmapped: a thread may still be jumping there */
static bool sync_core;

int memhooks_patch_count(void)
{
    return TARGET_COUNT;
}

const char *memhooks_patch_name(int index)
{
    return index >= 0 && index < TARGET_COUNT ? targets[index].name : NULL;
}

int memhooks_patch_status(int index)
{
    return index >= 0 && index < TARGET_COUNT ? targets[index].status : MEMHOOKS_PATCH_NO_SYMBOL;
}

bool mh_libc_text_contains(uintptr_t addr)
{
    return addr >= libc_text_lo && addr < libc_text_hi;
}

void *mh_libc_symbol(const char *name)
{
    return libc_handle ? dlsym(libc_handle, name) : NULL;
}

/* Length of the instruction at `p` if it is one found in these prologues, else 0. */
static size_t known_instruction(const uint8_t *p, size_t avail)
{
#define NEED(n) ((avail) >= (n) ? (size_t)(n) : 0)
    if (avail >= 4 && p[0] == 0xf3 && p[1] == 0x0f && p[2] == 0x1e && p[3] == 0xfa)
        return 4; /* endbr64 */
    if (p[0] >= 0xb8 && p[0] <= 0xbf)
        return NEED(5); /* mov r32, imm32 */
    if (p[0] == 0x55 || p[0] == 0x53)
        return 1; /* push rbp / push rbx */
    if (avail >= 2 && p[0] == 0x41 && p[1] >= 0x54 && p[1] <= 0x57)
        return 2; /* push r12..r15 */
    if (avail >= 3 && (p[0] == 0x41 || p[0] == 0x49) && p[1] == 0x89 && p[2] == 0xca)
        return 3; /* mov r10d, ecx / mov r10, rcx */
    if (avail >= 3 && p[0] == 0x41 && p[1] == 0xf7 && p[2] == 0xc1)
        return NEED(7); /* test r9d, imm32 */
    if (avail >= 3 && p[0] == 0x48 && p[1] == 0x83 && p[2] == 0xec)
        return NEED(4); /* sub rsp, imm8 */
    if (avail >= 4 && p[0] == 0x4c && p[1] == 0x89 && p[2] == 0x44 && p[3] == 0x24)
        return NEED(5); /* mov [rsp + disp8], r8 */
    if (avail >= 3 && p[0] == 0x4c && p[1] == 0x8b && p[2] == 0x25)
        return NEED(7); /* mov r12, [rip + disp32]: never executed from here, so no relocation */
    return 0;
#undef NEED
}

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

int memhooks_decode_prologue(const uint8_t *code, size_t avail, size_t *covered)
{
    if (!code) {
        if (covered)
            *covered = 0;
        return MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
    }
    size_t at = 0;
    int status = MEMHOOKS_PATCH_OK;
    if (foreign_jump(code, avail))
        status = MEMHOOKS_PATCH_FOREIGN;
    while (status == MEMHOOKS_PATCH_OK && at < JMP_LEN) {
        size_t n = known_instruction(code + at, avail - at);
        if (n == 0)
            status = MEMHOOKS_PATCH_UNKNOWN_PROLOGUE; /* includes syscall and call: too early */
        at += n;
    }
    if (covered)
        *covered = status == MEMHOOKS_PATCH_OK ? at : 0;
    return status;
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
            libc_text_lo = info->dlpi_addr + ph->p_vaddr;
            libc_text_hi = libc_text_lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

/* A page within +-2 GiB of libc's text, so that a jmp rel32 reaches it. */
static uint8_t *map_stub_page(void)
{
    long page = sysconf(_SC_PAGESIZE);
    for (long step = 1; step < 16384; step++) {
        for (int side = 0; side < 2; side++) {
            uintptr_t hint =
                side == 0 ? (libc_text_lo & ~(uintptr_t)(page - 1)) - step * 65536
                          : ((libc_text_hi + page - 1) & ~(uintptr_t)(page - 1)) + step * 65536;
            long got = raw_syscall6(SYS_mmap, (long)hint, page, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            if ((unsigned long)got >= -4096UL)
                continue;
            if ((uintptr_t)got == hint)
                return (uint8_t *)got;
            raw_syscall(SYS_munmap, got, page, 0); /* kernel without MAP_FIXED_NOREPLACE */
        }
    }
    return NULL;
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
    if ((uintptr_t)code - 32 < libc_text_lo)
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

static void patch_one(struct target *t, uint8_t *stub)
{
    t->code = (uint8_t *)dlsym(libc_handle, t->name);
    if (!t->code) {
        t->status = MEMHOOKS_PATCH_NO_SYMBOL;
        return;
    }
    size_t covered;
    /* 16 bytes are readable: every entry point sits in libc's text with code after it. */
    int status = memhooks_decode_prologue(t->code, 16, &covered);
    if (status != MEMHOOKS_PATCH_OK) {
        t->status = status;
        return;
    }
    size_t first = known_instruction(t->code, 16);
    uint8_t *padding = NULL;
    if (first >= SHORT_JMP_LEN && first < JMP_LEN)
        padding = t->padding ? t->padding : padding_before(t->code);
    if (!padding) {
        /* One jmp rel32 over whole instructions (a boundary may fall inside it only when the
         * first instruction is short and no padding is at hand: see hooks/README.md). */
        int32_t rel32;
        if (!rel32_to(t->code + JMP_LEN, stub, &rel32)) {
            t->status = MEMHOOKS_PATCH_NO_TRAMPOLINE;
            return;
        }
        t->length = JMP_LEN;
        t->jump[0] = 0xe9;
        memcpy(t->jump + 1, &rel32, 4);
    } else {
        /* jmp rel8 at the entry, into the padding's jmp rel32 to the stub. */
        uint8_t far[JMP_LEN] = {0xe9};
        int32_t rel32;
        if (!rel32_to(padding + JMP_LEN, stub, &rel32)) {
            t->status = MEMHOOKS_PATCH_NO_TRAMPOLINE;
            return;
        }
        memcpy(far + 1, &rel32, 4);
        if (!t->padding && !write_padding(padding, far)) {
            t->status = MEMHOOKS_PATCH_WRITE_FAILED;
            return;
        }
        t->padding = padding;
        t->length = SHORT_JMP_LEN;
        t->jump[0] = 0xeb;
        t->jump[1] = (uint8_t)(int8_t)(padding - (t->code + SHORT_JMP_LEN));
    }
    memcpy(t->original, t->code, t->length);
    t->status = write_code(t->code, t->original, t->jump, t->length) ? MEMHOOKS_PATCH_OK
                                                                     : MEMHOOKS_PATCH_WRITE_FAILED;
}

int mh_patch_install(void)
{
#if !defined(__x86_64__)
    for (int i = 0; i < TARGET_COUNT; i++)
        targets[i].status = MEMHOOKS_PATCH_UNSUPPORTED;
    return OPAL_ERR_NOT_SUPPORTED;
#else
    if (strcmp(gnu_get_libc_version(), "2.36") != 0) {
        for (int i = 0; i < TARGET_COUNT; i++)
            targets[i].status = MEMHOOKS_PATCH_UNSUPPORTED;
        return OPAL_ERR_NOT_SUPPORTED;
    }
    if (!libc_handle)
        libc_handle = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    if (!libc_handle || (!libc_text_hi && !dl_iterate_phdr(find_libc_text, NULL)))
        return OPAL_ERR_NOT_SUPPORTED;
    if (!stubs) {
        long q = raw_syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        if (q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) &&
            raw_syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0,
                        0) == 0)
            sync_core = true;
        uint8_t *page = map_stub_page();
        if (!page) {
            for (int i = 0; i < TARGET_COUNT; i++)
                targets[i].status = MEMHOOKS_PATCH_NO_TRAMPOLINE;
            return OPAL_ERR_NOT_SUPPORTED;
        }
        for (int i = 0; i < TARGET_COUNT; i++)
            write_stub(page + i * STUB_SIZE, targets[i].hook);
        raw_syscall(SYS_mprotect, page, sysconf(_SC_PAGESIZE), PROT_READ | PROT_EXEC);
        stubs = page;
    }
    int patched = 0;
    for (int i = 0; i < TARGET_COUNT; i++) {
        if (targets[i].status == MEMHOOKS_PATCH_OK)
            continue;
        patch_one(&targets[i], stubs + i * STUB_SIZE);
        patched += targets[i].status == MEMHOOKS_PATCH_OK;
    }
    return patched > 0 ? OPAL_SUCCESS : OPAL_ERR_NOT_SUPPORTED;
#endif
}

void mh_patch_remove(void)
{
    /* Safe to undo: the jump is one instruction at the entry, so no thread is inside its bytes,
     * and a thread already past it runs our hook, whose code and stub stay mapped. The padding's
     * jump stays (a thread may be between the two jumps); a later install reuses it. */
    for (int i = 0; i < TARGET_COUNT; i++) {
        struct target *t = &targets[i];
        if (t->status != MEMHOOKS_PATCH_OK)
            continue;
        /* write_code compares first: a jump another library wrote over ours stays. */
        if (write_code(t->code, t->jump, t->original, t->length))
            t->status = MEMHOOKS_PATCH_NOT_INSTALLED;
        else
            t->status = memcmp(t->code, t->jump, t->length) != 0 ? MEMHOOKS_PATCH_FOREIGN
                                                                 : MEMHOOKS_PATCH_WRITE_FAILED;
    }
}

uint8_t *mh_patch_entry(int index, const uint8_t **jump, size_t *length)
{
    if (index < 0 || index >= TARGET_COUNT)
        return NULL;
    struct target *t = &targets[index];
    bool ours = t->status == MEMHOOKS_PATCH_OK;
    *jump = t->jump;
    *length = ours ? t->length : 0;
    return t->code;
}

void mh_patch_set_owned(int index, bool ours)
{
    struct target *t = &targets[index];
    if (!ours && t->status == MEMHOOKS_PATCH_OK)
        t->status = MEMHOOKS_PATCH_FOREIGN; /* written over: finalize leaves it */
    else if (ours && t->status == MEMHOOKS_PATCH_FOREIGN && t->length &&
             memcmp(t->code, t->jump, t->length) == 0)
        t->status = MEMHOOKS_PATCH_OK; /* our jump is back */
}
