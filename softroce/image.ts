/**
 * Prepares what the soft-RoCE guest boots: Debian's own kernel (downloaded as the exact package that
 * `linux-image-amd64` depends on and unpacked, never installed) and a busybox initramfs holding the
 * virtio, 9p, veth, rxe and connection-manager modules plus the two guest scripts.
 *
 * Everything is cached under `${XDG_CACHE_HOME:-$HOME/.cache}/deno-rdma/softroce/<kernel version>/`
 * (the repository's `.cache/` when neither variable is set).
 * The initramfs file name carries a hash of its inputs, so editing a guest script rebuilds it.
 * Concurrent first runs are safe: each builds in a private folder and renames it into place.
 *
 * @module
 */
import { ensureDebianPackages } from "../tools/deps.ts";

/** The Debian packages the runner needs on the host (and uses inside the guest, through 9p). */
export const HOST_PACKAGES = [
  "qemu-system-x86",
  "busybox-static",
  "cpio",
  "kmod",
  "rdma-core",
  "ibverbs-providers",
  "ibverbs-utils",
  "libibverbs-dev",
  "perftest",
  "rdmacm-utils",
  // libfabric's verbs provider beside the memory hooks (tests/rxe/hooks_libfabric.test.ts).
  "libfabric1",
  "iproute2",
  "xz-utils",
];

/**
 * Modules loaded at boot, with their dependencies resolved by modprobe. crc32_generic is not a
 * declared dependency of rdma_rxe, but rxe fails to initialise ("failed to init crc32 algorithm")
 * without it.
 */
const MODULES = [
  "virtio_pci",
  "9pnet_virtio",
  "9p",
  "crc32_generic",
  "veth",
  "rdma_rxe",
  // The connection manager: rdma_ucm gives /dev/infiniband/rdma_cm to librdmacm; rdma_cm needs the
  // IB (ib_cm) and iWARP (iw_cm) connection managers.
  "ib_cm",
  "iw_cm",
  "rdma_cm",
  "rdma_ucm",
];

const HERE = new URL(".", import.meta.url).pathname;
const INIT_SCRIPT = `${HERE}init.sh`;
const SETUP_SCRIPT = `${HERE}guest_setup.sh`;
const BUSYBOX = "/bin/busybox";

/** The files QEMU boots. */
export interface GuestImage {
  kernelVersion: string;
  /** The kernel QEMU boots: the decompressed vmlinux where it has a PVH entry, else vmlinuz. */
  vmlinuz: string;
  initrd: string;
}

/** Raised when the guest image cannot be prepared (no kernel package, a tool failed). */
export class GuestImageError extends Error {
  override name = "GuestImageError";
}

/** The cache folder of the soft-RoCE images. */
export function cacheRoot(): string {
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const home = Deno.env.get("HOME");
  // Without either (a bare CI environment), the repository's own git-ignored .cache/.
  const base = xdg && xdg.startsWith("/")
    ? xdg
    : home
    ? `${home}/.cache`
    : new URL("../.cache", import.meta.url).pathname;
  return `${base}/deno-rdma/softroce`;
}

/** Whether `path` exists. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Runs a tool to completion and returns its stdout; stderr is shown only when it fails. */
export function tool(cmd: string, args: string[], cwd?: string): string {
  const { code, stdout, stderr } = new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { DEBIAN_FRONTEND: "noninteractive" },
  }).outputSync();
  if (code !== 0) {
    const why = new TextDecoder().decode(stderr).trim();
    throw new GuestImageError(`${cmd} ${args.join(" ")} failed (exit status ${code}): ${why}`);
  }
  return new TextDecoder().decode(stdout);
}

/**
 * The kernel version Debian's `linux-image-amd64` currently depends on, e.g. "6.1.0-56-amd64".
 * `DENO_RDMA_SOFTROCE_KERNEL` (a version like that) overrides it. On a fresh machine whose apt
 * lists are empty, runs `apt-get update` once and asks again.
 */
export function kernelVersion(): string {
  const pinned = Deno.env.get("DENO_RDMA_SOFTROCE_KERNEL");
  if (pinned !== undefined) {
    if (!/^[0-9][0-9A-Za-z.+~-]*$/.test(pinned)) {
      throw new GuestImageError(`DENO_RDMA_SOFTROCE_KERNEL is not a kernel version: ${pinned}`);
    }
    return pinned;
  }
  const ask = () => {
    try {
      const out = tool("apt-cache", ["depends", "linux-image-amd64"]);
      return /Depends: linux-image-(\d[^\s]*-amd64)\s*$/m.exec(out)?.[1];
    } catch {
      return undefined;
    }
  };
  let version = ask();
  if (!version && Deno.uid() === 0) {
    tool("apt-get", ["update", "-q"]);
    version = ask();
  }
  if (!version) {
    throw new GuestImageError(
      "cannot tell which kernel linux-image-amd64 depends on (apt-cache depends linux-image-amd64); " +
        "run apt-get update as root",
    );
  }
  return version;
}

/** Downloads `linux-image-<version>` and unpacks it into `<dir>/kernel`, once. */
function ensureKernel(dir: string, version: string): string {
  const tree = `${dir}/kernel`;
  if (exists(`${tree}/boot/vmlinuz-${version}`)) return tree;
  Deno.mkdirSync(dir, { recursive: true });
  const work = Deno.makeTempDirSync({ dir, prefix: ".kernel-" });
  try {
    const pkg = `linux-image-${version}`;
    console.error(`soft-RoCE: downloading ${pkg} (once)`);
    tool("apt-get", ["download", "-q", pkg], work);
    const deb = [...Deno.readDirSync(work)].find((e) => e.name.endsWith(".deb"));
    if (!deb) throw new GuestImageError(`apt-get download ${pkg} left no .deb file`);
    tool("dpkg-deb", ["-x", `${work}/${deb.name}`, `${work}/tree`]);
    Deno.removeSync(`${work}/${deb.name}`);
    tool("depmod", ["-b", `${work}/tree`, version]);
    try {
      Deno.renameSync(`${work}/tree`, tree);
    } catch (e) {
      // Another run unpacked the same kernel first; theirs is as good as ours.
      if (!exists(`${tree}/boot/vmlinuz-${version}`)) throw e;
    }
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
  return tree;
}

/** Module files in load order (dependencies first, each once), from modprobe --show-depends. */
function moduleLoadOrder(tree: string, version: string): string[] {
  const order: string[] = [];
  for (const module of MODULES) {
    const out = tool("modprobe", ["-d", tree, "-S", version, "--show-depends", module]);
    for (const line of out.split("\n")) {
      const path = /^insmod (\S+)/.exec(line.trim())?.[1];
      if (path && !order.includes(path)) order.push(path);
    }
  }
  return order;
}

/** A short hex SHA-256 of the parts (zero-separated), for cache keys. */
export async function sha256(parts: (string | Uint8Array)[]): Promise<string> {
  const enc = new TextEncoder();
  const chunks = parts.map((p) => (typeof p === "string" ? enc.encode(p) : p));
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length + 1, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length + 1; // a zero separator keeps ("ab","c") and ("a","bc") apart
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
}

/**
 * Builds the initramfs (gzip'd newc cpio) in `dir` unless it is already there: `files.busybox` (a
 * static busybox of the guest's architecture) and `files.init` default to the host's busybox and
 * init.sh.
 */
export async function ensureInitramfs(
  dir: string,
  tree: string,
  version: string,
  files: { busybox?: string; init?: string } = {},
): Promise<string> {
  const modules = moduleLoadOrder(tree, version);
  const init = Deno.readFileSync(files.init ?? INIT_SCRIPT);
  const setup = Deno.readFileSync(SETUP_SCRIPT);
  const busybox = Deno.readFileSync(files.busybox ?? BUSYBOX);
  const key = await sha256([init, setup, busybox, version, ...modules]);
  const target = `${dir}/initrd-${key}.cpio.gz`;
  if (exists(target)) return target;

  const work = Deno.makeTempDirSync({ dir, prefix: ".initrd-" });
  try {
    const root = `${work}/root`;
    for (const d of ["bin", "dev", "proc", "sys", "newroot", "modules"]) {
      Deno.mkdirSync(`${root}/${d}`, { recursive: true });
    }
    Deno.writeFileSync(`${root}/bin/busybox`, busybox, { mode: 0o755 });
    Deno.writeFileSync(`${root}/init`, init, { mode: 0o755 });
    Deno.writeFileSync(`${root}/guest_setup.sh`, setup, { mode: 0o755 });
    // Numbered names keep two modules with the same base name apart and document the order.
    const names = modules.map((path, i) => {
      const base = path.slice(path.lastIndexOf("/") + 1);
      const name = `${String(i).padStart(2, "0")}-${base.replace(/\.(xz|zst|gz)$/, "")}`;
      if (base.endsWith(".ko")) Deno.copyFileSync(path, `${root}/modules/${name}`);
      else {
        // busybox insmod cannot read compressed modules.
        const unpack = base.endsWith(".xz") ? "xz" : base.endsWith(".zst") ? "zstd" : "gzip";
        const raw = new Deno.Command(unpack, { args: ["-dc", path], stdout: "piped" }).outputSync();
        if (raw.code !== 0) throw new GuestImageError(`${unpack} -dc ${path} failed`);
        Deno.writeFileSync(`${root}/modules/${name}`, raw.stdout);
      }
      return name;
    });
    Deno.writeTextFileSync(`${root}/modules/order`, names.join("\n") + "\n");
    const partial = `${work}/initrd.cpio.gz`;
    tool("sh", [
      "-c",
      'cd "$1" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 >"$2"',
      "sh",
      root,
      partial,
    ]);
    Deno.renameSync(partial, target);
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
  return target;
}

/** Installs the host packages, then fetches the kernel and builds the initramfs if not cached. */
export async function prepareGuestImage(): Promise<GuestImage> {
  try {
    ensureDebianPackages(HOST_PACKAGES, "the soft-RoCE guest");
  } catch (e) {
    throw new GuestImageError((e as Error).message);
  }
  const version = kernelVersion();
  const dir = `${cacheRoot()}/${version}`;
  const tree = ensureKernel(dir, version);
  const initrd = await ensureInitramfs(dir, tree, version);
  const vmlinuz = `${tree}/boot/vmlinuz-${version}`;
  return {
    kernelVersion: version,
    vmlinuz: pvhKernel(vmlinuz, `${dir}/vmlinux-${version}`),
    initrd,
  };
}

/** Whether an ELF image has a PVH entry note (name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY = 18). */
export function hasPvhEntry(elf: Uint8Array): boolean {
  if (elf.length < 64 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[2] !== 0x4c || elf[3] !== 0x46) {
    return false;
  }
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  // A note: namesz 4, descsz, type, then the name "Xen\0" on a 4-byte boundary.
  for (let at = elf.indexOf(0x58, 12); at >= 0; at = elf.indexOf(0x58, at + 1)) {
    if (
      at % 4 === 0 && elf[at + 1] === 0x65 && elf[at + 2] === 0x6e && elf[at + 3] === 0 &&
      view.getUint32(at - 12, true) === 4 && view.getUint32(at - 4, true) === 18
    ) return true;
  }
  return false;
}

/**
 * The kernel to boot: the vmlinux decompressed from `vmlinuz` (its xz payload) and cached at
 * `cached`, when it has a PVH entry, so QEMU enters it directly without the bzImage's real-mode
 * setup and decompression (measured here at 6.1 s to ready instead of 9.5 s); else `vmlinuz`.
 */
export function pvhKernel(vmlinuz: string, cached: string): string {
  try {
    if (Deno.statSync(cached).isFile) return cached;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const image = Deno.readFileSync(vmlinuz);
  const xz = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
  let at = -1;
  for (let i = image.indexOf(xz[0]); i >= 0; i = image.indexOf(xz[0], i + 1)) {
    if (xz.every((b, k) => image[i + k] === b)) {
      at = i;
      break;
    }
  }
  if (at < 0) return vmlinuz;
  const payload = `${cached}.xz.${Deno.pid}`;
  Deno.writeFileSync(payload, image.subarray(at));
  let code: number, stdout: Uint8Array;
  try {
    ({ code, stdout } = new Deno.Command("xz", {
      args: ["-dc", "--single-stream", payload],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).outputSync());
  } finally {
    Deno.removeSync(payload);
  }
  if (code !== 0 || !hasPvhEntry(stdout)) return vmlinuz;
  const staging = `${cached}.${Deno.pid}`;
  Deno.writeFileSync(staging, stdout);
  Deno.renameSync(staging, cached);
  return cached;
}
