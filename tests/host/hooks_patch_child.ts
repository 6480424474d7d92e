/**
 * Child of hooks_patch.test.ts: reads the first bytes of each patched libc function (and the 8
 * bytes in front of it) before init, after init and after finalize, in a process where the hooks
 * were never installed, and prints them as JSON.
 */
import { memHooks } from "../../hooks/mod.ts";
import { dl } from "../../ffi/libc.ts";
import { addressOfPointer, bytesAt, cString, pointerAt } from "../../ffi/pointers.ts";

const names = ["munmap", "mremap", "madvise", "mmap", "brk", "sbrk", "shmat", "shmdt"];
const RTLD_LAZY = 1, RTLD_NOLOAD = 4;
const handle = dl().dlopen(cString("libc.so.6"), RTLD_LAZY | RTLD_NOLOAD);

/** 8 bytes before the entry, then 16 from it. */
function around(name: string): number[] {
  const entry = dl().dlsym(handle, cString(name));
  if (entry === null) throw new Error(`libc has no ${name}`);
  const before = pointerAt(addressOfPointer(entry) - 8n);
  if (before === null) throw new Error(`${name} is at address ${addressOfPointer(entry)}`);
  return Array.from(bytesAt(before, 24));
}

const snapshot = () => Object.fromEntries(names.map((n) => [n, around(n)]));
const before = snapshot();
const initCode = memHooks.init();
const status = Object.fromEntries(memHooks.patchStatus().map((p) => [p.name, p.status]));
const installed = snapshot();
const finalizeCode = memHooks.finalize();
const removed = snapshot();
console.log(JSON.stringify({ initCode, finalizeCode, status, before, installed, removed }));
