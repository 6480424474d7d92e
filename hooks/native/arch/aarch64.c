/*
 * Patching the code of libc's memory functions on aarch64 (the x86_64 patcher is patch.c).
 *
 * The Arm architecture allows one thread to modify an instruction another thread may be executing
 * only when both the old and the new instruction are among B, BL, BRK, HVC, ISB, NOP, SMC and SVC
 * (Arm ARM DDI 0487, B2.2.5 "Concurrent modification and execution of instructions"); any other
 * modification can, in a thread that runs the code at that moment, behave as any instruction
 * sequence. So the entry instruction (a `sub sp`, `stp`, `mov`, `tst`, `sxtw` or hint in glibc
 * 2.36) is never written. The one instruction replaced is the function's `svc #0`, by a `B` to a
 * stub: SVC to B and back are both in that list, and the store is one aligned 4-byte word (single
 * copy atomic), so a thread fetching it sees the whole old or the whole new instruction.
 *
 * The decoder (decode()) builds the function's control flow (its length from its ELF symbol; one
 * `svc #0` in it) and follows every path from the entry that can reach that `svc`. Each instruction
 * on them must leave the callee-saved registers x19..x28, x30 and memory above sp untouched:
 * hints (NOP, BTI), moves, sign extensions, adrp, loads and adds into x0..x18, compares, branches
 * inside the function, one `sub sp, sp, #imm` with stores into that frame, and `add x29, sp` once
 * the caller's x29/x30 are saved in it. All paths must reach the `svc` in the same state, with x8
 * holding the function's system call number. So at the `svc` x0..x5 are the function's arguments,
 * x30 is its caller's return address, and sp and x29 differ from the entry's by what the decoder
 * measured: the stub undoes that (`ldp x29, x30`; `add sp`) and jumps to the hook, which runs as
 * if the caller had called it instead of libc (a tail call) and returns to that caller. The rest
 * of libc's wrapper (errno, __curbrk, the stack guard check) is not needed: the hook does what the
 * wrapper would, as on x86_64.
 *
 * sbrk has no `svc`: it calls brk's own entry (`bl`). Those calls are retargeted, BL to BL (also
 * in that list), to a stub that passes sbrk's frame pointer to brk's hook, so the release is
 * attributed to sbrk's caller (see cover_sbrk()).
 *
 * After each write: the data cache is cleaned and the instruction cache invalidated to the point
 * of unification for the word (__builtin___clear_cache: dc cvau, dsb ish, ic ivau, dsb ish, isb),
 * then membarrier(SYNC_CORE) makes every other core of the process run a context synchronization
 * event before install returns, so the self-test that follows sees the new code on all of them.
 */
#if defined(__aarch64__)

#include <dlfcn.h>
#include <link.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../memhooks_internal.h"

#define STUB_SIZE 32  /* see write_stub() */
#define SCAN_LIMIT 64 /* instructions looked at from the entry */
#define SVC0 0xd4000001u
#define SBRK_CALLS 4 /* calls of brk in sbrk, at most */

struct target {
    struct mh_patch_slot s; /* name, hook, self-test bits, status, reason */
    long nr;                /* the system call its svc makes; 0 for sbrk */
    uint32_t *code;         /* libc's entry point */
    size_t words;           /* its length in instructions (from its symbol); 0 if over SCAN_LIMIT */
    uint32_t *site;         /* the svc replaced by a B */
    uint32_t entry[2];      /* its first two words once patched (what foreign.c verifies) */
    uint32_t *calls[SBRK_CALLS]; /* sbrk: its `bl brk`, retargeted to its stub */
    uint32_t call_original[SBRK_CALLS], call_jump[SBRK_CALLS];
    int call_count;
    uint32_t original, jump;
    unsigned frame;  /* bytes its stub pops */
    int fp_slot;     /* where its caller's x29/x30 were saved in that frame, or -1 */
    bool stub_ready; /* its stub was written when the stub page was made */
};

#define TARGET(n, nr_, bits)                        \
    {                                               \
        .s = MH_PATCH_SLOT_INIT(n, bits), .nr = nr_ \
    }
static struct target targets[] = {
    TARGET(munmap, SYS_munmap, MH_SEEN_MUNMAP),
    TARGET(mremap, SYS_mremap, MH_SEEN_MREMAP),
    TARGET(madvise, SYS_madvise, MH_SEEN_MADVISE),
    TARGET(mmap, SYS_mmap, MH_SEEN_MMAP_FIXED | MH_SEEN_MMAP_ALLOC),
    TARGET(brk, SYS_brk, MH_SEEN_BRK),
    TARGET(sbrk, 0, MH_SEEN_BRK), /* proven through brk, whose entry it calls */
    TARGET(shmat, SYS_shmat, MH_SEEN_SHMAT),
    TARGET(shmdt, SYS_shmdt, MH_SEEN_SHMDT),
};
#undef TARGET
#define TARGET_COUNT ((int)(sizeof targets / sizeof targets[0]))
#define BRK_INDEX 4
#define SBRK_INDEX 5

static int hook_brk_in_sbrk(void *addr, const uintptr_t *sbrk_frame);

struct mh_patch_slot *mh_patch_slot(int index)
{
    return index >= 0 && index < TARGET_COUNT ? &targets[index].s : NULL;
}

static uint32_t *stubs; /* one page near libc, never unmapped: a thread may still be in a stub */
static bool sync_core;

bool mh_patch_sbrk_through_brk(void)
{
    return targets[SBRK_INDEX].s.status == MEMHOOKS_PATCH_OK;
}

static unsigned reg_d(uint32_t i)
{
    return i & 31;
}

/* B or BL: the signed 26-bit word offset. */
static intptr_t branch26(uint32_t i)
{
    return ((intptr_t)(int32_t)(i << 6) >> 6) * 4;
}

/* Hints that change no register: NOP and the BTI forms (PACIASP and friends sign x30). */
static bool harmless_hint(uint32_t i)
{
    return i == 0xd503201fu || (i & 0xffffff3fu) == 0xd503241fu;
}

/* Writes at most one register in x0..x18 and the flags; memory is only read. */
static bool scratch_only(uint32_t i)
{
    unsigned d = reg_d(i);
    if ((i & 0x1f800000u) == 0x12800000u) /* movz / movn / movk, 32 or 64-bit */
        return d < 19;
    if ((i & 0x7fe0ffe0u) == 0x2a0003e0u) /* mov (orr shifted register with xzr) */
        return d < 19;
    if ((i & 0xfffffc00u) == 0x93407c00u) /* sxtw */
        return d < 19;
    if ((i & 0x9f000000u) == 0x90000000u) /* adrp */
        return d < 19;
    if ((i & 0xbfc00000u) == 0xb9400000u || (i & 0xffc00000u) == 0x39400000u)
        return d < 19;                               /* ldr / ldrb, unsigned offset */
    if ((i & 0x7f800000u) == 0x72000000u && d == 31) /* tst #imm (ands with the zero register) */
        return true;
    if ((i & 0x7f00001fu) == 0x7100001fu || (i & 0x7f00001fu) == 0x3100001fu ||
        (i & 0x7f20001fu) == 0x6b00001fu)
        return true; /* cmp #imm, cmn #imm, cmp register */
    if ((i & 0x7f000000u) == 0x11000000u || (i & 0x7f000000u) == 0x51000000u)
        return d < 19; /* add / sub #imm into x0..x18 (from any register or sp) */
    return false;
}

/* Signatures of an entry someone already redirected: B, BR through a register, BRK, or a load
 * into x15..x17 (the start of `ldr x16, lit; br x16` or `movz x15, ...; br x15`). */
static bool foreign_entry(uint32_t i)
{
    bool to_ip = reg_d(i) >= 15 && reg_d(i) <= 17;
    return (i & 0xfc000000u) == 0x14000000u || (i & 0xfffffc1fu) == 0xd61f0000u ||
           (i & 0xffe0001fu) == 0xd4200000u || ((i & 0xff000000u) == 0x58000000u && to_ip) ||
           ((i & 0x1f800000u) == 0x12800000u && to_ip);
}

/* Where a conditional branch (b.cond, cbz/cbnz, tbz/tbnz) at index k goes, or -1 if `i` is
 * not one. */
static long cond_target(uint32_t i, size_t k)
{
    if ((i & 0xff000010u) == 0x54000000u || (i & 0x7e000000u) == 0x34000000u)
        return (long)k + ((int32_t)(i << 8) >> 13);
    if ((i & 0x7e000000u) == 0x36000000u)
        return (long)k + ((int32_t)(i << 13) >> 18);
    return -1;
}

/* The machine state the stub must undo, as a path from the entry leaves it. */
struct frame {
    bool known;
    unsigned sp;  /* bytes below the entry's sp (one `sub sp, sp, #imm`) */
    int fp_slot;  /* where `stp x29, x30, [sp, #off]` saved the caller's pair, or -1 */
    bool fp_used; /* x29 was changed (only after that save) */
    long x8;      /* the syscall number last moved into x8, or -1 */
};

/* The state after instruction `i` from `in`, or false when the decoder cannot stand for it. */
static bool step(uint32_t i, struct frame in, struct frame *out)
{
    *out = in;
    unsigned d = reg_d(i);
    if (harmless_hint(i))
        return true;
    if ((i & 0xffe0001fu) == 0xd2800008u || (i & 0xffe0001fu) == 0x52800008u) {
        out->x8 = (long)((i >> 5) & 0xffff); /* movz x8 / w8, #imm16 */
        return true;
    }
    if ((i & 0xff8003ffu) == 0xd10003ffu && !((i >> 22) & 1) && in.sp == 0) {
        out->sp = (i >> 10) & 0xfff; /* sub sp, sp, #imm12: the one frame it may make */
        return out->sp % 16 == 0 && out->sp > 0;
    }
    if ((i & 0xffc003e0u) == 0xf90003e0u) /* str xN, [sp, #off] inside that frame */
        return ((i >> 10) & 0xfff) * 8 + 8 <= in.sp;
    if ((i & 0x7fc003e0u) == 0x290003e0u || (i & 0xffc003e0u) == 0xa90003e0u) {
        /* stp (signed offset, no writeback) of w or x registers inside that frame */
        unsigned size = (i >> 31) ? 8 : 4;
        long off = (long)((int32_t)(i << 10) >> 25) * size;
        if (off < 0 || (unsigned long)off + 2 * size > in.sp)
            return false;
        if (i == (0xa9007bfdu | (((uint32_t)(off / 8) & 0x7f) << 15)) && in.fp_slot < 0)
            out->fp_slot = (int)off; /* stp x29, x30, [sp, #off] */
        return true;
    }
    if ((i & 0xffc003ffu) == 0x910003fdu) { /* add x29, sp, #imm (mov x29, sp) */
        out->fp_used = true;
        return in.fp_slot >= 0;
    }
    if (scratch_only(i)) {
        if (d == 8)
            out->x8 = -1;
        return true;
    }
    if (cond_target(i, 0) >= 0 || (i & 0xfc000000u) == 0x14000000u)
        return true; /* branches: their targets are followed by the caller */
    return false;
}

/*
 * Decodes the function at `code` (`words` instructions): MEMHOOKS_PATCH_OK when it holds one
 * `svc #0` and every path from the entry that can reach it holds only instructions step() knows,
 * all reaching it in the same state; the svc's index, the stub's frame and x8 are returned.
 */
static int decode(const uint32_t *code, size_t words, size_t *site_at, struct frame *at_svc)
{
    enum { MAX = 64 };
    if (words == 0)
        return MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
    if (foreign_entry(code[0]))
        return MEMHOOKS_PATCH_FOREIGN;
    if (words > MAX)
        words = MAX;
    long svc = -1;
    for (size_t k = 0; k < words; k++) {
        if (code[k] == SVC0) {
            if (svc >= 0)
                return MEMHOOKS_PATCH_UNKNOWN_PROLOGUE; /* more than one system call */
            svc = (long)k;
        }
    }
    if (svc < 0)
        return MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
    /* The control flow, whatever the instructions do: up to two successors each. */
    long next[MAX][2];
    for (size_t k = 0; k < words; k++) {
        uint32_t i = code[k];
        next[k][0] = next[k][1] = -1;
        long t = cond_target(i, k);
        if ((i & 0xfc000000u) == 0x14000000u)
            next[k][0] = (long)k + (branch26(i) / 4); /* b */
        else if (i == 0xd65f03c0u || (i & 0xfffffc1fu) == 0xd61f0000u ||
                 (i & 0xffe0001fu) == 0xd4200000u)
            ; /* ret, br, brk: leave */
        else {
            next[k][0] = (long)k + 1;
            next[k][1] = t;
        }
        for (int e = 0; e < 2; e++)
            if (next[k][e] < 0 || next[k][e] >= (long)words)
                next[k][e] = -1; /* out of the function: a tail call, never back before the svc */
    }
    /* Which instructions can reach the svc (a fixed point over the reversed edges). */
    bool reaches[MAX] = {false};
    reaches[svc] = true;
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t k = 0; k < words; k++)
            for (int e = 0; e < 2 && !reaches[k]; e++)
                if (next[k][e] >= 0 && reaches[next[k][e]] && (long)k != svc)
                    reaches[k] = changed = true;
    }
    if (!reaches[0])
        return MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
    /* The state along every path from the entry to the svc. */
    struct frame state[MAX] = {{0}};
    state[0] = (struct frame){.known = true, .sp = 0, .fp_slot = -1, .fp_used = false, .x8 = -1};
    long work[MAX * 2];
    int top = 0;
    work[top++] = 0;
    while (top > 0) {
        long k = work[--top];
        if (k == svc)
            continue;
        struct frame out;
        if (!step(code[k], state[k], &out))
            return MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
        for (int e = 0; e < 2; e++) {
            long n = next[k][e];
            if (n < 0 || !reaches[n])
                continue;
            if (!state[n].known) {
                state[n] = out;
                if (top >= MAX * 2)
                    return MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
                work[top++] = n;
            } else if (state[n].sp != out.sp || state[n].fp_slot != out.fp_slot ||
                       state[n].fp_used != out.fp_used || state[n].x8 != out.x8) {
                return MEMHOOKS_PATCH_UNKNOWN_PROLOGUE; /* paths disagree */
            }
        }
    }
    if (!state[svc].known || state[svc].x8 < 0)
        return MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
    *site_at = (size_t)svc;
    *at_svc = state[svc];
    return MEMHOOKS_PATCH_OK;
}

int memhooks_decode_prologue(const uint8_t *code, size_t avail, size_t *covered)
{
    size_t site = 0;
    struct frame f;
    int status = MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
    if (code && ((uintptr_t)code & 3) == 0)
        status = decode((const uint32_t *)code, avail / 4, &site, &f);
    if (covered)
        *covered = status == MEMHOOKS_PATCH_OK ? site * 4 + 4 : 0;
    return status;
}

/* A page within reach of a B (+-128 MiB) from all of libc's text. */
static uint32_t *map_stub_page(void)
{
    return mh_map_page_near_libc(1024);
}

static bool b_to(const uint32_t *from, const void *to, uint32_t *insn)
{
    intptr_t rel = (intptr_t)to - (intptr_t)from;
    if (rel < -(intptr_t)(128 << 20) || rel >= (intptr_t)(128 << 20))
        return false;
    *insn = 0x14000000u | ((uint32_t)(rel >> 2) & 0x03ffffffu);
    return true;
}

/*
 * [ldp x29, x30, [sp, #fp_slot]]; [add sp, sp, #frame]; ldr x16, hook; br x16 (nops where not
 * needed): back to the entry's sp and the caller's x29, then on to the hook. x16 is the
 * intra-procedure-call scratch register, free at a call boundary.
 */
static void write_stub(uint32_t *stub, void *hook, unsigned frame, int fp_slot)
{
    const uint32_t nop = 0xd503201fu;
    stub[0] = fp_slot >= 0 ? 0xa9407bfdu | (((uint32_t)fp_slot / 8) << 15) : nop;
    stub[1] = frame ? 0x910003ffu | (frame << 10) : nop;
    stub[2] = 0x58000090u; /* ldr x16, [pc + 16] */
    stub[3] = 0xd61f0200u; /* br x16 */
    stub[4] = 0xd4200000u; /* brk #0: never reached */
    stub[5] = 0xd4200000u;
    uint64_t target = (uint64_t)(uintptr_t)hook;
    memcpy(&stub[6], &target, 8);
}

static void sync_other_cores(void)
{
    if (sync_core)
        raw_syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0);
}

/* Replaces the instruction `expect` at `at` by `insn` with one aligned 4-byte store. */
static bool write_code(uint32_t *at, uint32_t expect, uint32_t insn)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t page_addr = (uintptr_t)at & ~(uintptr_t)(page - 1);
    if (raw_syscall(SYS_mprotect, page_addr, page, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
        return false;
    uint32_t seen = expect;
    /* A compare-and-swap: a word changed under us (another patcher) is left alone. */
    bool ok =
        __atomic_compare_exchange_n(at, &seen, insn, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    __builtin___clear_cache((char *)at, (char *)(at + 1));
    raw_syscall(SYS_mprotect, page_addr, page, PROT_READ | PROT_EXEC);
    sync_other_cores();
    return ok;
}

/* libc's entry point of `t` and its length in instructions (0 when unknown). */
static void locate(struct target *t)
{
    t->code = (uint32_t *)mh_libc_symbol(t->s.name);
    t->words = 0;
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (t->code && dladdr1(t->code, &info, (void **)&sym, RTLD_DL_SYMENT) && sym &&
        mh_libc_text_contains((uintptr_t)t->code) &&
        (uintptr_t)t->code + sym->st_size <= mh_libc_text_hi)
        t->words = sym->st_size / 4 <= SCAN_LIMIT ? sym->st_size / 4 : 0; /* too long: refused */
}

/* Decodes `t` as it is now: OK with the svc's index and the state there, or why not. */
static int decode_target(struct target *t, size_t *site, struct frame *f)
{
    if (!t->code)
        return MEMHOOKS_PATCH_NO_SYMBOL;
    int status = decode(t->code, t->words, site, f);
    if (status == MEMHOOKS_PATCH_OK && f->x8 != t->nr)
        status = MEMHOOKS_PATCH_UNKNOWN_PROLOGUE; /* some other system call */
    return status;
}

/* Writes the stub of every target the decoder accepts, once, while the page is still writable:
 * a stub is never rewritten, since a thread may be running it long after its B is gone. */
static void write_stubs(void)
{
    for (int i = 0; i < TARGET_COUNT; i++) {
        struct target *t = &targets[i];
        size_t site;
        struct frame f;
        if (i == SBRK_INDEX) {
            /* mov x1, x29; ldr x16, hook; br x16: entered by a BL, so the hook returns to sbrk. */
            uint32_t *stub = stubs + i * (STUB_SIZE / 4);
            write_stub(stub, (void *)hook_brk_in_sbrk, 0, -1);
            stub[0] = 0xaa1d03e1u; /* mov x1, x29 */
            t->stub_ready = true;
            continue;
        }
        if (decode_target(t, &site, &f) != MEMHOOKS_PATCH_OK)
            continue;
        t->frame = f.sp;
        t->fp_slot = f.fp_used ? f.fp_slot : -1;
        write_stub(stubs + i * (STUB_SIZE / 4), t->s.hook, t->frame, t->fp_slot);
        t->stub_ready = true;
    }
    __builtin___clear_cache((char *)stubs, (char *)(stubs + TARGET_COUNT * (STUB_SIZE / 4)));
}

static void patch_one(struct target *t, uint32_t *stub)
{
    size_t site;
    struct frame f;
    int status = decode_target(t, &site, &f);
    if (status == MEMHOOKS_PATCH_OK &&
        (!t->stub_ready || f.sp != t->frame || (f.fp_used ? f.fp_slot : -1) != t->fp_slot))
        status = MEMHOOKS_PATCH_UNKNOWN_PROLOGUE; /* changed since its stub was made */
    if (status != MEMHOOKS_PATCH_OK) {
        t->s.status = status;
        if (status == MEMHOOKS_PATCH_NO_SYMBOL)
            snprintf(t->s.reason, sizeof t->s.reason, "libc has no %s", t->s.name);
        else if (status == MEMHOOKS_PATCH_FOREIGN)
            snprintf(t->s.reason, sizeof t->s.reason, "another library's jump at +0: %08x",
                     t->code[0]);
        else
            snprintf(t->s.reason, sizeof t->s.reason,
                     "no single svc #0 that every path reaches in a state the stub can undo "
                     "(entry %08x %08x, %zu instructions)",
                     t->code[0], t->code[1], t->words);
        return;
    }
    t->site = t->code + site;
    t->original = SVC0;
    if (!b_to(t->site, stub, &t->jump)) {
        t->s.status = MEMHOOKS_PATCH_NO_TRAMPOLINE;
        snprintf(t->s.reason, sizeof t->s.reason, "no stub page within 128 MiB");
        return;
    }
    t->s.status =
        write_code(t->site, t->original, t->jump) ? MEMHOOKS_PATCH_OK : MEMHOOKS_PATCH_WRITE_FAILED;
    if (t->s.status == MEMHOOKS_PATCH_OK)
        snprintf(t->s.reason, sizeof t->s.reason,
                 "svc at +%zu became a B; the stub pops %u bytes%s", site * 4, t->frame,
                 t->fp_slot >= 0 ? " and restores x29, x30" : "");
    else
        snprintf(t->s.reason, sizeof t->s.reason, "the svc at +%zu could not be written", site * 4);
    memcpy(t->entry, t->code, sizeof t->entry); /* with our B when the svc is in those words */
}

/*
 * sbrk makes no system call of its own: it calls brk's entry (`bl`). Each such call is retargeted
 * to sbrk's stub, BL to BL (in the architecture's list of concurrently modifiable instructions),
 * when sbrk starts with a standard frame record (`stp x29, x30, [sp, #-N]!`, then `mov x29, sp`
 * within its first instructions), so its stub can find sbrk's caller for the release.
 */
static void cover_sbrk(struct target *t, const struct target *brk, uint32_t *stub)
{
    t->site = NULL;
    if (!t->code) {
        t->s.status = MEMHOOKS_PATCH_NO_SYMBOL;
        snprintf(t->s.reason, sizeof t->s.reason, "libc has no %s", t->s.name);
        return;
    }
    if (foreign_entry(t->code[0])) {
        t->s.status = MEMHOOKS_PATCH_FOREIGN;
        snprintf(t->s.reason, sizeof t->s.reason, "another library's jump at +0: %08x", t->code[0]);
        return;
    }
    bool frame_record = t->words > 4 && (t->code[0] & 0xffc07fffu) == 0xa9807bfdu;
    bool fp_set = false;
    for (size_t k = 1; k < 4 && k < t->words; k++)
        fp_set |= t->code[k] == 0x910003fdu;
    bool own_svc = false;
    int calls = 0;
    uint32_t *at[SBRK_CALLS];
    for (size_t k = 0; k < t->words; k++) {
        uint32_t i = t->code[k];
        own_svc |= i == SVC0;
        if ((i & 0xfc000000u) == 0x94000000u &&
            (uintptr_t)(t->code + k) + branch26(i) == (uintptr_t)brk->code) {
            if (calls == SBRK_CALLS) {
                calls = SBRK_CALLS + 1;
                break;
            }
            at[calls++] = t->code + k;
        }
    }
    if (own_svc || calls == 0 || calls > SBRK_CALLS || !frame_record || !fp_set) {
        t->s.status = MEMHOOKS_PATCH_UNKNOWN_PROLOGUE;
        snprintf(t->s.reason, sizeof t->s.reason, "%s",
                 own_svc                    ? "has a system call of its own"
                 : calls == 0               ? "no call of brk's entry found"
                 : !frame_record || !fp_set ? "no standard frame record at its entry"
                                            : "calls brk in an unexpected way");
        return;
    }
    bool ok = true;
    t->call_count = 0;
    for (int c = 0; c < calls && ok; c++) {
        uint32_t bl;
        ok = b_to(at[c], stub, &bl);
        bl = (bl & 0x03ffffffu) | 0x94000000u; /* b_to made a B: the same offset as a BL */
        if (ok) {
            t->calls[c] = at[c];
            t->call_original[c] = *at[c];
            t->call_jump[c] = bl;
            ok = write_code(at[c], t->call_original[c], bl);
            t->call_count = c + 1;
        }
    }
    if (!ok) {
        for (int c = 0; c < t->call_count; c++)
            write_code(t->calls[c], t->call_jump[c], t->call_original[c]);
        t->call_count = 0;
        t->s.status = MEMHOOKS_PATCH_WRITE_FAILED;
        snprintf(t->s.reason, sizeof t->s.reason, "a call of brk could not be retargeted");
        return;
    }
    memcpy(t->entry, t->code, sizeof t->entry);
    t->s.status = MEMHOOKS_PATCH_OK;
    snprintf(t->s.reason, sizeof t->s.reason, "its %d call%s of brk retargeted to its stub (bl)",
             calls, calls == 1 ? "" : "s");
}

/*
 * sbrk's stub passes its frame pointer: sbrk starts `stp x29, x30, [sp, #-N]!; ...; mov x29, sp`
 * (checked by cover_sbrk), so its caller's return address is at x29 + 8, and the release is
 * attributed to that caller, not to sbrk inside libc.
 */
static int hook_brk_in_sbrk(void *addr, const uintptr_t *sbrk_frame)
{
    return mh_hook_brk_for(addr, sbrk_frame[1]);
}

/* ---- For foreign.c ------------------------------------------------------------------------ */

/*
 * Our patch leaves every entry as it was, so foreign.c verifies the entries' first 8 bytes (an
 * interceptor of the usual kind writes its jump there) and asks mh_patch_follow() where an entry
 * leads: into our library when its bytes are still those decoded at install and our B is on its
 * svc (sbrk: on brk's).
 */
uint8_t *mh_patch_entry(int index, const uint8_t **jump, size_t *length)
{
    if (index < 0 || index >= TARGET_COUNT)
        return NULL;
    struct target *t = &targets[index];
    *jump = (const uint8_t *)&t->jump;
    *length = t->s.status == MEMHOOKS_PATCH_OK && t->site ? 4 : 0;
    return (uint8_t *)t->code;
}

/* Whether `t` is patched by us right now: its B on the svc (sbrk: brk's), its entry as decoded. */
static bool leads_to_us(const struct target *t)
{
    if (t == &targets[SBRK_INDEX]) {
        if (!t->code || t->call_count == 0 || memcmp(t->code, t->entry, sizeof t->entry) != 0)
            return false;
        for (int c = 0; c < t->call_count; c++)
            if (__atomic_load_n(t->calls[c], __ATOMIC_RELAXED) != t->call_jump[c])
                return false;
        return true;
    }
    if (!t->site || !t->code || memcmp(t->code, t->entry, sizeof t->entry) != 0)
        return false;
    return __atomic_load_n(t->site, __ATOMIC_RELAXED) == t->jump;
}

bool mh_patch_in_place(int index)
{
    return leads_to_us(&targets[index]);
}

/* Reads `n` bytes at `at` without faulting (a jump another library is writing leads anywhere). */
static bool read_code(const void *at, void *out, size_t n)
{
    struct iovec local = {.iov_base = out, .iov_len = n};
    struct iovec remote = {.iov_base = (void *)at, .iov_len = n};
    return raw_syscall6(SYS_process_vm_readv, raw_syscall(SYS_getpid, 0, 0, 0), (long)&local, 1,
                        (long)&remote, 1, 0) == (long)n;
}

const uint8_t *mh_patch_follow(const uint8_t *p)
{
    for (int hop = 0; hop < 8; hop++) {
        for (int i = 0; i < TARGET_COUNT; i++)
            if (p == (const uint8_t *)targets[i].code && leads_to_us(&targets[i]))
                return (const uint8_t *)targets[i].s.hook;
        uint32_t w[5];
        if (!read_code(p, w, sizeof w))
            return NULL;
        if (harmless_hint(w[0])) {
            p += 4;
        } else if ((w[0] & 0xfc000000u) == 0x14000000u) { /* b */
            p += branch26(w[0]);
        } else if ((w[0] & 0xff00001fu) == 0x58000010u && w[1] == 0xd61f0200u) {
            uint64_t abs; /* ldr x16, literal; br x16 */
            if (!read_code(p + (((int32_t)(w[0] << 8) >> 13) * 4), &abs, 8))
                return NULL;
            p = (const uint8_t *)(uintptr_t)abs;
        } else if ((w[0] & 0xff800000u) == 0xd2800000u && reg_d(w[0]) >= 15 && reg_d(w[0]) <= 17) {
            /* movz xN, #a, lsl s; movk xN, #b, lsl t; ...; br xN (UCX's form: lsl 48 first) */
            unsigned r = reg_d(w[0]);
            uint64_t abs = (uint64_t)((w[0] >> 5) & 0xffff) << (16 * ((w[0] >> 21) & 3));
            int k = 1;
            for (; k < 4 && (w[k] & 0xff80001fu) == (0xf2800000u | r); k++)
                abs |= (uint64_t)((w[k] >> 5) & 0xffff) << (16 * ((w[k] >> 21) & 3));
            if (w[k] != (0xd61f0000u | (r << 5)))
                return p;
            p = (const uint8_t *)(uintptr_t)abs;
        } else {
            return p;
        }
    }
    return p;
}

int mh_patch_install(void)
{
    if (!mh_patch_open_libc())
        return OPAL_ERR_NOT_SUPPORTED;
    long page = sysconf(_SC_PAGESIZE);
    if (!stubs) {
        sync_core = mh_patch_register_sync_core();
        for (int i = 0; i < TARGET_COUNT; i++)
            locate(&targets[i]);
        uint32_t *p = map_stub_page();
        if (!p) {
            for (int i = 0; i < TARGET_COUNT; i++)
                targets[i].s.status = MEMHOOKS_PATCH_NO_TRAMPOLINE;
            return OPAL_ERR_NOT_SUPPORTED;
        }
        stubs = p;
        write_stubs();
        raw_syscall(SYS_mprotect, stubs, page, PROT_READ | PROT_EXEC);
        sync_other_cores(); /* every core sees the stubs before any B can lead there */
    }
    int patched = 0;
    for (int i = 0; i < TARGET_COUNT; i++) {
        if (i == SBRK_INDEX || targets[i].s.status == MEMHOOKS_PATCH_OK)
            continue;
        patch_one(&targets[i], stubs + i * (STUB_SIZE / 4));
    }
    if (targets[SBRK_INDEX].s.status != MEMHOOKS_PATCH_OK)
        cover_sbrk(&targets[SBRK_INDEX], &targets[BRK_INDEX], stubs + SBRK_INDEX * (STUB_SIZE / 4));
    for (int i = 0; i < TARGET_COUNT; i++)
        patched += targets[i].s.status == MEMHOOKS_PATCH_OK;
    return patched > 0 ? OPAL_SUCCESS : OPAL_ERR_NOT_SUPPORTED;
}

void mh_patch_check_seen(int seen, int tested)
{
    for (int i = 0; i < TARGET_COUNT; i++) {
        struct target *t = &targets[i];
        int want = t->s.seen & tested;
        if (t->s.status != MEMHOOKS_PATCH_OK || (seen & want) == want)
            continue;
        /* Restored like finalize does: a hook that does not fire must not stay in the way. */
        bool restored = true;
        if (t->site)
            restored = write_code(t->site, t->jump, t->original);
        for (int c = 0; c < t->call_count; c++)
            restored &= write_code(t->calls[c], t->call_jump[c], t->call_original[c]);
        t->call_count = 0;
        mh_patch_unseen(&t->s, restored);
    }
}

void mh_patch_remove(void)
{
    /* B back to SVC: both in the architecture's list, one word. A thread that already took the B
     * runs the stub and the hook, which stay mapped. */
    for (int i = 0; i < TARGET_COUNT; i++) {
        struct target *t = &targets[i];
        if (t->s.status != MEMHOOKS_PATCH_OK)
            continue;
        if (!t->site) { /* sbrk: its calls of brk go back to brk */
            bool ok = true;
            for (int c = 0; c < t->call_count; c++)
                ok &= write_code(t->calls[c], t->call_jump[c], t->call_original[c]);
            t->call_count = 0;
            t->s.status = ok ? MEMHOOKS_PATCH_NOT_INSTALLED : MEMHOOKS_PATCH_WRITE_FAILED;
            continue;
        }
        t->s.status = write_code(t->site, t->jump, t->original) ? MEMHOOKS_PATCH_NOT_INSTALLED
                                                                : MEMHOOKS_PATCH_WRITE_FAILED;
    }
}

#endif /* __aarch64__ */
