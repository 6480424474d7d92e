/**
 * Registration cache benchmarks; prints Markdown tables.
 *
 *     deno run -A --v8-flags=--expose-gc bench/cache_bench.ts host
 *     deno task softroce -- deno run -A bench/cache_bench.ts rxe [device]
 *
 * host: the hit path (get + release) with 10,000 and 1,000,000 cached regions, registered through
 * the registrar double (only the lookup is measured, no device needed): a hot region looked up
 * again and again, and regions drawn uniformly from all of them (every lookup walks cold memory).
 * bench/ucx_comparison.ts times the same patterns beside UCX's cache.
 * rxe: on a real device, a 64 KiB buffer reused 10,000 times through the cache against
 * ibv_reg_mr + ibv_dereg_mr each time, and the miss path (every get registers, every eviction
 * deregisters) against the same raw pair, in adjacent rounds of alternating order, compared
 * round by round so drift hits both alike.
 *
 * Each figure is the median over samples of the mean time per operation in one sample.
 *
 * @module
 */
import { RegistrationCache } from "../cache/mod.ts";
import { createRegistrarDouble } from "../testing/mod.ts";
import { addressOf, pointerOf } from "../ffi/pointers.ts";
import { rcacheNative } from "../ffi/rcache.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { openDevice } from "../verbs/mod.ts";

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Median ns per operation over `samples` samples of `ops` calls of `run(i)`, after half a second
 * of unmeasured calls (so V8's optimizing compiler has finished with them, and the caches are warm).
 */
export function nsPerOp(run: (i: number) => void, ops: number, samples: number): number {
  const warmUntil = performance.now() + 500;
  while (performance.now() < warmUntil) for (let i = 0; i < ops; i++) run(i);
  const results: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t0 = performance.now();
    for (let i = 0; i < ops; i++) run(i);
    results.push(((performance.now() - t0) * 1e6) / ops);
  }
  return median(results);
}

/** Size of the table of random draws; walked once across all samples, so every region is drawn. */
export const ORDER_SIZE = 1 << 21;

/**
 * Region indexes drawn uniformly from `count` by `state = state * 1103515245 + 12345 (mod 2^32)`
 * from 12345, the generator bench/ucx/rcache_bench.c uses for UCX's cache.
 */
export function randomOrder(count: number): Uint32Array {
  const order = new Uint32Array(ORDER_SIZE);
  let state = 12345;
  for (let i = 0; i < order.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    order[i] = state % count;
  }
  return order;
}

/** A cache of `count` regions through the registrar double, and its regions' targets. */
export function filledCache(count: number): {
  cache: RegistrationCache;
  targets: { address: bigint; length: number }[];
} {
  const cache = new RegistrationCache(createRegistrarDouble(), {
    maxRegions: Infinity,
    maxBytes: Infinity,
    merge: false,
  });
  // Fake, never-mapped addresses 8 KiB apart (the double does not touch them).
  const targets = Array.from({ length: count }, (_, i) => ({
    address: 0x1000_0000n + BigInt(i) * 8192n,
    length: 4096,
  }));
  for (const t of targets) cache.get(t).release();
  return { cache, targets };
}

/**
 * Median ns per get + release on a cache of `count` regions: the same region again and again,
 * and regions drawn uniformly from all `count` (every lookup walks cold memory).
 */
export function hitCosts(count: number, samples: number): { hotNs: number; randomNs: number } {
  const filled = filledCache(count);
  using cache = filled.cache;
  const targets = filled.targets;
  const order = randomOrder(count);
  const hot = targets[count >> 1];
  const hotNs = nsPerOp(() => cache.get(hot).release(), 20_000, samples);
  let next = 0;
  const randomNs = nsPerOp(
    () => cache.get(targets[order[next++ & (ORDER_SIZE - 1)]]).release(),
    20_000,
    samples,
  );
  const s = cache.stats();
  if (s.regions !== count || s.misses !== count) {
    throw new Error(`benchmark set-up lost regions: ${JSON.stringify(s)}`);
  }
  return { hotNs, randomNs };
}

/** Median ns per get that misses: two regions alternately through a cache that keeps one. */
export function missCost(samples: number): number {
  using cache = new RegistrationCache(createRegistrarDouble(), { maxRegions: 1, merge: false });
  const targets = [0, 1].map((i) => ({ address: 0x1000_0000n + BigInt(i) * 8192n, length: 4096 }));
  const ns = nsPerOp((i) => cache.get(targets[i & 1]).release(), 20_000, samples);
  if (cache.stats().hits !== 0) throw new Error("the miss benchmark hit the cache");
  return ns;
}

function hostHitPath(): string[] {
  const rows: string[] = [];
  const native = rcacheNative();
  rows.push(
    `| empty FFI call (baseline) | - | ${
      nsPerOp(() => native.rcache_hooks_status(), 100_000, 31).toFixed(1)
    } ns |`,
  );
  // One unmeasured pass first, so every path of get() (miss, native hit, hit without a call) has
  // run before anything is timed and both sizes meet the code V8 settles on; without it, whichever
  // size is measured first runs earlier code, about 10 ns slower on this machine.
  hitCosts(10_000, 15);
  for (const count of [10_000, 1_000_000]) {
    const { hotNs, randomNs } = hitCosts(count, 51);
    rows.push(
      `| hit, same region each time | ${count.toLocaleString("en")} | ${hotNs.toFixed(1)} ns |`,
    );
    rows.push(
      `| hit, uniformly random region | ${count.toLocaleString("en")} | ${
        randomNs.toFixed(1)
      } ns |`,
    );
  }
  return [
    "| Hit path (get + release), registrar double | Cached regions | Median per op |",
    "| --- | ---: | ---: |",
    ...rows,
  ];
}

function rxe(device: string): string[] {
  using ctx = openDevice(device);
  using pd = ctx.allocProtectionDomain();
  const shim = verbsNative();
  const KiB64 = 64 * 1024;
  const buffer = new Uint8Array(KiB64);
  const reuse = 10_000;
  /** ibv_reg_mr + ibv_dereg_mr straight through the shim: no JavaScript objects. */
  const rawPair = (b: Uint8Array) => {
    const mr = shim.drv_reg_mr(pd.pointer, pointerOf(b), BigInt(b.byteLength), 1);
    if (mr === null || shim.drv_dereg_mr(mr) !== 0) throw new Error("raw registration failed");
  };

  // Reuse of one 64 KiB buffer: cached vs registering every time. Each loop runs unmeasured for
  // at least three runs and two seconds (under emulation V8 takes that long to optimize it), then
  // five times: the median counts.
  using cache = new RegistrationCache(pd);
  const target = {
    address: addressOf(buffer),
    length: KiB64,
  };
  const loop = (body: () => void) => {
    const warmUntil = performance.now() + 2000;
    for (let run = 0; run < 3 || performance.now() < warmUntil; run++) {
      for (let i = 0; i < reuse; i++) body();
    }
    const runs: number[] = [];
    for (let run = 0; run < 5; run++) {
      const t = performance.now();
      for (let i = 0; i < reuse; i++) body();
      runs.push(((performance.now() - t) * 1000) / reuse);
    }
    return median(runs);
  };
  const uncachedUs = loop(() => rawPair(buffer));
  const cachedUs = loop(() => cache.get(buffer).release());
  const cachedAddressUs = loop(() => cache.get(target).release());

  // Miss path: alternate two buffers through a cache that keeps one region, so every get
  // registers and evicts (deregisters) the other; vs the raw pair on the same buffers.
  const buffers = [new Uint8Array(KiB64), new Uint8Array(KiB64)];
  using missCache = new RegistrationCache(pd, { maxRegions: 1, merge: false });
  // Rounds of each kind back to back, in alternating order, after unmeasured ones (the JIT): the
  // guest's speed drifts by more than the 5% asked for, so each round's miss/raw ratio is taken
  // against the raw round next to it, and the median ratio is reported.
  const rounds = 60, warmRounds = 5, perRound = 50;
  const raw: number[] = [], miss: number[] = [], api: number[] = [];
  const missRatios: number[] = [], apiRatios: number[] = [];
  const time = (body: (i: number) => void) => {
    const t = performance.now();
    for (let i = 0; i < perRound; i++) body(i);
    return ((performance.now() - t) * 1000) / perRound;
  };
  const rawRound = () => time((i) => rawPair(buffers[i & 1]));
  const missRound = () => time((i) => missCache.get(buffers[i & 1]).release());
  const apiRound = () => time((i) => pd.registerMemory(buffers[i & 1]).close());
  for (let r = -warmRounds; r < rounds; r++) {
    let rawUs: number, missUs: number;
    if (r % 2 === 0) {
      rawUs = rawRound();
      missUs = missRound();
    } else {
      missUs = missRound();
      rawUs = rawRound();
    }
    const apiUs = apiRound();
    if (r < 0) continue;
    raw.push(rawUs);
    miss.push(missUs);
    api.push(apiUs);
    missRatios.push(missUs / rawUs);
    apiRatios.push(apiUs / rawUs);
  }
  const s = missCache.stats();
  if (s.hits !== 0) throw new Error(`miss benchmark hit the cache: ${JSON.stringify(s)}`);
  const rawUs = median(raw), missUs = median(miss), apiUs = median(api);
  const missOver = (median(missRatios) - 1) * 100, apiOver = (median(apiRatios) - 1) * 100;
  const reuseText = `64 KiB reused x${reuse.toLocaleString("en")}`;
  return [
    `| On ${device} | Per operation | Ratio |`,
    "| --- | ---: | ---: |",
    `| ${reuseText}: ibv_reg_mr + ibv_dereg_mr each time | ${uncachedUs.toFixed(2)} us | 1 |`,
    `| ${reuseText}: cache get + release (Uint8Array) | ${cachedUs.toFixed(3)} us | ${
      (uncachedUs / cachedUs).toFixed(1)
    }x faster |`,
    `| ${reuseText}: cache get + release ({address, length}) | ${cachedAddressUs.toFixed(3)} us | ${
      (uncachedUs / cachedAddressUs).toFixed(1)
    }x faster |`,
    `| 64 KiB miss: ibv_reg_mr + ibv_dereg_mr (median of ${rounds} rounds) | ${
      rawUs.toFixed(2)
    } us | 1 |`,
    `| 64 KiB miss: cache get (registers) + eviction (deregisters) | ${missUs.toFixed(2)} us | ${
      missOver.toFixed(1)
    }% over raw (median of per-round ratios) |`,
    `| 64 KiB: ProtectionDomain.registerMemory + close (for reference) | ${apiUs.toFixed(2)} us | ${
      apiOver.toFixed(1)
    }% over raw (likewise) |`,
  ];
}

if (import.meta.main) {
  const [mode = "host", device = "rxe0"] = Deno.args;
  if (mode !== "host" && mode !== "rxe") {
    console.error("usage: cache_bench.ts host | rxe [device]");
    Deno.exit(2);
  }
  const lines = mode === "host" ? hostHitPath() : rxe(device);
  console.log(lines.join("\n"));
}
