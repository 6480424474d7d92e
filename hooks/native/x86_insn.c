/*
 * An x86-64 instruction-length decoder for the code patch.c rewrites: what the compiler emits for
 * glibc's memory functions (integer instructions, SSE/x87 forms with a ModRM byte, hint NOPs).
 * Anything else (VEX, EVEX, 3DNow!, 16-bit branches, opcodes invalid in 64-bit mode) is unknown
 * and makes the caller refuse the function, so an unknown form is never guessed at.
 */
#include <string.h>

#include "memhooks_internal.h"

enum { IMM_NONE, IMM8, IMM16, IMM32, IMM_Z, IMM_V, IMM_16_8 };

/* Immediate of a one-byte opcode that takes a ModRM byte (F6/F7 are special-cased). */
static int modrm_imm(uint8_t op)
{
    switch (op) {
    case 0x69:
    case 0x81:
    case 0xc7:
        return IMM_Z;
    case 0x6b:
    case 0x80:
    case 0x83:
    case 0xc0:
    case 0xc1:
    case 0xc6:
        return IMM8;
    default:
        return IMM_NONE;
    }
}

/* Whether a one-byte opcode takes a ModRM byte; -1 when it is invalid or not handled here. */
static int one_byte_modrm(uint8_t op)
{
    if (op < 0x40) {
        if ((op & 7) <= 3)
            return 1; /* ALU r/m forms */
        if ((op & 7) <= 5)
            return 0; /* ALU with AL/eAX and an immediate */
        return -1;    /* segment pushes, BCD, prefixes: not here */
    }
    if (op >= 0x50 && op <= 0x5f)
        return 0;
    if (op == 0x63 || op == 0x69 || op == 0x6b || (op >= 0x80 && op <= 0x8f && op != 0x82))
        return 1;
    if (op == 0x68 || op == 0x6a || (op >= 0x6c && op <= 0x7f))
        return 0;
    if ((op >= 0x90 && op <= 0x99) || (op >= 0x9b && op <= 0x9f) || (op >= 0xa4 && op <= 0xbf))
        return 0;
    if (op == 0xc0 || op == 0xc1 || op == 0xc6 || op == 0xc7 || (op >= 0xd0 && op <= 0xd3) ||
        (op >= 0xd8 && op <= 0xdf) || op == 0xf6 || op == 0xf7 || op == 0xfe || op == 0xff)
        return 1;
    if (op == 0xc2 || op == 0xc3 || op == 0xc8 || op == 0xc9 || op == 0xcc || op == 0xcd ||
        (op >= 0xe0 && op <= 0xe9) || op == 0xeb || op == 0xf1 || op == 0xf4 || op == 0xf5 ||
        (op >= 0xf8 && op <= 0xfd))
        return 0;
    return -1;
}

/* Immediate of a one-byte opcode without ModRM. */
static int plain_imm(uint8_t op, bool rex_w)
{
    if (op < 0x40)
        return (op & 7) == 4 ? IMM8 : IMM_Z;
    if (op == 0x68 || op == 0xa9 || op == 0xe8 || op == 0xe9)
        return IMM_Z;
    if (op == 0x6a || (op >= 0x70 && op <= 0x7f) || op == 0xa8 || (op >= 0xb0 && op <= 0xb7) ||
        op == 0xcd || (op >= 0xe0 && op <= 0xe7) || op == 0xeb)
        return IMM8;
    if (op >= 0xb8 && op <= 0xbf)
        return rex_w ? IMM_V : IMM_Z;
    if (op == 0xc2)
        return IMM16;
    if (op == 0xc8)
        return IMM_16_8;
    return IMM_NONE;
}

/* Two-byte (0F xx) opcodes: 1 ModRM, 2 ModRM + imm8, 0 none, -1 unknown. */
static int two_byte_form(uint8_t op)
{
    if (op == 0x05 || op == 0x0b || op == 0x31 || op == 0x34 || op == 0x35 || op == 0x77 ||
        op == 0xa2 || (op >= 0xc8 && op <= 0xcf))
        return 0; /* syscall, ud2, rdtsc, sysenter/exit, emms, cpuid, bswap */
    if (op == 0x70 || op == 0x71 || op == 0x72 || op == 0x73 || op == 0xa4 || op == 0xac ||
        op == 0xba || op == 0xc2 || (op >= 0xc4 && op <= 0xc6))
        return 2;
    if (op <= 0x01 || op == 0x0d || (op >= 0x10 && op <= 0x1f) || (op >= 0x28 && op <= 0x2f) ||
        (op >= 0x40 && op <= 0x7f) || (op >= 0x90 && op <= 0x9f) || op == 0xa3 || op == 0xa5 ||
        (op >= 0xab && op <= 0xaf && op != 0xac) || (op >= 0xb0 && op <= 0xb1) || op == 0xb3 ||
        (op >= 0xb6 && op <= 0xbf && op != 0xba && op != 0xb9) || op == 0xc0 || op == 0xc1 ||
        op == 0xc3 || op == 0xc7 || (op >= 0xd0 && op <= 0xfe))
        return 1;
    return -1;
}

size_t mh_x86_decode(const uint8_t *p, size_t avail, struct mh_x86_insn *insn)
{
    memset(insn, 0, sizeof *insn);
    size_t at = 0;
    bool opsize = false, rex_w = false, rep = false;
    /* Legacy prefixes, then at most one REX right before the opcode. */
    for (;; at++) {
        if (at >= avail || at >= 14)
            return 0;
        uint8_t b = p[at];
        if (b == 0x66)
            opsize = true;
        else if (b == 0xf2 || b == 0xf3)
            rep = true;
        else if (!(b == 0x67 || b == 0xf0 || b == 0x2e || b == 0x3e || b == 0x26 || b == 0x36 ||
                   b == 0x64 || b == 0x65))
            break;
    }
    if (p[at] >= 0x40 && p[at] <= 0x4f) {
        rex_w = (p[at] & 8) != 0;
        if (++at >= avail)
            return 0;
    }
    uint8_t op = p[at++];
    int has_modrm, imm;
    insn->kind = MH_X86_OTHER;
    if (op == 0x0f) {
        if (at >= avail)
            return 0;
        uint8_t op2 = p[at++];
        if (op2 == 0x38 || op2 == 0x3a) { /* three-byte maps: ModRM, 0F 3A also imm8 */
            if (at >= avail)
                return 0;
            at++;
            has_modrm = 1;
            imm = op2 == 0x3a ? IMM8 : IMM_NONE;
        } else if (op2 >= 0x80 && op2 <= 0x8f) {
            if (opsize)
                return 0; /* rel16 branches: never emitted for 64-bit code */
            has_modrm = 0;
            imm = IMM32;
            insn->kind = MH_X86_JCC;
        } else {
            int form = two_byte_form(op2);
            if (form < 0)
                return 0;
            has_modrm = form >= 1;
            imm = form == 2 ? IMM8 : IMM_NONE;
            if (op2 == 0x05)
                insn->kind = MH_X86_SYSCALL;
            else if (op2 == 0x0b)
                insn->kind = MH_X86_STOP; /* ud2 */
            else if (op2 == 0x1f && !rep)
                insn->kind = MH_X86_NOP;
        }
    } else {
        has_modrm = one_byte_modrm(op);
        if (has_modrm < 0)
            return 0;
        imm = has_modrm ? modrm_imm(op) : plain_imm(op, rex_w);
        if ((opsize && (op == 0xe8 || op == 0xe9 || op == 0xeb || (op >= 0x70 && op <= 0x7f))))
            return 0;
        if (op == 0xc3 || op == 0xc2 || op == 0xf4)
            insn->kind = MH_X86_STOP; /* ret, hlt */
        else if (op == 0xe9 || op == 0xeb)
            insn->kind = MH_X86_JMP;
        else if ((op >= 0x70 && op <= 0x7f) || (op >= 0xe0 && op <= 0xe3))
            insn->kind = MH_X86_JCC;
        else if (op == 0xe8)
            insn->kind = MH_X86_CALL;
        else if (op == 0x90 && !rep)
            insn->kind = MH_X86_NOP;
        else if (op == 0xcc)
            insn->kind = MH_X86_STOP; /* int3: alignment fill, never falls through */
    }
    if (has_modrm) {
        if (at >= avail)
            return 0;
        uint8_t modrm = p[at++];
        unsigned mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
        if (op == 0xf6 && reg <= 1)
            imm = IMM8; /* test r/m8, imm8 */
        if (op == 0xf7 && reg <= 1)
            imm = IMM_Z;
        if (op == 0xff && (reg == 2 || reg == 3))
            insn->kind = MH_X86_CALL;
        if (op == 0xff && (reg == 4 || reg == 5))
            insn->kind = MH_X86_JMP_INDIRECT;
        if (mod != 3) {
            unsigned base = rm;
            if (rm == 4) {
                if (at >= avail)
                    return 0;
                base = p[at++] & 7;
            }
            if (mod == 1)
                at += 1;
            else if (mod == 2 || (mod == 0 && base == 5)) {
                if (mod == 0 && rm == 5) {
                    insn->rip_relative = true; /* disp32 from the next instruction's address */
                    insn->disp_at = (uint8_t)at;
                }
                at += 4;
            }
        }
    }
    switch (imm) {
    case IMM8:
        at += 1;
        break;
    case IMM16:
        at += 2;
        break;
    case IMM32:
        at += 4;
        break;
    case IMM_Z:
        at += opsize && !rex_w ? 2 : 4;
        break;
    case IMM_V:
        at += 8;
        break;
    case IMM_16_8:
        at += 3;
        break;
    default:
        break;
    }
    if (at > avail || at > 15)
        return 0;
    insn->len = (uint8_t)at;
    if (insn->kind == MH_X86_JMP || insn->kind == MH_X86_JCC || insn->kind == MH_X86_CALL) {
        if (imm == IMM8)
            insn->rel = (int8_t)p[at - 1];
        else {
            int32_t rel32;
            memcpy(&rel32, p + at - 4, 4);
            insn->rel = rel32;
        }
        insn->has_target = true;
    }
    return at;
}
