/**
 * The Open MPI "opal memory hooks" API for TypeScript: `memHooks`.
 *
 * Native code learns about a release synchronously, on the releasing thread, before the memory
 * goes (C callbacks registered through `opal_memhooks.h`). TypeScript callbacks cannot run there:
 * the release may happen on a thread that is not the JavaScript thread, or inside V8's own garbage
 * collector, where calling into JavaScript is never allowed. So every event is also pushed into a
 * fixed-size native queue, and TypeScript callbacks are delivered from it, in order, on the
 * JavaScript thread:
 *
 * - at every registration cache operation (the cache calls `flushIfPending()`),
 * - whenever the program calls `flush()`,
 * - and by a 20 ms timer that never keeps the process alive.
 *
 * None is lost: when the queue is full, events are folded into one covering range per kind,
 * delivered after the queued events with `MEMHOOKS_EVENT_COALESCED` set in the fifth argument.
 *
 * Each isolate (the main thread and every Worker) has its own `memHooks`, and takes its own native
 * queue when it first registers a callback: every isolate that listens gets every event once, in
 * order, whatever other isolates register, flush or finalize. There are 32 such queues per process;
 * a Worker that ends without `finalize()` keeps its queue until another isolate takes one after its
 * thread has ended (see hooks/README.md).
 *
 * Callbacks receive `(buf, length, cbdata, fromAlloc, flags)`: `buf` is the start address as a
 * bigint, `length` the byte count as a number, `cbdata` what was given at registration,
 * `fromAlloc` whether the allocator (free, realloc, heap trim) caused it rather than a direct call
 * by the program, and `flags` the `MEMHOOKS_EVENT_*` bits.
 *
 * A callback that throws does not stop delivery: the remaining callbacks and events are still
 * delivered, then the call that delivered them throws the error (an `AggregateError` when several
 * were thrown). Errors from timer deliveries go to `reportError`, like an uncaught exception in a
 * timer.
 *
 * Results are OPAL return codes, as in Open MPI (`OPAL_SUCCESS`, `OPAL_EXISTS`, ...): they are the
 * contract, and every refusal the C API reports is a code here too. Three things throw instead:
 *
 * - a callback that is not a function: `registerRelease`, `registerAlloc`, `unregisterRelease`
 *   and `unregisterAlloc` throw `TypeError` and change nothing;
 * - a hooks library that cannot be loaded (not built): `init()`, `stats()` and `patchStatus()`,
 *   which load it, throw `NativeLibraryError` (and a registration throws `Error` should the
 *   library break its contract, giving a queue without a pending word);
 * - errors thrown by the program's own callbacks, once delivery is over: `flush()` and
 *   `flushIfPending()` throw them; `unregisterRelease` and `unregisterAlloc` throw them after
 *   removing the callback, `finalize()` after finalizing (the work is done either way).
 *
 * @module
 */
import {
  type MemhooksNative,
  memhooksNative,
  patchName,
  patchOwner,
  patchReason,
  pendingWord,
} from "../ffi/memhooks.ts";
import {
  EVENT,
  EVENT_FLAG,
  OPAL,
  OPAL_MEMORY,
  QUEUE_KIND,
  STATS,
} from "../ffi/records/memhooks.ts";

/** Success (return codes have the values of Open MPI's opal/constants.h). */
export const OPAL_SUCCESS: 0 = OPAL.SUCCESS;
/** Registration: every native callback slot (C) or native queue (TypeScript) is taken. */
export const OPAL_ERR_OUT_OF_RESOURCE: -2 = OPAL.ERR_OUT_OF_RESOURCE;
/** `finalize()` while a registration cache relies on the hooks; nothing changes. */
export const OPAL_ERR_RESOURCE_BUSY: -4 = OPAL.ERR_RESOURCE_BUSY;
/** A null callback or another invalid argument (C API). */
export const OPAL_ERR_BAD_PARAM: -5 = OPAL.ERR_BAD_PARAM;
/** `init()`: the hooks cannot work here; registration: before `init()` or without the support. */
export const OPAL_ERR_NOT_SUPPORTED: -8 = OPAL.ERR_NOT_SUPPORTED;
/** Unregistering a callback that is not registered. */
export const OPAL_ERR_NOT_FOUND: -13 = OPAL.ERR_NOT_FOUND;
/** Registering a callback that is registered already. */
export const OPAL_EXISTS: -14 = OPAL.EXISTS;

/** Release callbacks fire when memory goes back to the operating system (see hooks/README.md). */
export const OPAL_MEMORY_FREE_SUPPORT: 0x1 = OPAL_MEMORY.FREE_SUPPORT;
/** Alloc and release callbacks fire at malloc/calloc/realloc/free (LD_PRELOAD mode only). */
export const OPAL_MEMORY_MALLOC_SUPPORT: 0x2 = OPAL_MEMORY.MALLOC_SUPPORT;
/** Releases are reported per chunk returned to the OS, not at every free (see hooks/README.md). */
export const OPAL_MEMORY_CHUNK_SUPPORT: 0x4 = OPAL_MEMORY.CHUNK_SUPPORT;
/** Alloc callbacks fire when memory is mapped (mmap, mremap growth, brk growth, shmat). */
export const OPAL_MEMORY_MMAP_SUPPORT: 0x8 = OPAL_MEMORY.MMAP_SUPPORT;

/** The event is a release: the range was about to go. */
export const MEMHOOKS_EVENT_RELEASE: 0x1 = EVENT_FLAG.RELEASE;
/** The event is an allocation: the range was mapped (or allocated, in LD_PRELOAD mode). */
export const MEMHOOKS_EVENT_ALLOC: 0x2 = EVENT_FLAG.ALLOC;
/** The allocator (free, realloc, heap trim) caused it, not a direct call (`fromAlloc`). */
export const MEMHOOKS_EVENT_FROM_ALLOC: 0x4 = EVENT_FLAG.FROM_ALLOC;
/** The event is a range covering several events that overflowed the native queue. */
export const MEMHOOKS_EVENT_COALESCED: 0x8 = EVENT_FLAG.COALESCED;
/** The memory was released by a native callback while it ran. */
export const MEMHOOKS_EVENT_NESTED: 0x10 = EVENT_FLAG.NESTED;

const TIMER_MS = 20;
const DRAIN_BATCH = 512;

/** A TypeScript memory hook callback. */
export type MemHookCallback = (
  buf: bigint,
  length: number,
  cbdata: unknown,
  fromAlloc: boolean,
  flags: number,
) => void;

/** Counters since the hooks library was loaded. */
export interface MemHooksStats {
  /** Release events the hooks saw. */
  releases: bigint;
  /** Alloc events the hooks saw. */
  allocs: bigint;
  /** Releases made by native callbacks while they ran, dispatched after the outer release. */
  nested: bigint;
  /** Events folded into a covering range (counted per queue they overflowed, or nested). */
  coalesced: bigint;
  /** Events offered to the TypeScript queues (once each, however many isolates listen). */
  queued: bigint;
  /** Events delivered to TypeScript callbacks by this isolate. */
  delivered: number;
}

/** Whether each libc function was patched, and if not why (`MEMHOOKS_PATCH_*` in the header). */
export interface PatchStatus {
  /** The libc function, e.g. "munmap". */
  name: string;
  /**
   * MEMHOOKS_PATCH_*: 0 patched, 1 not installed, 2 no such symbol, 3 unknown prologue, 4 already
   * redirected by another library, 5 no stub page in reach, 6 write failed, 7 unsupported platform,
   * 8 no safe entry (a short first instruction and no unexecuted padding near), 9 patched but the
   * self-test did not see its event (restored).
   */
  status: number;
  /** The library the function leads to when another one owns it ("" otherwise). */
  owner: string;
  /** What decided the status, with the bytes that did, e.g. "unknown instruction at +0: ...". */
  reason: string;
}

interface Listener {
  fn: MemHookCallback;
  cbdata: unknown;
}

type ListenerKind = "release" | "alloc";

/** The opal mem_hooks API (see the module documentation); use the `memHooks` instance. */
class MemHooks {
  #lib: MemhooksNative | undefined;
  #initialized = false;
  #level = 0;
  /** Copy on write: never changed in place, so a delivery reads a list without copying it. */
  #listeners: Record<ListenerKind, readonly Listener[]> = { release: [], alloc: [] };
  /** This isolate's native queue (-1 until it needs one), and that queue's pending word. */
  #subscriber = -1;
  #pending: Int32Array | undefined;
  #unloadHandled = false;
  #buffer = new Uint8Array(DRAIN_BATCH * EVENT.size);
  #view = new DataView(this.#buffer.buffer);
  #timer: ReturnType<typeof setInterval> | undefined;
  #delivering = false;
  #delivered = 0;

  /** Loads the hooks library and installs the hooks; returns an OPAL code. */
  init(): number {
    const lib = this.#lib ??= memhooksNative();
    const rc = lib.opal_mem_hooks_init();
    this.#initialized = true;
    this.#level = lib.opal_mem_hooks_support_level();
    return rc;
  }

  /**
   * Delivers what is queued to this isolate's callbacks, removes them and gives this isolate's
   * native queue back; then removes the hooks and every C callback, unless another isolate still
   * has its queue (they stay for it, and the result is OPAL_SUCCESS all the same). Returns an OPAL
   * code: OPAL_ERR_RESOURCE_BUSY, changing nothing, while a registration cache is open in the
   * process (it relies on the hooks).
   */
  finalize(): number {
    const lib = this.#lib;
    if (!lib) return OPAL_SUCCESS;
    if (lib.memhooks_holders() > 0) return OPAL_ERR_RESOURCE_BUSY;
    let error: unknown;
    try {
      if (this.#initialized) this.flush();
    } catch (e) {
      error = e;
    }
    this.#listeners = { release: [], alloc: [] };
    this.#updateQueue();
    this.#unsubscribe();
    // Refused while another isolate's queue or a cache (opened meanwhile) uses the hooks: this
    // isolate's part is done either way.
    let rc = lib.opal_mem_hooks_finalize();
    if (rc === OPAL_ERR_RESOURCE_BUSY) rc = OPAL_SUCCESS;
    this.#initialized = false;
    this.#level = 0;
    if (error !== undefined) throw error;
    return rc;
  }

  /**
   * The `OPAL_MEMORY_*` bits that init's self-test proved (0 before init), checked again now:
   * without `FREE` and `CHUNK` once another library has written over an entry point and its
   * events cannot be imported (hooks/README.md, "Other interceptors").
   */
  supportLevel(): number {
    return this.#initialized ? this.#lib!.opal_mem_hooks_support_level() : 0;
  }

  /**
   * Where release events come from now (0 before init): `SOURCE.PATCH` (the hooks' own patches),
   * `SOURCE.UCM` (imported from UCX's ucm), `SOURCE.OPAL` (from another library's opal memory
   * hooks), as bits (ffi/records/memhooks.ts).
   */
  eventSources(): number {
    return this.#initialized ? this.#lib!.memhooks_event_sources() : 0;
  }

  /**
   * Calls `fn` for every release from now on, on the JavaScript thread after the fact; returns
   * an OPAL code: OPAL_EXISTS if it is registered already, OPAL_ERR_NOT_SUPPORTED before `init()`
   * or without OPAL_MEMORY_FREE_SUPPORT, OPAL_ERR_OUT_OF_RESOURCE when this isolate has no native
   * queue yet and all 32 are taken by other isolates (each listening isolate holds one until its
   * `finalize()`).
   */
  registerRelease(fn: MemHookCallback, cbdata?: unknown): number {
    return this.#register("release", fn, cbdata, OPAL_MEMORY_FREE_SUPPORT);
  }

  /**
   * Calls `fn` for every allocation from now on (as `registerRelease`, OPAL_ERR_OUT_OF_RESOURCE
   * included); OPAL_ERR_NOT_SUPPORTED without OPAL_MEMORY_MMAP_SUPPORT or
   * OPAL_MEMORY_MALLOC_SUPPORT.
   */
  registerAlloc(fn: MemHookCallback, cbdata?: unknown): number {
    return this.#register(
      "alloc",
      fn,
      cbdata,
      OPAL_MEMORY_MMAP_SUPPORT | OPAL_MEMORY_MALLOC_SUPPORT,
    );
  }

  /** Delivers the events queued so far to `fn` too, then removes it. */
  unregisterRelease(fn: MemHookCallback): number {
    return this.#unregister("release", fn);
  }

  /** Delivers the events queued so far to `fn` too, then removes it (else OPAL_ERR_NOT_FOUND). */
  unregisterAlloc(fn: MemHookCallback): number {
    return this.#unregister("alloc", fn);
  }

  /**
   * Delivers every event queued for this isolate now, in order; returns how many. Called from
   * inside a callback it returns 0 (the delivery in progress goes on).
   */
  flush(): number {
    const lib = this.#lib;
    const subscriber = this.#subscriber;
    if (!lib || !this.#initialized || this.#delivering || subscriber < 0) return 0;
    this.#delivering = true;
    const errors: unknown[] = [];
    let count = 0;
    try {
      for (;;) {
        const n = Number(
          lib.memhooks_queue_drain(subscriber, this.#buffer, BigInt(DRAIN_BATCH)),
        );
        if (n === 0) break;
        for (let i = 0; i < n; i++) {
          const at = i * EVENT.size;
          const addr = this.#view.getBigUint64(at + EVENT.addr, true);
          const len = Number(this.#view.getBigUint64(at + EVENT.len, true));
          const flags = this.#view.getUint32(at + EVENT.flags, true);
          // The list as it is now: a callback that registers or removes one replaces it.
          const listeners = this.#listeners[(flags & MEMHOOKS_EVENT_ALLOC) ? "alloc" : "release"];
          const fromAlloc = (flags & MEMHOOKS_EVENT_FROM_ALLOC) !== 0;
          for (const { fn, cbdata } of listeners) {
            try {
              fn(addr, len, cbdata, fromAlloc, flags);
            } catch (e) {
              errors.push(e);
            }
          }
          count++;
        }
        // A short batch emptied the queue: what was queued when flush() began is delivered.
        // Stopping here keeps a steady stream of releases on other threads from holding it.
        if (n < DRAIN_BATCH) break;
      }
    } finally {
      this.#delivering = false;
      this.#delivered += count;
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, "memory hook callbacks threw");
    return count;
  }

  /**
   * `flush()` if anything may be queued for this isolate; without queued events it costs no
   * native call and no atomic operation (it runs on every cache operation): a plain read of this
   * isolate's pending word, which the calls and atomic operations around it keep the compiler
   * from caching.
   */
  flushIfPending(): number {
    const pending = this.#pending;
    if (!pending || pending[0] === 0) return 0;
    return this.flush();
  }

  /** The counters (loads the hooks library if needed, without installing the hooks). */
  stats(): MemHooksStats {
    const lib = this.#lib ??= memhooksNative();
    const out = new Uint8Array(STATS.size);
    lib.memhooks_stats(out);
    const view = new DataView(out.buffer);
    return {
      releases: view.getBigUint64(STATS.releases, true),
      allocs: view.getBigUint64(STATS.allocs, true),
      nested: view.getBigUint64(STATS.nested, true),
      coalesced: view.getBigUint64(STATS.coalesced, true),
      queued: view.getBigUint64(STATS.queued, true),
      delivered: this.#delivered,
    };
  }

  /**
   * Each libc function the hooks patch, with its status; after `init()` the entries are verified
   * first, so the status and owner say who has each one now.
   */
  patchStatus(): PatchStatus[] {
    const lib = this.#lib ??= memhooksNative();
    if (this.#initialized) lib.memhooks_verify();
    const result: PatchStatus[] = [];
    for (let i = 0; i < lib.memhooks_patch_count(); i++) {
      result.push({
        name: patchName(i),
        status: lib.memhooks_patch_status(i),
        owner: patchOwner(i),
        reason: patchReason(i),
      });
    }
    return result;
  }

  #register(kind: ListenerKind, fn: MemHookCallback, cbdata: unknown, needs: number): number {
    if (typeof fn !== "function") {
      throw new TypeError(`a memory hook callback must be a function, got ${typeof fn}`);
    }
    const lib = this.#lib;
    if (!lib || !this.#initialized || (this.#level & needs) === 0) return OPAL_ERR_NOT_SUPPORTED;
    if (this.#listeners[kind].some((l) => l.fn === fn)) return OPAL_EXISTS;
    if (!this.#subscribe(lib)) return OPAL_ERR_OUT_OF_RESOURCE;
    // This isolate's init() holds until its own finalize(). Another isolate's finalize removes the
    // hooks when no queue is taken (this isolate had none yet): then they are installed again.
    if (lib.opal_mem_hooks_support_level() === 0) {
      lib.opal_mem_hooks_init();
      this.#level = lib.opal_mem_hooks_support_level();
    }
    const before = this.#listeners[kind];
    this.#listeners = { ...this.#listeners, [kind]: [...before, { fn, cbdata }] };
    const rc = this.#updateQueue();
    if (rc !== OPAL_SUCCESS) {
      this.#listeners = { ...this.#listeners, [kind]: before };
      this.#updateQueue();
    }
    return rc;
  }

  /** Takes this isolate's native queue unless it has one; false when all are taken. */
  #subscribe(lib: MemhooksNative): boolean {
    if (this.#subscriber >= 0) return true;
    const id = lib.memhooks_queue_subscribe();
    if (id < 0) return false;
    const word = pendingWord(id);
    if (word === null) throw new Error("the hooks library returned no pending word");
    this.#subscriber = id;
    this.#pending = word;
    if (!this.#unloadHandled) {
      // The end of the main isolate or of a test module. Deno fires no unload in Workers: the
      // native side takes a Worker's queue back at a later subscription, once its thread ended.
      globalThis.addEventListener("unload", () => this.#leave());
      this.#unloadHandled = true;
    }
    return true;
  }

  /** Gives this isolate's native queue back (its undelivered events with it). */
  #unsubscribe(): void {
    if (this.#subscriber < 0 || !this.#lib) return;
    this.#lib.memhooks_queue_unsubscribe(this.#subscriber);
    this.#subscriber = -1;
    this.#pending = undefined;
  }

  /** The isolate is ending: nothing will be delivered any more. */
  #leave(): void {
    this.#unsubscribe();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #unregister(kind: ListenerKind, fn: MemHookCallback): number {
    if (typeof fn !== "function") {
      throw new TypeError(`a memory hook callback must be a function, got ${typeof fn}`);
    }
    if (!this.#listeners[kind].some((l) => l.fn === fn)) return OPAL_ERR_NOT_FOUND;
    let error: unknown;
    try {
      this.flush();
    } catch (e) {
      error = e;
    }
    // The flush ran callbacks: they may have removed `fn` already, or changed the list.
    this.#listeners = {
      ...this.#listeners,
      [kind]: this.#listeners[kind].filter((l) => l.fn !== fn),
    };
    this.#updateQueue();
    if (error !== undefined) throw error;
    return OPAL_SUCCESS;
  }

  /** Tells the native side which events to queue, and runs the timer only while needed. */
  #updateQueue(): number {
    const kinds = (this.#listeners.release.length ? QUEUE_KIND.RELEASE : 0) |
      (this.#listeners.alloc.length ? QUEUE_KIND.ALLOC : 0);
    const rc = this.#lib && this.#initialized && this.#subscriber >= 0
      ? this.#lib.memhooks_queue_enable(this.#subscriber, kinds)
      : OPAL_SUCCESS;
    if (kinds !== 0 && this.#timer === undefined) {
      const timer = setInterval(() => {
        try {
          this.flushIfPending();
        } catch (e) {
          reportError(e);
        }
      }, TIMER_MS);
      Deno.unrefTimer(timer);
      this.#timer = timer;
    } else if (kinds === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    return rc;
  }
}

/**
 * This isolate's memory hooks API. The hooks themselves are one per process; each isolate (the
 * main thread, every Worker) has its own callbacks and its own native queue.
 */
export const memHooks: MemHooks = new MemHooks();
export type { MemHooks };
