/**
 * fork() while another thread is inside the cache's release hook, holding a cache lock (it is
 * deregistering, which takes a while on a real device): the child must still be able to unmap
 * memory, which runs the hook and takes that lock.
 */
import assert from "node:assert/strict";
import { RegistrationCache } from "../../cache/mod.ts";
import { createRegistrarDouble } from "../../testing/mod.ts";
import { cString } from "../../ffi/pointers.ts";
import { mapAnonymous, type NativeBlock } from "../support/native_memory.ts";
import { probe } from "./hooks_probe.ts";

const OPAL_SUCCESS = 0;
const BLOCKS = 400;

Deno.test("fork while another thread deregisters inside a release hook: no deadlock in the child", async () => {
  // Each deregistration holds the cache lock for 2 ms, inside the releasing thread's hook.
  using cache = new RegistrationCache(createRegistrarDouble({ deregisterMicros: 2000 }), {
    merge: false,
  });
  const blocks: NativeBlock[] = [];
  for (let i = 0; i < BLOCKS; i++) {
    const b = mapAnonymous(4096);
    cache.get({ address: b.address, length: b.length }).release();
    blocks.push(b);
  }
  const worker = new Worker(new URL("../support/munmap_worker.ts", import.meta.url), {
    type: "module",
  });
  let started: () => void = () => {};
  let done: () => void = () => {};
  const isStarted = new Promise<void>((resolve) => started = resolve);
  const isDone = new Promise<void>((resolve) => done = resolve);
  worker.onmessage = (e) => e.data === "started" ? started() : done();
  assert.equal(probe.probe_register(), OPAL_SUCCESS);
  try {
    worker.postMessage({ addresses: blocks.map((b) => b.address), length: 4096, announce: true });
    await isStarted;
    // The worker spends about 0.8 s unmapping, almost all of it holding the cache lock. A child
    // that inherited the lock held exits 142 (its alarm) instead of 0.
    const statuses = Array.from({ length: 8 }, () => probe.probe_fork_child_unmaps());
    await isDone;
    assert.deepEqual(statuses, Array(8).fill(0));
  } finally {
    probe.probe_unregister();
    worker.terminate();
    createRegistrarDouble(); // deregistrations instant again
  }
  const s = cache.stats();
  assert.equal(s.deregistrationsInRelease, BLOCKS, JSON.stringify(s));
});

Deno.test("a forked child's munmap of cached memory deregisters nothing (the parent's regions)", () => {
  using cache = new RegistrationCache(createRegistrarDouble());
  const block = mapAnonymous(4096);
  cache.get({ address: block.address, length: block.length }).release();
  // The double's counters are read in the child through its library (loaded by the double).
  const path = new URL("../../build/libdeno_rdma_testing.so", import.meta.url).pathname;
  const deregistered = probe.probe_fork_child_munmap_deregistrations(
    block.pointer,
    BigInt(block.length),
    cString(path),
  );
  assert.equal(deregistered, 0, "the child deregistered the parent's region");
  // The parent's cache is untouched: the same bytes still hit.
  const again = cache.get({ address: block.address, length: block.length });
  assert.equal(again.hit, true, JSON.stringify(cache.stats()));
  again.release();
});
