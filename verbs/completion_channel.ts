/**
 * Completion channels (struct ibv_comp_channel): where completion queues raise their events, and
 * the waits on them. A channel may serve one queue (`{ channel: true }`) or several
 * (`ctx.createCompletionChannel()`, then `{ channel }` for each queue); either way its descriptor
 * is watched by the one waiter (`fd_waiter.ts`) only while a wait is pending, and its events are
 * read here, on the JavaScript thread, and handed to the waits of the queues they concern.
 *
 * An event is delivered once: to the pending `cq.wait()` of its queue, else to the pending
 * `channel.wait()` calls, else kept until the next wait of either kind. Whoever receives it
 * re-arms the queue (`ibv_req_notify_cq`) before resolving, so "poll; if nothing, await wait()"
 * never misses a completion.
 *
 * @module
 */
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { Errno, errorFromResult, lastError, RdmaError } from "./errors.ts";
import type { CompletionQueue, WaitOptions } from "./completion_queue.ts";
import type { Context } from "./context.ts";
import { type ReadableWait, waitReadable } from "./fd_waiter.ts";
import { NativeHandle } from "./handle.ts";
import { timeoutOption } from "./validate.ts";

/** One settle-once wait with its timer. */
class Deferred<T> {
  readonly promise: Promise<T>;
  #resolve!: (value: T) => void;
  #reject!: (error: Error) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #settled = false;

  constructor(timeoutMs: number, onTimeout: () => void) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // Timers hold at most 2^31 - 1 ms; a longer limit is as good as none.
    if (timeoutMs < 2 ** 31 - 1) this.#timer = setTimeout(onTimeout, timeoutMs);
  }

  resolve(value: T): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#resolve(value);
  }

  reject(error: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#reject(error);
  }
}

interface QueueSlot {
  cq: CompletionQueue;
  /** An event taken from the channel that no wait has received yet. */
  fired: boolean;
  waiter: Deferred<boolean> | null;
}

/** Ends the descriptor watch when no wait is left (never reaches a caller). */
const NO_WAITS = new Error("no waits left");

/**
 * The events of one channel, dispatched to the waits on its queues. Owned by a
 * `CompletionChannel`, or by the one queue of a `{ channel: true }` queue.
 */
export class ChannelEvents {
  readonly #channel: Deno.PointerObject;
  readonly #fd: number;
  readonly #queues = new Map<bigint, QueueSlot>();
  readonly #anyWaiters = new Set<Deferred<CompletionQueue[]>>();
  readonly #taken = new BigUint64Array(1);
  #watch: ReadableWait | null = null;
  #closed = false;

  constructor(channel: Deno.PointerObject) {
    const fd = verbsNative().drv_comp_channel_fd(channel);
    if (fd < 0) throw errorFromResult("fcntl", fd, "making the completion channel nonblocking");
    this.#channel = channel;
    this.#fd = fd;
  }

  /** Starts delivering the events of the queue at `address`. */
  attach(address: bigint, cq: CompletionQueue): void {
    this.#queues.set(address, { cq, fired: false, waiter: null });
  }

  /** Stops delivering to the queue at `address`; its pending wait rejects with `reason`. */
  detach(address: bigint, reason: Error): void {
    const slot = this.#queues.get(address);
    if (slot === undefined) return;
    this.#queues.delete(address);
    slot.waiter?.reject(reason);
    this.#updateWatch();
  }

  /** Rejects every pending wait with `reason` and stops watching: before the channel goes. */
  close(reason: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const slot of this.#queues.values()) slot.waiter?.reject(reason);
    for (const waiter of this.#anyWaiters) waiter.reject(reason);
    this.#queues.clear();
    this.#anyWaiters.clear();
    this.#watch?.cancel(NO_WAITS);
    this.#watch = null;
  }

  /** Resolves true on the next event of the queue at `address`, false after `timeoutMs`. */
  waitQueue(address: bigint, timeoutMs: number): Promise<boolean> {
    const slot = this.#queues.get(address);
    if (slot === undefined || this.#closed) {
      return Promise.reject(new RdmaError("ibv_get_cq_event", Errno.EBADF, "queue was closed"));
    }
    this.#take();
    if (slot.fired) {
      slot.fired = false;
      return Promise.resolve(true);
    }
    const waiter = new Deferred<boolean>(timeoutMs, () => {
      if (slot.waiter === waiter) slot.waiter = null;
      waiter.resolve(false);
      this.#updateWatch();
    });
    slot.waiter = waiter;
    this.#updateWatch();
    return waiter.promise;
  }

  /** Resolves with the queues that raised an event (re-armed), or [] after `timeoutMs`. */
  waitAny(timeoutMs: number): Promise<CompletionQueue[]> {
    if (this.#closed) {
      return Promise.reject(new RdmaError("ibv_get_cq_event", Errno.EBADF, "channel was closed"));
    }
    this.#take();
    const ready = this.#unclaimed();
    if (ready.length > 0) return Promise.resolve(ready);
    const waiter = new Deferred<CompletionQueue[]>(timeoutMs, () => {
      this.#anyWaiters.delete(waiter);
      waiter.resolve([]);
      this.#updateWatch();
    });
    this.#anyWaiters.add(waiter);
    this.#updateWatch();
    return waiter.promise;
  }

  /** Reads every event the channel holds now (never blocks), marking their queues fired. */
  #take(): void {
    const native = verbsNative();
    for (;;) {
      const result = native.drv_take_cq_event(this.#channel, this.#taken);
      if (result === 0) return;
      if (result < 0) {
        this.#fail(errorFromResult("ibv_get_cq_event", result));
        return;
      }
      // Acknowledged natively; an event of a queue closed meanwhile is dropped.
      const slot = this.#queues.get(this.#taken[0]);
      if (slot !== undefined) slot.fired = true;
    }
  }

  /** The fired queues no `cq.wait()` is waiting for, re-armed and no longer fired. */
  #unclaimed(): CompletionQueue[] {
    const ready: CompletionQueue[] = [];
    for (const slot of this.#queues.values()) {
      if (!slot.fired || slot.waiter !== null) continue;
      slot.fired = false;
      slot.cq.requestNotify();
      ready.push(slot.cq);
    }
    return ready;
  }

  /** Hands the fired events to the waits: each queue's own first, then the channel's. */
  #dispatch(): void {
    for (const slot of this.#queues.values()) {
      if (slot.fired && slot.waiter !== null) {
        const waiter = slot.waiter;
        slot.fired = false;
        slot.waiter = null;
        waiter.resolve(true);
      }
    }
    if (this.#anyWaiters.size > 0) {
      let ready: CompletionQueue[];
      try {
        ready = this.#unclaimed();
      } catch (error) {
        this.#fail(error as Error);
        return;
      }
      if (ready.length > 0) {
        for (const waiter of this.#anyWaiters) waiter.resolve(ready);
        this.#anyWaiters.clear();
      }
    }
  }

  #fail(error: Error): void {
    for (const slot of this.#queues.values()) {
      slot.waiter?.reject(error);
      slot.waiter = null;
    }
    for (const waiter of this.#anyWaiters) waiter.reject(error);
    this.#anyWaiters.clear();
  }

  #hasWaits(): boolean {
    if (this.#anyWaiters.size > 0) return true;
    for (const slot of this.#queues.values()) if (slot.waiter !== null) return true;
    return false;
  }

  /** Watches the descriptor while a wait is pending, and only then. */
  #updateWatch(): void {
    if (this.#closed) return;
    const wanted = this.#hasWaits();
    if (!wanted && this.#watch !== null) {
      this.#watch.cancel(NO_WAITS);
      this.#watch = null;
    } else if (wanted && this.#watch === null) {
      const watch = waitReadable(this.#fd, Infinity);
      this.#watch = watch;
      watch.promise.then(() => {
        if (this.#watch !== watch) return;
        this.#watch = null;
        this.#take();
        this.#dispatch();
        this.#updateWatch();
      }, (error: Error) => {
        if (error === NO_WAITS || this.#watch !== watch) return;
        this.#watch = null;
        this.#fail(error);
      });
    }
  }
}

const EVENTS = new WeakMap<CompletionChannel, ChannelEvents>();

/** The dispatcher the queues of `channel` attach to (for `CompletionQueue`); EBADF once closed. */
export function channelEventsOf(channel: CompletionChannel, verb: string): ChannelEvents {
  channel.pointerFor(verb);
  return EVENTS.get(channel)!;
}

/**
 * A completion channel several completion queues can share (`{ channel }` in
 * `Context.createCompletionQueue`): `await channel.wait()` says which of them raised an event.
 * Each queue's own `wait()` works too. The channel cannot close while queues use it (EBUSY).
 */
export class CompletionChannel extends NativeHandle {
  /** The device context it was created on. */
  readonly context: Context;
  readonly #events: ChannelEvents;

  private constructor(pointer: Deno.PointerObject, context: Context, events: ChannelEvents) {
    super(pointer, "CompletionChannel", "ibv_destroy_comp_channel", (p) => {
      events.close(new RdmaError("ibv_get_cq_event", Errno.EBADF, "CompletionChannel was closed"));
      return verbsNative().drv_destroy_comp_channel(p);
    }, [context]);
    this.context = context;
    this.#events = events;
    EVENTS.set(this, events);
  }

  /** ibv_create_comp_channel. Prefer `Context.createCompletionChannel`. */
  static create(context: Context): CompletionChannel {
    NativeHandle.expect(context, "Context", "context");
    const native = verbsNative();
    const pointer = native.drv_create_comp_channel(context.pointerFor("ibv_create_comp_channel"));
    if (pointer === null) throw lastError("ibv_create_comp_channel");
    let events: ChannelEvents;
    try {
      events = new ChannelEvents(pointer);
    } catch (error) {
      native.drv_destroy_comp_channel(pointer);
      throw error;
    }
    return new CompletionChannel(pointer, context, events);
  }

  /**
   * Waits without blocking the event loop until queues of this channel raise events, and
   * resolves with them (each re-armed), or with [] after `timeoutMs`. Events a queue's own
   * pending `wait()` receives are not reported here.
   */
  async wait(options?: WaitOptions): Promise<CompletionQueue[]> {
    const timeout = timeoutOption(options);
    this.pointerFor("ibv_get_cq_event");
    return await this.#events.waitAny(timeout);
  }

  /** Ends its pending waits (EBADF). */
  protected override whenClosed(): void {
    this.#events.close(
      new RdmaError("ibv_get_cq_event", Errno.EBADF, "CompletionChannel was closed"),
    );
  }
}
