/**
 * Builds the native libraries into `build/` with the system C compiler.
 *
 * Each target compiles the C files it lists into one shared library. A target is rebuilt when its
 * output is missing or older than any of its sources, any header in its sources' folders or its
 * include folders, or this file. `ensureBuilt()` is what `test`, `demo` and `bench` call first.
 *
 * @module
 */
import { ensureDebianPackages } from "./deps.ts";
import { writeRecordModules } from "./records.ts";

export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const BUILD_DIR = `${ROOT}/build`;

/** One shared library built from the C files it lists. */
export interface NativeTarget {
  /** File name in `build/`. */
  output: string;
  /** Its C files, relative to the repo root, compiled together. */
  sources: string[];
  /** Folders whose headers it includes (besides its sources' own); their changes rebuild it too. */
  includes: string[];
  /** Extra compiler arguments. */
  cflags?: string[];
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

/** Links against libraries built earlier in TARGETS, found next to it at run time. */
const LINK_BUILT = ["-L" + "build", "-Wl,-rpath,$ORIGIN"];

/** In dependency order: a library is built after the ones it links against. */
export const TARGETS: NativeTarget[] = [
  {
    // The memory hooks: patches libc, so it must never be unloaded (-z nodelete).
    output: "libopal_memhooks.so",
    sources: [
      "hooks/native/dispatch.c",
      "hooks/native/fork.c",
      "hooks/native/holds.c",
      "hooks/native/intercept.c",
      "hooks/native/lifecycle.c",
      "hooks/native/patch.c",
      "hooks/native/preload.c",
      "hooks/native/queue.c",
      "hooks/native/queue_api.c",
      "hooks/native/records.c",
      "hooks/native/selftest.c",
      "hooks/native/stats.c",
    ],
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
    sources: ["ffi/native/verbs_shim.c"],
    includes: [],
    // nodelete: a worker's libraries are closed when it ends, even while one of its calls (a
    // completion-queue wait) still runs on another thread.
    ldflags: ["-libverbs", "-Wl,-z,nodelete"],
  },
  {
    // The registration cache's native state, reached by the hooks synchronously. Hidden
    // visibility: it exports what rcache.h declares (and what the tests reach, see visibility.h).
    output: "libdeno_rdma_rcache.so",
    sources: [
      "cache/native/rcache.c",
      "cache/native/regions.c",
      "cache/native/front_words.c",
      "cache/native/spans.c",
      "cache/native/deferred.c",
      "cache/native/release_hook.c",
      "cache/native/fork.c",
      "cache/native/registrar_verbs.c",
      "cache/native/region_index.c",
      "cache/native/pending_ring.c",
      "cache/native/verbs_text.c",
    ],
    includes: ["hooks/native", "ffi/native"],
    cflags: ["-fvisibility=hidden"],
    ldflags: [
      "-pthread",
      ...LINK_BUILT,
      "-lopal_memhooks",
      "-libverbs",
      "-Wl,-z,nodelete",
      "-Wl,-z,now", // its release hook runs inside the memory hooks: no lazy binding there
      "-Wl,-soname,libdeno_rdma_rcache.so",
    ],
  },
  {
    // The registrar double (testing/mod.ts): a registrar for the cache that needs no device. Its
    // deregistrations run inside the cache's release hook: bound at load, never unloaded.
    output: "libdeno_rdma_testing.so",
    sources: ["testing/native/registrar_double.c"],
    includes: ["cache/native", "ffi/native"],
    cflags: ["-fvisibility=hidden"],
    ldflags: [...LINK_BUILT, "-ldeno_rdma_rcache", "-Wl,-z,nodelete", "-Wl,-z,now"],
  },
  {
    // The benchmarks' C helpers: timed munmap loops and an uninterested release callback.
    output: "libdeno_rdma_bench.so",
    sources: ["bench/native/munmap_bench.c"],
    includes: ["hooks/native"],
    // nodelete: its C callback may stay registered with the hooks after Deno closes the library.
    ldflags: [...LINK_BUILT, "-lopal_memhooks", "-Wl,-z,nodelete"],
  },
  {
    // Native helpers the tests call: threads, fork, allocator paths driven from C, and entry
    // points that reach the cache's internals (rcache_internal.h).
    output: "libdeno_rdma_testsupport.so",
    sources: [
      "tests/native/atomic_adder.c",
      "tests/native/memhooks_probe.c",
      "tests/native/pending_ring_probe.c",
      "tests/native/rcache_testing.c",
    ],
    includes: ["hooks/native", "cache/native", "ffi/native"],
    // nodelete: its C callbacks stay registered with the hooks after Deno closes the library.
    ldflags: [
      "-pthread",
      ...LINK_BUILT,
      "-lopal_memhooks",
      "-ldeno_rdma_rcache",
      "-Wl,-z,nodelete",
    ],
  },
];

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

function mtimeOf(path: string): number {
  try {
    return Deno.statSync(`${ROOT}/${path}`).mtime?.getTime() ?? 0;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
}

function filesIn(dir: string, extension: string): string[] {
  try {
    return [...Deno.readDirSync(`${ROOT}/${dir}`)]
      .filter((e) => e.isFile && e.name.endsWith(extension))
      .map((e) => `${dir}/${e.name}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** The folders of a target's sources, then its include folders. */
function folders(target: NativeTarget): string[] {
  return [...new Set([...target.sources.map(dirOf), ...target.includes])];
}

function isStale(target: NativeTarget): boolean {
  let built: number;
  try {
    built = Deno.statSync(`${BUILD_DIR}/${target.output}`).mtime?.getTime() ?? 0;
  } catch {
    return true;
  }
  const inputs = [...target.sources, ...folders(target).flatMap((d) => filesIn(d, ".h"))];
  const newest = Math.max(
    ...inputs.map(mtimeOf),
    Deno.statSync(new URL(import.meta.url).pathname).mtime?.getTime() ?? 0,
  );
  return newest > built;
}

/** C files in a target's source folders that no target lists (they would not be compiled). */
export function unlistedSources(): string[] {
  const listed = new Set(TARGETS.flatMap((t) => t.sources));
  const dirs = new Set(TARGETS.flatMap((t) => t.sources.map(dirOf)));
  return [...dirs].flatMap((d) => filesIn(d, ".c")).filter((f) => !listed.has(f)).sort();
}

function compile(target: NativeTarget): void {
  const cc = Deno.env.get("CC") ?? "cc";
  const args = [
    ...CFLAGS,
    ...(target.cflags ?? []),
    ...folders(target).map((d) => `-I${d}`),
    "-o",
    `build/${target.output}`,
    ...target.sources,
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
  for (const file of unlistedSources()) {
    console.error(`warning: ${file} is in no target of tools/build.ts, so it is not compiled`);
  }
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
