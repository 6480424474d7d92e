// rxe suite: 100,000 lookup/release/replace cycles of random sizes on the device, a share of the
// releases on a second thread, RDMA WRITEs into looked-up slots now and then: no stale hit, no
// deadlock, VmPin back to its old value after close.
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import { vmPinKiB } from "../support/native_memory.ts";
import { runStress } from "../support/stress.ts";
import { Access } from "../../verbs/mod.ts";
import { firstDifference, openLoopback, pattern, writeAndWait } from "./verbs_loopback.ts";

const CYCLES = Number(Deno.env.get("DENO_RDMA_CACHE_STRESS_CYCLES") ?? 100_000);

Deno.test(`${CYCLES} cycles with releases from a second thread: no stale hit, VmPin 0 after close`, async () => {
  using lo = openLoopback();
  const pinnedBefore = vmPinKiB();
  const cache = new RegistrationCache(lo.pd, { maxRegions: 16 });
  let seed = 0;
  const result = await runStress(cache, {
    cycles: CYCLES,
    slots: 32,
    maxPages: 16,
    seed: 11,
    access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
    checkEvery: 2000,
    async check(block, registration) {
      const source = pattern(block.length, ++seed);
      using src = cache.get(source);
      await writeAndWait(lo, src, registration, seed);
      assert.equal(firstDifference(block.bytes, source), -1, "RDMA landed in the slot's memory");
    },
  });
  const s = cache.stats();
  cache.close();
  console.log(JSON.stringify({ result, stats: s }));
  assert.equal(result.staleHits, 0);
  assert.ok(result.replacedByWorker > 0);
  assert.ok(result.checks > 0);
  assert.equal(vmPinKiB(), pinnedBefore, "VmPin back after close");
});
