/**
 * The cache beside UCX's ucm (Debian's libucx0, installed by tools/deps.ts), which patches the
 * same libc entry points, in both load orders, and beside a foreign jump written by hand over one
 * of the hooks' entries. In every case a cached region whose memory is released and mapped again
 * at the same address is never returned as a hit, the cache stays open and hits again afterwards,
 * and the stats and supportLevel() say where events come from and what was lost. Each case runs
 * in a child process (hooks_coexist_child.ts): ucm's patches cannot be taken out of a process.
 */
import assert from "node:assert/strict";
import { runChildJson } from "./child_json.ts";
import { OPAL_MEMORY_FREE_SUPPORT } from "../../hooks/mod.ts";
import { PATCH, SOURCE } from "../../ffi/records/memhooks.ts";

const child = new URL("./hooks_coexist_child.ts", import.meta.url).pathname;
const env = { DENO_RDMA_TESTING: "1" };
const CASES = ["munmap", "madvise", "mremap", "mmapFixed", "free"];

for (const order of ["ours-first", "ucm-first"]) {
  Deno.test(`UCX's ucm ${order}: no stale hit after any release, ucm and we see them`, async () => {
    const r = await runChildJson(child, env, [order]);
    assert.notEqual(r.ucmStart, -1, "libucx0 is missing: tools/deps.ts installs it");
    if (order === "ours-first" && r.ucmStart !== 0) {
      // An older ucm (UCX 1.10, Debian 11) writes over our entries and then fails its own
      // ucm_set_event_handler: its handler sees nothing, but the cache must stay correct.
      assert.ok(r.ucmStart < 0, `ucm_set_event_handler returned ${r.ucmStart}`);
      for (const name of CASES) {
        const o = r.outcomes[name];
        assert.equal(o.wasCached && o.sameAddress, true, `${name}: preconditions`);
        assert.equal(o.hitAfterRelease, false, `${name}: a stale hit`);
        assert.equal(o.hitAgain, true, `${name}: the cache stopped hitting`);
      }
      for (const name of CASES.slice(1)) assert.equal(r.outcomes[name].oursSaw, true, name);
      assert.ok(r.stats.interceptionLosses <= 1, JSON.stringify(r.stats));
      assert.equal(r.finalize, 0);
      return;
    }
    assert.equal(r.ucmStart, 0, "ucm_set_event_handler failed");
    // ucm owns the entries now, whichever came first; finalize left its bytes.
    for (const p of r.statusFinal) {
      if (p.status !== PATCH.FOREIGN) continue;
      assert.match(p.owner, /libucm\.so/, p.name);
    }
    assert.ok(r.statusFinal.some((p: { status: number }) => p.status === PATCH.FOREIGN));
    for (const name of CASES) {
      const o = r.outcomes[name];
      assert.equal(o.wasCached, true, `${name}: precondition, cached and hit`);
      assert.equal(o.sameAddress, true, `${name}: precondition, same address`);
      assert.equal(o.hitAfterRelease, false, `${name}: a stale hit`);
      assert.equal(o.hitAgain, true, `${name}: the cache stopped hitting`);
      assert.ok(o.ucmSaw >= 1, `${name}: ucm's own handler missed it`);
    }
    // Imported: every release reached our callbacks, but the first one after ucm wrote over our
    // entries in "ours-first" (before anything verified them: that is the loss, which every get
    // since then accounts for by invalidating everything).
    for (const name of CASES.slice(1)) assert.equal(r.outcomes[name].oursSaw, true, name);
    assert.equal(r.outcomes.munmap.oursSaw, order === "ucm-first");
    assert.equal(r.stats.interceptionLosses, order === "ours-first" ? 1 : 0);
    assert.equal(r.stats.unwatchedGets, 0);
    assert.equal(r.stats.eventSources & SOURCE.UCM, SOURCE.UCM);
    assert.equal(r.sources & SOURCE.UCM, SOURCE.UCM);
    assert.equal(r.level & OPAL_MEMORY_FREE_SUPPORT, OPAL_MEMORY_FREE_SUPPORT);
    assert.equal(r.finalize, 0);
  });
}

Deno.test("a foreign jump written over munmap by hand: every get misses until it is gone", async () => {
  const r = await runChildJson(child, env, ["hand"]);
  assert.deepEqual(r.cachedHits, [false, true, true]);
  assert.equal(r.patched, 0);
  assert.equal(r.handCalls, 1, "the unmap did not go through the foreign jump");
  // Unwatched: gets are served as misses and their regions deregistered at release.
  assert.deepEqual(r.blindHits, [false, false, false]);
  assert.equal(r.statsBlind.interceptionLosses, 1);
  assert.equal(r.statsBlind.unwatchedGets, 3);
  assert.equal(r.statsBlind.regions, 0);
  assert.equal(r.levelBlind & OPAL_MEMORY_FREE_SUPPORT, 0);
  assert.equal(r.munmapBlind.status, PATCH.FOREIGN);
  assert.match(r.munmapBlind.owner, /libdeno_rdma_testsupport\.so/);
  // A new cache is refused, naming the library.
  assert.match(r.refused, /ENOSYS/);
  assert.match(r.refused, /munmap is patched by .*libdeno_rdma_testsupport\.so/);
  // Our jump back: a second loss (what happened meanwhile is unknown), then hits again.
  assert.equal(r.unpatched, 0);
  assert.deepEqual(r.restoredHits, [false, true, true]);
  assert.equal(r.statsRestored.interceptionLosses, 2);
  assert.equal(r.statsRestored.unwatchedGets, 3);
  assert.equal(r.levelRestored & OPAL_MEMORY_FREE_SUPPORT, OPAL_MEMORY_FREE_SUPPORT);
  assert.equal(r.sourcesRestored, SOURCE.PATCH);
  assert.equal(r.munmapRestored.status, PATCH.OK);
});

Deno.test("another library's opal memory hooks own shmdt: the cache imports its events", async () => {
  const r = await runChildJson(child, env, ["opal"]);
  assert.equal(r.patched, 0);
  assert.equal(r.registered, 1, "not subscribed to the other library");
  assert.equal(r.sources, SOURCE.PATCH | SOURCE.OPAL);
  assert.equal(r.shmdt.status, PATCH.FOREIGN);
  assert.match(r.shmdt.owner, /libdeno_rdma_opal_double\.so/);
  assert.deepEqual(r.cachedHits, [false, true, true]);
  assert.equal(r.detached, 0);
  assert.ok(r.hookCalls >= 2, "the detach did not go through the other library's hook");
  assert.equal(r.sameAddress, true, "precondition: attached again at the same address");
  assert.deepEqual(r.afterHits, [false, true, true]);
  assert.equal(r.stats.interceptionLosses, 0);
  assert.equal(r.stats.eventSources, SOURCE.PATCH | SOURCE.OPAL);
  // finalize gave the subscription back
  assert.equal(r.finalize, 0);
  assert.equal(r.registeredAfter, 0);
});
