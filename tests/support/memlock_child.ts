/**
 * Test support: run in a child process whose locked-memory limit is low and that lacks
 * CAP_IPC_LOCK (root ignores the limit otherwise). Exercises the cache's evict-and-retry path on
 * ENOMEM and the error when nothing can be evicted; prints one JSON line with what happened.
 *
 *     sh -c 'ulimit -l 4096; exec setpriv --bounding-set=-ipc_lock --inh-caps=-ipc_lock \
 *       deno run -A --no-check tests/support/memlock_child.ts rxe0'
 *
 * @module
 */
import { RegistrationCache } from "../../cache/mod.ts";
import { mapAnonymous, unmap } from "./native_memory.ts";
import { openDevice } from "../../verbs/mod.ts";

const MiB = 1 << 20;
const ctx = openDevice(Deno.args[0] ?? "rxe0");
const pd = ctx.allocProtectionDomain();
const cache = new RegistrationCache(pd, { maxBytes: Infinity, merge: false });
const blocks = [0, 1, 2, 3, 4].map(() => mapAnonymous(2 * MiB));
const region = (i: number, length: number) => ({ address: blocks[i].address, length });
const out: Record<string, unknown> = {};
for (let i = 0; i < 3; i++) cache.get(region(i, MiB)).release(); // 3 MiB idle
const retried = cache.get(region(3, 2 * MiB)); // over 4 MiB: evict idle, retry
out.retryHit = retried.hit;
out.afterRetry = cache.stats();
const held = cache.get(region(0, MiB)); // 3 MiB held now
try {
  cache.get(region(4, 2 * MiB));
  out.error = null;
} catch (e) {
  out.error = { name: (e as Error).name, code: (e as { code?: string }).code, message: String(e) };
}
held.release();
retried.release();
out.final = cache.stats();
cache.close();
for (const b of blocks) unmap(b);
pd.close();
ctx.close();
console.log(JSON.stringify(out));
