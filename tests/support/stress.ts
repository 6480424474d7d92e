/**
 * Test support: the cache stress test. Slots of native memory of random sizes are looked up,
 * released, and replaced (munmap + mmap at the same address, mmap over them, madvise DONTNEED of
 * a part) at random, by this thread and, for a share of the replacements, by a second thread (a
 * Worker, so the release hooks run there). After a slot's memory was replaced, the next lookup of
 * it must miss: a hit then is a stale hit.
 *
 * @module
 */
import type { RegistrationCache } from "../../cache/mod.ts";
import {
  MADV_DONTNEED,
  madvise,
  mapAnonymous,
  mapOver,
  type NativeBlock,
  unmap,
} from "./native_memory.ts";

export interface StressOptions {
  cycles: number;
  slots?: number;
  /** Slot sizes are 1..maxPages pages. */
  maxPages?: number;
  seed?: number;
  /** Access bits for the lookups. */
  access?: number;
  /** Called now and then with a freshly looked-up slot, e.g. to RDMA into it. */
  check?: (block: NativeBlock, registration: ReturnType<RegistrationCache["get"]>) => Promise<void>;
  checkEvery?: number;
}

export interface StressResult {
  cycles: number;
  gets: number;
  staleHits: number;
  replacedHere: number;
  replacedByWorker: number;
  checks: number;
}

const PAGE = 4096;

/** Small deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function runStress(
  cache: RegistrationCache,
  options: StressOptions,
): Promise<StressResult> {
  const slots = options.slots ?? 32;
  const maxPages = options.maxPages ?? 16;
  const next = random(options.seed ?? 1);
  const checkEvery = options.checkEvery ?? 1000;
  const state = new Int32Array(new SharedArrayBuffer(4 * (2 + slots)));
  const addresses = new Float64Array(new SharedArrayBuffer(8 * slots));
  const lengths = new Float64Array(new SharedArrayBuffer(8 * slots));
  const blocks: NativeBlock[] = [];
  const mustMiss: boolean[] = [];
  for (let i = 0; i < slots; i++) {
    const b = mapAnonymous(PAGE * (1 + Math.floor(next() * maxPages)));
    blocks.push(b);
    addresses[i] = Number(b.address);
    lengths[i] = b.length;
    mustMiss.push(true);
  }
  const worker = new Worker(new URL("./stress_worker.ts", import.meta.url), { type: "module" });
  let ready: () => void = () => {};
  let stopped: () => void = () => {};
  const isReady = new Promise<void>((resolve) => ready = resolve);
  const isStopped = new Promise<void>((resolve) => stopped = resolve);
  worker.onmessage = (e) => e.data === "ready" ? ready() : stopped();
  worker.postMessage({ state: state.buffer, addresses: addresses.buffer, lengths: lengths.buffer });
  await isReady;
  const result: StressResult = {
    cycles: 0,
    gets: 0,
    staleHits: 0,
    replacedHere: 0,
    replacedByWorker: 0,
    checks: 0,
  };
  try {
    while (result.cycles < options.cycles) {
      const i = Math.floor(next() * slots);
      const slotState = Atomics.load(state, 2 + i);
      if (slotState === 1) continue; // the worker owns it now
      result.cycles++;
      if (slotState === 2) {
        Atomics.store(state, 2 + i, 0);
        mustMiss[i] = true;
        result.replacedByWorker++;
      }
      const b = blocks[i];
      const roll = next();
      if (roll < 0.7) {
        const r = cache.get({ address: b.address, length: b.length }, options.access);
        result.gets++;
        if (r.hit && mustMiss[i]) result.staleHits++;
        mustMiss[i] = false;
        if (options.check && result.gets % checkEvery === 0) {
          await options.check(b, r);
          result.checks++;
        }
        r.release();
      } else if (roll < 0.8) {
        unmap(b); // munmap, then new memory at the same address
        try {
          blocks[i] = mapAnonymous(b.length, b.address);
        } catch {
          blocks[i] = mapAnonymous(b.length); // another thread took the hole meanwhile
          addresses[i] = Number(blocks[i].address);
        }
        mustMiss[i] = true;
        result.replacedHere++;
      } else if (roll < 0.87) {
        blocks[i] = mapOver(b);
        mustMiss[i] = true;
        result.replacedHere++;
      } else if (roll < 0.93) {
        const page = Math.floor(next() * (b.length / PAGE));
        madvise(b, page * PAGE, PAGE, MADV_DONTNEED);
        mustMiss[i] = true;
        result.replacedHere++;
      } else {
        Atomics.store(state, 2 + i, 1);
        Atomics.add(state, 0, 1);
        Atomics.notify(state, 0);
      }
    }
  } finally {
    Atomics.store(state, 1, 1);
    Atomics.add(state, 0, 1);
    Atomics.notify(state, 0);
    await isStopped;
    worker.terminate();
    for (const b of blocks) unmap(b);
  }
  return result;
}
