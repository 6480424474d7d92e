/**
 * Registration cache logic with the registrar double (no device): lookups, LRU eviction by count
 * and bytes, held regions, merging and access rules, the locked-memory retry, stats, bad input.
 *
 * The ranges are fake addresses in a low part of the address space nothing maps, so no release
 * hook ever touches them; the double never dereferences them.
 */
import assert from "node:assert/strict";
import { Registration, RegistrationCache } from "../../cache/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { Access } from "../../verbs/constants.ts";
import { RdmaError } from "../../verbs/errors.ts";
import { addressOf } from "../../ffi/pointers.ts";

const PAGE = 4096;
let nextBase = 0x1000_0000n;

/** A fresh fake area of `pages` pages, far from every other test's. */
function area(pages = 16): bigint {
  const base = nextBase;
  nextBase += BigInt((pages + 16) * PAGE);
  return base;
}

function at(base: bigint, page: number, pages = 1) {
  return { address: base + BigInt(page * PAGE), length: pages * PAGE };
}

/** get + release, returning whether it hit. */
function touch(cache: RegistrationCache, target: { address: bigint; length: number }): boolean {
  const r = cache.get(target);
  r.release();
  return r.hit;
}

Deno.test("a second get of the same bytes hits and returns the same keys", () => {
  using cache = new RegistrationCache(createRegistrarDouble(), { merge: false });
  const base = area();
  const first = cache.get(at(base, 0, 2));
  assert.equal(first.hit, false);
  first.release();
  const second = cache.get(at(base, 1)); // inside the first
  assert.equal(second.hit, true);
  assert.equal(second.lkey, first.lkey);
  assert.equal(second.rkey, first.rkey);
  assert.equal(second.address, base + BigInt(PAGE));
  assert.equal(second.length, PAGE);
  assert.equal(second.regionAddress, base);
  assert.equal(second.regionLength, 2 * PAGE);
  second.release();
  const s = cache.stats();
  assert.deepEqual([s.gets, s.hits, s.misses, s.registrations, s.regions, s.bytes, s.inUse], [
    2,
    1,
    1,
    1,
    1,
    2 * PAGE,
    0,
  ]);
});

Deno.test("only permission bits may be a superset: other access flags must match exactly", () => {
  using cache = new RegistrationCache(createRegistrarDouble(), { merge: false });
  const base = area();
  const relaxed = Access.LOCAL_WRITE | Access.RELAXED_ORDERING;
  // Served natively, then (second time) through a front word: both paths must refuse.
  for (let i = 0; i < 3; i++) cache.get(at(base, 0, 2), relaxed).release();
  const plain = cache.get(at(base, 0, 2));
  assert.equal(plain.hit, false, "a relaxed-ordering region served a plain request");
  assert.equal(plain.access, Access.LOCAL_WRITE);
  plain.release();
  for (let i = 0; i < 2; i++) { // native hit, then through a front word
    const again = cache.get(at(base, 0, 2));
    assert.equal(again.hit, true);
    assert.equal(again.access, Access.LOCAL_WRITE);
    again.release();
  }
  // And the other way round: the plain region (which replaced the relaxed one) does not serve it.
  const relaxedAgain = cache.get(at(base, 0, 2), relaxed);
  assert.equal(relaxedAgain.hit, false, "a plain region served a relaxed-ordering request");
  assert.equal(relaxedAgain.access, relaxed);
  relaxedAgain.release();
  // Permissions stay a superset: a remote-read region serves a local request.
  const read = cache.get(at(base, 4), Access.LOCAL_WRITE | Access.REMOTE_READ);
  read.release();
  const local = cache.get(at(base, 4));
  assert.equal(local.hit, true);
  local.release();
});

Deno.test("a SharedArrayBuffer target registers on its first get, and hits after", () => {
  using cache = new RegistrationCache(createRegistrarDouble());
  const shared = new SharedArrayBuffer(3 * PAGE);
  const first = cache.get(shared);
  assert.equal(first.hit, false);
  assert.equal(first.length, 3 * PAGE);
  first.release();
  const again = cache.get(new Uint8Array(shared, PAGE, PAGE));
  assert.equal(again.hit, true);
  assert.equal(again.lkey, first.lkey);
  again.release();
});

Deno.test("eviction by count follows LRU order of release and skips held regions", () => {
  const double = createRegistrarDouble();
  using cache = new RegistrationCache(double, { maxRegions: 3, merge: false });
  const base = area();
  const [a, b, c, d] = [0, 2, 4, 6].map((p) => at(base, p));
  for (const t of [a, b, c]) touch(cache, t);
  assert.equal(touch(cache, a), true); // a is now the most recently used
  const before = double.counters().deregistrations;
  touch(cache, d); // over the bound: the oldest idle (b) goes
  assert.equal(double.counters().deregistrations - before, 1);
  assert.equal(cache.stats().evictions, 1);
  assert.equal(touch(cache, a), true);
  assert.equal(touch(cache, c), true);
  assert.equal(touch(cache, d), true);
  assert.equal(touch(cache, b), false); // was evicted (and now evicts the oldest idle: a)
  assert.equal(cache.stats().regions, 3);

  // Held regions are never evicted, even over the bound.
  const held = [at(base, 8), at(base, 10), at(base, 12), at(base, 14)].map((t) => cache.get(t));
  const s = cache.stats();
  assert.equal(s.inUse, 4);
  assert.equal(s.regions, 4); // every idle one went; the 4 held ones stay
  for (const r of held) assert.equal(r.released, false);
  held[0].release(); // idle again and still over the bound: evicted at once
  assert.equal(cache.stats().regions, 3);
  for (const r of held.slice(1)) r.release();
});

Deno.test("eviction by bytes counts registered bytes", () => {
  using cache = new RegistrationCache(createRegistrarDouble(), {
    maxBytes: 4 * PAGE,
    merge: false,
  });
  const base = area(32);
  touch(cache, at(base, 0, 2));
  touch(cache, at(base, 4, 2));
  assert.equal(cache.stats().bytes, 4 * PAGE);
  touch(cache, at(base, 8, 1)); // 5 pages: the oldest (2 pages) goes
  const s = cache.stats();
  assert.equal(s.bytes, 3 * PAGE);
  assert.equal(s.evictions, 1);
  assert.equal(touch(cache, at(base, 4, 2)), true);
  assert.equal(touch(cache, at(base, 0, 2)), false);
});

Deno.test("merging registers the union of adjacent and overlapping same-access regions", () => {
  using cache = new RegistrationCache(createRegistrarDouble(), { merge: true });
  const base = area();
  touch(cache, at(base, 0, 2));
  const adjacent = cache.get(at(base, 2, 2));
  assert.equal(adjacent.hit, false);
  assert.equal(adjacent.regionAddress, base);
  assert.equal(adjacent.regionLength, 4 * PAGE);
  adjacent.release();
  const overlapping = cache.get(at(base, 3, 3)); // pages 3..5, overlaps 0..3
  assert.equal(overlapping.regionAddress, base);
  assert.equal(overlapping.regionLength, 6 * PAGE);
  overlapping.release();
  assert.equal(touch(cache, at(base, 0, 6)), true);
  const s = cache.stats();
  assert.equal(s.merges, 2);
  assert.equal(s.regions, 1);
  assert.equal(s.bytes, 6 * PAGE);
  assert.equal(s.deregistrations, 2); // the two regions the unions replaced
});

Deno.test("without merging, an overlapping get registers the exact range and retires the old", () => {
  const double = createRegistrarDouble();
  using cache = new RegistrationCache(double, { merge: false });
  const base = area();
  const held = cache.get(at(base, 0, 2));
  touch(cache, at(base, 2, 2));
  const spanning = cache.get(at(base, 1, 2)); // overlaps both
  assert.equal(spanning.hit, false);
  assert.equal(spanning.regionAddress, base + BigInt(PAGE));
  assert.equal(spanning.regionLength, 2 * PAGE);
  spanning.release();
  let s = cache.stats();
  assert.equal(s.merges, 0);
  assert.equal(s.indexedRegions, 1); // only the new one is findable
  assert.equal(s.regions, 2); // the held old one stays registered
  // The retired held region is deregistered when released.
  const before = double.counters().deregistrations;
  held.release();
  assert.equal(double.counters().deregistrations - before, 1);
  s = cache.stats();
  assert.equal(s.regions, 1);
  assert.equal(touch(cache, at(base, 0, 2)), false);
});

Deno.test("a remote-access get never returns a local-only region, and merging never widens remote access", () => {
  using cache = new RegistrationCache(createRegistrarDouble(), { merge: true });
  const base = area();
  const remote = Access.LOCAL_WRITE | Access.REMOTE_WRITE;
  const local = cache.get(at(base, 0, 4));
  local.release();
  const r = cache.get(at(base, 0, 4), remote);
  assert.equal(r.hit, false);
  assert.notEqual(r.lkey, local.lkey);
  assert.equal(r.access & Access.REMOTE_WRITE, Access.REMOTE_WRITE);
  r.release();
  // A local get over bytes of the remote region may use it (superset of access).
  const sub = cache.get(at(base, 1));
  assert.equal(sub.hit, true);
  assert.equal(sub.rkey, r.rkey);
  sub.release();
  // A local get next to the remote region does not merge into it ...
  const neighbour = cache.get(at(base, 4, 2));
  assert.equal(neighbour.hit, false);
  assert.equal(neighbour.regionAddress, base + BigInt(4 * PAGE));
  assert.equal(neighbour.regionLength, 2 * PAGE);
  assert.equal(neighbour.access, Access.LOCAL_WRITE);
  neighbour.release();
  // ... and a remote get overlapping a local region exposes exactly what it asks for.
  const remoteAgain = cache.get(at(base, 5, 2), remote);
  assert.equal(remoteAgain.regionAddress, base + BigInt(5 * PAGE));
  assert.equal(remoteAgain.regionLength, 2 * PAGE);
  remoteAgain.release();
  // Remote read is not remote write.
  const readOnly = cache.get(at(base, 10), Access.REMOTE_READ);
  readOnly.release();
  const write = cache.get(at(base, 10), remote);
  assert.equal(write.hit, false);
  write.release();
});

Deno.test("a registration over the locked-memory limit evicts idle regions and retries once", async (t) => {
  const double = createRegistrarDouble({ pinLimit: 3 * PAGE });
  using cache = new RegistrationCache(double, { merge: false });
  const base = area();
  await t.step("retry succeeds after evicting the idle regions", () => {
    for (const p of [0, 2, 4]) touch(cache, at(base, p));
    assert.equal(touch(cache, at(base, 6)), false);
    const s = cache.stats();
    assert.equal(s.limitRetries, 1);
    assert.equal(s.evictions, 3);
    assert.equal(s.regions, 1);
  });
  await t.step("with everything held, the error names the limit", () => {
    const held = [8, 10].map((p) => cache.get(at(base, p))); // plus page 6 idle
    assert.throws(
      () => cache.get(at(base, 12, 2)),
      (e: unknown) =>
        e instanceof RdmaError && e.code === "ENOMEM" && e.verb === "ibv_reg_mr" &&
        /RLIMIT_MEMLOCK/.test(e.message),
    );
    for (const r of held) r.release();
  });
  double.counters(); // readable after use
});

Deno.test("stats count gets, deregistrations and in-use regions; flush drops idle ones only", () => {
  const double = createRegistrarDouble();
  using cache = new RegistrationCache(double, { merge: false });
  const base = area();
  const held = cache.get(at(base, 0));
  touch(cache, at(base, 2));
  touch(cache, at(base, 4));
  const pinned = double.counters().pinnedBytes;
  cache.flush();
  assert.equal(pinned - double.counters().pinnedBytes, 2 * PAGE);
  const s = cache.stats();
  assert.equal(s.regions, 1);
  assert.equal(s.inUse, 1);
  assert.equal(s.deregistrations, 2);
  assert.equal(s.evictions, 0);
  assert.equal(cache.get(at(base, 0)).hit, true); // still cached: it was held
  cache.close();
  assert.equal(double.counters().pinnedBytes, pinned - 3 * PAGE); // close drops everything
  assert.throws(() => held.release(), (e: unknown) => e instanceof RdmaError && e.code === "EBADF");
});

Deno.test("sge gives address, length and lkey of a cached registration", () => {
  using cache = new RegistrationCache(createRegistrarDouble());
  const buffer = new Uint8Array(8192);
  const sge = cache.sge(buffer, 100, 1000);
  const base = addressOf(buffer);
  assert.equal(sge.address, base + 100n);
  assert.equal(sge.length, 1000);
  assert.equal(sge.lkey, sge.registration.lkey);
  sge.registration.release();
  assert.throws(() => cache.sge(buffer, 8000, 1000), RangeError);
  assert.throws(() => cache.sge(buffer, -1), RangeError);
});

Deno.test("buffers, views and DataViews register their own bytes", () => {
  using cache = new RegistrationCache(createRegistrarDouble());
  const buffer = new ArrayBuffer(16384);
  const view = new Uint32Array(buffer, 4096, 1024);
  const base = addressOf(new Uint8Array(buffer));
  using whole = cache.get(buffer);
  assert.equal(whole.address, base);
  assert.equal(whole.length, 16384);
  using part = cache.get(view);
  assert.equal(part.address, base + 4096n);
  assert.equal(part.length, 4096);
  assert.equal(part.hit, true);
  using dv = cache.get(new DataView(buffer, 100, 50));
  assert.equal(dv.address, base + 100n);
  assert.equal(dv.length, 50);
});

Deno.test("bad input is a TypeError or RangeError; misuse is RdmaError EBADF", async (t) => {
  const double = createRegistrarDouble();
  await t.step("constructor", () => {
    assert.throws(() => new RegistrationCache({} as never), TypeError);
    assert.throws(() => new RegistrationCache(null as never), TypeError);
    assert.throws(() => new RegistrationCache(double, { maxRegions: 0 }), RangeError);
    assert.throws(() => new RegistrationCache(double, { maxBytes: -1 }), RangeError);
    assert.throws(() => new RegistrationCache(double, { maxRegions: 1.5 }), RangeError);
    assert.throws(() => new RegistrationCache(double, { maxRegions: "9" as never }), TypeError);
    assert.throws(() => new RegistrationCache(double, { merge: 1 as never }), TypeError);
    assert.throws(() => createRegistrarDouble({ pinLimit: -5 }), RangeError);
  });
  using cache = new RegistrationCache(double);
  await t.step("get", () => {
    assert.throws(() => cache.get("buffer" as never), TypeError);
    assert.throws(() => cache.get(null as never), TypeError);
    assert.throws(() => cache.get(new Uint8Array(0)), RangeError);
    assert.throws(() => cache.get(new ArrayBuffer(0)), RangeError);
    assert.throws(() => cache.get({ address: 4096 as never, length: 1 }), TypeError);
    assert.throws(() => cache.get({ address: 0n, length: 1 }), RangeError);
    assert.throws(() => cache.get({ address: 4096n, length: 0 }), RangeError);
    assert.throws(() => cache.get({ address: 4096n, length: 1.5 }), RangeError);
    assert.throws(() => cache.get({ address: 1n << 60n, length: 1 }), RangeError);
    const buffer = new Uint8Array(64);
    assert.throws(() => cache.get(buffer, 1 << 30), RangeError);
    assert.throws(() => cache.get(buffer, Access.REMOTE_WRITE), RangeError); // needs LOCAL_WRITE
    assert.throws(() => cache.get(buffer, "rw" as never), TypeError);
    const detached = new ArrayBuffer(64);
    structuredClone(detached, { transfer: [detached] });
    assert.throws(() => cache.get(detached), TypeError);
    assert.throws(() => cache.get(new ArrayBuffer(64, { maxByteLength: 128 })), TypeError);
    const growable = new SharedArrayBuffer(64, { maxByteLength: 128 });
    assert.throws(() => cache.get(new Uint8Array(growable)), TypeError);
    assert.equal(cache.stats().regions, 0, "a refused buffer leaves nothing registered");
  });
  await t.step("double release and use after close", () => {
    const r = cache.get(new Uint8Array(64));
    r.release();
    assert.equal(r.released, true);
    assert.throws(() => r.release(), (e: unknown) => e instanceof RdmaError && e.code === "EBADF");
    r[Symbol.dispose](); // disposing a released registration is a no-op
    cache.close();
    cache.close(); // idempotent
    const isClosed = (e: unknown) => e instanceof RdmaError && e.code === "EBADF";
    assert.throws(() => cache.get(new Uint8Array(64)), isClosed);
    assert.throws(() => cache.stats(), isClosed);
    assert.throws(() => cache.flush(), isClosed);
  });
});

Deno.test("releases queued past the queue's capacity are all applied, in order", () => {
  using cache = new RegistrationCache(createRegistrarDouble(), { maxRegions: 100, merge: false });
  const base = area(700);
  const held = Array.from({ length: 300 }, (_, i) => cache.get(at(base, 2 * i)));
  assert.equal(cache.stats().inUse, 300);
  for (const r of held) r.release(); // 256 queue slots: the rest release with a call
  const s = cache.stats();
  assert.equal(s.inUse, 0);
  assert.equal(s.badReleases, 0);
  assert.equal(s.regions, 100); // the 200 released first were evicted, oldest first
  assert.equal(s.evictions, 200);
  assert.equal(touch(cache, at(base, 2 * 299)), true);
  assert.equal(touch(cache, at(base, 2 * 200)), true);
  assert.equal(touch(cache, at(base, 2 * 199)), false);
});

Deno.test("only the cache makes a Registration (its release hands a handle to native code)", () => {
  using cache = new RegistrationCache(createRegistrarDouble());
  assert.throws(
    () => new Registration(Symbol("forged") as never, cache, null, 1, 8, true, 16, 1, 1, 1),
    /comes from RegistrationCache.get/,
  );
});
