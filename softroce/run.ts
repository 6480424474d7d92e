/**
 * Runs a command inside a QEMU guest that has real soft-RoCE (rdma_rxe) devices.
 *
 *     deno task softroce [--arch x86_64|arm64] -- [--timeout N] <command...>
 *     deno run -A softroce/run.ts -- [--timeout N] <command...>
 *
 * The guest boots Debian's kernel under TCG, sees the host's root read-only over 9p, and runs the
 * command as root in the same working directory, with `ulimit -l unlimited`. Devices: `rxe0` on
 * loopback, and `rxeA` (10.10.0.1) / `rxeB` (10.10.0.2) on the two ends of a veth pair. The
 * command's output streams to stdout; the runner exits with the command's exit status, 124 when it
 * timed out, 125 when the guest could not be started, 130 on SIGINT.
 *
 * `--arch arm64` boots an aarch64 guest instead (qemu-system-aarch64 under TCG, Debian's arm64
 * kernel, an arm64 Debian root made by softroce/arm64.ts with the project bound in at its host path,
 * and the arm64 Deno first on PATH and bound over node_modules' x86_64 one).
 *
 * @module
 */
import {
  ARM64_BUILD_DIR,
  ARM64_DENO_DIR,
  buildArm64Native,
  prepareArm64GuestImage,
} from "./arm64.ts";
import { GuestImageError, prepareGuestImage } from "./image.ts";

/** The guest architectures the runner boots. */
export type GuestArch = "x86_64" | "arm64";

/** Options of {@link runInGuest}. */
export interface GuestRunOptions {
  /** Wall-clock limit for the whole run (boot included), in seconds. Default 1500. */
  timeoutSeconds?: number;
  /** Extra environment variables for the command, on top of NO_COLOR and DENO_RDMA_* from here. */
  env?: Record<string, string>;
  /** The guest's architecture. Default "x86_64". */
  arch?: GuestArch;
}

/** Exit status when the run timed out (as coreutils `timeout`). */
export const EXIT_TIMEOUT = 124;
/** Exit status when the guest could not be started or set up. */
export const EXIT_GUEST_FAILED = 125;
/** Exit status when the run was interrupted with SIGINT. */
export const EXIT_INTERRUPTED = 130;

const DEFAULT_TIMEOUT_SECONDS = 1500;
const READY = "@@SOFTROCE-READY@@";
const EXIT = "@@SOFTROCE-EXIT@@";
const FAILED = "@@SOFTROCE-FAILED@@";
/** How many console lines from before the command started are kept to explain a failed boot. */
const BOOT_LOG_LINES = 200;

const REPO_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Quotes one word for a POSIX shell. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The environment the command gets: NO_COLOR and DENO_RDMA_* from this process, then `extra`. */
function guestEnvironment(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (name === "NO_COLOR" || name.startsWith("DENO_RDMA_")) env[name] = value;
  }
  // The guest sets these from its own devices; a host's values (say, for a real NIC) would be
  // wrong there. options.env can still set them on purpose.
  for (const own of GUEST_OWNED) delete env[own];
  return { ...env, ...extra };
}

/** Variables guest_setup.sh exports (and the runner's own knob). */
const GUEST_OWNED = [
  "DENO_RDMA_GUEST",
  "DENO_RDMA_HOST_A",
  "DENO_RDMA_HOST_B",
  "DENO_RDMA_DEVICE_A",
  "DENO_RDMA_DEVICE_B",
  "DENO_RDMA_GID_INDEX_A",
  "DENO_RDMA_GID_INDEX_B",
  "DENO_RDMA_GID_INDEX_LO",
  "DENO_RDMA_SOFTROCE_KERNEL",
];

/**
 * The folders directly under /tmp that the job names (its working directory, or a command word
 * such as a path or `--flag=/tmp/...`): the guest's /tmp is its own tmpfs, so the host's folders
 * there are bound back in place (read-only, like the rest of the host).
 */
export function hostTmpFolders(command: string[], cwd: string): string[] {
  const folders = new Set<string>();
  for (const word of [`${cwd}/`, ...command]) {
    for (const match of word.matchAll(/(?:^|[=:])\/tmp\/([^/:=\s]+)/g)) {
      if (match[1] !== "." && match[1] !== "..") folders.add(match[1]);
    }
  }
  return [...folders].sort();
}

/** The job script: environment, host folders under /tmp, working directory, then the command. */
export function jobScript(
  command: string[],
  env: Record<string, string>,
  cwd: string,
  arch: GuestArch = "x86_64",
): string {
  const binds = hostTmpFolders(command, cwd).map((name) => {
    const [from, to] = [`/run/softroce/host-tmp/${name}`, `/tmp/${name}`];
    return `if [ -e ${shellQuote(from)} ]; then mkdir -p ${shellQuote(to)} && ` +
      `mount --bind ${shellQuote(from)} ${shellQuote(to)}; fi`;
  });
  const lines = [
    "# Written by softroce/run.ts for one guest run.",
    `export PATH=${
      shellQuote(
        `${arch === "arm64" ? `${ARM64_DENO_DIR}:` : ""}${REPO_ROOT}/node_modules/.bin:` +
          "/usr/sbin:/usr/bin:/sbin:/bin",
      )
    }`,
    ...binds,
    ...Object.entries(env).map(([name, value]) => `export ${name}=${shellQuote(value)}`),
    `cd ${shellQuote(cwd)} || { echo ${
      shellQuote(`soft-RoCE: cannot enter ${cwd} in the guest`)
    } >&2; exit 125; }`,
    `exec ${command.map(shellQuote).join(" ")}`,
  ];
  return lines.join("\n") + "\n";
}

function validate(command: string[], options: GuestRunOptions): number {
  if (!Array.isArray(command) || command.length === 0) {
    throw new TypeError("runInGuest: command must be a non-empty array of strings");
  }
  for (const word of command) {
    if (typeof word !== "string") throw new TypeError("runInGuest: command words must be strings");
    if (word.includes("\0")) throw new TypeError("runInGuest: command words cannot contain NUL");
  }
  const timeout = options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  // setTimeout cannot wait longer than 2^31-1 ms (about 24 days).
  if (typeof timeout !== "number" || !(timeout > 0 && timeout <= 2_000_000)) {
    throw new RangeError(`runInGuest: timeoutSeconds must be in (0, 2000000], got ${timeout}`);
  }
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (!ENV_NAME.test(name)) throw new TypeError(`runInGuest: bad environment name ${name}`);
    if (typeof value !== "string" || value.includes("\0")) {
      throw new TypeError(`runInGuest: environment value of ${name} must be a string without NUL`);
    }
  }
  return timeout;
}

/**
 * Follows the guest console: hides everything until the command starts (keeping it for failure
 * reports), then forwards the command's lines to stdout until the exit marker.
 */
class ConsoleFilter {
  ready = false;
  markerStatus: number | undefined;
  failure: string | undefined;
  readyAt = 0;
  bootLog: string[] = [];
  #pending = "";
  #done = false;
  #decoder = new TextDecoder();
  #encoder = new TextEncoder();

  async feed(chunk: Uint8Array): Promise<void> {
    this.#pending += this.#decoder.decode(chunk, { stream: true });
    const lines = this.#pending.split("\n");
    this.#pending = lines.pop() ?? "";
    let out = "";
    for (const line of lines) out += this.#line(lastRewrite(line));
    if (out) await writeAll(Deno.stdout, this.#encoder.encode(out));
  }

  async end(): Promise<void> {
    const out = this.#pending ? this.#line(lastRewrite(this.#pending)) : "";
    this.#pending = "";
    if (out) await writeAll(Deno.stdout, this.#encoder.encode(out));
  }

  /** Returns the text to show for one console line. */
  #line(line: string): string {
    if (this.#done) return "";
    if (!this.ready) {
      if (line.includes(FAILED)) this.failure = line.slice(line.indexOf(FAILED) + FAILED.length);
      if (line.includes(READY)) {
        this.ready = true;
        this.readyAt = performance.now();
        return "";
      }
      this.bootLog.push(line);
      if (this.bootLog.length > BOOT_LOG_LINES) this.bootLog.shift();
      return "";
    }
    const at = line.indexOf(EXIT);
    if (at >= 0) {
      this.#done = true;
      const status = Number(line.slice(at + EXIT.length).trim());
      if (Number.isInteger(status)) this.markerStatus = status;
      // Output that did not end in a newline shares the marker's line.
      return at > 0 ? line.slice(0, at) + "\n" : "";
    }
    return line + "\n";
  }
}

/**
 * What a terminal would show for one console line: the serial line ends each line with "\r\n", and
 * a bare "\r" inside a line (progress output) starts it over.
 */
function lastRewrite(line: string): string {
  const trimmed = line.replace(/\r+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("\r") + 1);
}

async function writeAll(w: { write(p: Uint8Array): Promise<number> }, data: Uint8Array) {
  for (let at = 0; at < data.length;) at += await w.write(data.subarray(at));
}

/**
 * The aarch64 guest's binds file (read by init_arm64.sh): the project and the working directory
 * from the host at their own paths, the arm64 Deno over the project's x86_64 one, and a build/ of
 * its own holding the aarch64 libraries built before the boot.
 */
export function arm64Binds(cwd: string): string {
  const paths = [REPO_ROOT, cwd].filter((p, i, all) =>
    all.indexOf(p) === i && !(i > 0 && (p + "/").startsWith(REPO_ROOT + "/"))
  );
  for (const p of paths) {
    if (/\s/.test(p)) throw new TypeError(`runInGuest: arm64 guest paths cannot hold spaces: ${p}`);
    if (/^\/(usr|etc|var|bin|sbin|lib|lib64|boot)(\/|$)/.test(p)) {
      throw new TypeError(`runInGuest: ${p} is under the arm64 root's own system folders`);
    }
  }
  return [
    ...paths.map((p) => `host ${p}`),
    `over ${ARM64_DENO_DIR}/deno ${REPO_ROOT}/node_modules/deno/deno`,
    // The host's build/ holds x86_64 libraries: the guest's is a tmpfs, with the aarch64 ones
    // built before the boot (buildArm64Native) copied in; tools/build.ts rebuilds what is stale.
    `tmpfs ${REPO_ROOT}/build`,
    `copy ${ARM64_BUILD_DIR} ${REPO_ROOT}/build`,
  ].join("\n") + "\n";
}

function qemuArgsArm64(vmlinuz: string, initrd: string, root: string, jobDir: string): string[] {
  return [
    // pauth-impdef: QEMU's own pointer-authentication hash, far cheaper under TCG than QARMA.
    ...["-M", "virt", "-cpu", "max,pauth-impdef=on", "-accel", "tcg,thread=multi"],
    ...["-smp", "2", "-m", "4096", "-nographic", "-no-reboot", "-nic", "none"],
    ...["-kernel", vmlinuz, "-initrd", initrd],
    ...["-append", "console=ttyAMA0 quiet loglevel=1 panic=-1 rdinit=/init"],
    "-virtfs",
    `local,path=${root},mount_tag=guestroot,security_model=passthrough,multidevs=remap,readonly=on`,
    "-virtfs",
    "local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap,readonly=on",
    "-virtfs",
    `local,path=${jobDir},mount_tag=job,security_model=none`,
  ];
}

function qemuArgs(vmlinuz: string, initrd: string, jobDir: string): string[] {
  return [
    ...["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "4096"],
    ...["-nographic", "-no-reboot", "-nic", "none"],
    ...["-kernel", vmlinuz, "-initrd", initrd],
    // clocksource=tsc tsc=reliable: the kernel otherwise finds TCG's TSCs "unsynchronized" and
    // falls back to the emulated HPET, and every clock_gettime (performance.now() in Deno) becomes
    // a system call reading it; with the TSC it stays in the vDSO (perftest reads the TSC itself).
    ...[
      "-append",
      "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init clocksource=tsc tsc=reliable",
    ],
    // The host's root, read-only; the guest mounts its own proc/sys/dev/tmpfs on top.
    "-virtfs",
    "local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap,readonly=on",
    // The per-run job folder: command.sh in, status out. "none" works for non-root hosts too.
    "-virtfs",
    `local,path=${jobDir},mount_tag=job,security_model=none`,
  ];
}

/** The guest's /run and /dev/shm are its own tmpfs: host files there are not visible. */
function warnAboutHostOnlyPaths(command: string[]): void {
  for (const word of [Deno.cwd() + "/", ...command]) {
    if (/^\/(run|dev\/shm)\//.test(word)) {
      console.error(
        `soft-RoCE: note: ${word} is on the guest's own tmpfs; host files under /run and ` +
          "/dev/shm are not visible in the guest",
      );
    }
  }
}

/**
 * Runs `command` inside the soft-RoCE guest, streaming its output to stdout, and resolves to its
 * exit status (124 on timeout, 125 when the guest could not be started, 130 on SIGINT). The
 * working directory in the guest is `Deno.cwd()`.
 */
export async function runInGuest(
  command: string[],
  options: GuestRunOptions = {},
): Promise<number> {
  const timeoutSeconds = validate(command, options);
  warnAboutHostOnlyPaths(command);
  const started = performance.now();
  const arch = options.arch ?? "x86_64";
  if (arch !== "x86_64" && arch !== "arm64") {
    throw new TypeError(`runInGuest: arch must be "x86_64" or "arm64", got ${arch}`);
  }
  let image;
  try {
    image = arch === "arm64" ? await prepareArm64GuestImage() : await prepareGuestImage();
  } catch (e) {
    if (!(e instanceof GuestImageError)) throw e;
    console.error(`soft-RoCE: cannot prepare the guest: ${e.message}`);
    return EXIT_GUEST_FAILED;
  }
  if ("root" in image) {
    const built = performance.now();
    const failure = buildArm64Native(image.root as string);
    const seconds = ((performance.now() - built) / 1000).toFixed(1);
    console.error(
      failure
        ? `soft-RoCE: the aarch64 build failed, the guest builds: ${failure}`
        : `soft-RoCE: aarch64 libraries current (${seconds} s)`,
    );
  }

  const jobDir = await Deno.makeTempDir({ prefix: "deno-rdma-softroce-" });
  try {
    const env = guestEnvironment(options.env ?? {});
    await Deno.writeTextFile(`${jobDir}/command.sh`, jobScript(command, env, Deno.cwd(), arch));
    if (arch === "arm64") await Deno.writeTextFile(`${jobDir}/binds`, arm64Binds(Deno.cwd()));
    await Deno.chmod(jobDir, 0o777); // the guest writes the status file as its root

    const qemu = new Deno.Command(arch === "arm64" ? "qemu-system-aarch64" : "qemu-system-x86_64", {
      args: "root" in image
        ? qemuArgsArm64(image.vmlinuz, image.initrd, image.root as string, jobDir)
        : qemuArgs(image.vmlinuz, image.initrd, jobDir),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();

    let stopReason: "timeout" | "interrupt" | undefined;
    const stop = (reason: "timeout" | "interrupt") => {
      stopReason ??= reason;
      try {
        qemu.kill("SIGKILL");
      } catch { /* already gone */ }
    };
    const timer = setTimeout(() => stop("timeout"), timeoutSeconds * 1000);
    const onInterrupt = () => stop("interrupt");
    Deno.addSignalListener("SIGINT", onInterrupt);
    const filter = new ConsoleFilter();
    const qemuErrors: string[] = [];
    const readErrors = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of qemu.stderr) qemuErrors.push(decoder.decode(chunk));
    })();
    try {
      let announced = false;
      for await (const chunk of qemu.stdout) {
        await filter.feed(chunk);
        if (filter.ready && !announced) {
          announced = true;
          const seconds = ((filter.readyAt - started) / 1000).toFixed(1);
          console.error(`soft-RoCE guest ready in ${seconds} s`);
        }
      }
      await filter.end();
      await readErrors;
    } finally {
      clearTimeout(timer);
      Deno.removeSignalListener("SIGINT", onInterrupt);
    }
    const qemuStatus = await qemu.status;

    if (stopReason === "timeout") {
      console.error(`soft-RoCE: timed out after ${timeoutSeconds} s; QEMU killed`);
      return EXIT_TIMEOUT;
    }
    if (stopReason === "interrupt") {
      console.error("soft-RoCE: interrupted; QEMU killed");
      return EXIT_INTERRUPTED;
    }
    let fileStatus: number | undefined;
    try {
      const text = (await Deno.readTextFile(`${jobDir}/status`)).trim();
      if (/^\d+$/.test(text)) fileStatus = Number(text);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const status = fileStatus ?? filter.markerStatus;
    if (status !== undefined) return status;

    // The command never finished: say why, with the console lines that led there.
    const why = filter.failure?.trim() ??
      (filter.ready
        ? "the guest stopped before the command reported its exit status"
        : `the guest stopped before it was ready (QEMU exit status ${qemuStatus.code})`);
    console.error(`soft-RoCE: ${why}`);
    const tail = filter.bootLog.filter((l) => l.trim() !== "").slice(-40);
    if (!filter.ready && tail.length > 0) {
      console.error("soft-RoCE: last guest console lines:\n  " + tail.join("\n  "));
    }
    const errors = qemuErrors.join("").trim();
    if (errors) console.error(`soft-RoCE: QEMU said: ${errors}`);
    return EXIT_GUEST_FAILED;
  } finally {
    await Deno.remove(jobDir, { recursive: true }).catch(() => {});
  }
}

/** Parses `[--] [--timeout N] [--] command...` into the command and its timeout. */
export function parseArguments(
  args: string[],
): { command: string[]; timeoutSeconds?: number; arch: GuestArch } {
  const rest = [...args];
  let timeoutSeconds: number | undefined;
  let arch: GuestArch = "x86_64";
  const setArch = (value: string | undefined) => {
    if (value === "x86_64" || value === "amd64") arch = "x86_64";
    else if (value === "arm64" || value === "aarch64") arch = "arm64";
    else throw new RangeError(`--arch must be x86_64 or arm64, got ${value}`);
  };
  while (rest.length > 0) {
    if (rest[0] === "--") rest.shift();
    else if (rest[0] === "--arch") {
      setArch(rest[1]);
      rest.splice(0, 2);
    } else if (rest[0].startsWith("--arch=")) {
      setArch(rest.shift()!.slice("--arch=".length));
    } else if (rest[0] === "--timeout") {
      const value = Number(rest[1]);
      if (rest.length < 2 || !Number.isFinite(value) || value <= 0) {
        throw new RangeError(`--timeout needs a positive number of seconds, got ${rest[1]}`);
      }
      timeoutSeconds = value;
      rest.splice(0, 2);
    } else if (rest[0].startsWith("--timeout=")) {
      const value = Number(rest[0].slice("--timeout=".length));
      if (!Number.isFinite(value) || value <= 0) {
        throw new RangeError(`--timeout needs a positive number of seconds, got ${rest[0]}`);
      }
      timeoutSeconds = value;
      rest.shift();
    } else break;
  }
  if (rest.length === 0) {
    throw new TypeError(
      "usage: deno task softroce [--arch x86_64|arm64] -- [--timeout N] <command...>",
    );
  }
  return { command: rest, timeoutSeconds, arch };
}

if (import.meta.main) {
  let status;
  try {
    const parsed = parseArguments(Deno.args);
    status = await runInGuest(parsed.command, {
      timeoutSeconds: parsed.timeoutSeconds,
      arch: parsed.arch,
    });
  } catch (e) {
    if (!(e instanceof TypeError || e instanceof RangeError)) throw e;
    console.error(e.message);
    status = 2;
  }
  Deno.exit(status);
}
