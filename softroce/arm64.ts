/**
 * Prepares the aarch64 soft-RoCE guest: an arm64 Debian root made with debootstrap (its second
 * stage runs under qemu-user through binfmt_misc), the arm64 Deno from npm at the version pinned for
 * the host's Deno (integrity checked against the lockfile and the registry) installed into it,
 * Debian's arm64 kernel (downloaded with a private apt state for arm64, unpacked, never installed)
 * and a busybox initramfs with the arm64 modules and the guest scripts.
 *
 * Cached under `<cache>/deno-rdma/softroce/arm64/` like the x86_64 image: the root's folder name
 * carries a hash of the suite, package list and Deno version; concurrent first runs build in private
 * folders and rename into place.
 *
 * @module
 */
import { chrootCommand } from "../tools/chroots.ts";
import { BUILD_PACKAGES, ensureDebianPackages, HOST_TEST_PACKAGES } from "../tools/deps.ts";
import {
  cacheRoot,
  ensureInitramfs,
  exists,
  type GuestImage,
  GuestImageError,
  HOST_PACKAGES,
  sha256,
  tool,
} from "./image.ts";

/**
 * Host packages for the arm64 guest: the emulator, qemu-user for debootstrap's second stage. npm
 * (which fetches the arm64 Deno) comes with Node.js, as CI already requires.
 */
export const ARM64_HOST_PACKAGES = [
  "qemu-system-arm",
  "qemu-user-static",
  "debootstrap",
  "kmod",
  "cpio",
];

/**
 * Packages of the arm64 root: what the x86_64 guest takes from the host (its packages, the native
 * build's and the host tests'), plus procps (sysctl) for the guest's setup.
 */
export const ARM64_ROOT_PACKAGES = [
  ...new Set([
    ...HOST_PACKAGES.filter((p) => !p.startsWith("qemu-") && p !== "cpio"),
    ...BUILD_PACKAGES,
    ...HOST_TEST_PACKAGES,
    "procps",
  ]),
];

const MIRROR = "http://deb.debian.org/debian";
const REPO_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** Where the arm64 Deno lives inside the root. */
export const ARM64_DENO_DIR = "/usr/local/lib/deno-arm64";

/** The host's Debian suite (the arm64 root uses the same one), e.g. "bookworm". */
function hostSuite(): string {
  const text = Deno.readTextFileSync("/etc/os-release");
  const suite = /^VERSION_CODENAME=(\w+)/m.exec(text)?.[1];
  if (!suite) throw new GuestImageError("cannot tell the host's Debian suite from /etc/os-release");
  return suite;
}

/**
 * Registers qemu-user for aarch64 ELF files with binfmt_misc, with the F flag (the interpreter is
 * opened now, so it works inside a chroot), from the qemu-user-static package's own rule.
 */
function ensureBinfmt(): void {
  const entry = "/proc/sys/fs/binfmt_misc/qemu-aarch64";
  if (exists(entry) && Deno.readTextFileSync(entry).startsWith("enabled")) return;
  if (!exists("/proc/sys/fs/binfmt_misc/register")) {
    tool("mount", ["-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"]);
  }
  if (exists(entry)) {
    Deno.writeTextFileSync(entry, "1");
    return;
  }
  const rule = Deno.readTextFileSync("/usr/lib/binfmt.d/qemu-aarch64.conf").trim();
  Deno.writeTextFileSync("/proc/sys/fs/binfmt_misc/register", rule);
}

/** Where the project's aarch64 native libraries are built on this machine (beside the host's). */
export const ARM64_BUILD_DIR = `${REPO_ROOT}/build/aarch64`;

/**
 * Builds the project's native libraries for aarch64 into ARM64_BUILD_DIR with the arm64 root's
 * own compiler and the arm64 Deno (tools/build.ts), run here through qemu-user in a chroot of the
 * root as the glibc matrix runs its roots (tools/chroots.ts: the project read-only at its own path,
 * ARM64_BUILD_DIR over its build/, nothing left mounted): about 1.5 min, where the TCG guest took 8. The
 * guest copies them onto its own build/ (init_arm64.sh), where tools/build.ts finds them current.
 * Returns why it failed, or null; then the guest builds its own.
 */
export function buildArm64Native(root: string): string | null {
  Deno.mkdirSync(ARM64_BUILD_DIR, { recursive: true });
  ensureBinfmt();
  const cmd = chrootCommand(root, ARM64_BUILD_DIR, [
    `${ARM64_DENO_DIR}/deno`,
    "run",
    "--allow-all",
    "tools/build.ts",
  ]);
  const { code, stdout, stderr } = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  return code === 0 ? null : `exit status ${code}: ${text.trim().slice(-2000)}`;
}

/** The pinned Deno's version and the lockfile's integrity of its linux-arm64-glibc package. */
function pinnedArm64Deno(): { version: string; integrity: string } {
  const lock = JSON.parse(Deno.readTextFileSync(`${REPO_ROOT}/package-lock.json`));
  const entry = lock.packages?.["node_modules/@deno/linux-arm64-glibc"];
  const host = lock.packages?.["node_modules/deno"];
  if (!entry?.version || !entry?.integrity || entry.version !== host?.version) {
    throw new GuestImageError(
      "package-lock.json does not pin @deno/linux-arm64-glibc at the pinned deno's version",
    );
  }
  return { version: entry.version, integrity: entry.integrity };
}

/**
 * Fetches `@deno/linux-arm64-glibc@version` with npm and unpacks its `deno` binary into `dest`,
 * after checking the tarball's SHA-512 against both the lockfile and the registry's dist.integrity.
 */
async function fetchArm64Deno(version: string, lockIntegrity: string, dest: string) {
  const spec = `@deno/linux-arm64-glibc@${version}`;
  const registry = tool("npm", ["view", spec, "dist.integrity"]).trim();
  if (registry !== lockIntegrity) {
    throw new GuestImageError(
      `${spec}: registry integrity ${registry} != lockfile ${lockIntegrity}`,
    );
  }
  const work = Deno.makeTempDirSync({ prefix: "deno-rdma-arm64-deno-" });
  try {
    tool("npm", ["pack", spec, "--pack-destination", work, "--silent"]);
    const tgz = [...Deno.readDirSync(work)].find((e) => e.name.endsWith(".tgz"));
    if (!tgz) throw new GuestImageError(`npm pack ${spec} left no tarball`);
    const bytes = Deno.readFileSync(`${work}/${tgz.name}`);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-512", bytes));
    const got = `sha512-${btoa(String.fromCharCode(...digest))}`;
    if (got !== lockIntegrity) {
      throw new GuestImageError(`${spec}: tarball integrity ${got} != lockfile ${lockIntegrity}`);
    }
    tool("tar", ["-xzf", `${work}/${tgz.name}`, "-C", work, "package/deno"]);
    Deno.mkdirSync(dest, { recursive: true });
    Deno.copyFileSync(`${work}/package/deno`, `${dest}/deno`);
    Deno.chmodSync(`${dest}/deno`, 0o755);
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
}

/** The arm64 Debian root with the packages and the arm64 Deno, made once. */
async function ensureRoot(dir: string): Promise<string> {
  const suite = hostSuite();
  const deno = pinnedArm64Deno();
  const key = await sha256([suite, ...ARM64_ROOT_PACKAGES, deno.version, deno.integrity]);
  const root = `${dir}/root-${suite}-${key}`;
  if (exists(`${root}${ARM64_DENO_DIR}/deno`)) return root;
  ensureBinfmt();
  Deno.mkdirSync(dir, { recursive: true });
  const work = Deno.makeTempDirSync({ dir, prefix: ".root-" });
  try {
    console.error(`soft-RoCE: making the arm64 ${suite} root with debootstrap (once, minutes)`);
    tool("debootstrap", [
      "--arch=arm64",
      "--variant=minbase",
      `--include=${ARM64_ROOT_PACKAGES.join(",")}`,
      suite,
      `${work}/tree`,
      MIRROR,
    ]);
    await fetchArm64Deno(deno.version, deno.integrity, `${work}/tree${ARM64_DENO_DIR}`);
    // The guest's init looks for these mount points in the root it boots.
    for (const d of ["proc", "sys", "dev", "tmp", "run"]) {
      Deno.mkdirSync(`${work}/tree/${d}`, { recursive: true });
    }
    try {
      Deno.renameSync(`${work}/tree`, root);
    } catch (e) {
      if (!exists(`${root}${ARM64_DENO_DIR}/deno`)) throw e;
    }
  } finally {
    tool("rm", ["-rf", "--one-file-system", work]);
  }
  return root;
}

/** apt options for a private arm64 package state under `dir` (the host's sources, no status). */
function aptArm64(dir: string): string[] {
  for (const d of ["lists/partial", "cache/archives/partial"]) {
    Deno.mkdirSync(`${dir}/${d}`, { recursive: true });
  }
  Deno.writeTextFileSync(`${dir}/status`, "");
  return [
    "-o",
    "APT::Architecture=arm64",
    "-o",
    "APT::Architectures::=arm64",
    "-o",
    `Dir::State::Lists=${dir}/lists`,
    "-o",
    `Dir::State::status=${dir}/status`,
    "-o",
    `Dir::Cache=${dir}/cache`,
    "-q",
  ];
}

/** The arm64 kernel version `linux-image-arm64` depends on (`DENO_RDMA_SOFTROCE_KERNEL_ARM64`). */
function arm64KernelVersion(apt: string[]): string {
  const pinned = Deno.env.get("DENO_RDMA_SOFTROCE_KERNEL_ARM64");
  if (pinned !== undefined) {
    if (!/^[0-9][0-9A-Za-z.+~-]*-arm64$/.test(pinned)) {
      throw new GuestImageError(
        `DENO_RDMA_SOFTROCE_KERNEL_ARM64 is not a kernel version: ${pinned}`,
      );
    }
    return pinned;
  }
  const out = tool("apt-cache", [...apt, "depends", "linux-image-arm64"]);
  const version = /Depends: linux-image-(\d[^\s]*-arm64)\s*$/m.exec(out)?.[1];
  if (!version) throw new GuestImageError("cannot tell which kernel linux-image-arm64 depends on");
  return version;
}

/** Downloads and unpacks Debian's arm64 kernel into `<dir>/kernel-<version>`, once. */
function ensureKernel(dir: string): { tree: string; version: string } {
  const aptDir = `${dir}/apt`;
  const apt = aptArm64(aptDir);
  let version: string;
  try {
    version = arm64KernelVersion(apt);
  } catch {
    tool("apt-get", [...apt, "update"]);
    version = arm64KernelVersion(apt);
  }
  const tree = `${dir}/kernel-${version}`;
  if (exists(`${tree}/boot/vmlinuz-${version}`)) return { tree, version };
  const work = Deno.makeTempDirSync({ dir, prefix: ".kernel-" });
  try {
    const pkg = `linux-image-${version}`;
    console.error(`soft-RoCE: downloading ${pkg} (once)`);
    tool("apt-get", [...apt, "download", pkg], work);
    const deb = [...Deno.readDirSync(work)].find((e) => e.name.endsWith(".deb"));
    if (!deb) throw new GuestImageError(`apt-get download ${pkg} left no .deb file`);
    tool("dpkg-deb", ["-x", `${work}/${deb.name}`, `${work}/tree`]);
    tool("depmod", ["-b", `${work}/tree`, version]);
    try {
      Deno.renameSync(`${work}/tree`, tree);
    } catch (e) {
      if (!exists(`${tree}/boot/vmlinuz-${version}`)) throw e;
    }
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
  return { tree, version };
}

/** What the arm64 guest boots, and the root it mounts. */
export interface Arm64GuestImage extends GuestImage {
  root: string;
}

/** Installs the host packages, then makes (or finds) the root, kernel and initramfs. */
export async function prepareArm64GuestImage(): Promise<Arm64GuestImage> {
  try {
    ensureDebianPackages(ARM64_HOST_PACKAGES, "the arm64 soft-RoCE guest");
  } catch (e) {
    throw new GuestImageError((e as Error).message);
  }
  const dir = `${cacheRoot()}/arm64`;
  const root = await ensureRoot(dir);
  const { tree, version } = ensureKernel(dir);
  const initrd = await ensureInitramfs(dir, tree, version, {
    busybox: `${root}/bin/busybox`,
    init: new URL("./init_arm64.sh", import.meta.url).pathname,
  });
  return { kernelVersion: version, vmlinuz: `${tree}/boot/vmlinuz-${version}`, initrd, root };
}
