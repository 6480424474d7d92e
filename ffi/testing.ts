/**
 * The FFI table of the registrar double's library (`build/libdeno_rdma_testing.so`, sources in
 * `testing/native/`): a registrar for the registration cache that needs no device (testing/mod.ts).
 *
 * The names and order of the double's counters come from the library itself
 * (`rcache_double_records`, described as in ffi/native/records.h), read when it is opened.
 *
 * @module
 */
import { nativeLibraryPath, openNativeLibrary } from "./loader.ts";
import { readRecords } from "./records.ts";

/** File name of the registrar double's library in the build folder. */
export const TESTING_LIBRARY = "libdeno_rdma_testing.so";

/** The library's functions, by C name (testing/native/). */
export const testingSymbols = {
  /** const struct rcache_registrar *rcache_double_registrar(double pin_limit) */
  rcache_double_registrar: { parameters: ["f64"], result: "pointer" },
  /** int rcache_double_counters(double *out, int count) */
  rcache_double_counters: { parameters: ["buffer", "i32"], result: "i32" },
  /** void rcache_double_set_dereg_delay(double ns) */
  rcache_double_set_dereg_delay: { parameters: ["f64"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened library's functions. */
export type RegistrarDoubleSymbols = Deno.DynamicLibrary<typeof testingSymbols>["symbols"];

let library: Deno.DynamicLibrary<typeof testingSymbols> | undefined;
let counterNames: readonly string[] | undefined;

/** The registrar double's symbols, opening its library on first call. */
export function registrarDoubleNative(): RegistrarDoubleSymbols {
  library ??= openNativeLibrary(TESTING_LIBRARY, testingSymbols);
  return library.symbols;
}

/** The names of the values rcache_double_counters writes, in its order. */
export function doubleCounterNames(): readonly string[] {
  if (counterNames === undefined) {
    const entries = readRecords(nativeLibraryPath(TESTING_LIBRARY), "rcache_double_records")
      .filter(([group]) => group === "DOUBLE_COUNTER")
      .sort((a, b) => a[2] - b[2]);
    if (entries.some(([, , index], i) => index !== i)) {
      throw new Error(`${TESTING_LIBRARY}: the counter indices are not 0 .. n - 1`);
    }
    counterNames = Object.freeze(entries.map(([, name]) => name));
  }
  return counterNames;
}
