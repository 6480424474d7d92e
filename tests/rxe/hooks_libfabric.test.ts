// rxe suite: the registration cache beside Debian's libfabric (libfabric1), whose memhooks monitor
// (FI_MR_CACHE_MONITOR=memhooks) patches the same libc entry points when its verbs domain opens
// its MR cache, and sends the calls it catches straight to the kernel. libfabric has no API for
// its events, so (hooks/README.md, "Other interceptors"): after it wrote over the hooks' entries,
// the next check sees it, the cache drops its regions and serves every get as a miss, never a
// stale hit, an RDMA WRITE through such a get lands in the new pages; a cache is refused while
// libfabric owns the entries, naming it; when libfabric writes the hooks' bytes back, hits resume.
// Each load order runs in a child process (hooks_libfabric_child.ts): patches are per process.
import assert from "node:assert/strict";
import { runChildJson } from "../host/child_json.ts";
import { OPAL_MEMORY_FREE_SUPPORT } from "../../hooks/mod.ts";
import { PATCH, SOURCE } from "../../ffi/records/memhooks.ts";

const child = new URL("./hooks_libfabric_child.ts", import.meta.url).pathname;
const env = { FI_MR_CACHE_MONITOR: "memhooks" };
const CASES = ["munmap", "madvise", "mremap", "mmapFixed", "free"];
/** What libfabric 1.17's memhooks monitor patches (prov/util/src/util_mem_hooks.c). */
const LIBFABRIC_PATCHES = ["brk", "madvise", "mmap", "mremap", "munmap", "shmat", "shmdt"];

interface Status {
  name: string;
  status: number;
  owner: string;
}

/** The entries libfabric owns, by name, each checked to name libfabric's file. */
function ownedByLibfabric(status: Status[]): string[] {
  const owned = status.filter((p) => p.status === PATCH.FOREIGN);
  for (const p of owned) assert.match(p.owner, /libfabric\.so\.1/, `${p.name}'s owner`);
  return owned.map((p) => p.name).sort();
}

/** libfabric's own cache: a hit for the second registration, a new key after the unmap. */
function assertLibfabricCacheWorks(mr: { status: number; keys: string[] }, when: string): void {
  assert.equal(mr.status, 0, `${when}: fi_mr_reg, or the mapping moved`);
  assert.equal(mr.keys[1], mr.keys[0], `${when}: libfabric's cache did not hit`);
  assert.notEqual(mr.keys[2], mr.keys[0], `${when}: libfabric's monitor missed the munmap`);
}

Deno.test("libfabric patches after the cache opened: every get misses, RDMA lands in the new pages", async () => {
  const r = await runChildJson(child, env, ["ours-first"]);
  assert.equal(r.open, 0, `libfabric's verbs domain did not open: ${r.openMessage}`);
  // Before libfabric: our jumps, cached and hit.
  assert.equal(r.munmapBefore.status, PATCH.OK);
  assert.equal(r.statsBefore.interceptionLosses, 0);
  assert.equal(r.levelBefore & OPAL_MEMORY_FREE_SUPPORT, OPAL_MEMORY_FREE_SUPPORT);
  for (const name of CASES) {
    const o = r.outcomes[name];
    assert.equal(o.wasCached, true, `${name}: precondition, cached and hit`);
    assert.equal(o.sameAddress, true, `${name}: precondition, same address`);
    assert.equal(o.hitAfterRelease, false, `${name}: a stale hit`);
    assert.equal(o.landed, -1, `${name}: the RDMA WRITE did not land in the new pages`);
    assert.deepEqual(o.hitsAfter, [false, false], `${name}: a hit while libfabric owns libc`);
  }
  // Detected, and why: one loss (libfabric wrote over the entries), gets served unwatched.
  assert.deepEqual(ownedByLibfabric(r.status), LIBFABRIC_PATCHES);
  assert.equal(r.stats.interceptionLosses, 1, JSON.stringify(r.stats));
  assert.ok(r.stats.unwatchedGets >= 3 * CASES.length, JSON.stringify(r.stats));
  assert.equal(r.level & OPAL_MEMORY_FREE_SUPPORT, 0, "supportLevel() still claims FREE");
  assert.equal(r.sources & SOURCE.UCM, 0);
  assert.match(r.refused, /ENOSYS/);
  assert.match(r.refused, /munmap is patched by \S*libfabric\.so\.1/);
  // libfabric's cache works over the hooks.
  assertLibfabricCacheWorks(r.mr, "over the hooks");
  // Its domain closed, libfabric wrote our jumps back: a second loss, then hits again.
  assert.equal(r.close, 0, r.closeMessage);
  assert.equal(r.munmapRestored.status, PATCH.OK);
  assert.deepEqual(r.restoredHits, [false, true, true]);
  assert.equal(r.statsRestored.interceptionLosses, 2, JSON.stringify(r.statsRestored));
  assert.equal(r.levelRestored & OPAL_MEMORY_FREE_SUPPORT, OPAL_MEMORY_FREE_SUPPORT);
  assert.equal(r.sourcesRestored, SOURCE.PATCH);
  assert.equal(r.finalize, 0);
});

Deno.test("libfabric patched first: the cache is refused, naming libfabric; libfabric's cache works", async () => {
  const r = await runChildJson(child, env, ["fabric-first"]);
  assert.equal(r.open, 0, `libfabric's verbs domain did not open: ${r.openMessage}`);
  assertLibfabricCacheWorks(r.mrBefore, "alone");
  assert.deepEqual(ownedByLibfabric(r.status), LIBFABRIC_PATCHES);
  assert.equal(r.level & OPAL_MEMORY_FREE_SUPPORT, 0, "supportLevel() claims FREE");
  assert.match(r.refused, /ENOSYS/);
  assert.match(r.refused, /munmap is patched by \S*libfabric\.so\.1/);
  assertLibfabricCacheWorks(r.mrBeside, "beside the hooks");
  assert.equal(r.close, 0, r.closeMessage);
});
