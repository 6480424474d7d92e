/**
 * `deno task bench`: the perftest comparison of docs/BENCHMARKS.md, in one soft-RoCE guest run
 * (or on this machine's RDMA devices with `--here`). Side by side on the same devices, host A
 * writing to host B:
 *
 * - write_bw.ts vs `ib_write_bw` at 4 KiB and 64 KiB (average bandwidth; target: ours >= 0.9x),
 * - write_lat.ts vs `ib_write_lat` at 64 B (typical latency; target: ours <= 1.2x),
 * - cache_demo.ts with the registration cache vs without (time ratio),
 * - on this machine, not in the guest: the registration cache beside UCX's `ucs_rcache` on the
 *   same access patterns (bench/ucx_comparison.ts, `--reps` + 1 alternating runs).
 *
 * Each pair runs `--reps` times (default 3), alternating ours and theirs, and the table shows the
 * median. Prints the machine, every run's figures, and a markdown table to paste.
 *
 * Options: `--here`, `--reps N`, `--quick` (fewer iterations, for trying it out), `--only LIST`
 * (comma-separated parts to run: `bw`, `lat`, `cache`, `ucx`; default all four).
 *
 * @module
 */
import { numberArgument } from "./args.ts";
import { ensureBuilt, ROOT } from "./build.ts";
import { runInGuest } from "../softroce/run.ts";

interface Host {
  netns: string;
  address: string;
  device: string;
  gidIndex: string;
}

const env = (name: string, fallback: string) => Deno.env.get(name) ?? fallback;
const HOST_A: Host = {
  netns: "hostA",
  address: env("DENO_RDMA_HOST_A", "10.10.0.1"),
  device: env("DENO_RDMA_DEVICE_A", "rxeA"),
  gidIndex: env("DENO_RDMA_GID_INDEX_A", "1"),
};
const HOST_B: Host = {
  netns: "hostB",
  address: env("DENO_RDMA_HOST_B", "10.10.0.2"),
  device: env("DENO_RDMA_DEVICE_B", "rxeB"),
  gidIndex: env("DENO_RDMA_GID_INDEX_B", "1"),
};

const PARTS = ["bw", "lat", "cache", "ucx"];

/** The parts `--only` selects (all by default); exits 2 on an unknown part. */
function selectedParts(): Set<string> {
  const at = Deno.args.indexOf("--only");
  if (at < 0) return new Set(PARTS);
  const parts = (Deno.args[at + 1] ?? "").split(",");
  if (parts.some((part) => !PARTS.includes(part))) {
    console.error(`--only takes a comma-separated list of ${PARTS.join(", ")}`);
    Deno.exit(2);
  }
  return new Set(parts);
}

/** How long one benchmark process may run before it is killed (`timeout` exits 124). */
const PROCESS_LIMIT_SECONDS = "300";

/** Runs `command` in `netns`; returns its status and combined output. */
async function run(netns: string, command: string[]): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", netns, "timeout", PROCESS_LIMIT_SECONDS, ...command],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, output: text };
}

let nextPort = 18700;

/** Server on B, then client on A; returns the client's output (Error when either fails). */
async function pair(server: string[], client: string[], label: string): Promise<string> {
  const port = String(nextPort++);
  const s = run(HOST_B.netns, [...server, "-p", port]);
  // perftest's client does not retry a refused connection: give the server time, and retry.
  let c = { code: 1, output: "" };
  for (let attempt = 0; attempt < 10; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    c = await run(HOST_A.netns, [...client, "-p", port, HOST_B.address]);
    if (c.code === 0 || !/Couldn't connect/.test(c.output)) break;
  }
  if (c.code !== 0) {
    // The server may still wait for a client: connect once more with a bad peer so it exits.
    await Deno.connect({ hostname: HOST_B.address, port: Number(port) }).then((conn) =>
      conn.close()
    ).catch(() => {});
  }
  const sr = await s;
  if (c.code !== 0 || sr.code !== 0) {
    throw new Error(
      `${label}: client exit ${c.code}, server exit ${sr.code}\n${c.output}\n${sr.output}`,
    );
  }
  return c.output;
}

const ours = (name: string, host: Host, args: string[]) => [
  Deno.execPath(),
  "run",
  "--allow-all",
  "--no-check",
  `examples/${name}`,
  "-d",
  host.device,
  "-x",
  host.gidIndex,
  ...args,
];
const theirs = (tool: string, host: Host, args: string[]) => [
  tool,
  "-d",
  host.device,
  "-x",
  host.gidIndex,
  ...args,
];

/** The average bandwidth (MB/sec) from a BW result row. */
function bandwidth(output: string, size: number): number {
  const m = new RegExp(`^\\s*${size}\\s+\\d+\\s+([\\d.]+)\\s+([\\d.]+)\\s+([\\d.]+)\\s*$`, "m")
    .exec(output);
  if (!m) throw new Error(`no bandwidth row for ${size} bytes in:\n${output}`);
  return Number(m[2]);
}

/** t_typical (usec) from a latency result row. */
function typicalLatency(output: string, size: number): number {
  const m = new RegExp(`^\\s*${size}\\s+\\d+((?:\\s+[\\d.]+){7})\\s*$`, "m").exec(output);
  if (!m) throw new Error(`no latency row for ${size} bytes in:\n${output}`);
  return Number(m[1].trim().split(/\s+/)[2]);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function machine(): string {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ??
    "unknown CPU";
  const kernel = Deno.readTextFileSync("/proc/sys/kernel/osrelease").trim();
  const guest = Deno.env.get("DENO_RDMA_GUEST") === "1"
    ? "QEMU TCG guest (no KVM): rxe runs under emulation, absolute figures are slow; compare ratios"
    : "this machine";
  return `${navigator.hardwareConcurrency} CPUs (${cpu}), Linux ${kernel}, ${guest}; ` +
    `Deno ${Deno.version.deno}; ${new Date().toISOString().slice(0, 16)}Z`;
}

interface Row {
  what: string;
  theirs: number[];
  ours: number[];
  /** "higher" when more is better. */
  better: "higher" | "lower";
  target: string;
  theirName: string;
}

async function benchHere(): Promise<number> {
  const reps = numberArgument("--reps", 3);
  const quick = Deno.args.includes("--quick");
  const parts = selectedParts();
  const rows: Row[] = [];
  console.log(`Machine: ${machine()}\n`);

  const bandwidthRuns = parts.has("bw")
    ? [[4096, quick ? 500 : 3000], [65536, quick ? 200 : 1000]]
    : [];
  for (const [size, iters] of bandwidthRuns) {
    const row: Row = {
      what: `RDMA WRITE BW average [MB/sec], ${size / 1024} KiB x ${iters}`,
      theirs: [],
      ours: [],
      better: "higher",
      target: ">= 0.90",
      theirName: "ib_write_bw",
    };
    const args = ["-s", String(size), "-n", String(iters), "-F"];
    for (let r = 0; r < reps; r++) {
      const t = await pair(
        theirs("ib_write_bw", HOST_B, args),
        theirs("ib_write_bw", HOST_A, args),
        "ib_write_bw",
      );
      row.theirs.push(bandwidth(t, size));
      const o = await pair(
        ours("write_bw.ts", HOST_B, args),
        ours("write_bw.ts", HOST_A, args),
        "write_bw.ts",
      );
      row.ours.push(bandwidth(o, size));
      console.log(`${row.what}: ib_write_bw ${row.theirs.at(-1)}, ours ${row.ours.at(-1)}`);
    }
    rows.push(row);
  }

  const latIters = quick ? 300 : 2000;
  const lat: Row = {
    what: `RDMA WRITE latency t_typical [usec], 64 B x ${latIters}`,
    theirs: [],
    ours: [],
    better: "lower",
    target: "<= 1.20",
    theirName: "ib_write_lat",
  };
  const latArgs = ["-s", "64", "-n", String(latIters), "-F"];
  for (let r = 0; r < (parts.has("lat") ? reps : 0); r++) {
    const t = await pair(
      theirs("ib_write_lat", HOST_B, latArgs),
      theirs("ib_write_lat", HOST_A, latArgs),
      "ib_write_lat",
    );
    lat.theirs.push(typicalLatency(t, 64));
    const o = await pair(
      ours("write_lat.ts", HOST_B, latArgs),
      ours("write_lat.ts", HOST_A, latArgs),
      "write_lat.ts",
    );
    lat.ours.push(typicalLatency(o, 64));
    console.log(`${lat.what}: ib_write_lat ${lat.theirs.at(-1)}, ours ${lat.ours.at(-1)}`);
  }
  if (parts.has("lat")) rows.push(lat);

  const rounds = quick ? 60 : 300;
  const cacheRuns: {
    uncached: number;
    cached: number;
    uncachedRegistration: number;
    cachedRegistration: number;
    regs: string;
  }[] = [];
  for (let r = 0; r < (parts.has("cache") ? reps : 0); r++) {
    const { code, output } = await run(HOST_A.netns, [
      Deno.execPath(),
      "run",
      "--allow-all",
      "--no-check",
      "examples/cache_demo.ts",
      "-d",
      HOST_A.device,
      "-n",
      String(rounds),
      "--json",
    ]);
    if (code !== 0) throw new Error(`cache_demo failed:\n${output}`);
    const [plain, cached] = output.split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l)
    );
    cacheRuns.push({
      uncached: plain.timeMs,
      cached: cached.timeMs,
      uncachedRegistration: plain.registrationMs,
      cachedRegistration: cached.registrationMs,
      regs: `${plain.registrations} -> ${cached.registrations} registrations, ` +
        `${cached.hits} hits, ${cached.deregistrationsInRelease} deregistered inside munmap, ` +
        `${cached.deregistrationsDeferred} deferred, VmPin at the end ` +
        `${cached.vmPinKiBAtEnd - cached.vmPinKiBBefore} kB`,
    });
    console.log(
      `cache_demo: uncached ${plain.timeMs.toFixed(1)} ms (registration ` +
        `${plain.registrationMs.toFixed(1)}), cached ${cached.timeMs.toFixed(1)} ms ` +
        `(registration ${cached.registrationMs.toFixed(1)}); ${cacheRuns.at(-1)!.regs}`,
    );
  }

  const f = (v: number) => v.toFixed(2);
  console.log(
    "\n| Measurement | perftest | deno-rdma | ratio (ours / theirs) | pair ratios: median [range] " +
      "| target |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | --- |");
  for (const row of rows) {
    const t = median(row.theirs);
    const o = median(row.ours);
    const ratio = o / t;
    // Each of ours ran right after one of theirs: the ratio within a pair cancels the guest's
    // drift over the run, which the ratio of medians does not.
    const pairs = row.ours.map((ours, i) => ours / row.theirs[i]);
    const ok = row.better === "higher" ? ratio >= 0.9 : ratio <= 1.2;
    console.log(
      `| ${row.what} | ${row.theirName} ${f(t)} | ${f(o)} | ${f(ratio)} | ${f(median(pairs))} ` +
        `[${f(Math.min(...pairs))}-${f(Math.max(...pairs))}] | ${row.target} ` +
        `${ok ? "(met)" : "(missed)"} |`,
    );
  }
  if (cacheRuns.length > 0) {
    const u = median(cacheRuns.map((c) => c.uncached));
    const c = median(cacheRuns.map((c) => c.cached));
    console.log(
      `| cache_demo, ${rounds} sends [ms] | without cache ${f(u)} | with cache ${f(c)} | ` +
        `${f(c / u)} (${f(u / c)}x faster) | |`,
    );
    const ur = median(cacheRuns.map((c) => c.uncachedRegistration));
    const cr = median(cacheRuns.map((c) => c.cachedRegistration));
    console.log(
      `| cache_demo, of which registering, deregistering and freeing [ms] | without cache ${
        f(ur)
      } ` +
        `| with cache ${f(cr)} | ${f(cr / ur)} (${f(ur / cr)}x less) | |`,
    );
    console.log(`\ncache_demo (last run): ${cacheRuns.at(-1)!.regs}`);
  }
  console.log(`medians of ${reps} runs each; every run verified its data`);
  return 0;
}

if (import.meta.main) {
  const inGuest = Deno.env.get("DENO_RDMA_GUEST") === "1";
  if (inGuest || Deno.args.includes("--here")) {
    Deno.exit(await benchHere());
  }
  ensureBuilt();
  Deno.chdir(ROOT);
  const parts = selectedParts();
  let status = 0;
  if (parts.has("ucx")) {
    const runs = String(numberArgument("--reps", 3) + 1);
    status = (await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--v8-flags=--expose-gc", "bench/ucx_comparison.ts", "--runs", runs],
    }).spawn().status).code;
  }
  const inGuestParts = PARTS.filter((part) => part !== "ucx" && parts.has(part));
  if (inGuestParts.length > 0) {
    const args = Deno.args.filter((arg, i) => arg !== "--only" && Deno.args[i - 1] !== "--only");
    const code = await runInGuest(
      [
        "deno",
        "run",
        "--allow-all",
        "--no-check",
        "tools/bench.ts",
        ...args,
        "--only",
        inGuestParts.join(","),
      ],
      { timeoutSeconds: 1500 },
    );
    status ||= code;
  }
  Deno.exit(status);
}
