/**
 * Makes sure Debian packages the project needs are installed: as root it installs what is missing
 * with apt-get; otherwise it stops with the exact command to run.
 *
 * @module
 */

/**
 * What the host tests need besides the build: Debian's UCX (libucx0, and libucx-dev for the UCX
 * benchmark's harness), loaded beside the cache by the coexistence tests
 * (tests/host/hooks_coexist.test.ts) to patch libc the way UCX-based libraries do.
 */
export const HOST_TEST_PACKAGES = ["libucx0", "libucx-dev"];

/**
 * What the native build needs (tools/build.ts): the compiler, libibverbs' and librdmacm's headers,
 * and libfabric's headers for a test's helper (tests/native/fabric_probe.c), which loads libfabric
 * at run time.
 */
export const BUILD_PACKAGES = [
  "gcc",
  "libc6-dev",
  "libibverbs-dev",
  "librdmacm-dev",
  "libfabric-dev",
];

/** What tools/chroots.ts needs to make the glibc matrix's Debian roots. */
export const MATRIX_PACKAGES = ["debootstrap"];

let updated = false;

function isInstalled(pkg: string): boolean {
  const { code, stdout } = new Deno.Command("dpkg-query", {
    args: ["-W", "-f=${Status}", pkg],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  return code === 0 && new TextDecoder().decode(stdout).includes("install ok installed");
}

function run(cmd: string, args: string[]): void {
  const { code } = new Deno.Command(cmd, {
    args,
    stdout: "inherit",
    stderr: "inherit",
    stdin: "null",
    env: { DEBIAN_FRONTEND: "noninteractive" },
  }).outputSync();
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed with exit status ${code}`);
}

/** Installs the packages in `packages` that are missing; `why` says what needs them. */
export function ensureDebianPackages(packages: string[], why: string): void {
  const missing = packages.filter((p) => !isInstalled(p));
  if (missing.length === 0) return;
  const command = `apt-get install -y ${missing.join(" ")}`;
  if (Deno.uid() !== 0) {
    throw new Error(
      `${why} needs Debian packages that are not installed. Run as root:\n  ${command}`,
    );
  }
  console.error(`installing Debian packages for ${why}: ${missing.join(" ")}`);
  if (!updated) {
    run("apt-get", ["update", "-q"]);
    updated = true;
  }
  run("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...missing]);
}
