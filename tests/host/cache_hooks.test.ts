/**
 * The cache kept correct by the real memory hooks, with the registrar double standing in for the
 * device: every way of releasing memory makes the next get over it miss, idle regions are
 * deregistered inside the release (or, from the allocator, at the next cache call), held regions
 * stay registered until released, and releases from another thread are seen.
 */
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { addressOf } from "../../ffi/pointers.ts";
import { rcacheTesting } from "../support/rcache_testing.ts";
import {
  free,
  MADV_DONTNEED,
  madvise,
  malloc,
  mapAnonymous,
  mapOver,
  type NativeBlock,
  remap,
  unmap,
  unmapPart,
} from "../support/native_memory.ts";

const MiB = 1024 * 1024;
const double = createRegistrarDouble();

function pinned(): number {
  return double.counters().pinnedBytes;
}

function target(b: NativeBlock, offset = 0, length = b.length - offset) {
  return { address: b.address + BigInt(offset), length };
}

/** A fresh cache and a 1 MiB mapping with one idle cached region over it. */
function cachedMapping(options = {}) {
  const cache = new RegistrationCache(double, options);
  const block = mapAnonymous(MiB);
  const r = cache.get(target(block));
  assert.equal(r.hit, false);
  r.release();
  const hit = cache.get(target(block));
  assert.equal(hit.hit, true, "precondition: cached");
  hit.release();
  return { cache, block };
}

Deno.test("munmap deregisters the idle region before it returns, and the next get misses", () => {
  const cache = new RegistrationCache(double);
  const block = mapAnonymous(MiB);
  cache.get(target(block)).release();
  const before = pinned();
  unmap(block);
  // No cache call in between: the deregistration happened inside munmap.
  assert.equal(before - pinned(), MiB);
  const again = mapAnonymous(MiB, block.address); // same address, new memory
  const r = cache.get(target(again));
  assert.equal(r.hit, false);
  r.release();
  const s = cache.stats();
  assert.equal(s.invalidations, 1);
  assert.equal(s.deregistrationsInRelease, 1);
  assert.equal(s.deregistrationsDeferred, 0);
  unmap(again);
  cache.close();
});

Deno.test("madvise DONTNEED on part of a region invalidates all of it", () => {
  const { cache, block } = cachedMapping();
  madvise(block, 64 * 1024, 4096, MADV_DONTNEED);
  const rest = cache.get(target(block, 512 * 1024, 4096)); // untouched bytes of the old region
  assert.equal(rest.hit, false);
  rest.release();
  assert.equal(cache.stats().invalidations, 1);
  unmap(block);
  cache.close();
});

Deno.test("partial munmap invalidates the whole region; the rest re-registers", () => {
  const { cache, block } = cachedMapping();
  unmapPart(block, MiB - 4096, 4096);
  const rest = cache.get(target(block, 0, MiB - 4096));
  assert.equal(rest.hit, false);
  assert.equal(rest.regionLength, MiB - 4096); // never spans the unmapped page
  rest.release();
  unmapPart(block, 0, MiB - 4096);
  cache.close();
});

Deno.test("mremap moving the memory and MAP_FIXED over it both invalidate", async (t) => {
  await t.step("mremap", () => {
    const { cache, block } = cachedMapping();
    const spare = mapAnonymous(2 * MiB);
    const moved = remap(block, MiB, spare.address); // moves away and replaces spare's first MiB
    const back = mapAnonymous(MiB, block.address);
    assert.equal(cache.get(target(back)).hit, false);
    assert.ok(cache.stats().invalidations >= 1);
    unmap(back);
    unmap(moved);
    unmapPart(spare, MiB, MiB);
    cache.close();
  });
  await t.step("mmap MAP_FIXED", () => {
    const { cache, block } = cachedMapping();
    const over = mapOver(block);
    assert.equal(cache.get(target(over)).hit, false);
    assert.equal(cache.stats().invalidations, 1);
    unmap(over);
    cache.close();
  });
});

Deno.test("a held region whose memory is unmapped is never returned again, and is deregistered on release", () => {
  const cache = new RegistrationCache(double);
  const block = mapAnonymous(MiB);
  const held = cache.get(target(block));
  const before = pinned();
  unmap(block);
  assert.equal(pinned(), before, "held: still registered");
  const again = mapAnonymous(MiB, block.address);
  const fresh = cache.get(target(again));
  assert.equal(fresh.hit, false);
  assert.notEqual(fresh.lkey, held.lkey);
  fresh.release();
  assert.equal(cache.stats().regions, 2);
  const beforeRelease = pinned();
  held.release();
  assert.equal(beforeRelease - pinned(), MiB);
  assert.equal(cache.stats().regions, 1);
  assert.equal(cache.get(target(again)).lkey, fresh.lkey);
  unmap(again);
  cache.close();
});

Deno.test("free of a large malloc block invalidates; malloc at the same address misses", () => {
  const cache = new RegistrationCache(double);
  const size = 64 * MiB; // above glibc's largest mmap threshold: its own mapping
  const first = malloc(size);
  cache.get(target(first, 0, MiB)).release();
  const before = pinned();
  free(first);
  const second = malloc(size);
  const r = cache.get(target(second, 0, MiB));
  if (second.address === first.address) assert.equal(r.hit, false);
  r.release();
  const s = cache.stats();
  assert.equal(s.invalidations, 1);
  // The allocator released it (glibc may hold an arena lock, and deregistering calls free), so
  // the deregistration was deferred to the next cache call.
  assert.equal(s.deregistrationsDeferred, 1);
  assert.equal(s.deregistrationsInRelease, 0);
  assert.ok(before >= MiB);
  free(second);
  cache.close();
});

Deno.test("a Uint8Array collected by GC is invalidated", async () => {
  const gc = collectGarbage;
  using cache = new RegistrationCache(double);
  let buffer: Uint8Array | null = new Uint8Array(64 * MiB);
  const address = addressOf(buffer);
  cache.get(buffer).release();
  buffer = null;
  let invalidated = false;
  for (let i = 0; i < 100 && !invalidated; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
    invalidated = cache.stats().invalidations >= 1;
  }
  assert.ok(invalidated, "the backing store's release reached the cache");
  assert.equal(cache.stats().indexedRegions, 0);
  const next = new Uint8Array(64 * MiB);
  const r = cache.get(next);
  // Whether or not V8 put it at the same address, nothing cached may cover it.
  assert.equal(
    r.hit,
    false,
    `stale hit at ${address === addressOf(next) ? "the same" : "a new"} address`,
  );
  r.release();
});

Deno.test("a release on another thread is seen before the next get", async () => {
  using cache = new RegistrationCache(double);
  const block = mapAnonymous(MiB);
  cache.get(target(block)).release();
  const worker = new Worker(new URL("../support/munmap_worker.ts", import.meta.url), {
    type: "module",
  });
  const before = pinned();
  const rc = await new Promise((resolve) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.postMessage({ addresses: [block.address], length: MiB });
  });
  worker.terminate();
  assert.equal(rc, 0);
  assert.equal(before - pinned(), MiB, "deregistered inside the other thread's munmap");
  const again = mapAnonymous(MiB, block.address);
  assert.equal(cache.get(target(again)).hit, false);
  assert.equal(cache.stats().deregistrationsInRelease, 1);
  unmap(again);
});

Deno.test("a release is not lost among more allocator releases than the pending ring holds", () => {
  using cache = new RegistrationCache(double);
  const first = malloc(64 * MiB);
  cache.get(target(first, 0, MiB)).release();
  free(first); // deferred: glibc's free unmaps it
  // Each 64 MiB block is mmap'd and unmapped by glibc itself, and usually lands where `first` was:
  // hundreds of deferred releases with no cache call in between overflow the ring (unless a
  // background thread's direct release drains it meanwhile). Either way the first one counts.
  for (let i = 0; i < 400; i++) free(malloc(64 * MiB));
  const again = malloc(64 * MiB);
  const r = cache.get(target(again, 0, MiB));
  const s = cache.stats();
  assert.equal(r.hit, false, `stale hit (pending overflows: ${s.pendingOverflows})`);
  assert.ok(s.invalidations >= 1);
  assert.equal(s.deregistrationsInRelease + s.deregistrationsDeferred, 1);
  r.release();
  free(again);
});

Deno.test("releases outside every cached region leave the pending ring alone", () => {
  using cache = new RegistrationCache(double);
  const block = mapAnonymous(4096);
  cache.get(target(block)).release();
  // glibc maps and unmaps each 64 MiB block itself (deferred releases), never over `block`.
  assertStillHitsAfterReleasesElsewhere(cache, block);
});

/** 400 allocator releases away from `block`'s cached region: it still hits, nothing overflowed. */
function assertStillHitsAfterReleasesElsewhere(cache: RegistrationCache, block: NativeBlock) {
  for (let i = 0; i < 400; i++) free(malloc(64 * MiB));
  const r = cache.get(target(block));
  const s = cache.stats();
  assert.equal(r.hit, true, JSON.stringify(s));
  assert.equal(s.pendingOverflows, 0);
  r.release();
  unmap(block);
}

Deno.test("the span shrinks when a region goes: releases where it was are passed over", () => {
  using cache = new RegistrationCache(double);
  const block = mapAnonymous(4096);
  cache.get(target(block)).release();
  const first = malloc(64 * MiB);
  cache.get(target(first, 0, MiB)).release();
  free(first);
  assert.equal(cache.stats().invalidations, 1, "precondition: the free was applied");
  // glibc maps and unmaps these where `first` was, outside what is cached now.
  assertStillHitsAfterReleasesElsewhere(cache, block);
});

Deno.test("a region low (where the heap is) and one in the mmap area: releases between pass over", () => {
  using cache = new RegistrationCache(double);
  // Mapped where executables and their brk heap live (a test thread's malloc comes from an mmap'd
  // arena, so the heap itself is out of reach here).
  const low = mapAnonymous(4096, 0x500000000000n);
  // Above the mmap area's allocations (they grow down from below the stack), so that glibc's
  // blocks land between the two regions.
  const block = mapAnonymous(4096, 0x7ff000000000n);
  cache.get(target(low)).release();
  cache.get(target(block)).release();
  // The 64 MiB blocks land in the mmap area, between the two regions but in neither span: the
  // hook passes over them (one span from `low` to `block` would take in every one).
  const examined = cache.stats().releasesExamined;
  assertStillHitsAfterReleasesElsewhere(cache, block);
  assert.ok(cache.stats().releasesExamined - examined < 40, JSON.stringify(cache.stats()));
  const r = cache.get(target(low));
  assert.equal(r.hit, true);
  r.release();
  unmap(low);
});

Deno.test("a ring cell stuck before a deferred release: no stale hit, no hang, hits go native", () => {
  using cache = new RegistrationCache(double);
  const native = rcacheTesting;
  const elsewhere = mapAnonymous(4096);
  const hitElsewhere = () => {
    const r = cache.get(target(elsewhere));
    r.release();
    return r.hit;
  };
  for (let i = 0; i < 3; i++) cache.get(target(elsewhere)).release(); // the third needs no call
  const first = malloc(64 * MiB);
  cache.get(target(first, 0, MiB)).release();
  Deno.env.set("DENO_RDMA_TESTING", "1"); // the test-only entry points work only then
  assert.equal(native.rcache_testing_jam_rings(1), 1);
  try {
    free(first); // deferred (glibc unmaps it), and hidden behind the jammed cell
    const again = malloc(64 * MiB);
    const r = cache.get(target(again, 0, MiB));
    assert.equal(r.hit, false, "a stale hit on memory free() released");
    r.release();
    free(again);
    // Everything was let go, once: the region elsewhere registers again, then hits natively
    // (the deferred bit stays set while the cell is stuck, so no hit skips the native check).
    const fastHits = cache.stats().fastHits;
    assert.equal(hitElsewhere(), false);
    for (let i = 0; i < 3; i++) assert.equal(hitElsewhere(), true);
    assert.equal(cache.stats().fastHits, fastHits);
    assert.ok(cache.stats().pendingOverflows >= 1);
  } finally {
    native.rcache_testing_jam_rings(0);
  }
  // Filled: the ring drains again and hits skip the native call once more.
  const fastHits = cache.stats().fastHits;
  for (let i = 0; i < 3; i++) cache.get(target(elsewhere)).release();
  assert.ok(cache.stats().fastHits > fastHits);
  unmap(elsewhere);
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
