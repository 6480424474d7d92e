/**
 * Benchmark of the memory hooks: the time munmap of a populated 4 KiB mapping takes without the
 * hooks, with the hooks installed and no callback, with a C callback registered that is not
 * interested in the range, and with a registration cache open whose regions lie elsewhere,
 * measured side by side in one process over alternating rounds; and the cost per event delivered
 * to a TypeScript callback by flush().
 *
 * Run: `deno run -A --no-check bench/hooks_munmap.ts` (after `deno task build`). Prints a
 * Markdown table.
 *
 * @module
 */
import { type MemHookCallback, memHooks, OPAL_SUCCESS } from "../hooks/mod.ts";
import { RegistrationCache } from "../cache/mod.ts";
import { createRegistrarDouble } from "../testing/mod.ts";
import { libc } from "../ffi/libc.ts";
import { addressOfPointer } from "../ffi/pointers.ts";
import { benchNative } from "./native_helpers.ts";

const ROUNDS = 21;
const BATCHES = 20;
const BATCH = 1000;
const UNMAPS = BATCHES * BATCH;

type Config =
  | "without hooks"
  | "hooks, no callback"
  | "hooks, uninterested C callback"
  | "an open registration cache, elsewhere";
const CONFIGS: Config[] = [
  "without hooks",
  "hooks, no callback",
  "hooks, uninterested C callback",
  "an open registration cache, elsewhere",
];

/** The cache of the last configuration: 100 cached regions, none over the unmapped pages. */
let cache: RegistrationCache | null = null;
const CACHED_BYTES = 200 * 4096;
const PROT_READ_WRITE = 0x3, MAP_PRIVATE_ANONYMOUS = 0x22;
const cachedBlock = libc().mmap(
  null,
  BigInt(CACHED_BYTES),
  PROT_READ_WRITE,
  MAP_PRIVATE_ANONYMOUS,
  -1,
  0n,
);
const cachedAddress = addressOfPointer(cachedBlock);
if (cachedBlock === null || cachedAddress === 0xffffffffffffffffn) throw new Error("mmap failed");

function dropCache(): void {
  cache?.close();
  cache = null;
}

function setUp(config: Config): void {
  benchNative.bench_unregister_uninterested();
  dropCache();
  if (config === "without hooks") {
    memHooks.finalize();
    return;
  }
  if (memHooks.init() !== OPAL_SUCCESS) throw new Error("the hooks could not be installed");
  if (config === "hooks, uninterested C callback") {
    // A handler that looks only at one unrelated page: it runs, and ignores the range.
    if (benchNative.bench_register_uninterested() !== OPAL_SUCCESS) {
      throw new Error("register failed");
    }
  }
  if (config === "an open registration cache, elsewhere") {
    cache = new RegistrationCache(createRegistrarDouble(), { merge: false });
    for (let i = 0; i < 100; i++) {
      cache.get({ address: cachedAddress + BigInt(i * 8192), length: 4096 }).release();
    }
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const samples = new Map<Config, number[]>(CONFIGS.map((c) => [c, []]));
const floor = new Map<Config, number[]>(CONFIGS.map((c) => [c, []]));
const FLOOR_CALLS = 200_000;
benchNative.bench_time_munmap(2, BATCH); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  // Rotate the order so that no configuration always runs first.
  for (let k = 0; k < CONFIGS.length; k++) {
    const config = CONFIGS[(round + k) % CONFIGS.length];
    setUp(config);
    const ns = Number(benchNative.bench_time_munmap(BATCHES, BATCH));
    if (ns === 0) throw new Error("mmap failed");
    samples.get(config)!.push(ns / UNMAPS);
    floor.get(config)!.push(
      Number(benchNative.bench_time_munmap_unmapped(FLOOR_CALLS)) / FLOOR_CALLS,
    );
  }
}
benchNative.bench_unregister_uninterested();
dropCache();

const base = median(samples.get("without hooks")!);
console.log(`munmap of a populated 4 KiB mapping, ${ROUNDS} alternating rounds of ${UNMAPS} calls`);
console.log("");
console.log("| configuration | median ns per munmap | min | max | ratio to without hooks |");
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const config of CONFIGS) {
  const s = samples.get(config)!;
  console.log(
    `| ${config} | ${median(s).toFixed(0)} | ${Math.min(...s).toFixed(0)} | ${
      Math.max(...s).toFixed(0)
    } | ${(median(s) / base).toFixed(3)} |`,
  );
}

const floorBase = median(floor.get("without hooks")!);
console.log("");
console.log(`munmap of a page that is not mapped (the system call's floor), ${FLOOR_CALLS} calls`);
console.log("");
console.log("| configuration | median ns per munmap | added ns | ratio |");
console.log("| --- | ---: | ---: | ---: |");
for (const config of CONFIGS) {
  const m = median(floor.get(config)!);
  console.log(
    `| ${config} | ${m.toFixed(1)} | ${(m - floorBase).toFixed(1)} | ${
      (m / floorBase).toFixed(3)
    } |`,
  );
}

// Cost per event delivered to TypeScript: releases queued by C, then one flush().
if (memHooks.init() !== OPAL_SUCCESS) throw new Error("the hooks could not be installed");
let delivered = 0;
const noop: MemHookCallback = () => delivered++;
memHooks.registerRelease(noop);
const perEvent: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  memHooks.flush();
  benchNative.bench_release_storm(4000n, 4000);
  delivered = 0;
  const start = performance.now();
  const n = memHooks.flush();
  const elapsed = performance.now() - start;
  if (n < 4000 || delivered < 4000) throw new Error(`only ${n} events delivered`);
  perEvent.push((elapsed * 1e6) / n);
}
memHooks.unregisterRelease(noop);
console.log("");
console.log("| TypeScript delivery | median ns per event | min | max |");
console.log("| --- | ---: | ---: | ---: |");
console.log(
  `| flush() of ~4000 queued releases to one callback | ${median(perEvent).toFixed(0)} | ${
    Math.min(...perEvent).toFixed(0)
  } | ${Math.max(...perEvent).toFixed(0)} |`,
);
