/**
 * The `Deno.dlopen` table of the memory hooks library (`build/libopal_memhooks.so`, built from
 * `hooks/native/`), and typed accessors for what it returns as pointers. Opening it changes nothing
 * in the process: the hooks are installed only by `opal_mem_hooks_init`. When the library was
 * loaded with LD_PRELOAD, opening the same file returns that already-loaded instance.
 *
 * The records and constants it shares (`struct memhooks_event`, `struct memhooks_stats`, the
 * `OPAL_*` and `MEMHOOKS_*` constants) are in `ffi/records/memhooks.ts`, written from what the
 * library describes (`memhooks_records`).
 *
 * @module
 */
import { openNativeLibrary } from "./loader.ts";
import { addressOfPointer, bytesAt, cStringAt, pointerAt } from "./pointers.ts";
import { GUARD_WORDS } from "./records/memhooks.ts";

/** File name of the hooks library in the build folder. */
export const MEMHOOKS_LIBRARY = "libopal_memhooks.so";

/** The library's functions, by C name (hooks/native/opal_memhooks.h). */
export const memhooksSymbols = {
  /** int opal_mem_hooks_init(void) */
  opal_mem_hooks_init: { parameters: [], result: "i32" },
  /** int opal_mem_hooks_finalize(void) */
  opal_mem_hooks_finalize: { parameters: [], result: "i32" },
  /** int opal_mem_hooks_support_level(void) */
  opal_mem_hooks_support_level: { parameters: [], result: "i32" },
  /** int opal_mem_hooks_register_release(opal_mem_hooks_callback_fn_t *func, void *cbdata) */
  opal_mem_hooks_register_release: { parameters: ["function", "pointer"], result: "i32" },
  /** int opal_mem_hooks_register_alloc(opal_mem_hooks_callback_fn_t *func, void *cbdata) */
  opal_mem_hooks_register_alloc: { parameters: ["function", "pointer"], result: "i32" },
  /** int opal_mem_hooks_unregister_release(opal_mem_hooks_callback_fn_t *func) */
  opal_mem_hooks_unregister_release: { parameters: ["function"], result: "i32" },
  /** int opal_mem_hooks_unregister_alloc(opal_mem_hooks_callback_fn_t *func) */
  opal_mem_hooks_unregister_alloc: { parameters: ["function"], result: "i32" },
  /**
   * int memhooks_queue_subscribe(void): a subscriber id, one per JavaScript isolate, or
   * OPAL_ERR_OUT_OF_RESOURCE when every one is taken
   */
  memhooks_queue_subscribe: { parameters: [], result: "i32" },
  /** int memhooks_queue_enable(int subscriber, int kinds): kinds are MEMHOOKS_QUEUE_* bits */
  memhooks_queue_enable: { parameters: ["i32", "i32"], result: "i32" },
  /**
   * size_t memhooks_queue_drain(int subscriber, struct memhooks_event *out, size_t max): `max`
   * events fit in `out`
   */
  memhooks_queue_drain: { parameters: ["i32", "buffer", "usize"], result: "usize" },
  /**
   * int32_t *memhooks_queue_pending_word(int subscriber): nonzero while events may be waiting
   * (read it through pendingWord)
   */
  memhooks_queue_pending_word: { parameters: ["i32"], result: "pointer" },
  /** int memhooks_queue_unsubscribe(int subscriber) */
  memhooks_queue_unsubscribe: { parameters: ["i32"], result: "i32" },
  /** void memhooks_stats(struct memhooks_stats *out) */
  memhooks_stats: { parameters: ["buffer"], result: "void" },
  /** int memhooks_holders(void) */
  memhooks_holders: { parameters: [], result: "i32" },
  /** int memhooks_patch_count(void) */
  memhooks_patch_count: { parameters: [], result: "i32" },
  /** const char *memhooks_patch_name(int index): read it through patchName */
  memhooks_patch_name: { parameters: ["i32"], result: "pointer" },
  /** int memhooks_patch_status(int index): a MEMHOOKS_PATCH_* value */
  memhooks_patch_status: { parameters: ["i32"], result: "i32" },
  /** const char *memhooks_patch_reason(int index): read it through patchReason */
  memhooks_patch_reason: { parameters: ["i32"], result: "pointer" },
  /** int memhooks_decode_prologue(const uint8_t *code, size_t avail, size_t *covered) */
  memhooks_decode_prologue: { parameters: ["buffer", "usize", "buffer"], result: "i32" },
  /** uintptr_t memhooks_release_caller(void) */
  memhooks_release_caller: { parameters: [], result: "usize" },
  /** int memhooks_verify(void): the count of interception losses so far */
  memhooks_verify: { parameters: [], result: "i32" },
  /** int memhooks_intercepted(void) */
  memhooks_intercepted: { parameters: [], result: "i32" },
  /** int memhooks_event_sources(void): MEMHOOKS_SOURCE_* bits */
  memhooks_event_sources: { parameters: [], result: "i32" },
  /** const char *memhooks_patch_owner(int index): read it through patchOwner */
  memhooks_patch_owner: { parameters: ["i32"], result: "pointer" },
  /** const int32_t *memhooks_guard_words(void): read through interceptionGuard */
  memhooks_guard_words: { parameters: [], result: "pointer" },
  /** const void *memhooks_guard_entry(int index): read through interceptionGuard */
  memhooks_guard_entry: { parameters: ["i32"], result: "pointer" },
  /** void memhooks_guard_publish(int seen_losses) */
  memhooks_guard_publish: { parameters: ["i32"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The hooks library's functions, typed. */
export type MemhooksNative = Deno.DynamicLibrary<typeof memhooksSymbols>["symbols"];

let library: Deno.DynamicLibrary<typeof memhooksSymbols> | undefined;

/** The hooks library's functions, opening it once per process on first call. */
export function memhooksNative(): MemhooksNative {
  library ??= openNativeLibrary(MEMHOOKS_LIBRARY, memhooksSymbols);
  return library.symbols;
}

/**
 * A subscriber's pending word (`memhooks_queue_pending_word`) as a one-element view of the native
 * int32, which stays valid (the subscribers are static); null for a subscriber not taken.
 */
export function pendingWord(subscriber: number): Int32Array | null {
  const word = memhooksNative().memhooks_queue_pending_word(subscriber);
  return word === null ? null : new Int32Array(bytesAt(word, 4).buffer);
}

/** Why patched function `index` has its status (`memhooks_patch_reason`): "" before init. */
export function patchReason(index: number): string {
  return cStringAt(memhooksNative().memhooks_patch_reason(index));
}

/** The name of patched function `index` (`memhooks_patch_name`): "" out of range. */
export function patchName(index: number): string {
  return cStringAt(memhooksNative().memhooks_patch_name(index));
}

/** The library libc's function `index` now leads to, when not to the hooks ("" otherwise). */
export function patchOwner(index: number): string {
  return cStringAt(memhooksNative().memhooks_patch_owner(index));
}

/**
 * What a hit without a native call compares to know that the hooks' entry points were not written
 * over (opal_memhooks.h, memhooks_guard_words): `code[offsets[i]]`, the first 8 bytes of libc's
 * entry point `i`, must equal `expected[i]`. `code` views libc's text from the lowest entry to
 * the highest (read only: a write faults); `expected` views the native guard words, which change
 * when interception does.
 */
export interface InterceptionGuard {
  readonly code: BigInt64Array;
  readonly offsets: readonly number[];
  readonly expected: BigInt64Array;
}

let guard: InterceptionGuard | null | undefined;

/**
 * The interception guard (one per isolate, over the same native words); null unless libc has all
 * `GUARD_WORDS / 2` functions at 8-byte aligned entries (then nothing can be checked without a
 * native call).
 */
export function interceptionGuard(): InterceptionGuard | null {
  if (guard !== undefined) return guard;
  const native = memhooksNative();
  const count = native.memhooks_patch_count();
  const entries: bigint[] = [];
  for (let i = 0; i < count; i++) {
    const entry = native.memhooks_guard_entry(i);
    if (entry === null) return guard = null;
    entries.push(addressOfPointer(entry));
  }
  const words = native.memhooks_guard_words();
  if (2 * count !== GUARD_WORDS || words === null || entries.some((e) => e % 8n !== 0n)) {
    return guard = null;
  }
  const low = entries.reduce((a, b) => (a < b ? a : b));
  const high = entries.reduce((a, b) => (a > b ? a : b)) + 8n;
  const code = new BigInt64Array(bytesAt(pointerAt(low)!, Number(high - low)).buffer);
  const offsets = entries.map((e) => Number(e - low) / 8);
  const expected = new BigInt64Array(bytesAt(words, 4 * GUARD_WORDS).buffer);
  return guard = { code, offsets, expected };
}
