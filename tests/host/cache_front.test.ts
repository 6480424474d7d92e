/**
 * Hits without a native call (front words, cache/native/rcache.h), with the registrar double and
 * real memory and hooks: a region found again by a native lookup gets a front word, after which
 * reusing a target object or an address hits without a call, and every
 * release of the memory, held or idle, direct or deferred, still makes the next get miss;
 * eviction never takes a region held through its front word.
 */
import assert from "node:assert/strict";
import { Access, RdmaError } from "../../mod.ts";
import { FRONT_HOLDS } from "../../ffi/rcache.ts";
import { RegistrationCache } from "../../cache/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { free, malloc, mapAnonymous, unmap } from "../support/native_memory.ts";
import { rcacheTesting } from "../support/rcache_testing.ts";

const MiB = 1024 * 1024;
const double = createRegistrarDouble();

Deno.test("reused targets and addresses hit without a native call; other asks go native", async (t) => {
  using cache = new RegistrationCache(double);
  const block = mapAnonymous(MiB);
  const target = { address: block.address, length: 4096 };
  await t.step("the same {address, length} object", () => {
    const first = cache.get(target);
    assert.equal(first.hit, false);
    first.release();
    const found = cache.get(target); // a native hit: the region gets its front word
    assert.equal(found.hit, true);
    found.release();
    assert.equal(cache.stats().fastHits, 0, "a region used once has no front word");
    const again = cache.get(target);
    assert.equal(again.hit, true);
    assert.equal(again.lkey, first.lkey);
    assert.equal(again.address, block.address);
    again.release();
    assert.equal(cache.stats().fastHits, 1);
  });
  await t.step("a new object at the same address, and a shorter length", () => {
    cache.get({ address: block.address, length: 4096 }).release();
    cache.get({ address: block.address, length: 100 }).release();
    assert.equal(cache.stats().fastHits, 3);
  });
  await t.step("a longer length, another address, more access: native lookups", () => {
    const before = cache.stats();
    const longer = cache.get({ address: block.address, length: 8192 });
    assert.equal(longer.hit, false, "the region covers 4096 bytes only");
    longer.release();
    const inside = cache.get({ address: block.address + 16n, length: 64 });
    assert.equal(inside.hit, true);
    inside.release();
    const remote = cache.get(target, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
    assert.equal(remote.hit, false, "a local-only region never serves a remote-access get");
    assert.ok((remote.access & Access.REMOTE_WRITE) !== 0);
    remote.release();
    const after = cache.stats();
    assert.equal(after.fastHits, before.fastHits, "none of these was served without a call");
    assert.equal(after.gets - before.gets, 3);
  });
  await t.step("a typed array, its buffer, and a new view of the same bytes", () => {
    const bytes = new Uint8Array(64 * 1024);
    const view = bytes.subarray(4096, 8192);
    cache.get(bytes).release();
    cache.get(bytes).release(); // a native hit: the region gets its front word
    cache.get(view).release(); // another address: a native hit
    const before = cache.stats().fastHits;
    cache.get(bytes).release();
    cache.get(view).release();
    cache.get(bytes.subarray(4096, 8192)).release();
    assert.equal(cache.stats().fastHits - before, 3);
    const registration = cache.get(bytes.buffer);
    assert.equal(registration.hit, true);
    assert.equal(registration.length, bytes.byteLength);
    registration.release();
  });
  unmap(block);
});

Deno.test("munmap closes the front word: the same target object misses afterwards", () => {
  using cache = new RegistrationCache(double);
  const block = mapAnonymous(MiB);
  const target = { address: block.address, length: MiB };
  for (let i = 0; i < 3; i++) cache.get(target).release(); // miss, native hit, hit without a call
  assert.equal(cache.stats().fastHits, 1, "precondition: served without a call");
  const pinnedBefore = double.counters().pinnedBytes;
  unmap(block);
  assert.equal(pinnedBefore - double.counters().pinnedBytes, MiB, "deregistered inside munmap");
  const again = mapAnonymous(MiB, block.address);
  const r = cache.get(target);
  assert.equal(r.hit, false);
  r.release();
  assert.equal(cache.stats().fastHits, 1);
  unmap(again);
});

Deno.test("a hold taken without a call survives munmap until released, then is deregistered", () => {
  using cache = new RegistrationCache(double);
  const block = mapAnonymous(MiB);
  const target = { address: block.address, length: MiB };
  cache.get(target).release();
  cache.get(target).release();
  const held = cache.get(target);
  assert.equal(cache.stats().fastHits, 1, "precondition: the hold was taken without a call");
  const pinnedBefore = double.counters().pinnedBytes;
  unmap(block);
  assert.equal(double.counters().pinnedBytes, pinnedBefore, "held: still registered");
  const again = mapAnonymous(MiB, block.address);
  const fresh = cache.get(target);
  assert.equal(fresh.hit, false, "never handed out again after its memory went");
  assert.notEqual(fresh.lkey, held.lkey);
  let s = cache.stats();
  assert.equal(s.regions, 2);
  assert.equal(s.inUse, 2);
  held.release();
  assert.equal(double.counters().pinnedBytes, pinnedBefore, "the old region's bytes were unpinned");
  s = cache.stats();
  assert.equal(s.regions, 1);
  assert.equal(s.inUse, 1);
  fresh.release();
  assert.equal(cache.stats().inUse, 0);
  unmap(again);
});

Deno.test("a release the allocator defers makes the same target object miss", () => {
  using cache = new RegistrationCache(double);
  const size = 64 * MiB; // above glibc's largest mmap threshold: its own mapping
  const first = malloc(size);
  const target = { address: first.address, length: MiB };
  for (let i = 0; i < 3; i++) cache.get(target).release(); // miss, native hit, hit without a call
  assert.equal(cache.stats().fastHits, 1, "precondition: served without a call");
  free(first); // munmap inside free(): the hook only records the range
  const second = malloc(size);
  target.address = second.address;
  const r = cache.get(target);
  assert.equal(r.hit, false);
  r.release();
  const s = cache.stats();
  assert.equal(s.fastHits, 1);
  assert.equal(s.deregistrationsDeferred, 1);
  free(second);
});

Deno.test("eviction skips a region held without a call, and evicts it once released", () => {
  using cache = new RegistrationCache(double, { maxRegions: 1, merge: false });
  const block = mapAnonymous(MiB);
  const a = { address: block.address, length: 4096 };
  const b = { address: block.address + 65536n, length: 4096 };
  cache.get(a).release();
  cache.get(a).release();
  const heldA = cache.get(a); // still on the idle list, now held through its front word
  assert.equal(cache.stats().fastHits, 1, "precondition: the hold was taken without a call");
  cache.get(b).release(); // over the limit: a is the oldest idle region, but it is held
  let s = cache.stats();
  assert.deepEqual([s.evictions, s.regions, s.inUse], [1, 1, 1], "b went, a stayed");
  const heldB = cache.get(b);
  assert.equal(heldB.hit, false, "b was the region evicted");
  heldA.release(); // a is idle now: the limit evicts it
  s = cache.stats();
  assert.deepEqual([s.evictions, s.regions, s.inUse], [2, 1, 1]);
  heldB.release();
  const againA = cache.get(a);
  assert.equal(againA.hit, false, "a was evicted once idle");
  againA.release();
  assert.equal(cache.get(b).hit, false, "and b, the older idle region, made room for it");
  unmap(block);
});

Deno.test("while another thread drains deferred releases, a hit still goes native", async () => {
  using cache = new RegistrationCache(double, { merge: false });
  const size = 64 * MiB; // above glibc's largest mmap threshold: free() unmaps
  const drainedFirst = malloc(size);
  const held = malloc(size);
  cache.get({ address: drainedFirst.address, length: MiB }).release();
  const target = { address: held.address, length: MiB };
  for (let i = 0; i < 3; i++) cache.get(target).release(); // miss, native hit, hit without a call
  const oldKey = cache.get(target);
  oldKey.release();
  const fastHits = cache.stats().fastHits;
  assert.equal(fastHits, 2, "precondition: served without a call");
  // The hook passes over releases outside the span of the cached regions: the worker unmaps the
  // page between two regions, inside that span but in neither.
  const outer = mapAnonymous(3 * 4096);
  cache.get({ address: outer.address, length: 4096 }).release();
  cache.get({ address: outer.address + 8192n, length: 4096 }).release();
  const between = outer.address + 4096n;
  const worker = new Worker(new URL("../support/munmap_worker.ts", import.meta.url), {
    type: "module",
  });
  // From here each deregistration takes 300 ms.
  const slow = createRegistrarDouble({ deregisterMicros: 300_000 });
  try {
    const started = slow.counters().deregistrationsStarted;
    // Both ranges are only recorded (free() may hold the allocator's lock), drainedFirst's first.
    free(drainedFirst);
    free(held);
    // The next munmap in the cached span on another thread applies them inside its hook: the
    // worker's, unless one of the runtime's own threads unmaps something there first.
    const unmapped = new Promise((resolve) => worker.onmessage = (e) => resolve(e.data));
    worker.postMessage({ addresses: [between], length: 4096 });
    // Wait until that drain is deregistering drainedFirst's region: `held`'s range is popped but
    // not applied yet, its front word still open.
    const deadline = performance.now() + 10_000;
    while (slow.counters().deregistrationsStarted === started) {
      assert.ok(performance.now() < deadline, "no thread drained the deferred releases");
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const r = cache.get(target); // must wait for the drain, then miss: that memory was freed
    assert.equal(r.hit, false, "a hit on memory free() had released");
    assert.notEqual(r.lkey, oldKey.lkey);
    r.release();
    assert.equal(cache.stats().fastHits, fastHits);
    assert.equal(await unmapped, 0);
  } finally {
    worker.terminate();
    createRegistrarDouble(); // deregistrations instant again
  }
});

Deno.test("holds that are never released cannot wrap a region's counts", () => {
  using cache = new RegistrationCache(double);
  const block = mapAnonymous(MiB);
  const target = { address: block.address, length: 4096 };
  for (let i = 0; i < 3; i++) cache.get(target).release(); // the third hit needs no call
  assert.equal(cache.stats().fastHits, 1, "precondition: the front word is in use");
  const native = rcacheTesting;
  const address = Number(block.address);
  Deno.env.delete("DENO_RDMA_TESTING");
  assert.equal(native.rcache_testing_add_holds(address, 1, 0), -1, "inert unless opted in");
  Deno.env.set("DENO_RDMA_TESTING", "1");
  assert.equal(native.rcache_testing_add_holds(address, 2 ** 32, 0), -1, "a count beyond 32 bits");
  // As if 2^30 - 2 gets through the front word had never been released.
  assert.equal(native.rcache_testing_add_holds(address, FRONT_HOLDS - 1, 1), 1);
  const last = cache.get(target); // takes the word's last count
  assert.equal(cache.stats().fastHits, 2);
  const next = cache.get(target); // a full word: the native count takes this one
  assert.equal(next.hit, true);
  assert.equal(cache.stats().fastHits, 2, "a hold past the word's count would read as closed");
  // 2^31 native holds: the next get is refused rather than wrapping the count.
  assert.equal(native.rcache_testing_add_holds(address, 2 ** 31 - 1, 0), 1);
  assert.throws(
    () => cache.get(target),
    (e: unknown) => e instanceof RdmaError && e.code === "EOVERFLOW",
  );
  // Take the added holds back (wrapping arithmetic), then release the two real ones.
  assert.equal(native.rcache_testing_add_holds(address, 2 ** 32 - (2 ** 31 - 1), 0), 1);
  assert.equal(native.rcache_testing_add_holds(address, 2 ** 32 - (FRONT_HOLDS - 1), 1), 1);
  next.release();
  last.release();
  assert.equal(cache.stats().inUse, 0, "every hold given back");
  unmap(block);
});
