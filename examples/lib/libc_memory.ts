/**
 * Native memory as an application's C code would get it: from glibc's malloc and free, or mapped
 * and unmapped directly with mmap and munmap. For examples that show what the registration cache
 * does when memory goes back to the system. Blocks at or above the mmap threshold are mapped on
 * their own and unmapped by free().
 *
 * @module
 */

import { libc } from "../../ffi/libc.ts";
import { addressOfPointer, bytesAt } from "../../ffi/pointers.ts";

const M_MMAP_THRESHOLD = -3;
const PROT_READ_WRITE = 0x3;
const MAP_PRIVATE_ANONYMOUS = 0x22;
const MAP_FAILED = 2n ** 64n - 1n;

/** A malloc'ed or mapped block: its address, length and bytes. Free it once with freeBlock. */
export interface NativeBlock {
  /** "malloc" (free() releases it) or "mmap" (munmap() does). */
  readonly source: "malloc" | "mmap";
  readonly pointer: Deno.PointerObject;
  readonly address: bigint;
  readonly length: number;
  readonly bytes: Uint8Array;
}

/**
 * Fixes glibc's mmap threshold at `bytes`: larger blocks get their own mapping, which free()
 * unmaps at once (a fixed threshold also stops glibc from raising it after such a free).
 */
export function setMmapThreshold(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > 32 * 1024 * 1024) {
    throw new RangeError(`mmap threshold must be 0..32 MiB, got ${bytes}`);
  }
  if (libc().mallopt(M_MMAP_THRESHOLD, bytes) !== 1) throw new Error("mallopt failed");
}

function checkLength(length: number): void {
  if (!Number.isSafeInteger(length) || length < 1) {
    throw new RangeError(`length must be a positive integer, got ${length}`);
  }
}

function nativeBlock(
  source: NativeBlock["source"],
  pointer: Deno.PointerObject,
  length: number,
): NativeBlock {
  return {
    source,
    pointer,
    address: addressOfPointer(pointer),
    length,
    bytes: bytesAt(pointer, length),
  };
}

/** malloc(length); Error when it returns NULL. */
export function allocate(length: number): NativeBlock {
  checkLength(length);
  const pointer = libc().malloc(BigInt(length));
  if (pointer === null) throw new Error(`malloc(${length}) failed`);
  return nativeBlock("malloc", pointer, length);
}

/** An anonymous private mapping of `length` bytes (rounded up to pages by the kernel). */
export function mapAnonymous(length: number): NativeBlock {
  checkLength(length);
  const pointer = libc().mmap(
    null,
    BigInt(length),
    PROT_READ_WRITE,
    MAP_PRIVATE_ANONYMOUS,
    -1,
    0n,
  );
  if (pointer === null || addressOfPointer(pointer) === MAP_FAILED) {
    throw new Error(`mmap of ${length} bytes failed`);
  }
  return nativeBlock("mmap", pointer, length);
}

/** free() or munmap(), as the block came; its bytes must not be used afterwards. */
export function freeBlock(block: NativeBlock): void {
  if (block.source === "malloc") {
    libc().free(block.pointer);
  } else if (libc().munmap(block.pointer, BigInt(block.length)) !== 0) {
    throw new Error(`munmap of ${block.length} bytes at 0x${block.address.toString(16)} failed`);
  }
}

/** VmPin from /proc/self/status, in KiB (pages pinned by RDMA registrations). */
export function vmPinKiB(): number {
  const m = /^VmPin:\s+(\d+) kB/m.exec(Deno.readTextFileSync("/proc/self/status"));
  if (!m) throw new Error("no VmPin line in /proc/self/status");
  return Number(m[1]);
}

/**
 * malloc_trim(0): glibc gives the free memory of its heaps back to the system (shrinking the heap
 * top and dropping the free pages inside with madvise). Blocks served from the heap rather than
 * mapped on their own are released to the system only by this, or by a later shrink.
 */
export function trimHeap(): void {
  libc().malloc_trim(0n);
}
