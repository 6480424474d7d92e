/**
 * Builds the native libraries into `build/` with the system C compiler.
 *
 * Each target compiles every `.c` file of one source folder into one shared library. A target is
 * rebuilt when its output is missing or older than any `.c`/`.h` file it depends on.
 * `ensureBuilt()` is what `test`, `demo` and `bench` call first.
 *
 * @module
 */
import { ensureDebianPackages } from "./deps.ts";
import { writeRecordModules } from "./records.ts";

export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const BUILD_DIR = `${ROOT}/build`;

/** One shared library built from the C files of `dir`. */
export interface NativeTarget {
  /** File name in `build/`. */
  output: string;
  /** Folder (relative to the repo root) whose `.c` files are compiled together. */
  dir: string;
  /** Other folders whose headers it includes; their changes trigger a rebuild too. */
  includes: string[];
  /** Extra linker arguments, after the objects. */
  ldflags: string[];
}

const CFLAGS = [
  "-std=c11",
  "-D_GNU_SOURCE",
  "-Wall",
  "-Wextra",
  "-Werror",
  "-O2",
  "-g",
  "-fPIC",
  "-shared",
];

/** In dependency order: a library is built after the ones it links against. */
export const TARGETS: NativeTarget[] = [
  {
    // The memory hooks: patches libc, so it must never be unloaded (-z nodelete).
    output: "libopal_memhooks.so",
    dir: "hooks/native",
    includes: [],
    // -z now: every symbol bound at load, so no hook ever runs the dynamic linker's lazy resolver.
    ldflags: [
      "-mcx16",
      "-pthread",
      "-ldl",
      "-Wl,-z,nodelete",
      "-Wl,-z,now",
      "-Wl,-soname,libopal_memhooks.so",
    ],
  },
  {
    // What libibverbs keeps inline or as macros, and errno.
    output: "libdeno_rdma_verbs.so",
    dir: "ffi/native",
    includes: [],
    // nodelete: a worker's libraries are closed when it ends, even while one of its calls (a
    // completion-queue wait) still runs on another thread.
    ldflags: ["-libverbs", "-Wl,-z,nodelete"],
  },
  {
    // The registration cache's native state, reached by the hooks synchronously.
    output: "libdeno_rdma_rcache.so",
    dir: "cache/native",
    includes: ["hooks/native"],
    ldflags: [
      "-pthread",
      "-L" + "build",
      "-lopal_memhooks",
      "-libverbs",
      "-Wl,-rpath,$ORIGIN",
      "-Wl,-z,nodelete",
      "-Wl,-z,now", // its release hook runs inside the memory hooks: no lazy binding there
    ],
  },
  {
    // Native helpers the tests call: threads, fork, allocator paths driven from C.
    output: "libdeno_rdma_testsupport.so",
    dir: "tests/native",
    includes: ["hooks/native", "cache/native"],
    // nodelete: its C callbacks stay registered with the hooks after Deno closes the library.
    ldflags: [
      "-pthread",
      "-L" + "build",
      "-lopal_memhooks",
      "-ldeno_rdma_rcache",
      "-Wl,-rpath,$ORIGIN",
      "-Wl,-z,nodelete",
    ],
  },
];

function newestMtime(dir: string, extensions: string[]): number {
  let newest = 0;
  try {
    for (const entry of Deno.readDirSync(`${ROOT}/${dir}`)) {
      if (!entry.isFile || !extensions.some((e) => entry.name.endsWith(e))) continue;
      const mtime = Deno.statSync(`${ROOT}/${dir}/${entry.name}`).mtime?.getTime() ?? 0;
      newest = Math.max(newest, mtime);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return newest;
}

function sourcesOf(target: NativeTarget): string[] {
  try {
    return [...Deno.readDirSync(`${ROOT}/${target.dir}`)]
      .filter((e) => e.isFile && e.name.endsWith(".c"))
      .map((e) => `${target.dir}/${e.name}`)
      .sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

function isStale(target: NativeTarget): boolean {
  let built: number;
  try {
    built = Deno.statSync(`${BUILD_DIR}/${target.output}`).mtime?.getTime() ?? 0;
  } catch {
    return true;
  }
  const inputs = [target.dir, ...target.includes].map((d) => newestMtime(d, [".c", ".h"]));
  inputs.push(Deno.statSync(new URL(import.meta.url).pathname).mtime?.getTime() ?? 0);
  return inputs.some((t) => t > built);
}

function compile(target: NativeTarget): void {
  const sources = sourcesOf(target);
  if (sources.length === 0) return;
  const cc = Deno.env.get("CC") ?? "cc";
  const args = [
    ...CFLAGS,
    ...target.includes.map((d) => `-I${d}`),
    `-I${target.dir}`,
    "-o",
    `build/${target.output}`,
    ...sources,
    ...target.ldflags,
  ];
  const { code, stderr } = new Deno.Command(cc, { args, cwd: ROOT, stderr: "piped" }).outputSync();
  const diagnostics = new TextDecoder().decode(stderr);
  if (code !== 0) {
    throw new Error(
      `building build/${target.output} failed:\n${cc} ${args.join(" ")}\n${diagnostics}`,
    );
  }
  if (diagnostics.trim()) console.error(diagnostics);
}

/** Builds every stale target. Returns the names of the libraries it (re)built. */
export function ensureBuilt(options: { force?: boolean; quiet?: boolean } = {}): string[] {
  ensureDebianPackages(["gcc", "libc6-dev", "libibverbs-dev"], "building the native libraries");
  Deno.mkdirSync(BUILD_DIR, { recursive: true });
  const rebuilt: string[] = [];
  for (const target of TARGETS) {
    if (!options.force && !isStale(target)) continue;
    compile(target);
    rebuilt.push(target.output);
  }
  if (!options.quiet && rebuilt.length > 0) console.error(`built: ${rebuilt.join(", ")}`);
  // The TypeScript side of the shared records, from what the libraries just built say.
  const written = writeRecordModules(ROOT, BUILD_DIR);
  if (written.length > 0) console.error(`wrote: ${written.join(", ")}`);
  return rebuilt;
}

if (import.meta.main) {
  const rebuilt = ensureBuilt({ force: Deno.args.includes("--force"), quiet: true });
  console.log(rebuilt.length ? `built: ${rebuilt.join(", ")}` : "native libraries are up to date");
}
