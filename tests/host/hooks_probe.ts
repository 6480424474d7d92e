/**
 * The C test probe (`tests/native/memhooks_probe.c`, in build/libdeno_rdma_testsupport.so) for the
 * memory hook tests: a C release handler that records what it sees, and drivers that release
 * memory through libc's real paths; and the cache's fork probe (`tests/native/cache_fork_probe.c`,
 * the same library).
 *
 * @module
 */
import { nativeLibraryPath, openNativeLibrary } from "../../ffi/loader.ts";
import { addressOfPointer, bytesAt, pointerAt } from "../../ffi/pointers.ts";
import { readRecords } from "../../ffi/records.ts";

const LIBRARY = "libdeno_rdma_testsupport.so";

export const PAGE = 4096;

const symbols = {
  probe_register: { parameters: [], result: "i32" },
  probe_unregister: { parameters: [], result: "i32" },
  probe_register_alloc: { parameters: [], result: "i32" },
  probe_register_unmapping_alloc: { parameters: ["pointer", "usize"], result: "i32" },
  probe_unregister_unmapping_alloc: { parameters: [], result: "i32" },
  probe_unregister_alloc: { parameters: [], result: "i32" },
  probe_alloc_total: { parameters: [], result: "u64" },
  probe_register_freeing: { parameters: ["pointer", "usize"], result: "i32" },
  probe_unregister_freeing: { parameters: [], result: "i32" },
  probe_unregister_unknown: { parameters: [], result: "i32" },
  probe_register_null: { parameters: [], result: "i32" },
  probe_reset: { parameters: [], result: "void" },
  probe_record_watched_only: { parameters: ["i32"], result: "void" },
  probe_watch: { parameters: ["pointer", "usize", "i32"], result: "void" },
  probe_event_total: { parameters: [], result: "u64" },
  probe_find: { parameters: ["pointer", "usize"], result: "i32" },
  probe_event: { parameters: ["i32", "buffer"], result: "i32" },
  probe_gettid: { parameters: [], result: "i32" },
  probe_map: { parameters: ["usize", "i32"], result: "pointer" },
  probe_map_shared: { parameters: ["usize", "i32"], result: "pointer" },
  probe_munmap: { parameters: ["pointer", "usize"], result: "i32" },
  probe_madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  probe_posix_madvise_dontneed: { parameters: ["pointer", "usize"], result: "i32" },
  probe_mremap: { parameters: ["pointer", "usize", "usize", "i32"], result: "pointer" },
  probe_mremap_fixed: { parameters: ["pointer", "usize", "pointer"], result: "pointer" },
  probe_mmap_fixed: { parameters: ["pointer", "usize"], result: "pointer" },
  probe_malloc_fill: { parameters: ["usize", "i32"], result: "pointer" },
  probe_free: { parameters: ["pointer"], result: "void" },
  probe_malloc_trim: { parameters: [], result: "i32" },
  probe_trim_scenario: { parameters: ["i32", "usize", "i32"], result: "pointer" },
  probe_sbrk_scenario: { parameters: ["i32", "i32"], result: "pointer" },
  probe_shm_attach: { parameters: ["usize", "i32"], result: "pointer" },
  probe_shmdt: { parameters: ["pointer"], result: "i32" },
  probe_shmdt_without_fds: { parameters: ["pointer"], result: "i32" },
  probe_shmat_remap: { parameters: ["pointer"], result: "pointer" },
  probe_munmap_on_thread: { parameters: ["pointer", "usize"], result: "i32" },
  probe_loop_start: { parameters: ["i32", "i64"], result: "i32" },
  probe_loop_join: { parameters: [], result: "i64" },
  probe_release_storm: { parameters: ["i64", "i32"], result: "pointer" },
  probe_fork_child_unmaps: { parameters: [], result: "i32" },
  probe_fork_child_drains_behind_stuck_cell: { parameters: [], result: "i32" },
  probe_fork_child_munmap_deregistrations: {
    parameters: ["pointer", "usize", "buffer"],
    result: "i32",
  },
  probe_fork_two_unregisters_in_callbacks: { parameters: [], result: "i32" },
  probe_register_slow: { parameters: [], result: "i32" },
  probe_slow_running: { parameters: [], result: "i32" },
  probe_unregister_slow_then_running: { parameters: [], result: "i32" },
  probe_munmap_async: { parameters: ["pointer", "usize"], result: "i32" },
  probe_join_async: { parameters: [], result: "i32" },
  probe_register_self_unregistering: { parameters: [], result: "i32" },
  probe_self_unregister_rc: { parameters: [], result: "i32" },
  probe_patch_foreign_shmdt: { parameters: [], result: "i32" },
  probe_foreign_calls: { parameters: [], result: "i32" },
  probe_libc_shmdt_first_byte: { parameters: [], result: "i32" },
  probe_ucm_start: { parameters: [], result: "i32" },
  probe_ucm_seen: { parameters: [], result: "u64" },
  probe_ucm_watch: { parameters: ["pointer"], result: "void" },
  probe_ucm_watch_seen: { parameters: [], result: "u64" },
  probe_hand_patch_munmap: { parameters: [], result: "i32" },
  probe_hand_unpatch_munmap: { parameters: [], result: "i32" },
  probe_hand_calls: { parameters: [], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

export const probe = openNativeLibrary(LIBRARY, symbols).symbols;

/** struct probe_event's size and field offsets, as the probe describes them (probe_records). */
const PROBE_EVENT: Record<string, number> = Object.fromEntries(
  readRecords(nativeLibraryPath(LIBRARY), "probe_records")
    .filter(([group]) => group === "PROBE_EVENT")
    .map(([, key, value]) => [key, value]),
);
if (PROBE_EVENT.size === undefined) throw new Error(`${LIBRARY} describes no PROBE_EVENT`);

/** One event the C handler recorded. */
export interface ProbeEvent {
  addr: bigint;
  len: number;
  fromAlloc: boolean;
  /** 1: the watched bytes were still there, 0: they were not, -1: the range missed the watch. */
  intact: number;
  thread: number;
  nested: boolean;
}

export function probeEvent(index: number): ProbeEvent | undefined {
  const raw = new Uint8Array(PROBE_EVENT.size);
  if (index < 0 || probe.probe_event(index, raw) !== 0) return undefined;
  const view = new DataView(raw.buffer);
  return {
    addr: view.getBigUint64(PROBE_EVENT.addr, true),
    len: Number(view.getBigUint64(PROBE_EVENT.len, true)),
    fromAlloc: view.getInt32(PROBE_EVENT.from_alloc, true) !== 0,
    intact: view.getInt32(PROBE_EVENT.intact, true),
    thread: view.getInt32(PROBE_EVENT.thread, true),
    nested: view.getInt32(PROBE_EVENT.nested, true) !== 0,
  };
}

/** The first event the C handler recorded for exactly [addr, addr + len) (len 0: containing addr). */
export function probeFind(addr: Deno.PointerValue | bigint, len = 0): ProbeEvent | undefined {
  const ptr = typeof addr === "bigint" ? pointerAt(addr) : addr;
  return probeEvent(probe.probe_find(ptr, BigInt(len)));
}

export function address(ptr: Deno.PointerValue): bigint {
  if (ptr === null) throw new Error("the probe returned a null pointer");
  return addressOfPointer(ptr);
}

export function offset(ptr: Deno.PointerValue, bytes: number): Deno.PointerValue {
  return pointerAt(address(ptr) + BigInt(bytes));
}

/** A byte of native memory, read from JavaScript. */
export function byteAt(ptr: Deno.PointerValue, at = 0): number {
  if (ptr === null) throw new Error("null pointer");
  return bytesAt(ptr, at + 1)[at];
}
