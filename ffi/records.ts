/**
 * The record descriptions the native libraries export (see ffi/native/records.h): what
 * tools/records.ts writes as `ffi/records/*.ts` and a host test checks those files against.
 *
 * @module
 */

/** Each native library that shares records: its file, the function that describes them, and the
 * TypeScript module written from it. */
export const RECORD_SOURCES = [
  { library: "libdeno_rdma_verbs.so", symbol: "drv_records", module: "ffi/records/verbs.ts" },
  { library: "libdeno_rdma_cm.so", symbol: "drc_records", module: "ffi/records/rdmacm.ts" },
  { library: "libdeno_rdma_rcache.so", symbol: "rcache_records", module: "ffi/records/rcache.ts" },
  { library: "libopal_memhooks.so", symbol: "memhooks_records", module: "ffi/records/memhooks.ts" },
] as const;

/**
 * Opens the library at `path`, calls its `symbol` (`const char *symbol(void)`) and returns the
 * entries in order: `[group, key, value]`, group "" for a single constant.
 */
export function readRecords(path: string, symbol: string): [string, string, number][] {
  const library = Deno.dlopen(path, { [symbol]: { parameters: [], result: "pointer" } } as const);
  try {
    const pointer = library.symbols[symbol]() as Deno.PointerValue;
    const text = pointer === null ? "" : Deno.UnsafePointerView.getCString(pointer);
    if (text === "") throw new Error(`${path}: ${symbol}() described nothing`);
    return text.split(";").filter((entry) => entry !== "").map((entry) => {
      const match = /^(?:(\w+)\.)?(\w+)=(-?\d+)$/.exec(entry);
      if (match === null) throw new Error(`${path}: ${symbol}() gave a malformed entry ${entry}`);
      return [match[1] ?? "", match[2], Number(match[3])];
    });
  } finally {
    library.close();
  }
}
