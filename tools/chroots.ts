/**
 * The x86_64 glibc matrix: Debian root file systems made with debootstrap and cached, and a command
 * run inside one with this checkout mounted at the same path (read-only, with its own `build/`), so
 * the native code is built by that system's compiler against its glibc, and the pinned Deno runs
 * on it.
 *
 * `deno run -A tools/chroots.ts --suite bullseye -- <command...>` makes the root if needed and runs
 * the command there (its exit status is the command's). `deno task test` runs the host suite in
 * each of {@link MATRIX} this way. Roots are cached under
 * `${XDG_CACHE_HOME:-$HOME/.cache}/deno-rdma/chroots/<suite>/` (the checkout's `.cache/` without
 * either), remade when the package list or the mirror changes. Needs root (debootstrap, mounts).
 *
 * @module
 */
import {
  BUILD_PACKAGES,
  ensureDebianPackages,
  HOST_TEST_PACKAGES,
  MATRIX_PACKAGES,
} from "./deps.ts";
import { ROOT } from "./build.ts";

/** A Debian release to test on, with the glibc it ships. */
export interface MatrixTarget {
  suite: string;
  glibc: string;
}

/**
 * The releases `deno task test` runs the host suite in. bookworm (glibc 2.36) is this machine's
 * own system, where the host suite runs anyway; `--suite bookworm` makes its root too.
 */
export const MATRIX: MatrixTarget[] = [
  { suite: "bullseye", glibc: "2.31" },
  { suite: "trixie", glibc: "2.41" },
];

/** Every suite this tool knows. */
export const SUITES: MatrixTarget[] = [...MATRIX, { suite: "bookworm", glibc: "2.36" }];

/** What the build and the host suite need inside a root (readelf comes with gcc's binutils). */
export const PACKAGES = [...BUILD_PACKAGES, ...HOST_TEST_PACKAGES];

function cacheRoot(): string {
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const home = Deno.env.get("HOME");
  const base = xdg && xdg.startsWith("/") ? xdg : home ? `${home}/.cache` : `${ROOT}/.cache`;
  return `${base}/deno-rdma/chroots`;
}

/** The Debian mirror this machine's apt uses (the first `deb` source), else deb.debian.org. */
export function debianMirror(): string {
  const candidates: string[] = [];
  for (const file of ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n")) {
      const deb822 = /^URIs:\s*(\S+)/.exec(line);
      const legacy = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+/.exec(line);
      const uri = deb822?.[1] ?? legacy?.[1];
      if (uri && !uri.includes("security")) candidates.push(uri);
    }
  }
  return (candidates[0] ?? "http://deb.debian.org/debian").replace(/\/$/, "");
}

function run(cmd: string, args: string[]): void {
  const { code } = new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).outputSync();
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed with exit status ${code}`);
}

function removeIfThere(path: string): void {
  try {
    Deno.removeSync(path, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** This checkout's own `build/` for `suite` (git-ignored): checkouts never share one. */
export function matrixBuildDir(suite: string): string {
  return `${ROOT}/.cache/matrix/${suite}/build`;
}

/** Makes (or finds cached) the root of `suite`; returns its path. */
export function ensureRoot(suite: string): string {
  if (!SUITES.some((t) => t.suite === suite)) {
    throw new Error(`unknown suite ${suite}: one of ${SUITES.map((t) => t.suite).join(", ")}`);
  }
  const dir = `${cacheRoot()}/${suite}`;
  const root = `${dir}/root`;
  const stamp = `${dir}/ready.json`;
  const want = JSON.stringify({ suite, packages: PACKAGES, mirror: debianMirror() });
  Deno.mkdirSync(dir, { recursive: true });
  // One maker at a time (two checkouts on one machine share the cache).
  using lock = Deno.openSync(`${dir}/lock`, { create: true, write: true });
  lock.lockSync(true);
  let have: { suite: string; packages: string[]; mirror: string } | undefined;
  try {
    const text = Deno.readTextFileSync(stamp);
    if (text === want) return root;
    have = JSON.parse(text);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound) && !(e instanceof SyntaxError)) throw e;
  }
  if (have && have.suite === suite && have.mirror === debianMirror()) {
    // Only the package list grew: installed into the root with its own apt.
    const missing = PACKAGES.filter((p) => !have.packages.includes(p));
    console.error(`installing ${missing.join(" ")} into the ${suite} root`);
    const cmd = chrootCommand(root, null, [
      "/bin/sh",
      "-c",
      `apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ` +
      `--no-install-recommends ${PACKAGES.join(" ")}`,
    ]);
    run(cmd[0], cmd.slice(1));
    Deno.writeTextFileSync(stamp, want);
    return root;
  }
  if (Deno.uid() !== 0) throw new Error(`making the ${suite} root needs root (debootstrap)`);
  ensureDebianPackages(MATRIX_PACKAGES, "the glibc test matrix");
  const started = performance.now();
  console.error(`making the ${suite} root in ${root} (debootstrap from ${debianMirror()})`);
  removeIfThere(`${root}.tmp`);
  run("debootstrap", [
    "--variant=minbase",
    `--include=${PACKAGES.join(",")}`,
    suite,
    `${root}.tmp`,
    debianMirror(),
  ]);
  removeIfThere(root);
  Deno.renameSync(`${root}.tmp`, root);
  Deno.writeTextFileSync(stamp, want);
  console.error(`${suite} root made in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return root;
}

/**
 * The command that runs `command` inside `root`: a private mount namespace (the mounts vanish with
 * it) with /proc, /dev, this checkout read-only at its own path and `buildDir` (when given) over
 * its `build/`.
 */
export function chrootCommand(root: string, buildDir: string | null, command: string[]): string[] {
  const script = [
    'set -e; R="$1"; P="$2"; B="$3"; shift 3',
    // The root a mount point of its own: a mount namespace made inside (a test's unshare -m)
    // must be able to change the propagation of "/".
    'mount --bind "$R" "$R"',
    'mount -t proc proc "$R/proc"',
    'mount --rbind /dev "$R/dev"',
    'mkdir -p "$R$P" "$P/build"',
    'mount --bind "$P" "$R$P"',
    'mount -o remount,bind,ro "$R$P"',
    '[ -z "$B" ] || mount --bind "$B" "$R$P/build"',
    'exec chroot "$R" /usr/bin/env -i HOME=/root NO_COLOR=1 ' +
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin " +
    '/bin/sh -c \'cd "$0" && exec "$@"\' "$P" "$@"',
  ].join("\n");
  return [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "--",
    "/bin/sh",
    "-c",
    script,
    "sh",
    root,
    ROOT,
    buildDir ?? "",
    ...command,
  ];
}

if (import.meta.main) {
  const args = [...Deno.args];
  const dash = args.indexOf("--");
  const suiteAt = args.indexOf("--suite");
  const suite = suiteAt >= 0 ? args[suiteAt + 1] : undefined;
  const command = dash >= 0 ? args.slice(dash + 1) : [];
  if (!suite || command.length === 0) {
    console.error("usage: tools/chroots.ts --suite <bullseye|bookworm|trixie> -- <command...>");
    Deno.exit(2);
  }
  const root = ensureRoot(suite);
  const buildDir = matrixBuildDir(suite);
  Deno.mkdirSync(buildDir, { recursive: true });
  const cmd = chrootCommand(root, buildDir, command);
  const { code } = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).outputSync();
  Deno.exit(code);
}
