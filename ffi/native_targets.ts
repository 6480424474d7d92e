/**
 * The native libraries' build description, shared by `tools/build.ts` (a checkout's `build/`) and
 * the first-use builder (`ffi/native_build.ts`, a per-user cache): for each library its output
 * name, its C files listed explicitly, its include folders, compiler and linker flags, in link
 * order. Data only: nothing here reads the file system.
 *
 * @module
 */

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

/** Compiler arguments every target gets, before its own. */
export const CFLAGS = [
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
export const LINK_BUILT = ["-L" + "build", "-Wl,-rpath,$ORIGIN"];

/** In dependency order: a library is built after the ones it links against. */
export const TARGETS: NativeTarget[] = [
  {
    // The memory hooks: patches libc, so it must never be unloaded (-z nodelete).
    output: "libopal_memhooks.so",
    sources: [
      "hooks/native/dispatch.c",
      "hooks/native/foreign.c",
      "hooks/native/fork.c",
      "hooks/native/holds.c",
      "hooks/native/intercept.c",
      "hooks/native/libc_text.c",
      "hooks/native/lifecycle.c",
      "hooks/native/patch.c",
      "hooks/native/patch_slots.c",
      "hooks/native/preload.c",
      "hooks/native/queue.c",
      "hooks/native/queue_api.c",
      "hooks/native/records.c",
      "hooks/native/selftest.c",
      "hooks/native/stats.c",
      "ffi/native/range_ring.c",
      "hooks/native/x86_insn.c",
      "hooks/native/arch/aarch64.c",
    ],
    includes: [],
    // -z now: every symbol bound at load, so no hook ever runs the dynamic linker's lazy resolver.
    ldflags: [
      // cmpxchg16b: patch.c's 16-byte code write and the release queue's overflow ranges.
      ...(Deno.build.arch === "x86_64" ? ["-mcx16"] : []),
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
    sources: ["ffi/native/verbs_shim.c", "ffi/native/fd_waiter.c"],
    includes: [],
    // nodelete: a worker's libraries are closed when it ends, even while one of its calls (a
    // completion-queue wait) still runs on another thread.
    ldflags: ["-libverbs", "-Wl,-z,nodelete"],
  },
  {
    // The connection manager (librdmacm): addresses, parameters and events as records.
    output: "libdeno_rdma_cm.so",
    sources: ["ffi/native/cm_shim.c"],
    includes: [],
    // nodelete: a worker's libraries are closed when it ends, even while a channel wait still
    // runs on another thread.
    ldflags: ["-lrdmacm", "-libverbs", "-Wl,-z,nodelete"],
  },
  {
    // The registration cache's native state, reached by the hooks synchronously. Hidden
    // visibility: it exports what rcache.h declares (and what the tests reach, see visibility.h).
    output: "libdeno_rdma_rcache.so",
    sources: [
      "cache/native/interception.c",
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
      "ffi/native/range_ring.c",
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
    // A test double of another library with Open MPI's memory hooks API, which patches shmdt: the
    // hooks must import its events. Never unloaded: libc jumps into it once it patched.
    output: "libdeno_rdma_opal_double.so",
    sources: ["tests/native/opal_double.c"],
    includes: [],
    ldflags: ["-ldl", "-Wl,-z,nodelete"],
  },
  {
    // Debian's libfabric beside the memory hooks (tests/rxe/hooks_libfabric.test.ts): opens it with
    // dlopen when a test says so, a verbs domain whose MR cache starts libfabric's memhooks monitor
    // (which patches libc), and registers through that cache. Built with libfabric-dev's headers;
    // never unloaded: libc may jump into the libfabric it loaded.
    output: "libdeno_rdma_fabric_probe.so",
    sources: ["tests/native/fabric_probe.c"],
    includes: [],
    ldflags: ["-ldl", "-Wl,-z,nodelete"],
  },
  {
    // Native helpers the tests call: threads, fork, allocator paths driven from C, and entry
    // points that reach the cache's internals (rcache_internal.h).
    output: "libdeno_rdma_testsupport.so",
    sources: [
      "tests/native/atomic_adder.c",
      "tests/native/cache_fork_probe.c",
      "tests/native/foreign_probe.c",
      "tests/native/free_storm.c",
      "tests/native/memhooks_probe.c",
      "tests/native/pending_ring_probe.c",
      "tests/native/rcache_testing.c",
      "ffi/native/range_ring.c", // the rings' halves the tests call apart (hidden in each library)
    ],
    includes: ["hooks/native", "cache/native", "ffi/native"],
    // nodelete: its C callbacks stay registered with the hooks after Deno closes the library.
    ldflags: [
      "-pthread",
      "-ldl",
      ...LINK_BUILT,
      "-lopal_memhooks",
      "-ldeno_rdma_rcache",
      "-Wl,-z,nodelete",
    ],
  },
];

/** The libraries a program loads at run time (the tests' and benchmarks' are not shipped). */
export const RUNTIME_LIBRARIES: readonly string[] = [
  "libopal_memhooks.so",
  "libdeno_rdma_verbs.so",
  "libdeno_rdma_cm.so",
  "libdeno_rdma_rcache.so",
  "libdeno_rdma_testing.so",
];

/** The targets of RUNTIME_LIBRARIES, in TARGETS' (dependency) order. */
export function runtimeTargets(): NativeTarget[] {
  return TARGETS.filter((t) => RUNTIME_LIBRARIES.includes(t.output));
}

/** The folder part of a repo-relative path. */
export function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

/** The folders of a target's sources, then its include folders: its `-I` arguments, in order. */
export function targetFolders(target: NativeTarget): string[] {
  return [...new Set([...target.sources.map(dirOf), ...target.includes])];
}

/** The compiler's arguments for `target`, run in the root of a tree laid out like the repo. */
export function compileArgs(target: NativeTarget): string[] {
  return [
    ...CFLAGS,
    ...(target.cflags ?? []),
    ...targetFolders(target).map((d) => `-I${d}`),
    "-o",
    `build/${target.output}`,
    ...target.sources,
    ...target.ldflags,
  ];
}
