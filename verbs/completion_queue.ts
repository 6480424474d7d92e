/**
 * Completion queues: polling into a preallocated `WorkCompletions`, and waiting for completion
 * events without blocking the event loop.
 *
 * With `{ channel: true }` the queue gets its own completion channel, with `{ channel }` it uses
 * a shared `CompletionChannel`; either way it is armed at once. `await cq.wait()` waits through
 * the one waiter of the process (no thread per wait), acknowledges the event and re-arms the
 * queue before resolving, so the loop "poll; if nothing, await wait()" never misses a completion
 * (it may wake once for completions it already polled). `close()` during a wait rejects the
 * pending wait with RdmaError EBADF at once.
 *
 * @module
 */
import { addressOfPointer } from "../ffi/pointers.ts";
import { POLL_FAILED } from "../ffi/records/verbs.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { CompletionError } from "./completion_error.ts";
import { WcStatus } from "./constants.ts";
import { Errno, errorFromResult, lastError, RdmaError } from "./errors.ts";
import type { AsyncEvent } from "./async_events.ts";
import type { Context } from "./context.ts";
import { ChannelEvents, channelEventsOf, CompletionChannel } from "./completion_channel.ts";
import { NativeHandle } from "./handle.ts";
import { optionalInteger, optionsObject, timeoutOption } from "./validate.ts";
import { WorkCompletions } from "./work_completions.ts";

/** Options of `Context.createCompletionQueue`. */
export interface CompletionQueueOptions {
  /** Minimum number of entries. Default 256. */
  entries?: number;
  /**
   * `true` for a completion channel of its own, or a `CompletionChannel` to share, so `wait()`
   * works. Default false.
   */
  channel?: boolean | CompletionChannel;
  /** Completion vector (interrupt) for the channel. Default 0. */
  compVector?: number;
}

/** Options of `CompletionQueue.wait`. */
export interface WaitOptions {
  /** Give up after this many milliseconds (resolve false). Default: wait until an event. */
  timeoutMs?: number;
}

/** How many completions a poll into `completions` may take: `max`, or all it has room for. */
function pollLimit(completions: WorkCompletions, max: number | undefined): number {
  if (!(completions instanceof WorkCompletions)) {
    throw new TypeError("completions must be a WorkCompletions");
  }
  // A transferred buffer reaches native code as a null pointer.
  if (completions.bytes.byteLength === 0) {
    throw new TypeError("the WorkCompletions' buffer was detached (transferred)");
  }
  return max === undefined
    ? completions.capacity
    : optionalInteger("max", max, completions.capacity, 1, completions.capacity);
}

/** The error of a wait on a queue closed meanwhile. */
function closedError(): RdmaError {
  return new RdmaError("ibv_get_cq_event", Errno.EBADF, "CompletionQueue was closed");
}

/** A completion queue (struct ibv_cq), optionally with a completion channel. */
export class CompletionQueue extends NativeHandle {
  /** Entries the queue can hold (at least what was asked for). */
  readonly capacity: number;
  /** The device context it was created on (queue pairs must use queues of their own context). */
  readonly context: Context;
  /** The events of its channel (its own or shared), or null without one. */
  readonly #events: ChannelEvents | null;
  /** Where the native queue lives: how an asynchronous event names it. */
  readonly #address: bigint;
  #waiting = false;

  private constructor(
    pointer: Deno.PointerObject,
    context: Context,
    channel: { own: Deno.PointerObject; events: ChannelEvents } | CompletionChannel | null,
    events: ChannelEvents | null,
  ) {
    const address = addressOfPointer(pointer);
    super(pointer, "CompletionQueue", "ibv_destroy_cq", (p) => {
      const shim = verbsNative();
      const result = shim.drv_destroy_cq(p);
      if (result !== 0) return result;
      events?.detach(address, closedError());
      // Its own channel outlives the queue: destroyed only once the queue is gone.
      if (channel !== null && !(channel instanceof CompletionChannel)) {
        channel.events.close(closedError());
        shim.drv_destroy_comp_channel(channel.own);
      }
      return 0;
    }, channel instanceof CompletionChannel ? [context, channel] : [context]);
    this.capacity = verbsNative().drv_cq_capacity(pointer);
    this.context = context;
    this.#events = events;
    this.#address = address;
    events?.attach(address, this);
  }

  /** Whether `event` (from `Context.waitAsyncEvent`) is this queue's CQ_ERR. */
  concerns(event: AsyncEvent): boolean {
    return event.element === "cq" && event.handle === this.#address;
  }

  /** ibv_create_cq. Prefer `Context.createCompletionQueue`. */
  static create(context: Context, options?: CompletionQueueOptions): CompletionQueue {
    NativeHandle.expect(context, "Context", "context");
    const opts = optionsObject("options", options);
    const entries = optionalInteger("entries", opts.entries, 256, 1, 1 << 22);
    const compVector = optionalInteger("compVector", opts.compVector, 0, 0, 1 << 16);
    const wantsChannel: unknown = opts.channel; // read once: a getter may close the context
    if (
      wantsChannel !== undefined && typeof wantsChannel !== "boolean" &&
      !(wantsChannel instanceof CompletionChannel)
    ) {
      throw new TypeError("channel must be a boolean or a CompletionChannel");
    }
    const shim = verbsNative();
    // Every getter has run: check the handles now.
    const contextPointer = context.pointerFor("ibv_create_cq");
    let shared: ChannelEvents | null = null;
    if (wantsChannel instanceof CompletionChannel) {
      if (wantsChannel.context !== context) {
        throw new RdmaError(
          "ibv_create_cq",
          Errno.EINVAL,
          "the channel belongs to another context",
        );
      }
      shared = channelEventsOf(wantsChannel, "ibv_create_cq");
    }
    let own: { own: Deno.PointerObject; events: ChannelEvents } | null = null;
    if (wantsChannel === true) {
      const channel = shim.drv_create_comp_channel(contextPointer);
      if (channel === null) throw lastError("ibv_create_comp_channel");
      try {
        own = { own: channel, events: new ChannelEvents(channel) };
      } catch (error) {
        shim.drv_destroy_comp_channel(channel);
        throw error;
      }
    }
    const channelPointer = own?.own ??
      (wantsChannel instanceof CompletionChannel ? wantsChannel.pointerFor("ibv_create_cq") : null);
    const pointer = shim.drv_create_cq(contextPointer, entries, channelPointer, compVector);
    if (pointer === null) {
      const error = lastError("ibv_create_cq", `${entries} entries`);
      if (own !== null) shim.drv_destroy_comp_channel(own.own);
      throw error;
    }
    const cq = new CompletionQueue(
      pointer,
      context,
      own ?? (wantsChannel instanceof CompletionChannel ? wantsChannel : null),
      own?.events ?? shared,
    );
    if (channelPointer !== null) cq.requestNotify();
    return cq;
  }

  /** True when the queue has a completion channel (`wait()` works). */
  get hasChannel(): boolean {
    return this.#events !== null;
  }

  /**
   * ibv_poll_cq: fills `completions` from index 0 with up to `max` completions (default: its
   * capacity) and returns how many (also stored in `completions.count`). Allocates nothing.
   */
  poll(completions: WorkCompletions, max?: number): number {
    const limit = pollLimit(completions, max);
    const n = verbsNative().drv_poll_cq(this.pointerFor("ibv_poll_cq"), limit, completions.bytes);
    if (n < 0) {
      completions.count = 0;
      throw errorFromResult("ibv_poll_cq", n);
    }
    completions.count = n;
    return n;
  }

  /**
   * `poll`, with the status check done natively: returns how many completions it polled, all of
   * them successful, and throws a CompletionError for the first one that is not (with
   * `completions.count` set to everything polled, so the entries around it can still be read).
   * Busy-polling loops (perftest-style benchmarks) pay one FFI call and no per-completion
   * JavaScript for the check. Allocates nothing unless it throws.
   */
  pollChecked(completions: WorkCompletions, max?: number): number {
    const limit = pollLimit(completions, max);
    const n = verbsNative().drv_poll_cq_checked(
      this.pointerFor("ibv_poll_cq"),
      limit,
      completions.bytes,
    );
    if (n >= 0) {
      completions.count = n;
      return n;
    }
    if (n > -POLL_FAILED) {
      completions.count = 0;
      throw errorFromResult("ibv_poll_cq", n);
    }
    completions.count = -n - POLL_FAILED;
    for (let i = 0; i < completions.count; i++) {
      if (completions.status(i) !== WcStatus.SUCCESS) {
        throw new CompletionError(completions.get(i), i);
      }
    }
    // The shim said one failed; reaching here means the layouts disagree.
    throw new RdmaError("ibv_poll_cq", Errno.EIO, "a failed completion was not found");
  }

  /** ibv_req_notify_cq: the next completion (or next solicited one) raises a channel event. */
  requestNotify(solicitedOnly = false): void {
    if (typeof solicitedOnly !== "boolean") throw new TypeError("solicitedOnly must be a boolean");
    const result = verbsNative().drv_req_notify_cq(
      this.pointerFor("ibv_req_notify_cq"),
      solicitedOnly ? 1 : 0,
    );
    if (result !== 0) throw errorFromResult("ibv_req_notify_cq", result);
  }

  /**
   * Waits for the next completion event without blocking the event loop, acknowledges it and
   * re-arms the queue. Resolves true on an event, false on timeout. Needs `{ channel: true }`.
   * One wait at a time per queue (a second concurrent wait rejects with RdmaError EBUSY).
   */
  async wait(options?: WaitOptions): Promise<boolean> {
    const timeout = timeoutOption(options);
    const events = this.#events;
    if (events === null) {
      this.pointerFor("ibv_get_cq_event"); // closed beats "no channel"
      throw new RdmaError("ibv_get_cq_event", Errno.EINVAL, "queue has no completion channel");
    }
    if (this.#waiting) {
      throw new RdmaError("ibv_get_cq_event", Errno.EBUSY, "another wait() is pending");
    }
    this.pointerFor("ibv_get_cq_event");
    this.#waiting = true;
    try {
      const fired = await events.waitQueue(this.#address, timeout);
      if (this.closed) throw closedError();
      if (fired) this.requestNotify();
      return fired;
    } finally {
      this.#waiting = false;
    }
  }

  /** Ends its pending `wait()` (EBADF). */
  protected override whenClosed(): void {
    this.#events?.detach(this.#address, closedError());
  }

  /**
   * Polls; when nothing is there, waits for events until something is or `timeoutMs` passes.
   * Returns the number of completions (0 on timeout). Needs `{ channel: true }`.
   */
  async pollOrWait(completions: WorkCompletions, options?: WaitOptions): Promise<number> {
    const deadline = performance.now() + timeoutOption(options);
    for (;;) {
      const n = this.poll(completions);
      if (n > 0) return n;
      const left = deadline - performance.now();
      if (left <= 0) return 0;
      await this.wait(left === Infinity ? undefined : { timeoutMs: left });
    }
  }
}
