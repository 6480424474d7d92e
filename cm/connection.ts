/**
 * Connections made through the connection manager: `connect()` by address, and the
 * `CmConnection` both sides get (the listener's side comes from listener.ts). A connection owns
 * its event channel, its id, a completion queue and an RC queue pair on the id's device, and the
 * protection domain unless one was given.
 *
 * Lifetime: the queue pair is attached to the id (the CM moves it through its states), so it
 * refuses to close on its own (EBUSY) while the connection lives; `close()` disconnects (outstanding
 * posts flush), detaches and destroys the queue pair, then the completion queue (a pending
 * `cq.wait()` rejects with EBADF), the id, the channel, and its own protection domain, which
 * memory regions still registered keep until they close. The device context belongs to librdmacm
 * and stays open.
 *
 * @module
 */
import { pointerAt } from "../ffi/pointers.ts";
import { CM_EVENT, PORT_SPACE } from "../ffi/records/rdmacm.ts";
import type { CompletionQueue } from "../verbs/completion_queue.ts";
import { Context } from "../verbs/context.ts";
import { Errno, RdmaError } from "../verbs/errors.ts";
import { NativeHandle } from "../verbs/handle.ts";
import type { ProtectionDomain } from "../verbs/protection_domain.ts";
import type { QueuePair } from "../verbs/queue_pair.ts";
import { optionalInteger, optionsObject, timeoutOption } from "../verbs/validate.ts";
import { CmErrno, CmEventError } from "./errors.ts";
import { type CmEvent, EventChannel } from "./events.ts";
import { CmId, privateDataBytes } from "./id.ts";

/** The queue pair and completion queue a connection gets. */
export interface CmQueuePairOptions {
  /** Default 128. */
  maxSendWr?: number;
  /** Default 128. */
  maxRecvWr?: number;
  /** Default 1. */
  maxSendSge?: number;
  /** Default 1. */
  maxRecvSge?: number;
  /** Default 0. */
  maxInlineData?: number;
  /** Every send produces a completion. Default true. */
  signalAll?: boolean;
  /** Entries of the completion queue (sends and receives share it). Default 256. */
  cqEntries?: number;
}

/** What both `connect()` and accepting take. */
export interface ConnectionParameters {
  /** The queue pair to create. */
  qp?: CmQueuePairOptions;
  /** Bytes the peer receives with the request (or the acceptance), at most 255 (56 on RoCE). */
  privateData?: Uint8Array;
  /** A protection domain on the same device (another connection's): default a new one. */
  pd?: ProtectionDomain;
  /** RDMA READs/atomics this side serves at once. Default 1. */
  responderResources?: number;
  /** RDMA READs/atomics this side has outstanding at once. Default 1. */
  initiatorDepth?: number;
  /** RNR retries (7: forever). Default 7. */
  rnrRetryCount?: number;
  /** Give up after this many milliseconds (RdmaError ETIMEDOUT). Default 10000. */
  timeoutMs?: number;
}

/** Options of `connect()`. */
export interface CmConnectOptions extends ConnectionParameters {
  /** The listener's address (IPv4, IPv6 or a name). */
  host: string;
  /** The listener's port. */
  port: number;
  /** The local address to connect from (default: what the route says). */
  source?: string;
  /** Transport retries. Default 7. */
  retryCount?: number;
}

/** Why a connection ended: `close()`/`disconnect()` here, the peer, or the device went away. */
export type CloseReason = "local" | "peer" | "device-removal";

const DEFAULT_TIMEOUT_MS = 10_000;
/** The longest single address or route resolution, as rping uses. */
const RESOLVE_MS = 2000;

/** librdmacm's contexts, one handle each (borrowed: librdmacm keeps them open). */
const contexts = new Map<bigint, Context>();

function contextAt(verbs: bigint): Context {
  let context = contexts.get(verbs);
  if (context === undefined || context.closed) {
    const pointer = pointerAt(verbs);
    if (pointer === null) throw new RdmaError("rdma_create_qp", Errno.ENODEV, "id has no device");
    context = Context.borrow(pointer);
    contexts.set(verbs, context);
  }
  return context;
}

/** The checked parameters, each read once. */
export interface Parameters {
  qp: Required<Omit<CmQueuePairOptions, "signalAll">> & { signalAll: boolean };
  privateData: Uint8Array;
  pd: ProtectionDomain | undefined;
  responderResources: number;
  initiatorDepth: number;
  rnrRetryCount: number;
  timeoutMs: number;
}

/** `options` as Parameters: TypeError/RangeError before anything is created. */
export function parameters(options: ConnectionParameters | undefined): Parameters {
  const opts = optionsObject("options", options);
  const timeout = timeoutOption({ timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS });
  const qp = optionsObject("qp", opts.qp);
  const signalAll: unknown = qp.signalAll;
  if (signalAll !== undefined && typeof signalAll !== "boolean") {
    throw new TypeError("qp.signalAll must be a boolean");
  }
  const pd: unknown = opts.pd;
  if (pd !== undefined) NativeHandle.expect(pd as ProtectionDomain, "ProtectionDomain", "pd");
  return {
    qp: {
      maxSendWr: optionalInteger("qp.maxSendWr", qp.maxSendWr, 128, 1, 1 << 20),
      maxRecvWr: optionalInteger("qp.maxRecvWr", qp.maxRecvWr, 128, 1, 1 << 20),
      maxSendSge: optionalInteger("qp.maxSendSge", qp.maxSendSge, 1, 1, 16),
      maxRecvSge: optionalInteger("qp.maxRecvSge", qp.maxRecvSge, 1, 1, 16),
      maxInlineData: optionalInteger("qp.maxInlineData", qp.maxInlineData, 0, 0, 1 << 16),
      cqEntries: optionalInteger("qp.cqEntries", qp.cqEntries, 256, 1, 1 << 22),
      signalAll: signalAll !== false,
    },
    privateData: privateDataBytes(opts.privateData),
    pd: pd as ProtectionDomain | undefined,
    responderResources: optionalInteger("responderResources", opts.responderResources, 1, 0, 255),
    initiatorDepth: optionalInteger("initiatorDepth", opts.initiatorDepth, 1, 0, 255),
    rnrRetryCount: optionalInteger("rnrRetryCount", opts.rnrRetryCount, 7, 0, 7),
    timeoutMs: timeout,
  };
}

/** The verbs objects of one connection. */
export interface Parts {
  context: Context;
  pd: ProtectionDomain;
  ownsPd: boolean;
  cq: CompletionQueue;
  qp: QueuePair;
  release: () => void;
}

/** Creates the connection's verbs objects on `id`'s device and attaches the queue pair. */
export function createParts(id: CmId, p: Parameters, type: "RC" | "UD" = "RC"): Parts {
  const context = contextAt(id.info().verbs);
  if (p.pd !== undefined && p.pd.context !== context) {
    throw new TypeError("pd must come from the connection's device (another connection's pd)");
  }
  const pd = p.pd ?? context.allocProtectionDomain();
  const ownsPd = p.pd === undefined;
  let cq: CompletionQueue | undefined;
  let qp: QueuePair | undefined;
  try {
    cq = context.createCompletionQueue({ entries: p.qp.cqEntries, channel: true });
    qp = pd.createQueuePair({
      type,
      sendCq: cq,
      maxSendWr: p.qp.maxSendWr,
      maxRecvWr: p.qp.maxRecvWr,
      maxSendSge: p.qp.maxSendSge,
      maxRecvSge: p.qp.maxRecvSge,
      maxInlineData: p.qp.maxInlineData,
      signalAll: p.qp.signalAll,
    });
    id.attach(qp);
    const release = NativeHandle.holdOpen(qp, "CmConnection");
    return { context, pd, ownsPd, cq, qp, release };
  } catch (error) {
    qp?.close();
    cq?.close();
    if (ownsPd) pd.close();
    throw error;
  }
}

/** Undoes createParts (the id must not be used with the queue pair afterwards). */
export function destroyParts(id: CmId, parts: Parts): void {
  id.detach();
  parts.release();
  parts.qp.close();
  parts.cq.close();
  // Regions the application still has registered keep it until they close.
  if (parts.ownsPd) parts.pd[Symbol.dispose]();
}

const ERROR_EVENTS = new Map<number, (status: number) => number>([
  [CM_EVENT.ADDR_ERROR, (s) => (s < 0 ? -s : CmErrno.EHOSTUNREACH)],
  [CM_EVENT.ROUTE_ERROR, (s) => (s < 0 ? -s : CmErrno.ENETUNREACH)],
  [CM_EVENT.UNREACHABLE, (s) => (s < 0 ? -s : Errno.ETIMEDOUT)],
  [CM_EVENT.REJECTED, () => CmErrno.ECONNREFUSED],
  [CM_EVENT.CONNECT_ERROR, (s) => (s < 0 ? -s : Errno.EIO)],
  [CM_EVENT.DISCONNECTED, () => CmErrno.ECONNRESET],
  [CM_EVENT.DEVICE_REMOVAL, () => Errno.ENODEV],
]);

const DETAILS: Record<string, string> = {
  ADDR_ERROR: "the address did not resolve to an RDMA device (no route, or no answer)",
  ROUTE_ERROR: "no route to the address",
  UNREACHABLE: "the peer did not answer",
  REJECTED: "the peer refused the connection (no listener on that port, or it rejected it)",
  CONNECT_ERROR: "the connection could not be established",
  DISCONNECTED: "the peer disconnected",
  DEVICE_REMOVAL: "the device was removed",
};

/** The error `event` means for an operation started by `verb`. */
export function eventError(verb: string, event: CmEvent): CmEventError {
  const errno = ERROR_EVENTS.get(event.type)?.(event.status) ?? Errno.EIO;
  return new CmEventError(verb, errno, event, DETAILS[event.name] ?? "unexpected event");
}

/**
 * Waits for `id`'s event `wanted` on `channel` until `deadline`; an error event throws its
 * CmEventError, the deadline RdmaError ETIMEDOUT; other events are skipped.
 */
export async function expectEvent(
  channel: EventChannel,
  id: CmId,
  wanted: number,
  verb: string,
  deadline: number,
  timeoutMs: number,
): Promise<CmEvent> {
  const address = id.address;
  for (;;) {
    const left = deadline - performance.now();
    const event = left > 0 ? await channel.next(left) : channel.poll();
    if (event === null) {
      throw new RdmaError(verb, Errno.ETIMEDOUT, `no answer within ${timeoutMs} ms`);
    }
    if (event.id !== address) continue;
    if (event.type === wanted) return event;
    if (ERROR_EVENTS.has(event.type)) throw eventError(verb, event);
  }
}

/** An established RC connection. */
export class CmConnection implements Disposable {
  /** The device context (librdmacm's; stays open). */
  readonly context: Context;
  /** The protection domain: register memory here (or give it to a RegistrationCache). */
  readonly pd: ProtectionDomain;
  /** Send and receive completions (it has a channel: `await cq.wait()` works). */
  readonly cq: CompletionQueue;
  /** The RC queue pair, connected. */
  readonly qp: QueuePair;
  /** This side's address, e.g. "10.10.0.1". */
  readonly localAddress: string;
  /** This side's port. */
  readonly localPort: number;
  /** The peer's address. */
  readonly remoteAddress: string;
  /** The peer's port. */
  readonly remotePort: number;
  /** What the peer sent: the request's private data (listener side) or the acceptance's. */
  readonly privateData: Uint8Array;
  /** The RDMA READs the peer serves at once (its responder resources). */
  readonly peerResponderResources: number;
  /** The RDMA READs the peer has outstanding at once (its initiator depth). */
  readonly peerInitiatorDepth: number;
  readonly #channel: EventChannel;
  readonly #id: CmId;
  readonly #parts: Parts;
  #closed: Promise<CloseReason> | undefined;
  #resolve: ((reason: CloseReason) => void) | undefined;
  #reason: CloseReason | undefined;
  #disconnected = false;
  #open = true;

  /** Internal: made by connect() and ConnectionRequest.accept(). */
  constructor(channel: EventChannel, id: CmId, parts: Parts, peer: CmEvent) {
    this.#channel = channel;
    this.#id = id;
    this.#parts = parts;
    this.context = parts.context;
    this.pd = parts.pd;
    this.cq = parts.cq;
    this.qp = parts.qp;
    const info = id.info();
    this.localAddress = info.localAddress;
    this.localPort = info.localPort;
    this.remoteAddress = info.remoteAddress;
    this.remotePort = info.remotePort;
    this.privateData = peer.privateData;
    this.peerResponderResources = peer.responderResources;
    this.peerInitiatorDepth = peer.initiatorDepth;
  }

  /** False once `close()` ran. */
  get open(): boolean {
    return this.#open;
  }

  /**
   * Resolves when the connection ends: the peer disconnected ("peer"), this side did ("local"),
   * or the device went away. Reading it starts watching the connection's events (which keeps the
   * program running until the connection ends).
   */
  get closed(): Promise<CloseReason> {
    if (this.#closed === undefined) {
      this.#closed = new Promise((resolve) => (this.#resolve = resolve));
      if (this.#reason !== undefined) this.#resolve!(this.#reason);
      else if (this.#open) this.#watch();
    }
    return this.#closed;
  }

  #end(reason: CloseReason): void {
    this.#reason ??= reason;
    this.#resolve?.(this.#reason);
  }

  async #watch(): Promise<void> {
    try {
      while (this.#open) {
        const event = await this.#channel.next(Infinity);
        if (event === null || event.id !== this.#id.address) continue;
        if (event.type === CM_EVENT.DISCONNECTED || event.type === CM_EVENT.DEVICE_REMOVAL) {
          const byPeer = !this.#disconnected;
          this.#sendDisconnect();
          this.#end(
            event.type === CM_EVENT.DEVICE_REMOVAL ? "device-removal" : byPeer ? "peer" : "local",
          );
          return;
        }
      }
    } catch {
      // The channel closed under the wait: close() ends the connection.
    }
    this.#end("local");
  }

  #sendDisconnect(): void {
    if (this.#disconnected) return;
    this.#disconnected = true;
    try {
      this.#id.disconnect();
    } catch {
      // Already disconnected by the peer's side: nothing left to tell it.
    }
  }

  /**
   * rdma_disconnect: tells the peer, and moves the queue pair to the error state (outstanding and
   * later posts complete with WR_FLUSH_ERR). The objects stay until `close()`.
   */
  disconnect(): void {
    if (!this.#open) throw new RdmaError("rdma_disconnect", Errno.EBADF, "CmConnection is closed");
    this.#sendDisconnect();
  }

  /** Disconnects and destroys what the connection owns (see the module's lifetime notes). */
  close(): void {
    if (!this.#open) return;
    this.#sendDisconnect();
    this.#open = false;
    try {
      destroyParts(this.#id, this.#parts);
      this.#id.close();
    } finally {
      this.#channel.close();
      this.#end("local");
    }
  }

  /** `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Connects to a listener at `host`:`port`: resolves the address and the route, creates the
 * queue pair on the device they lead to, and connects it. Rejects with CmEventError (REJECTED
 * with the listener's private data, UNREACHABLE, ADDR_ERROR, ROUTE_ERROR, CONNECT_ERROR) or
 * RdmaError ETIMEDOUT after `timeoutMs`.
 */
export async function connect(options: CmConnectOptions): Promise<CmConnection> {
  const opts = optionsObject("options", options);
  const host: unknown = opts.host;
  const port: unknown = opts.port;
  const source: unknown = opts.source;
  if (typeof host !== "string" || host === "" || host.includes("\0")) {
    throw new TypeError("host must be a non-empty string");
  }
  if (port === undefined) throw new TypeError("port is required");
  const portNumber = optionalInteger("port", port, 0, 1, 65535);
  if (source !== undefined && (typeof source !== "string" || source.includes("\0"))) {
    throw new TypeError("source must be a string");
  }
  const retryCount = optionalInteger("retryCount", opts.retryCount, 7, 0, 7);
  const p = parameters(opts);
  const deadline = performance.now() + p.timeoutMs;
  const step = () => Math.max(1, Math.min(RESOLVE_MS, Math.ceil(deadline - performance.now())));
  const channel = EventChannel.create();
  let id: CmId | undefined;
  let parts: Parts | undefined;
  try {
    id = CmId.create(channel, PORT_SPACE.TCP);
    id.resolveAddress(source as string | undefined, host, portNumber, step());
    const wait = (wanted: number, verb: string) =>
      expectEvent(channel, id!, wanted, verb, deadline, p.timeoutMs);
    await wait(CM_EVENT.ADDR_RESOLVED, "rdma_resolve_addr");
    id.resolveRoute(step());
    await wait(CM_EVENT.ROUTE_RESOLVED, "rdma_resolve_route");
    parts = createParts(id, p);
    id.connect(p.privateData, p.responderResources, p.initiatorDepth, retryCount, p.rnrRetryCount);
    const established = await wait(CM_EVENT.ESTABLISHED, "rdma_connect");
    return new CmConnection(channel, id, parts, established);
  } catch (error) {
    try {
      if (parts !== undefined && id !== undefined) destroyParts(id, parts);
      id?.close();
      channel.close();
    } catch {
      // The first error is the one to report.
    }
    throw error;
  }
}
