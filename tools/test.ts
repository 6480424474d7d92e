/**
 * `deno task test`: builds the native libraries, runs the host tests, the host tests again inside a
 * Debian root of each other glibc of the matrix (tools/chroots.ts: bullseye's 2.31, trixie's 2.41,
 * each building the native code with its own compiler), the rxe suite inside the soft-RoCE guest,
 * then the aarch64 target (the host suite, then the rxe suite, in one `softroce/run.ts --arch arm64`
 * guest, with native code built by the arm64 root's own compiler), and ends with one line
 * `N passed, N failed` that counts every target.
 *
 * A target that cannot run (a root cannot be made, the guest does not boot, Deno crashes) counts as
 * a failure: a run that skipped one never passes.
 *
 * Options (for development; CI runs everything): `--host-only` (this machine's host suite only),
 * `--matrix-only` (`deno task test:matrix`), `--no-matrix`, `--rxe-only`, `--filter <text>`,
 * `--no-arm64`, `--arm64-only` (`deno task test:arm64`).
 *
 * @module
 */
import { ensureBuilt, ROOT } from "./build.ts";
import { ensureDebianPackages, HOST_TEST_PACKAGES } from "./deps.ts";
import { MATRIX } from "./chroots.ts";
import { cStyleCheck } from "./c_style.ts";

/**
 * Host test files that exercise only TypeScript with no per-architecture path, left out of the
 * host suite on aarch64, where it runs under emulation (they run on x86_64 in every root): the
 * first-use builder's logic (its C is built on aarch64 before the boot, with the same flags), the
 * package check (`deno publish`), the documents' snippets and the examples' command lines.
 */
const ARCH_INDEPENDENT = [
  "tests/host/importer.test.ts",
  "tests/host/publish.test.ts",
  "tests/host/docs_snippets.test.ts",
  "tests/host/examples_cli.test.ts",
];

interface SuiteResult {
  name: string;
  passed: number;
  failed: number;
  ran: boolean;
}

// Deno's closing line, e.g. "ok | 12 passed (3 steps) | 0 failed (2s)".
const SUMMARY = /^(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/;
// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/** Runs `cmd`, streaming its output, and reads Deno's test summary from it. */
async function runSuite(name: string, cmd: string[]): Promise<SuiteResult> {
  console.log(`\n=== ${name}: ${cmd.join(" ")}`);
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1" },
  }).spawn();
  let passed = 0, failed = 0, ran = false, pending = "";
  const decoder = new TextDecoder();
  const scan = (line: string) => {
    const m = SUMMARY.exec(line.replace(ANSI, "").trim());
    if (m) {
      passed += Number(m[1]);
      failed += Number(m[2]);
      ran = true;
    }
  };
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    lines.forEach(scan);
  }
  scan(pending);
  const { code } = await child.status;
  if (!ran) {
    console.log(`=== ${name}: no test summary (exit status ${code}); counted as one failure`);
    return { name, passed, failed: failed + 1, ran };
  }
  if (code !== 0 && failed === 0) {
    console.log(`=== ${name}: exit status ${code} with no failed test; counted as one failure`);
    failed += 1;
  }
  return { name, passed, failed, ran };
}

if (import.meta.main) {
  const args = [...Deno.args];
  const hostOnly = args.includes("--host-only");
  const rxeOnly = args.includes("--rxe-only");
  const arm64Only = args.includes("--arm64-only");
  const matrixOnly = args.includes("--matrix-only");
  const arm64 = arm64Only ||
    !(hostOnly || rxeOnly || matrixOnly || args.includes("--no-arm64"));
  const matrix = matrixOnly ||
    !(hostOnly || rxeOnly || arm64Only || args.includes("--no-matrix"));
  const filterAt = args.indexOf("--filter");
  const filter = filterAt >= 0 ? ["--filter", args[filterAt + 1]] : [];

  ensureBuilt();
  if (!rxeOnly && !arm64Only) ensureDebianPackages(HOST_TEST_PACKAGES, "the host tests");
  const deno = Deno.execPath();
  const results: SuiteResult[] = [];
  // The whole run only: not in the matrix roots (which run --host-only) nor for a filter.
  if (!hostOnly && !rxeOnly && !arm64Only && !matrixOnly && filter.length === 0) {
    console.log("\n=== C style (clang-format)");
    const { checked, differing } = cStyleCheck();
    for (const file of differing) console.log(`not in the C style: ${file}`);
    const passed = checked.length - differing.length;
    console.log(`=== C style (clang-format): ${passed} passed, ${differing.length} failed`);
    results.push({ name: "C style (clang-format)", passed, failed: differing.length, ran: true });
  }
  if (!rxeOnly && !arm64Only && !matrixOnly) {
    // Under emulation (aarch64): no type check (x86_64's run does it), without ARCH_INDEPENDENT.
    const emulated = Deno.build.arch === "aarch64"
      ? ["--no-check", `--ignore=${ARCH_INDEPENDENT.join(",")}`]
      : [];
    results.push(
      await runSuite("host tests", [
        deno,
        "test",
        "--allow-all",
        "--v8-flags=--expose-gc",
        ...emulated,
        ...filter,
        "tests/host/",
      ]),
    );
  }
  if (matrix) {
    // The pinned Deno, at the same path inside the root (the checkout is mounted there).
    const inner = deno.startsWith(`${ROOT}/`) ? deno : `${ROOT}/node_modules/.bin/deno`;
    for (const { suite, glibc } of MATRIX) {
      const started = performance.now();
      const result = await runSuite(`host tests in ${suite} (glibc ${glibc})`, [
        deno,
        "run",
        "--allow-all",
        "tools/chroots.ts",
        "--suite",
        suite,
        "--",
        inner,
        "run",
        "--allow-all",
        "tools/test.ts",
        "--host-only",
        ...filter,
      ]);
      const seconds = ((performance.now() - started) / 1000).toFixed(0);
      console.log(
        `=== ${result.name}: ${result.passed} passed, ${result.failed} failed (${seconds} s)`,
      );
      results.push(result);
    }
  }
  if (!hostOnly && !arm64Only && !matrixOnly) {
    results.push(
      await runSuite("rxe suite (soft-RoCE guest)", [
        deno,
        "run",
        "--allow-all",
        "softroce/run.ts",
        "--",
        deno,
        "test",
        "--allow-all",
        "--no-check",
        "--v8-flags=--expose-gc",
        ...filter,
        "tests/rxe/",
      ]),
    );
  }
  if (arm64) {
    // One guest for both suites (a boot is ~30 s); `deno` there is the arm64 build (softroce/README.md).
    const quoted = filter.map((w) => `'${w.replaceAll("'", `'\\''`)}'`).join(" ");
    const started = performance.now();
    const result = await runSuite("host and rxe suites (aarch64 soft-RoCE guest)", [
      deno,
      "run",
      "--allow-all",
      "softroce/run.ts",
      "--arch",
      "arm64",
      "--",
      "--timeout",
      "2700",
      "sh",
      "-c",
      `deno task test --host-only ${quoted}; host=$?; ` +
      `deno test --allow-all --no-check --v8-flags=--expose-gc ${quoted} tests/rxe/; ` +
      `rxe=$?; [ $host = 0 ] && [ $rxe = 0 ]`,
    ]);
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    console.log(
      `=== ${result.name}: ${result.passed} passed, ${result.failed} failed (${seconds} s)`,
    );
    results.push(result);
  }
  const passed = results.reduce((n, r) => n + r.passed, 0);
  const failed = results.reduce((n, r) => n + r.failed, 0);
  console.log("");
  for (const r of results) console.log(`${r.name}: ${r.passed} passed, ${r.failed} failed`);
  console.log(`${passed} passed, ${failed} failed`);
  Deno.exit(failed === 0 && passed > 0 ? 0 : 1);
}
