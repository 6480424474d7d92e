/**
 * What the registration cache buys an application that sends from buffers it allocates, fills,
 * sends by RDMA WRITE and frees, reusing some of them. The same pattern (same seed) runs twice on
 * one device, in loopback between two queue pairs: once registering and deregistering around every
 * send, once through a RegistrationCache. It prints, per run: time, registrations, cache hits,
 * deregistrations done inside the memory release (munmap, through the memory hooks) versus
 * deferred to the next cache call, and VmPin right after the last release and at the end (after
 * trimming the heap and one more cache call).
 *
 *     deno run -A examples/cache_demo.ts [-d device] [-i port] [--rounds N] [--json]
 *
 * Buffers come from glibc's malloc (64 KiB to 1 MiB, with a fixed 64 KiB mmap threshold, so those
 * the heap cannot serve get their own mapping, which free() unmaps) or straight from mmap (1 and
 * 2 MiB, released with munmap). A new buffer often gets the address of one just released, which
 * the cache must not mistake for the old one. Releases by munmap are deregistered inside munmap;
 * those made inside free() are deferred to the next cache call, because free() may hold the
 * allocator's lock. Every write is checked byte for byte; the
 * program exits 1 on a mismatch.
 *
 * @module
 */
import {
  Access,
  type CompletionQueue,
  type MemoryRegion,
  openDevice,
  type ProtectionDomain,
  type QueuePair,
  type Registration,
  RegistrationCache,
  WcStatus,
  wcStatusName,
  WorkCompletions,
  WrOpcode,
} from "../mod.ts";
import {
  allocate,
  freeBlock,
  mapAnonymous,
  type NativeBlock,
  setMmapThreshold,
  trimHeap,
  vmPinKiB,
} from "./lib/libc_memory.ts";
import { DEVICE_PORT_FLAGS, type FlagSpec, integerOption, parseOptions } from "./lib/options.ts";
import { runMain } from "./lib/run_main.ts";

const USAGE = "cache_demo.ts [options]";
const FLAGS: Record<string, FlagSpec> = {
  ...DEVICE_PORT_FLAGS,
  rounds: { short: "n", type: "string", help: "<n>  sends per run (default 300)" },
  seed: { type: "string", help: "<n>  seed of the allocation pattern (default 1)" },
  json: { type: "boolean", help: "print one JSON object per run instead of the table" },
};

const KiB = 1024;
/** Sizes of malloc'ed buffers. */
const MALLOC_SIZES = [64 * KiB, 128 * KiB, 256 * KiB, 512 * KiB, 1024 * KiB];
/** Sizes of mapped buffers. */
const MAP_SIZES = [1024 * KiB, 2048 * KiB];
const LARGEST = 2048 * KiB;
/** Long-lived buffers the application keeps and refills. */
const POOL: { source: NativeBlock["source"]; size: number }[] = [
  { source: "malloc", size: 1024 * KiB },
  { source: "malloc", size: 256 * KiB },
  { source: "mmap", size: 2048 * KiB },
  { source: "mmap", size: 512 * KiB },
];

/** One run's figures. */
export interface RunReport {
  mode: "uncached" | "cached";
  sends: number;
  /** Distinct buffers (allocations) the run sent from. */
  buffers: number;
  /** Milliseconds spent allocating, registering, writing, releasing and freeing. */
  timeMs: number;
  /** Of which in registering, releasing or deregistering, and freeing (where the cache's hooks
   * may deregister). The rest is the writes themselves, and allocation. */
  registrationMs: number;
  registrations: number;
  hits: number;
  /** Deregistrations the application made itself (uncached) or at cache close. */
  explicitDeregistrations: number;
  deregistrationsInRelease: number;
  deregistrationsDeferred: number;
  /** VmPin (KiB) right after the last buffer was freed. */
  vmPinKiBAfterFrees: number;
  /** VmPin (KiB) after that and one more cache call (stats), before the cache is closed. */
  vmPinKiBAtEnd: number;
  /** VmPin (KiB) before the run started. */
  vmPinKiBBefore: number;
}

/** A small deterministic generator (mulberry32), so both runs see the same pattern. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Registers a source, hands out an sge, and gives it back after the write: with or without cache. */
interface Registrar {
  acquire(block: NativeBlock, length: number): { address: bigint; length: number; lkey: number };
  releaseLast(): void;
}

interface Loopback {
  pd: ProtectionDomain;
  writer: QueuePair;
  target: QueuePair;
  cq: CompletionQueue;
}

async function runPattern(
  lo: Loopback,
  mode: RunReport["mode"],
  rounds: number,
  seed: number,
): Promise<RunReport> {
  const random = generator(seed);
  const destination = new Uint8Array(LARGEST);
  const destinationMr = lo.pd.registerMemory(destination, {
    access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
  });
  const vmPinKiBBefore = vmPinKiB();
  const cache = mode === "cached" ? new RegistrationCache(lo.pd, { merge: false }) : null;
  let registrations = 0;
  let explicitDeregistrations = 0;
  let heldMr: MemoryRegion | null = null;
  let heldRegistration: Registration | null = null;
  const registrar: Registrar = cache
    ? {
      acquire(block, length) {
        heldRegistration = cache.get({ address: block.address, length });
        return heldRegistration;
      },
      releaseLast() {
        heldRegistration!.release();
      },
    }
    : {
      acquire(block, length) {
        heldMr = lo.pd.registerMemory({ address: block.address, length });
        registrations++;
        return { address: heldMr.address, length, lkey: heldMr.lkey };
      },
      releaseLast() {
        heldMr!.deregister();
        explicitDeregistrations++;
      },
    };

  const wcs = new WorkCompletions(1);
  let timed = 0;
  let registering = 0;
  let buffers = 0;
  const send = async (block: NativeBlock, round: number) => {
    const length = block.length;
    // The application's data: different in every round, so a stale write would show.
    const value = (round * 37 + 11) % 251;
    block.bytes.fill(value);
    block.bytes[length - 1] = (value + 1) % 251;
    const t0 = performance.now();
    const sge = registrar.acquire(block, length);
    const t1 = performance.now();
    lo.writer.postSend({
      wrId: round,
      opcode: WrOpcode.RDMA_WRITE,
      sge,
      remoteAddress: destinationMr.address,
      rkey: destinationMr.rkey,
      signaled: true,
    });
    if (await lo.cq.pollOrWait(wcs, { timeoutMs: 10_000 }) !== 1) {
      throw new Error(`no completion for write ${round} within 10 s`);
    }
    const t2 = performance.now();
    registrar.releaseLast();
    const t3 = performance.now();
    timed += t3 - t0;
    registering += (t1 - t0) + (t3 - t2);
    if (wcs.status(0) !== WcStatus.SUCCESS) {
      throw new Error(`write ${round} completed with ${wcStatusName(wcs.status(0))}`);
    }
    const bad = firstDifference(destination.subarray(0, length), block.bytes);
    if (bad >= 0) throw new DataMismatch(`${mode} run, write ${round}: byte ${bad} differs`);
  };
  const timedAllocate = (source: NativeBlock["source"], size: number) => {
    const t0 = performance.now();
    const block = source === "malloc" ? allocate(size) : mapAnonymous(size);
    timed += performance.now() - t0;
    buffers++;
    return block;
  };
  const timedFree = (block: NativeBlock) => {
    const t0 = performance.now();
    freeBlock(block); // with the cache: munmap deregisters in here, free() defers
    const took = performance.now() - t0;
    timed += took;
    registering += took;
  };

  const pool = POOL.map((p) => timedAllocate(p.source, p.size));
  for (let round = 0; round < rounds; round++) {
    const pick = random();
    if (pick < 0.5) {
      await send(pool[Math.floor(random() * pool.length)], round);
    } else {
      const block = random() < 0.6
        ? timedAllocate("malloc", MALLOC_SIZES[Math.floor(random() * MALLOC_SIZES.length)])
        : timedAllocate("mmap", MAP_SIZES[Math.floor(random() * MAP_SIZES.length)]);
      await send(block, round);
      if (pick < 0.65 && round + 1 < rounds) await send(block, ++round); // sent twice
      timedFree(block);
    }
  }
  for (const block of pool) timedFree(block);
  const vmPinKiBAfterFrees = vmPinKiB();
  // Small blocks may have come from the heap rather than their own mapping: free() kept them
  // there (still mapped, so rightly still registered). Trimming gives them back to the system.
  trimHeap();
  const stats = cache?.stats(); // a cache call: deferred deregistrations happen here
  const vmPinKiBAtEnd = vmPinKiB();
  cache?.close();
  destinationMr.deregister();
  return {
    mode,
    sends: rounds,
    buffers,
    timeMs: timed,
    registrationMs: registering,
    registrations: stats ? stats.registrations : registrations,
    hits: stats ? stats.hits : 0,
    explicitDeregistrations: stats ? stats.regions : explicitDeregistrations,
    deregistrationsInRelease: stats ? stats.deregistrationsInRelease : 0,
    deregistrationsDeferred: stats ? stats.deregistrationsDeferred : 0,
    vmPinKiBAfterFrees,
    vmPinKiBAtEnd,
    vmPinKiBBefore,
  };
}

/** A write landed wrong: the program exits 1. */
class DataMismatch extends Error {}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  // Compare 8 bytes at a time where both views are aligned, then the tail byte by byte.
  const words = (a.byteOffset % 8 === 0 && b.byteOffset % 8 === 0) ? a.length >>> 3 : 0;
  const wa = new BigUint64Array(a.buffer, a.byteOffset, words);
  const wb = new BigUint64Array(b.buffer, b.byteOffset, words);
  for (let i = 0; i < words; i++) {
    if (wa[i] !== wb[i]) {
      for (let j = i * 8; j < i * 8 + 8; j++) if (a[j] !== b[j]) return j;
    }
  }
  for (let i = words * 8; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** The table both runs are printed in. */
export function reportTable(reports: RunReport[]): string {
  const head = [
    "run",
    "time [ms]",
    "of which registration [ms]",
    "registrations",
    "hits",
    "dereg in release",
    "dereg deferred",
    "dereg explicit/close",
    "VmPin after frees [kB]",
    "VmPin at end [kB]",
  ];
  const rows = reports.map((r) => [
    r.mode,
    r.timeMs.toFixed(1),
    r.registrationMs.toFixed(1),
    String(r.registrations),
    String(r.hits),
    String(r.deregistrationsInRelease),
    String(r.deregistrationsDeferred),
    String(r.explicitDeregistrations),
    String(r.vmPinKiBAfterFrees - r.vmPinKiBBefore),
    String(r.vmPinKiBAtEnd - r.vmPinKiBBefore),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ");
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

async function main(): Promise<number> {
  const parsed = parseOptions(Deno.args, USAGE, FLAGS, 0);
  const rounds = integerOption(parsed, "rounds", 300, 1, 1_000_000, USAGE, FLAGS);
  const seed = integerOption(parsed, "seed", 1, 0, 2 ** 31 - 1, USAGE, FLAGS);
  const json = parsed.values.json === true;
  const port = integerOption(parsed, "ib-port", 1, 1, 255, USAGE, FLAGS);
  setMmapThreshold(64 * KiB);

  using ctx = openDevice(parsed.values["ib-dev"] as string | undefined);
  using pd = ctx.allocProtectionDomain();
  using cq = ctx.createCompletionQueue({ channel: true });
  using writer = pd.createQueuePair({ type: "RC", sendCq: cq, signalAll: false });
  using target = pd.createQueuePair({ type: "RC", sendCq: cq, signalAll: false });
  writer.connect(target.localInfo({ port }), { port });
  target.connect(writer.localInfo({ port }), {
    port,
    access: Access.LOCAL_WRITE | Access.REMOTE_WRITE,
  });
  const lo = { pd, writer, target, cq };

  if (!json) {
    console.log(
      `${ctx.deviceName}: ${rounds} RDMA WRITEs from buffers of 64 KiB to 2 MiB (malloc and ` +
        `mmap; ${POOL.length} kept and refilled, the others freed after one or two sends)`,
    );
  }
  const reports: RunReport[] = [];
  try {
    for (const mode of ["uncached", "cached"] as const) {
      const report = await runPattern(lo, mode, rounds, seed);
      reports.push(report);
      if (json) console.log(JSON.stringify(report));
    }
  } catch (e) {
    if (e instanceof DataMismatch) {
      console.error(`data check failed: ${e.message}`);
      return 1;
    }
    throw e;
  }
  if (!json) {
    console.log("");
    console.log(reportTable(reports));
    const [plain, cached] = reports;
    console.log("");
    console.log(
      `with the cache: ${(plain.timeMs / cached.timeMs).toFixed(2)}x faster, ` +
        `${cached.registrations} registrations for ${cached.buffers} buffers ` +
        `(${plain.registrations} without); every write verified.`,
    );
  }
  return 0;
}

if (import.meta.main) Deno.exit(await runMain(main));
