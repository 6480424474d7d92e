/**
 * Listening for connections: `listen()` binds an address and port; `for await (const conn of
 * listener)` accepts every request with the listener's parameters, and `nextRequest()` hands one
 * request out to be accepted or rejected (with private data the requester reads in its
 * CmEventError).
 *
 * Each accepted connection moves to an event channel of its own before it is accepted, so it
 * outlives the listener. Closing the listener rejects the requests it holds and ends pending
 * waits with RdmaError EBADF; requests the kernel still queues are refused by it.
 *
 * @module
 */
import { pointerAt } from "../ffi/pointers.ts";
import { CM_EVENT, PORT_SPACE } from "../ffi/records/rdmacm.ts";
import { Errno, RdmaError } from "../verbs/errors.ts";
import { optionalInteger, optionsObject, timeoutOption } from "../verbs/validate.ts";
import {
  CmConnection,
  type ConnectionParameters,
  createParts,
  destroyParts,
  expectEvent,
  parameters,
  type Parts,
} from "./connection.ts";
import { type CmEvent, EventChannel } from "./events.ts";
import { CmId, privateDataBytes } from "./id.ts";

/** Options of `listen()`: where, and what accepted connections get. */
export interface ListenOptions extends ConnectionParameters {
  /** The port (0: any free one, see `listener.port`). */
  port: number;
  /** The local address to listen on (default: every address). */
  host?: string;
  /** Requests the kernel queues before they are read. Default 16. */
  backlog?: number;
}

/** A connection request read from a listener, to accept or reject once. */
export class ConnectionRequest {
  /** What the requester sent (padded with zeros to the CM's message size on IB and RoCE). */
  readonly privateData: Uint8Array;
  /** The requester's address. */
  readonly remoteAddress: string;
  /** The requester's port. */
  readonly remotePort: number;
  /** The address it reached. */
  readonly localAddress: string;
  /** The port it reached. */
  readonly localPort: number;
  readonly #listener: Listener;
  readonly #id: CmId;
  readonly #event: CmEvent;
  #answered = false;

  /** Internal: made by Listener.nextRequest(). */
  constructor(listener: Listener, id: CmId, event: CmEvent) {
    this.#listener = listener;
    this.#id = id;
    this.#event = event;
    this.privateData = event.privateData;
    const info = id.info();
    this.remoteAddress = info.remoteAddress;
    this.remotePort = info.remotePort;
    this.localAddress = info.localAddress;
    this.localPort = info.localPort;
  }

  #answer(verb: string): void {
    if (this.#answered) {
      throw new RdmaError(verb, Errno.EINVAL, "the request was already accepted or rejected");
    }
    this.#answered = true;
    this.#listener.forget(this);
  }

  /** rdma_reject with `privateData` (at most 148 bytes on IB and RoCE), and frees the request. */
  reject(privateData?: Uint8Array): void {
    const data = privateDataBytes(privateData);
    this.#answer("rdma_reject");
    try {
      this.#id.reject(data);
    } finally {
      this.#id.close();
    }
  }

  /**
   * Creates the queue pair (the listener's parameters, then `options`), accepts, and resolves
   * with the connection once established (CmEventError or RdmaError ETIMEDOUT otherwise).
   */
  async accept(options?: ConnectionParameters): Promise<CmConnection> {
    const p = parameters({ ...this.#listener.parameters, ...optionsObject("options", options) });
    this.#answer("rdma_accept");
    const deadline = performance.now() + p.timeoutMs;
    let channel: EventChannel | undefined;
    let parts: Parts | undefined;
    try {
      parts = createParts(this.#id, p);
      channel = EventChannel.create();
      this.#id.migrate(channel);
      this.#id.accept(p.privateData, p.responderResources, p.initiatorDepth, p.rnrRetryCount);
      await expectEvent(
        channel,
        this.#id,
        CM_EVENT.ESTABLISHED,
        "rdma_accept",
        deadline,
        p.timeoutMs,
      );
      return new CmConnection(channel, this.#id, parts, this.#event);
    } catch (error) {
      try {
        if (parts !== undefined) destroyParts(this.#id, parts);
        this.#id.close();
        channel?.close();
      } catch {
        // The first error is the one to report.
      }
      throw error;
    }
  }

  /** Internal: the listener closes without an answer. */
  abandon(): void {
    if (this.#answered) return;
    this.#answered = true;
    try {
      this.#id.reject(new Uint8Array(0));
    } catch {
      // The requester is gone already.
    }
    this.#id.close();
  }
}

/** A listening id. */
export class Listener implements Disposable, AsyncIterable<CmConnection> {
  /** The port it listens on (the one picked when asked for 0). */
  readonly port: number;
  /** The address it listens on ("0.0.0.0" for every IPv4 one). */
  readonly host: string;
  /** Internal: the options accepted connections get. */
  readonly parameters: ConnectionParameters;
  readonly #channel: EventChannel;
  readonly #id: CmId;
  readonly #pending = new Set<ConnectionRequest>();
  #open = true;

  /** Internal: made by listen(). */
  constructor(options: ListenOptions) {
    const opts = optionsObject("options", options);
    if (opts.port === undefined) throw new TypeError("port is required (0: any free one)");
    const port = optionalInteger("port", opts.port, 0, 0, 65535);
    const host: unknown = opts.host;
    if (host !== undefined && (typeof host !== "string" || host === "" || host.includes("\0"))) {
      throw new TypeError("host must be a non-empty string");
    }
    const backlog = optionalInteger("backlog", opts.backlog, 16, 1, 1 << 16);
    const { host: _h, port: _p, backlog: _b, ...rest } = opts;
    parameters(rest); // checked now, not at the first request
    this.parameters = rest;
    this.#channel = EventChannel.create();
    try {
      this.#id = CmId.create(this.#channel, PORT_SPACE.TCP);
      try {
        this.#id.listen(host as string | undefined, port, backlog);
      } catch (error) {
        this.#id.close();
        throw error;
      }
    } catch (error) {
      this.#channel.close();
      throw error;
    }
    const info = this.#id.info();
    this.port = info.localPort;
    this.host = info.localAddress;
  }

  /** False once `close()` ran. */
  get open(): boolean {
    return this.#open;
  }

  /** Internal: a request was answered. */
  forget(request: ConnectionRequest): void {
    this.#pending.delete(request);
  }

  /**
   * The next connection request, or null after `timeoutMs` (default: wait until one comes).
   * RdmaError EBADF when the listener is (or gets) closed.
   */
  async nextRequest(options?: { timeoutMs?: number }): Promise<ConnectionRequest | null> {
    const timeout = timeoutOption(options);
    const deadline = performance.now() + timeout;
    const listenId = this.#address();
    for (;;) {
      let event: CmEvent | null;
      try {
        const left = deadline - performance.now();
        event = left > 0 ? await this.#channel.next(left) : this.#channel.poll();
      } catch (error) {
        if (!this.#open) {
          throw new RdmaError("rdma_get_cm_event", Errno.EBADF, "Listener was closed");
        }
        throw error;
      }
      if (event === null) return null;
      if (event.type !== CM_EVENT.CONNECT_REQUEST || event.listenId !== listenId) continue;
      const id = CmId.adopt(pointerAt(event.id)!);
      const request = new ConnectionRequest(this, id, event);
      if (!this.#open) {
        request.abandon();
        throw new RdmaError("rdma_get_cm_event", Errno.EBADF, "Listener was closed");
      }
      this.#pending.add(request);
      return request;
    }
  }

  /** The next request, accepted with the listener's parameters (ETIMEDOUT after `timeoutMs`). */
  async accept(options?: { timeoutMs?: number }): Promise<CmConnection> {
    const request = await this.nextRequest(options);
    if (request === null) {
      throw new RdmaError("rdma_get_cm_event", Errno.ETIMEDOUT, "no connection request came");
    }
    return await request.accept();
  }

  /**
   * Accepts every request until the listener closes. A request whose handshake fails (the
   * requester went away) is skipped: `failedAccepts` counts them, `lastAcceptError` has the last.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<CmConnection, void, undefined> {
    while (this.#open) {
      let request: ConnectionRequest | null;
      try {
        request = await this.nextRequest();
      } catch (error) {
        if (!this.#open) return;
        throw error;
      }
      if (request === null) continue;
      try {
        yield await request.accept();
      } catch (error) {
        this.failedAccepts++;
        this.lastAcceptError = error;
      }
    }
  }

  /** Requests whose handshake failed in the iterator. */
  failedAccepts = 0;
  /** The last such failure. */
  lastAcceptError: unknown = undefined;

  #address(): bigint {
    return this.#id.address;
  }

  /** Stops listening: rejects held requests, destroys the id and the channel. Idempotent. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    for (const request of [...this.#pending]) request.abandon();
    this.#pending.clear();
    try {
      this.#id.close();
    } finally {
      this.#channel.close();
    }
  }

  /** `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Listens on `port` (and `host`, default every address) for RC connections. */
export function listen(options: ListenOptions): Listener {
  return new Listener(options);
}
