/**
 * Test support: the entry points of the tests' native library (tests/native/rcache_testing.c, in
 * build/libdeno_rdma_testsupport.so) that change a registration cache's state behind its back.
 * They do nothing (and return -1) unless DENO_RDMA_TESTING=1 is set in the environment.
 *
 * @module
 */
import { openNativeLibrary } from "../../ffi/loader.ts";

const symbols = {
  /** int rcache_testing_add_holds(double address, double count, int through_front) */
  rcache_testing_add_holds: { parameters: ["f64", "f64", "i32"], result: "i32" },
  /** int rcache_testing_jam_rings(int jam) */
  rcache_testing_jam_rings: { parameters: ["i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The entry points, opened on first use. */
export const rcacheTesting = openNativeLibrary("libdeno_rdma_testsupport.so", symbols).symbols;
