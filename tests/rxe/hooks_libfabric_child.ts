/**
 * Run by hooks_libfabric.test.ts in a process of its own (libfabric's patches cannot be taken out
 * of a process), with FI_MR_CACHE_MONITOR=memhooks: Debian's libfabric (its verbs provider, a
 * domain with its MR cache) and the registration cache on the rxe device, in the order given as
 * the first argument.
 *
 * - "ours-first": the cache opens and caches regions (they hit); then libfabric's memhooks
 *   monitor writes its jumps over the hooks' entries; every kind of release of the cached memory,
 *   each followed by gets of new memory at the same address, the first of them the target of an
 *   RDMA WRITE (queue pair a to b in loopback) whose bytes must land in the new pages; libfabric's
 *   own cache is exercised; then libfabric closes its domain (writing back the bytes it found)
 *   and the cache hits again.
 * - "fabric-first": libfabric patches libc first; a cache is refused; libfabric's cache works
 *   beside the hooks.
 *
 * Prints what it saw as JSON.
 *
 * @module
 */
import { RegistrationCache } from "../../cache/mod.ts";
import { memHooks } from "../../hooks/mod.ts";
import { Access } from "../../verbs/mod.ts";
import { mapAnonymous, type NativeBlock, unmap } from "../support/native_memory.ts";
import { prepareReleases, RELEASE_CASES } from "../support/release_cases.ts";
import { closeFabric, fabricMessage, fabricMrCheck, openFabric } from "./fabric_probe.ts";
import { firstDifference, openLoopback, pattern, writeAndWait } from "./verbs_loopback.ts";

const MiB = 1024 * 1024;
const REMOTE = Access.LOCAL_WRITE | Access.REMOTE_WRITE;
const order = Deno.args[0];
if (order !== "ours-first" && order !== "fabric-first") throw new Error(`bad order ${order}`);

const result: Record<string, unknown> = { order };
const munmapStatus = () => memHooks.patchStatus().find((p) => p.name === "munmap");
const lo = openLoopback();

function report(): void {
  console.log(JSON.stringify(result, (_k, v) => typeof v === "bigint" ? String(v) : v));
}

function fabric(): boolean {
  result.open = openFabric();
  result.openMessage = fabricMessage();
  return result.open === 0;
}

if (order === "fabric-first") {
  if (!fabric()) {
    report();
    Deno.exit(0);
  }
  result.mrBefore = fabricMrCheck(); // libfabric's cache alone
  memHooks.init();
  result.munmap = munmapStatus();
  result.status = memHooks.patchStatus();
  result.level = memHooks.supportLevel();
  try {
    new RegistrationCache(lo.pd).close();
    result.refused = "";
  } catch (e) {
    result.refused = String(e);
  }
  result.mrBeside = fabricMrCheck(); // with the hooks installed where libfabric left libc alone
  result.close = closeFabric();
  result.closeMessage = fabricMessage();
  result.munmapAfterClose = munmapStatus();
  result.finalize = memHooks.finalize();
  lo[Symbol.dispose]();
  report();
  Deno.exit(0);
}

const cache = new RegistrationCache(lo.pd);
memHooks.init(); // this isolate's view of the hooks the cache installed
const target = (b: NativeBlock) => ({ address: b.address, length: b.length });
const hit = (b: NativeBlock) => {
  const r = cache.get(target(b), REMOTE);
  r.release();
  return r.hit;
};

/** Cached and hit twice (the second time without a native call). */
function cached(b: NativeBlock): boolean {
  b.bytes.fill(0x5a);
  hit(b);
  return hit(b) && hit(b);
}

const CASES = RELEASE_CASES;
// Every block is cached before libfabric arrives; `release` releases it and returns new memory at
// the same address.
const prepared = prepareReleases(cached);
result.munmapBefore = munmapStatus();
result.levelBefore = memHooks.supportLevel();
result.statsBefore = cache.stats();

if (!fabric()) {
  cache.close();
  lo[Symbol.dispose]();
  report();
  Deno.exit(0);
}

const outcomes: Record<string, unknown> = {};
let seed = 1;
for (const name of CASES) {
  const { block, wasCached, release } = prepared[name];
  const after = release();
  const sameAddress = after.address === block.address;
  after.bytes.fill(0x33); // the new pages
  // An RDMA WRITE through the first registration after the release: a stale hit would point at
  // the old pages, and the bytes would not be in the new ones.
  const source = pattern(after.length, seed++);
  const src = cache.get(source);
  const dst = cache.get(target(after), REMOTE);
  await writeAndWait(lo, src, dst, seed);
  dst.release();
  src.release();
  outcomes[name] = {
    wasCached,
    sameAddress,
    hitAfterRelease: dst.hit,
    landed: firstDifference(after.bytes, source),
    hitsAfter: [hit(after), hit(after)],
  };
}
result.outcomes = outcomes;
result.stats = cache.stats();
result.munmap = munmapStatus();
result.status = memHooks.patchStatus();
result.level = memHooks.supportLevel();
result.sources = memHooks.eventSources();
try {
  new RegistrationCache(lo.pd).close();
  result.refused = "";
} catch (e) {
  result.refused = String(e);
}
result.mr = fabricMrCheck(); // libfabric's own cache, over the hooks
result.close = closeFabric();
result.closeMessage = fabricMessage();

// libfabric wrote back the bytes it found: the hooks' jumps.
const fresh = mapAnonymous(MiB);
result.restoredHits = [hit(fresh), hit(fresh), hit(fresh)];
result.statsRestored = cache.stats();
result.munmapRestored = munmapStatus();
result.levelRestored = memHooks.supportLevel();
result.sourcesRestored = memHooks.eventSources();
unmap(fresh);
cache.close();
lo[Symbol.dispose]();
result.finalize = memHooks.finalize();
report();
