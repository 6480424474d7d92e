// rxe suite: the registration cache on a real device. Same-address reuse after every kind of
// release must miss, proven by an RDMA WRITE through the new rkey landing in the new memory byte
// for byte; VmPin drops inside munmap; held regions stay valid until released; eviction; access.
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import {
  free,
  MADV_DONTNEED,
  madvise,
  malloc,
  mallocTrim,
  mapAnonymous,
  type NativeBlock,
  remap,
  setMmapThreshold,
  unmap,
  unmapPart,
  vmPinKiB,
} from "../support/native_memory.ts";
import { Access } from "../../verbs/mod.ts";
import { addressOf } from "../../ffi/pointers.ts";
import {
  firstDifference,
  type Loopback,
  openLoopback,
  pattern,
  writeAndWait,
} from "./verbs_loopback.ts";

const MiB = 1 << 20;
const REMOTE = Access.LOCAL_WRITE | Access.REMOTE_WRITE;

function region(b: NativeBlock, offset = 0, length = b.length - offset) {
  return { address: b.address + BigInt(offset), length };
}

/**
 * RDMA WRITEs `length` pattern bytes from queue pair a into `[address, +length)` through a cache
 * registration with remote write (as queue pair b's peer would), and checks they landed in
 * `bytes`. Returns whether the get hit.
 */
async function writeThroughCache(
  lo: Loopback,
  cache: RegistrationCache,
  target: { address: bigint; length: number },
  bytes: Uint8Array,
  seed: number,
): Promise<boolean> {
  const source = pattern(target.length, seed);
  using src = cache.get(source);
  using dst = cache.get(target, REMOTE);
  await writeAndWait(lo, src, dst, seed);
  assert.equal(firstDifference(bytes.subarray(0, target.length), source), -1, "bytes landed");
  return dst.hit;
}

Deno.test("same address reuse misses and RDMA lands in the new memory", async (t) => {
  using lo = openLoopback();
  using cache = new RegistrationCache(lo.pd);

  await t.step("munmap, then mmap at the same address", async () => {
    const first = mapAnonymous(MiB);
    first.bytes.fill(1);
    await writeThroughCache(lo, cache, region(first), first.bytes, 11);
    unmap(first);
    const second = mapAnonymous(MiB, first.address);
    second.bytes.fill(2);
    assert.equal(await writeThroughCache(lo, cache, region(second), second.bytes, 12), false);
    assert.equal(await writeThroughCache(lo, cache, region(second), second.bytes, 13), true);
    unmap(second);
  });

  await t.step("free and malloc of a large block", async () => {
    const size = 64 * MiB; // glibc maps it on its own and unmaps it at free
    const first = malloc(size);
    await writeThroughCache(lo, cache, region(first, 0, MiB), first.bytes, 21);
    free(first);
    const second = malloc(size);
    second.bytes.fill(3, 0, MiB);
    assert.equal(
      await writeThroughCache(lo, cache, region(second, 0, MiB), second.bytes, 22),
      false,
    );
    free(second);
  });

  await t.step("madvise DONTNEED on part of the range", async () => {
    const block = mapAnonymous(MiB);
    await writeThroughCache(lo, cache, region(block), block.bytes, 31);
    madvise(block, 256 * 1024, 64 * 1024, MADV_DONTNEED); // those pages are new zero pages now
    block.bytes.fill(4);
    assert.equal(await writeThroughCache(lo, cache, region(block), block.bytes, 32), false);
    unmap(block);
  });

  await t.step("mremap moving the memory away", async () => {
    const block = mapAnonymous(MiB);
    await writeThroughCache(lo, cache, region(block), block.bytes, 41);
    const moved = remap(block, 2 * MiB); // grows, and usually moves
    const fresh = moved.address === block.address ? moved : mapAnonymous(MiB, block.address);
    assert.equal(await writeThroughCache(lo, cache, region(fresh, 0, MiB), fresh.bytes, 42), false);
    if (fresh !== moved) unmap(fresh);
    unmap(moved);
  });

  await t.step("heap trim", async () => {
    setMmapThreshold(256 * MiB); // a 1 MiB malloc now comes from the brk heap
    try {
      const first = malloc(MiB);
      await writeThroughCache(lo, cache, region(first), first.bytes, 51);
      free(first);
      mallocTrim(); // shrinks the heap (brk) or drops its free pages (madvise)
      const second = malloc(MiB);
      second.bytes.fill(5);
      assert.equal(await writeThroughCache(lo, cache, region(second), second.bytes, 52), false);
      free(second);
    } finally {
      setMmapThreshold(128 * 1024);
    }
    assert.ok(cache.stats().invalidations >= 5);
  });

  await t.step("a Uint8Array collected by GC", async () => {
    const gc = collectGarbage;
    let buffer: Uint8Array | null = new Uint8Array(8 * MiB);
    const address = addressOf(buffer);
    await writeThroughCache(
      lo,
      cache,
      { address, length: MiB },
      buffer,
      61,
    );
    const before = cache.stats().invalidations;
    buffer = null;
    for (let i = 0; i < 200 && cache.stats().invalidations === before; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(cache.stats().invalidations > before, "the backing store's release was seen");
    const next = new Uint8Array(8 * MiB);
    next.fill(6);
    const nextAddress = addressOf(next);
    assert.equal(
      await writeThroughCache(lo, cache, { address: nextAddress, length: MiB }, next, 62),
      false,
    );
  });
});

Deno.test("VmPin is back to its old value when munmap of a cached 64 MiB region returns", () => {
  using lo = openLoopback();
  using cache = new RegistrationCache(lo.pd, { maxBytes: Infinity });
  const base = vmPinKiB();
  const block = mapAnonymous(64 * MiB);
  cache.get(region(block)).release();
  assert.equal(vmPinKiB() - base, 64 * 1024, "pinned while cached");
  unmap(block);
  assert.equal(vmPinKiB(), base, "unpinned before munmap returned (no cache call since)");
  const s = cache.stats();
  assert.equal(s.deregistrationsInRelease, 1);
  assert.equal(s.regions, 0);
});

Deno.test("a held region unmapped stays valid until released, is not handed out, then is deregistered", async () => {
  using lo = openLoopback();
  using cache = new RegistrationCache(lo.pd);
  const base = vmPinKiB();
  const block = mapAnonymous(MiB);
  const held = cache.get(region(block), REMOTE);
  unmap(block);
  assert.equal(vmPinKiB() - base, 1024, "still pinned: held");
  const again = mapAnonymous(MiB, block.address);
  again.bytes.fill(9);
  const fresh = cache.get(region(again), REMOTE);
  assert.equal(fresh.hit, false);
  assert.notEqual(fresh.rkey, held.rkey);
  // The held registration still works: a write through it completes (into the old pages).
  const source = pattern(4096, 71);
  using src = cache.get(source);
  await writeAndWait(lo, src, held, 71);
  assert.equal(again.bytes[0], 9, "the write went to the old pages, not the new mapping");
  fresh.release();
  const pinnedBoth = vmPinKiB();
  held.release();
  assert.equal(pinnedBoth - vmPinKiB(), 1024, "deregistered at release");
  unmap(again);
});

Deno.test("eviction by count and by bytes in LRU order; held regions are never evicted", () => {
  using lo = openLoopback();
  const blocks = [0, 1, 2, 3].map(() => mapAnonymous(MiB));
  try {
    using byCount = new RegistrationCache(lo.pd, { maxRegions: 2, merge: false });
    const base = vmPinKiB();
    byCount.get(region(blocks[0])).release();
    byCount.get(region(blocks[1])).release();
    byCount.get(region(blocks[0])).release(); // 0 is now the most recent
    byCount.get(region(blocks[2])).release(); // evicts 1
    assert.equal(vmPinKiB() - base, 2048);
    assert.equal(byCount.get(region(blocks[0])).hit, true);
    const held = [0, 2, 3].map((i) => byCount.get(region(blocks[i])));
    assert.equal(byCount.stats().regions, 3, "held regions stay over the bound");
    for (const r of held) r.release();
    assert.equal(byCount.stats().regions, 2);
    byCount.close();
    assert.equal(vmPinKiB(), base);

    using byBytes = new RegistrationCache(lo.pd, { maxBytes: 2 * MiB, merge: false });
    byBytes.get(region(blocks[0])).release();
    byBytes.get(region(blocks[1])).release();
    byBytes.get(region(blocks[2], 0, MiB / 2)).release(); // evicts 0
    const s = byBytes.stats();
    assert.equal(s.evictions, 1);
    assert.equal(s.bytes, MiB + MiB / 2);
    assert.equal(byBytes.get(region(blocks[1])).hit, true);
  } finally {
    for (const b of blocks) unmap(b);
  }
});

Deno.test("a remote-write get on bytes cached local-only gets a new registration that works remotely", async () => {
  using lo = openLoopback();
  using cache = new RegistrationCache(lo.pd);
  const block = mapAnonymous(MiB);
  const local = cache.get(region(block));
  assert.equal(local.access & Access.REMOTE_WRITE, 0);
  local.release();
  block.bytes.fill(0);
  assert.equal(await writeThroughCache(lo, cache, region(block), block.bytes, 81), false);
  unmap(block);
});

Deno.test("partial unmap of a region invalidates it; the rest re-registers and works", async () => {
  using lo = openLoopback();
  using cache = new RegistrationCache(lo.pd);
  const block = mapAnonymous(2 * MiB);
  await writeThroughCache(lo, cache, region(block), block.bytes, 91);
  unmapPart(block, MiB, MiB);
  const rest = cache.get(region(block, 0, MiB), REMOTE);
  assert.equal(rest.hit, false);
  rest.release();
  assert.equal(await writeThroughCache(lo, cache, region(block, 0, MiB), block.bytes, 92), true);
  unmapPart(block, 0, MiB);
});

/**
 * A full garbage collection: `gc()` when run with --v8-flags=--expose-gc, else allocation pressure
 * (ArrayBuffer memory counts towards V8's external memory, which starts a full collection).
 */
function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) return gc();
  for (let i = 0; i < 32; i++) new Uint8Array(16 * 1024 * 1024).fill(1, 0, 1);
}
