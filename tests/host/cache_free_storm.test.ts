/**
 * Large blocks freed by several native threads while the cache holds regions over them: glibc
 * gives the memory back on those threads (munmap of a block it mapped, reached by tail calls from
 * free on some versions; trimming an arena while it holds the arena's lock). The cache must never
 * deregister inside such a release (a deregistration may need that lock), must never hit on a
 * block whose memory went back to the system, and nothing may hang.
 */
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { openNativeLibrary } from "../../ffi/loader.ts";

const storm = openNativeLibrary(
  "libdeno_rdma_testsupport.so",
  {
    storm_start: { parameters: ["i32", "f64", "f64"], result: "i32" },
    storm_peek: { parameters: ["i32", "buffer"], result: "i32" },
    storm_looked_up: { parameters: ["i32", "u32"], result: "void" },
    storm_stop: { parameters: [], result: "u64" },
  } as const,
).symbols;

const MiB = 1024 * 1024;
const THREADS = 4;
// 64 MiB is above glibc's largest mmap threshold (32 MiB): always its own mapping, unmapped by
// free. 1 MiB goes to the threads' arenas once the threshold has risen, and their trims.
const LARGE = 64 * MiB, SMALL = MiB;

Deno.test("frees on several threads while the cache holds their blocks: no stale hit, no deadlock", () => {
  const double = createRegistrarDouble();
  const pinnedBefore = double.counters().pinnedBytes;
  const cache = new RegistrationCache(double);
  assert.equal(storm.storm_start(THREADS, SMALL, LARGE), 0);
  const slot = new BigUint64Array(3);
  const lastGen = new Array<number>(THREADS).fill(0);
  let lookups = 0, largeLookups = 0, staleHits = 0;
  const deadline = performance.now() + 1500;
  try {
    while (performance.now() < deadline || largeLookups < 20) {
      if (performance.now() > deadline + 20_000) break; // reported by the asserts below
      for (let i = 0; i < THREADS; i++) {
        if (storm.storm_peek(i, slot) !== 0) continue;
        const gen = Number(slot[0]);
        if (gen === lastGen[i]) continue;
        lastGen[i] = gen;
        const length = Number(slot[2]);
        const r = cache.get({ address: slot[1], length: Math.min(length, MiB) });
        lookups++;
        // A new block of LARGE bytes: the previous one was unmapped by free, so the first lookup
        // of this one can only be a miss (a hit would hand out the old, unpinned pages).
        if (length === LARGE) {
          largeLookups++;
          if (r.hit) staleHits++;
        }
        r.release();
        storm.storm_looked_up(i, gen);
      }
    }
  } finally {
    const freed = Number(storm.storm_stop());
    assert.ok(freed >= lookups / 2, `threads freed ${freed} blocks`);
  }
  const s = cache.stats();
  cache.close();
  assert.equal(staleHits, 0, `${staleHits} stale hits in ${largeLookups} lookups of large blocks`);
  assert.ok(largeLookups >= 20, `only ${largeLookups} large blocks looked up`);
  assert.ok(s.invalidations > 0, JSON.stringify(s));
  // Every release came from the allocator: deferred to the next cache call, never done inside it.
  assert.equal(s.deregistrationsInRelease, 0, JSON.stringify(s));
  assert.ok(s.deregistrationsDeferred > 0, JSON.stringify(s));
  assert.equal(double.counters().pinnedBytes, pinnedBefore, "everything deregistered at close");
});
