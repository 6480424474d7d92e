/**
 * Child of hooks_patch.test.ts and hooks_patch_aarch64.test.ts: reads the bytes around each patched libc function's entry (128 in
 * front of it, 160 from it: every place a jmp rel8 from the entry can reach) before init, after
 * init and after finalize, in a process where the hooks were never installed, and prints them as
 * JSON.
 */
import { memHooks } from "../../hooks/mod.ts";
import { dl } from "../../ffi/libc.ts";
import { addressOfPointer, bytesAt, cString, pointerAt } from "../../ffi/pointers.ts";

const names = ["munmap", "mremap", "madvise", "mmap", "brk", "sbrk", "shmat", "shmdt"];
const RTLD_LAZY = 1, RTLD_NOLOAD = 4;
const handle = dl().dlopen(cString("libc.so.6"), RTLD_LAZY | RTLD_NOLOAD);

const BEFORE = 128, AFTER = 160;

/** BEFORE bytes in front of the entry, then AFTER from it. */
function around(name: string): number[] {
  const entry = dl().dlsym(handle, cString(name));
  if (entry === null) throw new Error(`libc has no ${name}`);
  const before = pointerAt(addressOfPointer(entry) - BigInt(BEFORE));
  if (before === null) throw new Error(`${name} is at address ${addressOfPointer(entry)}`);
  return Array.from(bytesAt(before, BEFORE + AFTER));
}

const snapshot = () => Object.fromEntries(names.map((n) => [n, around(n)]));
const before = snapshot();
const initCode = memHooks.init();
const status = Object.fromEntries(memHooks.patchStatus().map((p) => [p.name, p.status]));
const reason = Object.fromEntries(memHooks.patchStatus().map((p) => [p.name, p.reason]));
const installed = snapshot();
const finalizeCode = memHooks.finalize();
const removed = snapshot();
console.log(JSON.stringify({ initCode, finalizeCode, status, reason, before, installed, removed }));
