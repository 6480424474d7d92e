/**
 * Native memory from glibc's malloc and free, as an application's C allocator would hand it out,
 * for examples that show what the registration cache does when memory is freed. Blocks at or above
 * the mmap threshold are mapped on their own and unmapped by free().
 *
 * @module
 */

const libc = Deno.dlopen("libc.so.6", {
  malloc: { parameters: ["usize"], result: "pointer" },
  free: { parameters: ["pointer"], result: "void" },
  mallopt: { parameters: ["i32", "i32"], result: "i32" },
});

const M_MMAP_THRESHOLD = -3;

/** A malloc'ed block: its address, length and bytes. Free it once with freeBlock. */
export interface NativeBlock {
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
  if (libc.symbols.mallopt(M_MMAP_THRESHOLD, bytes) !== 1) throw new Error("mallopt failed");
}

/** malloc(length); Error when it returns NULL. */
export function allocate(length: number): NativeBlock {
  if (!Number.isSafeInteger(length) || length < 1) {
    throw new RangeError(`length must be a positive integer, got ${length}`);
  }
  const pointer = libc.symbols.malloc(BigInt(length));
  if (pointer === null) throw new Error(`malloc(${length}) failed`);
  return {
    pointer,
    address: BigInt(Deno.UnsafePointer.value(pointer)),
    length,
    bytes: new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(pointer, length)),
  };
}

/** free(); the block's bytes must not be used afterwards. */
export function freeBlock(block: NativeBlock): void {
  libc.symbols.free(block.pointer);
}

/** VmPin from /proc/self/status, in KiB (pages pinned by RDMA registrations). */
export function vmPinKiB(): number {
  const m = /^VmPin:\s+(\d+) kB/m.exec(Deno.readTextFileSync("/proc/self/status"));
  if (!m) throw new Error("no VmPin line in /proc/self/status");
  return Number(m[1]);
}
