/**
 * Imported by hooks_coexist_child.ts (argument "hand") in a process of its own: with a cache open
 * and a region cached, a foreign jump is written by hand over the hooks' munmap entry (a library
 * whose events cannot be imported); the memory is unmapped and mapped again at the same address.
 * Then the jump is taken back out. Prints what the gets returned and the stats, as JSON.
 *
 * @module
 */
import { RegistrationCache } from "../../cache/mod.ts";
import { memHooks } from "../../hooks/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { mapAnonymous, unmap } from "../support/native_memory.ts";
import { probe } from "./hooks_probe.ts";

const MiB = 1024 * 1024;
const double = createRegistrarDouble();
const cache = new RegistrationCache(double);
memHooks.init();
const block = mapAnonymous(MiB);
const target = () => ({ address: block.address, length: MiB });
const hits = () =>
  [0, 1, 2].map(() => {
    const r = cache.get(target());
    r.release();
    return r.hit;
  });

const result: Record<string, unknown> = { cachedHits: hits() };
result.levelBefore = memHooks.supportLevel();
result.patched = probe.probe_hand_patch_munmap();
unmap(block);
mapAnonymous(MiB, block.address);
result.handCalls = probe.probe_hand_calls();
result.blindHits = hits();
result.statsBlind = cache.stats();
result.levelBlind = memHooks.supportLevel();
result.sourcesBlind = memHooks.eventSources();
result.munmapBlind = memHooks.patchStatus().find((p) => p.name === "munmap");
try {
  new RegistrationCache(double).close();
  result.refused = "";
} catch (e) {
  result.refused = String(e);
}
result.unpatched = probe.probe_hand_unpatch_munmap();
result.restoredHits = hits();
result.statsRestored = cache.stats();
result.levelRestored = memHooks.supportLevel();
result.sourcesRestored = memHooks.eventSources();
result.munmapRestored = memHooks.patchStatus().find((p) => p.name === "munmap");
cache.close();
console.log(JSON.stringify(result));
