/**
 * Run by hooks_coexist.test.ts in a process of its own: UCX's ucm (Debian's libucx0) and the
 * registration cache in one process, in the order given as the first argument ("ours-first": the
 * cache opens, then ucm patches libc over the hooks; "ucm-first": ucm patches first). Then every
 * kind of release of cached memory, each followed by a get of new memory at the same address;
 * prints what each get returned and who saw each release, as JSON. "hand" and "opal": see
 * hooks_coexist_hand.ts and hooks_coexist_opal.ts.
 *
 * @module
 */
import { RegistrationCache } from "../../cache/mod.ts";
import { memHooks } from "../../hooks/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { pointerAt } from "../../ffi/pointers.ts";
import type { NativeBlock } from "../support/native_memory.ts";
import { prepareReleases, RELEASE_CASES } from "../support/release_cases.ts";
import { probe, probeFind } from "./hooks_probe.ts";

const order = Deno.args[0];
if (order === "hand" || order === "opal") {
  await import(order === "hand" ? "./hooks_coexist_hand.ts" : "./hooks_coexist_opal.ts");
  Deno.exit(0);
}
if (order !== "ours-first" && order !== "ucm-first") throw new Error(`bad order ${order}`);

const result: Record<string, unknown> = { order };
if (order === "ucm-first") result.ucmStart = probe.probe_ucm_start();
if (result.ucmStart === -1) {
  console.log(JSON.stringify({ ...result, skipped: "libucx0 is not installed" }));
  Deno.exit(0);
}

const double = createRegistrarDouble();
const cache = new RegistrationCache(double);
probe.probe_register(); // a C release callback of our own: sees what the hooks dispatch
probe.probe_record_watched_only(1);

const target = (b: NativeBlock) => ({ address: b.address, length: b.length });

/** Cached and hit twice (the second time without a native call). */
function cached(b: NativeBlock): boolean {
  b.bytes.fill(0x5a);
  cache.get(target(b)).release();
  const second = cache.get(target(b));
  second.release();
  const third = cache.get(target(b));
  third.release();
  return second.hit && third.hit;
}

const CASES = RELEASE_CASES;
// Every block is cached first (before ucm arrives in "ours-first"); `release` frees it later and
// returns new memory at the same address.
const prepared = prepareReleases(cached);

if (order === "ours-first") {
  result.statusBefore = memHooks.patchStatus();
  result.ucmStart = probe.probe_ucm_start();
}
result.statusAfter = memHooks.patchStatus();

const outcomes: Record<string, unknown> = {};
for (const name of CASES) {
  const { block, wasCached, release } = prepared[name];
  probe.probe_reset();
  probe.probe_record_watched_only(1);
  probe.probe_watch(block.pointer, BigInt(block.length), 0x5a);
  probe.probe_ucm_watch(block.pointer);
  const ucmBefore = Number(probe.probe_ucm_seen());
  const after = release();
  const sameAddress = after.address === block.address;
  const first = cache.get(target(after));
  first.release();
  const second = cache.get(target(after));
  second.release();
  const third = cache.get(target(after));
  third.release();
  outcomes[name] = {
    wasCached,
    sameAddress,
    hitAfterRelease: first.hit,
    hitAgain: second.hit && third.hit,
    ucmSaw: Number(probe.probe_ucm_watch_seen()),
    ucmEvents: Number(probe.probe_ucm_seen()) - ucmBefore,
    oursSaw: probeFind(pointerAt(block.address), 0) !== undefined,
  };
}
probe.probe_ucm_watch(null);
result.outcomes = outcomes;
result.stats = cache.stats();
memHooks.init(); // this isolate's view of the hooks the cache installed
result.level = memHooks.supportLevel();
result.sources = memHooks.eventSources();
cache.close();
probe.probe_unregister();
result.finalize = memHooks.finalize();
result.statusFinal = memHooks.patchStatus();
console.log(JSON.stringify(result, (_k, v) => typeof v === "bigint" ? String(v) : v));
