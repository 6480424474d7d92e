/**
 * The benchmarks' native helpers (bench/native/munmap_bench.c, in build/libdeno_rdma_bench.so):
 * munmap loops timed in C, and a C release callback that is not interested in what it sees.
 *
 * @module
 */
import { openNativeLibrary } from "../ffi/loader.ts";

const symbols = {
  /** int bench_register_uninterested(void) */
  bench_register_uninterested: { parameters: [], result: "i32" },
  /** int bench_unregister_uninterested(void) */
  bench_unregister_uninterested: { parameters: [], result: "i32" },
  /** uint64_t bench_time_munmap(int batches, int batch) */
  bench_time_munmap: { parameters: ["i32", "i32"], result: "u64" },
  /** uint64_t bench_time_munmap_unmapped(int count) */
  bench_time_munmap_unmapped: { parameters: ["i32"], result: "u64" },
  /** void *bench_release_storm(long count, int window) */
  bench_release_storm: { parameters: ["i64", "i32"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The helpers, opened on first use. */
export const benchNative = openNativeLibrary("libdeno_rdma_bench.so", symbols).symbols;
