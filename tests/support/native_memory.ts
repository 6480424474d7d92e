/**
 * Test support: native memory the tests map, fill and release through libc (so the memory hooks
 * see every call), and the process's pinned-memory figure. Used by the cache's host and rxe tests;
 * not part of the library's API.
 *
 * @module
 */

import { libc } from "../../ffi/libc.ts";
import { addressOfPointer, bytesAt, pointerAt } from "../../ffi/pointers.ts";

const PROT_READ_WRITE = 0x3;
const MAP_PRIVATE_ANONYMOUS = 0x22;
const MAP_FIXED = 0x10;
const MAP_FIXED_NOREPLACE = 0x100000;
const MAP_FAILED = 0xffffffffffffffffn;
/** madvise advice values. */
export const MADV_DONTNEED = 4;
/** mremap flags. */
export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;

/** A mapping or allocation the test owns. */
export interface NativeBlock {
  pointer: Deno.PointerObject;
  address: bigint;
  length: number;
  /** Its bytes, for filling and checking (valid only while it is mapped). */
  bytes: Uint8Array;
}

function block(pointer: Deno.PointerValue, length: number, what: string): NativeBlock {
  const address = addressOfPointer(pointer);
  if (pointer === null || address === MAP_FAILED) throw new Error(`${what} failed`);
  return { pointer, address, length, bytes: bytesAt(pointer, length) };
}

/**
 * Anonymous private read/write mapping; at `at` exactly when given, which must be free
 * (MAP_FIXED_NOREPLACE: another thread's mapping that took the hole is never clobbered).
 */
export function mapAnonymous(length: number, at?: bigint): NativeBlock {
  const hint = at === undefined ? null : pointerAt(at);
  const flags = MAP_PRIVATE_ANONYMOUS | (at === undefined ? 0 : MAP_FIXED_NOREPLACE);
  const b = block(
    libc().mmap(hint, BigInt(length), PROT_READ_WRITE, flags, -1, 0n),
    length,
    "mmap",
  );
  if (at !== undefined && b.address !== at) throw new Error("mmap ignored MAP_FIXED_NOREPLACE");
  return b;
}

/** A new anonymous mapping replacing `b`'s memory in place (mmap MAP_FIXED over it). */
export function mapOver(b: NativeBlock): NativeBlock {
  const flags = MAP_PRIVATE_ANONYMOUS | MAP_FIXED;
  return block(
    libc().mmap(b.pointer, BigInt(b.length), PROT_READ_WRITE, flags, -1, 0n),
    b.length,
    "mmap MAP_FIXED",
  );
}

export function unmap(b: NativeBlock): void {
  if (libc().munmap(b.pointer, BigInt(b.length)) !== 0) throw new Error("munmap failed");
}

/** munmap of part of a block: `length` bytes from `offset`. */
export function unmapPart(b: NativeBlock, offset: number, length: number): void {
  const p = pointerAt(b.address + BigInt(offset));
  if (libc().munmap(p, BigInt(length)) !== 0) throw new Error("munmap failed");
}

export function madvise(b: NativeBlock, offset: number, length: number, advice: number): void {
  const p = pointerAt(b.address + BigInt(offset));
  if (libc().madvise(p, BigInt(length), advice) !== 0) throw new Error("madvise failed");
}

/** mremap to `newLength`, moved to `to` when given (MREMAP_FIXED). */
export function remap(b: NativeBlock, newLength: number, to?: bigint): NativeBlock {
  const target = to === undefined ? null : pointerAt(to);
  const flags = MREMAP_MAYMOVE | (to === undefined ? 0 : MREMAP_FIXED);
  return block(
    libc().mremap(b.pointer, BigInt(b.length), BigInt(newLength), flags, target),
    newLength,
    "mremap",
  );
}

export function malloc(length: number): NativeBlock {
  return block(libc().malloc(BigInt(length)), length, "malloc");
}

export function free(b: NativeBlock): void {
  libc().free(b.pointer);
}

export function mallocTrim(): void {
  libc().malloc_trim(0n);
}

const M_MMAP_THRESHOLD = -3;

/** Sets glibc's mmap threshold (and turns off its dynamic adjustment). */
export function setMmapThreshold(bytes: number): void {
  if (libc().mallopt(M_MMAP_THRESHOLD, bytes) !== 1) throw new Error("mallopt failed");
}

/** VmPin of this process in KiB (/proc/self/status), or NaN when the kernel does not report it. */
export function vmPinKiB(): number {
  const line = Deno.readTextFileSync("/proc/self/status").split("\n").find((l) =>
    l.startsWith("VmPin:")
  );
  return line ? Number(line.split(/\s+/)[1]) : NaN;
}
