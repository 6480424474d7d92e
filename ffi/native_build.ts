/**
 * The first-use builder: finds or builds the run-time native libraries in a per-user cache.
 *
 * The cache folder is `$DENO_RDMA_CACHE_DIR`, else `$XDG_CACHE_HOME/deno-rdma/native`, else
 * `$HOME/.cache/deno-rdma/native`. Each entry is a folder named by a hash of everything the
 * libraries are made from: the C sources (read from this module's own location, a file or an
 * http(s) URL, with the headers they include), the compiler and its `--version`, the flags
 * (`ffi/native_targets.ts`), the architecture and the glibc version. An entry holds the libraries
 * and `manifest.json`, written last, with each library's SHA-256; an entry whose libraries do not
 * match its manifest (or that has none) is rebuilt, never loaded.
 *
 * A build runs under an exclusive lock (`flock` on `<key>.lock`, released by the kernel if the
 * process dies, so it never goes stale), in a temporary folder that is renamed into place, so two
 * processes starting at once build once and a crash leaves nothing that loads. Later runs find
 * the entry through `urls/<hash of the module URL>.json` without reading the sources again for a
 * remote module (as Deno's own module cache keeps a URL's modules) and without running the
 * compiler; for a local module the sources are hashed again and must match.
 *
 * Everything here is synchronous (the libraries are opened inside synchronous calls): remote
 * sources are fetched by a Worker while this thread waits in `Atomics.wait`.
 *
 * @module
 */
import { NativeLibraryError } from "./native_error.ts";
import {
  CFLAGS,
  compileArgs,
  dirOf,
  type NativeTarget,
  RUNTIME_LIBRARIES,
  runtimeTargets,
  targetFolders,
} from "./native_targets.ts";
import { sha256Hex } from "./sha256.ts";

/** Environment variable naming the cache folder. */
export const CACHE_DIR_ENV = "DENO_RDMA_CACHE_DIR";

/** The environment variables the loader and builder read (for `--allow-env=`). */
export const ENV_VARS = ["DENO_RDMA_LIB_DIR", CACHE_DIR_ENV, "XDG_CACHE_HOME", "HOME", "CC"];

/** The root of the module tree this file belongs to (where mod.ts is): file: or http(s):. */
export const MODULE_ROOT = new URL("../", import.meta.url);

/** The file in a cache entry (or a DENO_RDMA_LIB_DIR) that lists each library's SHA-256. */
export const MANIFEST_FILE = "manifest.json";

const FORMAT = 1;
const FETCH_TIMEOUT_MS = 120_000;
const ENV_FLAG = `--allow-env=${ENV_VARS.join(",")}`;

/** What `manifest.json` holds. */
export interface NativeManifest {
  /** Manifest format, 1. */
  format: number;
  /** The entry's key: the hash of what the libraries are made from. */
  key: string;
  /** The module root the sources were read from. */
  module: string;
  /** Each library's file name and the SHA-256 of its bytes. */
  libraries: Record<string, string>;
  /** The compiler command and the first line of its `--version`. */
  compiler: string;
  /** The compiler's `--version`, first line. */
  compilerVersion: string;
  /** `Deno.build.target`. */
  target: string;
  /** glibc's version (`gnu_get_libc_version()`). */
  glibc: string;
}

const WHAT = "deno-rdma's native libraries";

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function refused(flag: string, path: string, what: string, cause: unknown): NativeLibraryError {
  return new NativeLibraryError(WHAT, [{ path, error: `Deno refused ${what}` }], {
    reason: "permission",
    flag,
    advice: `run with ${flag} (Deno refused ${what})`,
    cause,
  });
}

function isReadOnly(error: unknown): boolean {
  return error instanceof Deno.errors.PermissionDenied ||
    (error instanceof Error &&
      ((error as { code?: string }).code === "EROFS" ||
        /read-only file system/i.test(error.message)));
}

function readOnly(dir: string, cause: unknown): NativeLibraryError {
  return new NativeLibraryError(WHAT, [{ path: dir, error: message(cause) }], {
    reason: "cache-read-only",
    advice: `the cache folder ${dir} is not writable: set ${CACHE_DIR_ENV} to a writable folder, ` +
      "or build ahead of time (deno run -A <module>/tools/install.ts) where it is and set " +
      "DENO_RDMA_LIB_DIR to the folder it prints",
    cause,
  });
}

/** Reads an environment variable, naming the flag when Deno refuses. */
function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw refused(ENV_FLAG, `$${name}`, `reading the environment variable ${name}`, error);
    }
    throw error;
  }
}

/** The cache folder (not created). */
export function cacheRoot(): string {
  const fromEnv = env(CACHE_DIR_ENV);
  if (fromEnv) return fromEnv.replace(/\/+$/, "");
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${xdg.replace(/\/+$/, "")}/deno-rdma/native`;
  const home = env("HOME");
  if (!home) {
    throw new NativeLibraryError(WHAT, [{ path: "$HOME", error: "not set" }], {
      reason: "not-found",
      advice: `set ${CACHE_DIR_ENV} (or HOME) to say where to build the native libraries`,
    });
  }
  return `${home.replace(/\/+$/, "")}/.cache/deno-rdma/native`;
}

/** `fn()`, with Deno's refusals and read-only folders turned into NativeLibraryErrors. */
function guarded<T>(access: "read" | "write", path: string, dir: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw refused(`--allow-${access}=${dir}`, path, `${access} access to ${path}`, error);
    }
    if (access === "write" && isReadOnly(error)) throw readOnly(dir, error);
    throw error;
  }
}

function readJson<T>(path: string, dir: string): T | undefined {
  try {
    return JSON.parse(guarded("read", path, dir, () => Deno.readTextFileSync(path))) as T;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof SyntaxError) return undefined;
    throw error;
  }
}

/** Writes `text` to `path` through a temporary name and a rename. */
function writeAtomically(path: string, text: string, dir: string): void {
  const temporary = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  guarded("write", path, dir, () => {
    Deno.writeTextFileSync(temporary, text);
    Deno.renameSync(temporary, path);
  });
}

/**
 * Why the libraries in `dir` cannot be used, or null when `manifest.json` lists each of `names`
 * with the SHA-256 its file has now.
 */
export function entryRefusal(
  dir: string,
  names: readonly string[] = RUNTIME_LIBRARIES,
  readDir = dir,
): string | null {
  const manifest = readJson<NativeManifest>(`${dir}/${MANIFEST_FILE}`, readDir);
  if (!manifest || manifest.format !== FORMAT || typeof manifest.libraries !== "object") {
    return `no valid ${MANIFEST_FILE}`;
  }
  for (const name of names) {
    const expected = manifest.libraries[name];
    if (!expected) return `${MANIFEST_FILE} does not list ${name}`;
    let bytes: Uint8Array;
    try {
      bytes = guarded("read", `${dir}/${name}`, readDir, () => Deno.readFileSync(`${dir}/${name}`));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return `${name} is missing`;
      throw error;
    }
    if (sha256Hex(bytes) !== expected) {
      return `${name} does not match the SHA-256 in ${MANIFEST_FILE} (changed after it was built)`;
    }
  }
  return null;
}

// ---- the sources -------------------------------------------------------------------------------

const INCLUDE = /^[ \t]*#[ \t]*include[ \t]*"([^"]+)"/gm;

function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return out.join("/");
}

/** The source's text of a fetch worker: fetches paths under a base URL into a folder. */
const FETCH_WORKER = `
self.onmessage = async ({ data }) => {
  const { base, paths, folder, sab } = data;
  const control = new Int32Array(sab, 0, 2);
  const out = new Uint8Array(sab, 8);
  let result;
  try {
    const found = [];
    await Promise.all(paths.map(async (path) => {
      const url = new URL(path, base);
      const response = await fetch(url);
      if (response.status === 404) {
        await response.body?.cancel();
        return;
      }
      if (!response.ok) throw new Error("GET " + url + ": " + response.status + " " + response.statusText);
      const bytes = new Uint8Array(await response.arrayBuffer());
      const file = folder + "/" + path;
      await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
      await Deno.writeFile(file, bytes);
      found.push(path);
    }));
    result = { ok: true, found };
  } catch (e) {
    result = { ok: false, name: String(e?.name ?? "Error"), message: String(e?.message ?? e).slice(0, 4000) };
  }
  const bytes = new TextEncoder().encode(JSON.stringify(result));
  out.set(bytes.subarray(0, out.length));
  Atomics.store(control, 1, Math.min(bytes.length, out.length));
  Atomics.store(control, 0, 1);
  Atomics.notify(control, 0);
};
`;

/** Fetches `paths` (relative to MODULE_ROOT) into `folder`, synchronously; returns those found. */
function fetchInto(paths: string[], folder: string): Set<string> {
  const sab = new SharedArrayBuffer(8 + (1 << 16));
  const control = new Int32Array(sab, 0, 2);
  const url = URL.createObjectURL(new Blob([FETCH_WORKER], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  try {
    worker.postMessage({ base: MODULE_ROOT.href, paths, folder, sab });
    if (Atomics.wait(control, 0, 0, FETCH_TIMEOUT_MS) === "timed-out") {
      throw new NativeLibraryError(WHAT, [{ path: MODULE_ROOT.href, error: "timed out" }], {
        reason: "sources-unavailable",
        advice: `could not fetch the C sources from ${MODULE_ROOT.href} within ` +
          `${FETCH_TIMEOUT_MS / 1000} s`,
      });
    }
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
  const text = new TextDecoder().decode(new Uint8Array(sab, 8, Atomics.load(control, 1)));
  const result = JSON.parse(text) as
    | { ok: true; found: string[] }
    | { ok: false; name: string; message: string };
  if (result.ok) return new Set(result.found);
  if (result.name === "NotCapable") {
    const flag = `--allow-net=${MODULE_ROOT.host}`;
    throw new NativeLibraryError(WHAT, [{ path: MODULE_ROOT.href, error: result.message }], {
      reason: "permission",
      flag,
      advice: `run with ${flag}: the C sources are fetched from ${MODULE_ROOT.origin} to build ` +
        "the native libraries once",
    });
  }
  throw new NativeLibraryError(WHAT, [{ path: MODULE_ROOT.href, error: result.message }], {
    reason: "sources-unavailable",
    advice: `could not fetch the C sources from ${MODULE_ROOT.href}`,
  });
}

/**
 * The C sources of the run-time targets and every header they include with `"..."` (looked up as
 * the compiler does: the including file's folder, then the target's `-I` folders), by
 * repo-relative path. Remote files are fetched into `staging`.
 */
function gatherSources(staging: string): Map<string, Uint8Array> {
  const local = MODULE_ROOT.protocol === "file:";
  const rootPath = local ? decodeURIComponent(MODULE_ROOT.pathname).replace(/\/$/, "") : "";
  const known = new Map<string, Uint8Array | null>();
  const read = (paths: string[]) => {
    const missing = [...new Set(paths)].filter((p) => !known.has(p));
    if (missing.length === 0) return;
    if (local) {
      for (const path of missing) {
        try {
          known.set(
            path,
            guarded(
              "read",
              `${rootPath}/${path}`,
              rootPath,
              () => Deno.readFileSync(`${rootPath}/${path}`),
            ),
          );
        } catch (error) {
          if (error instanceof Deno.errors.NotFound) known.set(path, null);
          else throw error;
        }
      }
      return;
    }
    const found = fetchInto(missing, staging);
    for (const path of missing) {
      known.set(path, found.has(path) ? Deno.readFileSync(`${staging}/${path}`) : null);
    }
  };
  type Wanted = { candidates: string[]; target: NativeTarget; from: string };
  let wanted: Wanted[] = runtimeTargets().flatMap((target) =>
    target.sources.map((s) => ({ candidates: [s], target, from: "ffi/native_targets.ts" }))
  );
  const resolved = new Set<string>();
  while (wanted.length > 0) {
    read(wanted.flatMap((w) => w.candidates));
    const next: Wanted[] = [];
    for (const w of wanted) {
      const path = w.candidates.find((c) => known.get(c));
      if (path === undefined) {
        if (w.from === "ffi/native_targets.ts") {
          throw new NativeLibraryError(WHAT, [{
            path: new URL(w.candidates[0], MODULE_ROOT).href,
            error: "not found",
          }], {
            reason: "sources-unavailable",
            advice: `the C source ${
              w.candidates[0]
            } listed in ffi/native_targets.ts is not at ${MODULE_ROOT.href}`,
          });
        }
        continue; // a system header, or one the compiler will report
      }
      const key = `${w.target.output}:${path}`;
      if (resolved.has(key)) continue;
      resolved.add(key);
      const text = new TextDecoder().decode(known.get(path)!);
      for (const match of text.matchAll(INCLUDE)) {
        const name = match[1];
        next.push({
          candidates: [dirOf(path), ...targetFolders(w.target)].map((d) =>
            normalize(`${d}/${name}`)
          ),
          target: w.target,
          from: path,
        });
      }
    }
    wanted = next;
  }
  const files = new Map<string, Uint8Array>();
  for (const [path, bytes] of [...known].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
    if (bytes) files.set(path, bytes);
  }
  return files;
}

function sourcesDigest(files: Map<string, Uint8Array>): string {
  return sha256Hex([...files].map(([path, bytes]) => `${path}\0${sha256Hex(bytes)}\n`).join(""));
}

// ---- the toolchain -----------------------------------------------------------------------------

function compiler(): string {
  return env("CC") || "cc";
}

function noCompiler(cc: string, error: string, cause?: unknown): NativeLibraryError {
  return new NativeLibraryError(WHAT, [{ path: cc, error }], {
    reason: "no-compiler",
    advice: `no C compiler (${cc}): install gcc: apt-get install gcc / dnf install gcc ` +
      "(or set CC to a C compiler)",
    cause,
  });
}

function run(cc: string, args: string[], cwd?: string): Deno.CommandOutput {
  try {
    return new Deno.Command(cc, { args, cwd, stdout: "piped", stderr: "piped" }).outputSync();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      const flag = `--allow-run=${cc}`;
      throw refused(flag, cc, `running the C compiler ${cc}`, error);
    }
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      throw noCompiler(cc, message(error), error);
    }
    throw error;
  }
}

function compilerVersion(cc: string): string {
  const { code, stdout, stderr } = run(cc, ["--version"]);
  const text = new TextDecoder().decode(stdout).trim();
  if (code !== 0 || text === "") {
    throw noCompiler(cc, `\`${cc} --version\` failed: ${new TextDecoder().decode(stderr).trim()}`);
  }
  return text.split("\n")[0];
}

function glibcVersion(): string {
  let libc;
  try {
    libc = Deno.dlopen(
      "libc.so.6",
      {
        gnu_get_libc_version: { parameters: [], result: "pointer" },
      } as const,
    );
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw refused("--allow-ffi", "libc.so.6", "loading a native library", error);
    }
    return `unknown (${message(error)})`;
  }
  try {
    const pointer = libc.symbols.gnu_get_libc_version();
    return pointer === null ? "unknown" : Deno.UnsafePointerView.getCString(pointer);
  } finally {
    libc.close();
  }
}

/** A failed compile as the error that says what to install. */
function compileFailure(target: NativeTarget, cc: string, args: string[], diagnostics: string) {
  const attempt = [{ path: `${cc} ${args.join(" ")}`, error: diagnostics.trim().slice(0, 4000) }];
  const header =
    /(infiniband\/verbs\.h|rdma\/rdma_cma\.h)|cannot find -l(ibverbs|rdmacm)|-l(ibverbs|rdmacm): No such file/
      .test(diagnostics);
  if (header) {
    return new NativeLibraryError(WHAT, attempt, {
      reason: "no-verbs-header",
      advice: `building ${target.output} needs rdma-core's development files ` +
        "(infiniband/verbs.h, rdma/rdma_cma.h, libibverbs.so and librdmacm.so): " +
        "apt-get install libibverbs-dev librdmacm-dev (Debian, Ubuntu) " +
        "/ dnf install rdma-core-devel (Fedora, RHEL)",
    });
  }
  return new NativeLibraryError(WHAT, attempt, {
    reason: "build-failed",
    advice: `the C compiler failed to build ${target.output} (its output is above)`,
  });
}

// ---- the cache ---------------------------------------------------------------------------------

interface Pointer {
  module: string;
  key: string;
  sources: string;
}

function pointerPath(root: string): string {
  return `${root}/urls/${sha256Hex(MODULE_ROOT.href).slice(0, 32)}.json`;
}

let resolvedEntry: string | undefined;
let announced = false;

function announce(dir: string, why: string): void {
  if (announced || why.startsWith("no valid")) return;
  announced = true;
  console.error(`deno-rdma: ${dir}: ${why}; rebuilding`);
}

/** The flags a first use that builds needs, for a permission error's advice. */
function firstUseFlags(root: string): string {
  const net = MODULE_ROOT.protocol === "file:"
    ? `--allow-read=${decodeURIComponent(MODULE_ROOT.pathname)}`
    : `--allow-net=${MODULE_ROOT.host}`;
  return `--allow-ffi ${ENV_FLAG} --allow-read=${root} --allow-write=${root} ${net} ` +
    `--allow-run=${compilerName()}`;
}

function compilerName(): string {
  try {
    return Deno.env.get("CC") || "cc";
  } catch {
    return "cc";
  }
}

/** Options of {@link ensureNativeLibraries}. */
export interface EnsureOptions {
  /** Skip the fast path through `urls/` and hash the sources again. */
  fresh?: boolean;
}

/**
 * The cache entry (a folder) holding every run-time library, verified against its manifest,
 * building it first when it is missing or does not match. Throws NativeLibraryError.
 */
export function ensureNativeLibraries(options: EnsureOptions = {}): string {
  if (resolvedEntry && !options.fresh) return resolvedEntry;
  const root = cacheRoot();
  try {
    return resolvedEntry = findOrBuild(root, options);
  } catch (error) {
    if (!(error instanceof NativeLibraryError) || error.reason !== "permission") throw error;
    throw new NativeLibraryError(error.fileName, error.attempts, {
      reason: "permission",
      flag: error.flag,
      advice: `${error.advice}; a first use that builds needs ${firstUseFlags(root)}, later ` +
        `runs --allow-ffi ${ENV_FLAG} --allow-read=${root} (or build ahead of time with ` +
        "tools/install.ts and set DENO_RDMA_LIB_DIR)",
      cause: error.cause,
    });
  }
}

function findOrBuild(root: string, options: EnsureOptions): string {
  const pointerFile = pointerPath(root);
  const pointer = options.fresh ? undefined : readJson<Pointer>(pointerFile, root);
  const local = MODULE_ROOT.protocol === "file:";
  if (pointer && pointer.module === MODULE_ROOT.href && /^[0-9a-f]{32}$/.test(pointer.key)) {
    const dir = `${root}/${pointer.key}`;
    // A local module's sources can change under the same URL: hash them again (no compiler run).
    const current = local ? sourcesDigest(gatherSources("")) : pointer.sources;
    if (current === pointer.sources) {
      const why = entryRefusal(dir, RUNTIME_LIBRARIES, root);
      if (why === null) return dir;
      announce(dir, why);
    }
  }

  guarded("write", root, root, () => Deno.mkdirSync(root, { recursive: true }));
  const staging = guarded(
    "write",
    root,
    root,
    () => Deno.makeTempDirSync({ dir: root, prefix: ".staging-" }),
  );
  try {
    const files = gatherSources(staging);
    const digest = sourcesDigest(files);
    const cc = compiler();
    const version = compilerVersion(cc);
    const glibc = glibcVersion();
    const key = sha256Hex(JSON.stringify({
      format: FORMAT,
      targets: runtimeTargets(),
      cflags: CFLAGS,
      cc,
      version,
      target: Deno.build.target,
      glibc,
      sources: digest,
    })).slice(0, 32);
    const dir = `${root}/${key}`;
    let why = entryRefusal(dir, RUNTIME_LIBRARIES, root);
    if (why !== null) {
      const lock = guarded(
        "write",
        `${dir}.lock`,
        root,
        () => Deno.openSync(`${dir}.lock`, { read: true, write: true, create: true }),
      );
      try {
        lock.lockSync(true); // another process building the same entry: wait for it
        why = entryRefusal(dir, RUNTIME_LIBRARIES, root);
        if (why !== null) {
          announce(dir, why);
          build(files, staging, dir, root, { cc, version, glibc, key });
        }
      } finally {
        lock.unlockSync();
        lock.close();
      }
    }
    const record: Pointer = { module: MODULE_ROOT.href, key, sources: digest };
    guarded(
      "write",
      `${root}/urls`,
      root,
      () => Deno.mkdirSync(`${root}/urls`, { recursive: true }),
    );
    writeAtomically(pointerFile, JSON.stringify(record) + "\n", root);
    return dir;
  } finally {
    try {
      Deno.removeSync(staging, { recursive: true });
    } catch {
      // Left behind: a later build uses its own staging folder.
    }
  }
}

function build(
  files: Map<string, Uint8Array>,
  staging: string,
  dir: string,
  root: string,
  toolchain: { cc: string; version: string; glibc: string; key: string },
): void {
  console.error(`deno-rdma: building native libraries into ${dir} (once)`);
  const tree = `${staging}/tree`;
  guarded("write", tree, root, () => {
    for (const [path, bytes] of files) {
      Deno.mkdirSync(`${tree}/${dirOf(path)}`, { recursive: true });
      Deno.writeFileSync(`${tree}/${path}`, bytes);
    }
    Deno.mkdirSync(`${tree}/build`, { recursive: true });
  });
  const libraries: Record<string, string> = {};
  for (const target of runtimeTargets()) {
    const args = compileArgs(target);
    const { code, stderr } = run(toolchain.cc, args, tree);
    const diagnostics = new TextDecoder().decode(stderr);
    if (code !== 0) throw compileFailure(target, toolchain.cc, args, diagnostics);
    libraries[target.output] = sha256Hex(Deno.readFileSync(`${tree}/build/${target.output}`));
  }
  guarded("write", dir, root, () => {
    try {
      Deno.removeSync(dir, { recursive: true }); // an unfinished or refused entry
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    Deno.renameSync(`${tree}/build`, dir);
  });
  const manifest: NativeManifest = {
    format: FORMAT,
    key: toolchain.key,
    module: MODULE_ROOT.href,
    libraries,
    compiler: toolchain.cc,
    compilerVersion: toolchain.version,
    target: Deno.build.target,
    glibc: toolchain.glibc,
  };
  writeAtomically(`${dir}/${MANIFEST_FILE}`, JSON.stringify(manifest, null, 2) + "\n", root);
}
