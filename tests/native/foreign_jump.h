/*
 * What another interceptor writes over a libc entry point, for the tests that play one: an
 * absolute jump to `target` (x86_64: `movabs r11, target; jmp r11`; aarch64: `ldr x16, #8;
 * br x16; .quad target`), written with the page made writable and the instruction cache flushed.
 */
#ifndef FOREIGN_JUMP_H
#define FOREIGN_JUMP_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes the jump over `code`; 0 on success, -1 when the page cannot be made writable. */
static inline int write_foreign_jump(unsigned char *code, const void *target)
{
    uint64_t to = (uint64_t)(uintptr_t)target;
#if defined(__aarch64__)
    unsigned char jump[16] = {0x50, 0x00, 0x00, 0x58, 0x00, 0x02, 0x1f, 0xd6};
    memcpy(jump + 8, &to, 8);
#else
    unsigned char jump[13] = {0x49, 0xbb, [10] = 0x41, [11] = 0xff, [12] = 0xe3};
    memcpy(jump + 2, &to, 8);
#endif
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)code & ~(uintptr_t)(page - 1);
    if (mprotect((void *)start, 2 * (size_t)page, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
        return -1;
    memcpy(code, jump, sizeof jump);
    __builtin___clear_cache((char *)code, (char *)code + sizeof jump);
    return mprotect((void *)start, 2 * (size_t)page, PROT_READ | PROT_EXEC);
}

#endif /* FOREIGN_JUMP_H */
