/**
 * The registration cache beside UCX's (`ucs_rcache` from Debian's libucx-dev), on the same access
 * patterns, regions and random draws; prints a Markdown table with the ratio and its goal.
 *
 *     deno run -A --v8-flags=--expose-gc bench/ucx_comparison.ts [--runs N]
 *
 * Ours runs from TypeScript with the registrar double; UCX's runs in C
 * (bench/ucx/rcache_bench.c, built here) with registration callbacks that do nothing, so
 * both time only the cache. Each run measures every pattern once for each, alternating which goes
 * first; a figure is the median over runs of each run's median over 21 samples, with the range.
 *
 * @module
 */
import { numberArgument } from "../tools/args.ts";
import { ensureDebianPackages } from "../tools/deps.ts";
import { BUILD_DIR, ROOT } from "../tools/build.ts";
import { hitCosts, median, missCost } from "./cache_bench.ts";

const HARNESS = `${BUILD_DIR}/ucx_rcache_bench`;
const SAMPLES = 21;
const OPS = 20_000;

/** Builds the UCX harness into build/ when it is missing or older than its source. */
function buildHarness(): void {
  ensureDebianPackages(["gcc", "libucx-dev"], "timing UCX's registration cache");
  const source = `${ROOT}/bench/ucx/rcache_bench.c`;
  const mtime = (path: string) => {
    try {
      return Deno.statSync(path).mtime?.getTime() ?? 0;
    } catch {
      return 0;
    }
  };
  if (mtime(HARNESS) > mtime(source)) return;
  Deno.mkdirSync(BUILD_DIR, { recursive: true });
  const args = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-O2"];
  const out = new Deno.Command(Deno.env.get("CC") ?? "cc", {
    args: [...args, "-o", HARNESS, source, "-lucs"],
  }).outputSync();
  if (!out.success) {
    throw new Error(`building ${HARNESS} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
}

/** UCX's median ns per get + put for `pattern` on `regions` cached regions. */
function ucx(regions: number, pattern: "hot" | "random" | "miss"): number {
  const out = new Deno.Command(HARNESS, {
    args: [String(regions), pattern, String(OPS), String(SAMPLES)],
  }).outputSync();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success || !Number.isFinite(Number(text))) {
    throw new Error(`${HARNESS} ${regions} ${pattern}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return Number(text);
}

interface Pattern {
  name: string;
  goal: number;
  ours: () => number;
  theirs: () => number;
}

const PATTERNS: Pattern[] = [
  {
    name: "same region, 10,000 cached",
    goal: 1.0,
    ours: () => hitCosts(10_000, SAMPLES).hotNs,
    theirs: () => ucx(10_000, "hot"),
  },
  {
    name: "uniformly random region, 10,000 cached",
    goal: 1.0,
    ours: () => hitCosts(10_000, SAMPLES).randomNs,
    theirs: () => ucx(10_000, "random"),
  },
  {
    name: "uniformly random region, 1,000,000 cached",
    goal: 1.0,
    ours: () => hitCosts(1_000_000, SAMPLES).randomNs,
    theirs: () => ucx(1_000_000, "random"),
  },
  {
    name: "miss (register + evict, 1 kept)",
    goal: 0.8,
    ours: () => missCost(SAMPLES),
    theirs: () => ucx(2, "miss"),
  },
];

const range = (values: number[]) =>
  `${Math.min(...values).toFixed(1)}-${Math.max(...values).toFixed(1)}`;

if (import.meta.main) {
  const runs = numberArgument("--runs", 4);
  buildHarness();
  // One unmeasured pass of ours, so V8 has settled on the code every pattern meets.
  hitCosts(10_000, 5);
  const ours = PATTERNS.map(() => [] as number[]);
  const theirs = PATTERNS.map(() => [] as number[]);
  for (let run = 0; run < runs; run++) {
    PATTERNS.forEach((p, i) => {
      if (run % 2 === 0) {
        ours[i].push(p.ours());
        theirs[i].push(p.theirs());
      } else {
        theirs[i].push(p.theirs());
        ours[i].push(p.ours());
      }
    });
  }
  const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  console.log(`${cpu}, ${navigator.hardwareConcurrency} CPUs; ${runs} alternating runs\n`);
  console.log("| ns per get + release | UCX (C) | this project (TypeScript) | ratio | goal |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  PATTERNS.forEach((p, i) => {
    const u = median(theirs[i]), o = median(ours[i]);
    const ratio = o / u;
    console.log(
      `| ${p.name} | ${u.toFixed(1)} (${range(theirs[i])}) | ${o.toFixed(1)} (${
        range(ours[i])
      }) | ` +
        `${ratio.toFixed(2)} | <= ${p.goal.toFixed(1)} ${ratio <= p.goal ? "met" : "missed"} |`,
    );
  });
}
