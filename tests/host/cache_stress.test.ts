/**
 * Stress with the registrar double and the real hooks: 100,000 lookup/release/replace cycles of
 * random sizes, a share of the replacements done by a second thread. No stale hit, no deadlock,
 * nothing left registered after close.
 */
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { runStress } from "../support/stress.ts";

Deno.test("100,000 cycles with releases from a second thread: no stale hit", async () => {
  const double = createRegistrarDouble();
  const pinnedBefore = double.counters().pinnedBytes;
  const cache = new RegistrationCache(double, { maxRegions: 8 });
  const result = await runStress(cache, { cycles: 100_000, slots: 32, maxPages: 64, seed: 7 });
  const s = cache.stats();
  cache.close();
  assert.equal(result.staleHits, 0);
  assert.ok(result.replacedByWorker > 100, `worker replaced ${result.replacedByWorker}`);
  assert.ok(result.replacedHere > 1000);
  assert.ok(s.hits > 1000 && s.misses > 1000, JSON.stringify(s));
  assert.ok(s.invalidations > 0 && s.evictions > 0, JSON.stringify({ s, result }));
  assert.equal(double.counters().pinnedBytes, pinnedBefore, "everything deregistered at close");
});
