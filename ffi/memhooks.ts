/**
 * The `Deno.dlopen` table of the memory hooks library (`build/libopal_memhooks.so`, built from
 * `hooks/native/`). Opening it changes nothing in the process: the hooks are installed only by
 * `opal_mem_hooks_init`. When the library was loaded with LD_PRELOAD, opening the same file
 * returns that already-loaded instance.
 *
 * @module
 */
import { openNativeLibrary } from "./loader.ts";

/** File name of the hooks library in the build folder. */
export const MEMHOOKS_LIBRARY = "libopal_memhooks.so";

/** Size in bytes of one `struct memhooks_event` {u64 addr, u64 len, u32 flags, u32 reserved}. */
export const MEMHOOKS_EVENT_SIZE = 24;

/** Size in bytes of `struct memhooks_stats` (five u64 counters). */
export const MEMHOOKS_STATS_SIZE = 40;

export const memhooksSymbols = {
  opal_mem_hooks_init: { parameters: [], result: "i32" },
  opal_mem_hooks_finalize: { parameters: [], result: "i32" },
  opal_mem_hooks_support_level: { parameters: [], result: "i32" },
  opal_mem_hooks_register_release: { parameters: ["function", "pointer"], result: "i32" },
  opal_mem_hooks_register_alloc: { parameters: ["function", "pointer"], result: "i32" },
  opal_mem_hooks_unregister_release: { parameters: ["function"], result: "i32" },
  opal_mem_hooks_unregister_alloc: { parameters: ["function"], result: "i32" },
  // The event queues, one subscriber per JavaScript isolate (hooks/native/opal_memhooks.h).
  memhooks_queue_subscribe: {
    parameters: [],
    result: "i32", // int: a subscriber id, or OPAL_ERR_OUT_OF_RESOURCE when every one is taken
  },
  memhooks_queue_enable: {
    parameters: [
      "i32", // int subscriber
      "i32", // int kinds: MEMHOOKS_QUEUE_RELEASE | MEMHOOKS_QUEUE_ALLOC
    ],
    result: "i32",
  },
  memhooks_queue_drain: {
    parameters: [
      "i32", // int subscriber
      "buffer", // struct memhooks_event *out
      "usize", // size_t max: events that fit in out
    ],
    result: "usize",
  },
  memhooks_queue_pending_word: {
    parameters: ["i32"], // int subscriber
    result: "pointer", // int32_t *: nonzero while events may be waiting
  },
  memhooks_queue_unsubscribe: {
    parameters: ["i32"], // int subscriber
    result: "i32",
  },
  memhooks_stats: { parameters: ["buffer"], result: "void" },
  memhooks_holders: { parameters: [], result: "i32" },
  memhooks_patch_count: { parameters: [], result: "i32" },
  memhooks_patch_name: { parameters: ["i32"], result: "pointer" },
  memhooks_patch_status: { parameters: ["i32"], result: "i32" },
  memhooks_decode_prologue: { parameters: ["buffer", "usize", "buffer"], result: "i32" },
  memhooks_release_caller: { parameters: [], result: "usize" },
} as const satisfies Deno.ForeignLibraryInterface;

export type MemhooksLibrary = Deno.DynamicLibrary<typeof memhooksSymbols>;

let library: MemhooksLibrary | undefined;

/** Opens the hooks library once per process (later calls return the same handle). */
export function openMemhooks(): MemhooksLibrary {
  library ??= openNativeLibrary(MEMHOOKS_LIBRARY, memhooksSymbols);
  return library;
}
