/**
 * The table of `tests/native/fabric_probe.c` (build/libdeno_rdma_fabric_probe.so): Debian's
 * libfabric loaded when a test says so, a verbs domain whose MR cache starts libfabric's memhooks
 * monitor (it patches libc), and registrations through that cache. For
 * tests/rxe/hooks_libfabric_child.ts, in a process of its own.
 *
 * @module
 */
import { openNativeLibrary } from "../../ffi/loader.ts";
import { cStringAt } from "../../ffi/pointers.ts";

const symbols = {
  /** int fabric_probe_open(void) */
  fabric_probe_open: { parameters: [], result: "i32" },
  /** int fabric_probe_mr_check(uint64_t *keys) */
  fabric_probe_mr_check: { parameters: ["buffer"], result: "i32" },
  /** int fabric_probe_close(void) */
  fabric_probe_close: { parameters: [], result: "i32" },
  /** const char *fabric_probe_message(void) */
  fabric_probe_message: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

const probe = openNativeLibrary("libdeno_rdma_fabric_probe.so", symbols).symbols;

/** What the last call did or why it failed. */
export function fabricMessage(): string {
  return cStringAt(probe.fabric_probe_message());
}

/** Loads libfabric, opens a verbs fabric and domain: 0 or libfabric's negative error. */
export function openFabric(): number {
  return probe.fabric_probe_open();
}

/** Closes the domain (libfabric's monitor writes back what it found) and the fabric. */
export function closeFabric(): number {
  return probe.fabric_probe_close();
}

/**
 * Registers 1 MiB twice through libfabric's cache, unmaps it, maps it again at the same address
 * and registers it again: the three keys, and the call's status (0; 1: not the same address).
 */
export function fabricMrCheck(): { status: number; keys: string[] } {
  const keys = new BigUint64Array(3);
  const status = probe.fabric_probe_mr_check(keys);
  return { status, keys: [...keys].map(String) };
}
