/**
 * The one waiter: every pending wait of this isolate on a descriptor (completion channels, the
 * device's async descriptor, connection-manager channels) is served by one native epoll set and
 * at most one outstanding nonblocking call (`ffi/native/fd_waiter.c`), so waiting costs one
 * thread and the same wake-up latency whatever the number of waits. The native side only says
 * which descriptors are ready; the caller reads them here, on the JavaScript thread.
 *
 * @module
 */
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { pointerAt } from "../ffi/pointers.ts";
import { Errno, errorFromResult, RdmaError } from "./errors.ts";

/** A pending wait for a descriptor to become readable. */
export interface ReadableWait {
  /** Resolves true when the descriptor is readable, false when the time limit passed first. */
  readonly promise: Promise<boolean>;
  /** Ends the wait at once: its promise rejects with `reason`. No effect once it settled. */
  cancel(reason: Error): void;
}

interface Pending {
  fd: number;
  resolve(ready: boolean): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * How long one native wait lasts at most: the loop re-issues it while waits are pending, and a
 * thread whose isolate ended (a terminated Worker) returns within this time.
 */
const NATIVE_SLICE_MS = 1000;
/** The longest delay a timer takes. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Ready descriptors taken per native call. */
const BATCH = 64;

class FdWaiter {
  readonly #pointer: Deno.PointerObject;
  /** Pending waits by token; a token is never reused, so a late report of a cancelled one is ignored. */
  readonly #pending = new Map<number, Pending>();
  /** The token armed for each descriptor: one wait per descriptor at a time. */
  readonly #byFd = new Map<number, number>();
  readonly #tokens = new BigUint64Array(BATCH);
  #nextToken = 1;
  #looping = false;
  /** A native wait is outstanding (not returned yet). */
  #inNativeWait = false;

  constructor() {
    const out = new BigUint64Array(1);
    const created = verbsNative().drv_waiter_create(out);
    if (created < 0) throw errorFromResult("epoll_create1", created);
    this.#pointer = pointerAt(out[0])!;
  }

  wait(fd: number, timeoutMs: number): ReadableWait {
    if (this.#byFd.has(fd)) {
      throw new RdmaError("epoll_ctl", Errno.EBUSY, `descriptor ${fd} already has a pending wait`);
    }
    const token = this.#nextToken++;
    let settle!: Pending;
    const promise = new Promise<boolean>((resolve, reject) => {
      settle = { fd, resolve, reject, timer: undefined };
    });
    const armed = verbsNative().drv_waiter_arm(this.#pointer, fd, BigInt(token));
    if (armed < 0) throw errorFromResult("epoll_ctl", armed);
    this.#pending.set(token, settle);
    this.#byFd.set(fd, token);
    this.#schedule(token, settle, timeoutMs);
    this.#loop();
    return {
      promise,
      cancel: (reason: Error) => this.#finish(token, true)?.reject(reason),
    };
  }

  /** Times a wait out after `ms` (timers hold at most 2^31 - 1 ms: longer limits are chained). */
  #schedule(token: number, pending: Pending, ms: number): void {
    if (ms === Infinity) return;
    const step = Math.min(ms, MAX_TIMER_MS);
    pending.timer = setTimeout(() => {
      if (ms > step) this.#schedule(token, pending, ms - step);
      else this.#finish(token, true)?.resolve(false);
    }, step);
  }

  /** Forgets a pending wait (disarming its descriptor unless it just fired); its settlers. */
  #finish(token: number, disarm: boolean): Pending | undefined {
    const pending = this.#pending.get(token);
    if (pending === undefined) return undefined;
    this.#pending.delete(token);
    this.#byFd.delete(pending.fd);
    clearTimeout(pending.timer);
    const native = verbsNative();
    if (disarm) native.drv_waiter_disarm(this.#pointer, pending.fd);
    // The last wait gone: end the outstanding native call rather than leave it running.
    if (this.#pending.size === 0 && this.#inNativeWait) native.drv_waiter_wake(this.#pointer);
    return pending;
  }

  async #loop(): Promise<void> {
    if (this.#looping) return;
    this.#looping = true;
    try {
      while (this.#pending.size > 0) {
        this.#inNativeWait = true;
        const n = await verbsNative().drv_waiter_wait(
          this.#pointer,
          this.#tokens,
          BATCH,
          NATIVE_SLICE_MS,
        ).finally(() => this.#inNativeWait = false);
        if (n < 0) {
          const error = errorFromResult("epoll_wait", n);
          for (const token of [...this.#pending.keys()]) this.#finish(token, true)?.reject(error);
          return;
        }
        for (let i = 0; i < n; i++) {
          // A one-shot registration: the report disarmed it, nothing to undo natively.
          this.#finish(Number(this.#tokens[i]), false)?.resolve(true);
        }
      }
    } finally {
      this.#looping = false;
    }
  }

  /** Waits pending now (for tests and diagnostics). */
  get pendingCount(): number {
    return this.#pending.size;
  }
}

let waiter: FdWaiter | undefined;

/**
 * Waits without blocking the event loop until `fd` is readable (true) or `timeoutMs` passed
 * (false; `Infinity` for no limit). One pending wait per descriptor. The descriptor must stay open
 * until the wait settles or is cancelled: cancel before closing it.
 */
export function waitReadable(fd: number, timeoutMs: number): ReadableWait {
  waiter ??= new FdWaiter();
  return waiter.wait(fd, timeoutMs);
}

/** The number of waits pending in this isolate. */
export function pendingWaits(): number {
  return waiter?.pendingCount ?? 0;
}
