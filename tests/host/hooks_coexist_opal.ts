/**
 * Imported by hooks_coexist_child.ts (argument "opal") in a process of its own: a test double of
 * another library with Open MPI's memory hooks API (tests/native/opal_double.c) patches shmdt
 * before the cache opens. The cache must open anyway, with the double's events imported: a cached
 * shared memory page detached and attached again at the same address never hits. Prints what it
 * saw as JSON.
 *
 * @module
 */
import { openNativeLibrary } from "../../ffi/loader.ts";
import { addressOfPointer, pointerAt } from "../../ffi/pointers.ts";
import { RegistrationCache } from "../../cache/mod.ts";
import { memHooks } from "../../hooks/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";

const opal = openNativeLibrary("libdeno_rdma_opal_double.so", {
  opal_double_patch_shmdt: { parameters: [], result: "i32" },
  opal_double_registered: { parameters: [], result: "i32" },
  opal_double_hook_calls: { parameters: [], result: "i32" },
  opal_double_attach: { parameters: ["pointer"], result: "pointer" },
  opal_double_detach: { parameters: ["pointer"], result: "i32" },
}).symbols;

const PAGE = 4096;
const result: Record<string, unknown> = { patched: opal.opal_double_patch_shmdt() };
const cache = new RegistrationCache(createRegistrarDouble());
memHooks.init();
result.registered = opal.opal_double_registered();
result.sources = memHooks.eventSources();
result.shmdt = memHooks.patchStatus().find((p) => p.name === "shmdt");
const page = opal.opal_double_attach(null);
const address = addressOfPointer(page);
const get = () => {
  const r = cache.get({ address, length: PAGE });
  r.release();
  return r.hit;
};
result.cachedHits = [get(), get(), get()];
result.detached = opal.opal_double_detach(page);
result.hookCalls = opal.opal_double_hook_calls();
result.sameAddress = addressOfPointer(opal.opal_double_attach(pointerAt(address))) === address;
result.afterHits = [get(), get(), get()];
const stats = cache.stats();
result.stats = { interceptionLosses: stats.interceptionLosses, eventSources: stats.eventSources };
cache.close();
result.finalize = memHooks.finalize();
result.registeredAfter = opal.opal_double_registered();
console.log(JSON.stringify(result));
