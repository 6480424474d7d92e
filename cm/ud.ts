/**
 * UD endpoints through the connection manager: a UD queue pair on an id bound to a local
 * address, destinations found by address and port (the CM's service ID resolution: the peer's
 * endpoint answers with its queue pair number and qkey), and multicast groups joined and left by
 * IP address. Sends go out with `qp.postSend({ ah, remoteQpn, remoteQkey, ... })` from a
 * `UdDestination`; receives carry the 40-byte GRH first, as every UD receive on RoCE.
 *
 * Lifetime as connections: the queue pair is attached to the endpoint's id and refuses to close
 * on its own; `close()` leaves the groups, destroys the destinations' address handles, the queue
 * pair, the completion queue, the id, its channel and its own protection domain.
 *
 * @module
 */
import { pointerAt } from "../ffi/pointers.ts";
import { CM_EVENT, PORT_SPACE } from "../ffi/records/rdmacm.ts";
import type { AddressHandle, PathOptions } from "../verbs/address_handle.ts";
import type { CompletionQueue } from "../verbs/completion_queue.ts";
import type { Context } from "../verbs/context.ts";
import { Errno, RdmaError } from "../verbs/errors.ts";
import type { ProtectionDomain } from "../verbs/protection_domain.ts";
import type { QueuePair } from "../verbs/queue_pair.ts";
import { optionalInteger, optionsObject, timeoutOption } from "../verbs/validate.ts";
import {
  type CmQueuePairOptions,
  createParts,
  destroyParts,
  expectEvent,
  parameters,
  type Parts,
} from "./connection.ts";
import { type CmEvent, EventChannel } from "./events.ts";
import { CmId, privateDataBytes } from "./id.ts";

/** Options of `openUdEndpoint()`. */
export interface UdEndpointOptions {
  /** The local address to bind to (it picks the device). */
  host: string;
  /** The port others resolve it by (0: any free one). Default 0. */
  port?: number;
  /**
   * Answer resolution requests (`answer()`): rdma_listen. Default: when a port is given. The CM
   * lets only ids that do not listen join multicast groups.
   */
  listen?: boolean;
  /** The UD queue pair (maxSendWr, maxRecvWr, ...). */
  qp?: CmQueuePairOptions;
  /** A protection domain of the same device: default a new one. */
  pd?: ProtectionDomain;
}

/** Where UD sends go: an address handle, the remote queue pair and its qkey. */
export interface UdDestination {
  /** On the endpoint's protection domain; closed with the endpoint. */
  ah: AddressHandle;
  /** The remote queue pair (0xffffff for a multicast group). */
  remoteQpn: number;
  /** The qkey sends to it carry. */
  remoteQkey: number;
}

const RESOLVE_MS = 2000;
const DEFAULT_TIMEOUT_MS = 10_000;

function hostOption(name: string, value: unknown): string {
  if (typeof value !== "string" || value === "" || value.includes("\0")) {
    throw new TypeError(`${name} must be a non-empty string`);
  }
  return value;
}

/** A UD queue pair on a bound id. */
export class UdEndpoint implements Disposable {
  /** The device context (librdmacm's; stays open). */
  readonly context: Context;
  /** The protection domain. */
  readonly pd: ProtectionDomain;
  /** Send and receive completions. */
  readonly cq: CompletionQueue;
  /** The UD queue pair, ready to send and receive. */
  readonly qp: QueuePair;
  /** The bound address. */
  readonly host: string;
  /** The bound port. */
  readonly port: number;
  readonly #channel: EventChannel;
  readonly #id: CmId;
  readonly #parts: Parts;
  readonly #handles = new Set<AddressHandle>();
  readonly #groups = new Set<string>();
  #open = true;

  /** Internal: made by openUdEndpoint(). */
  constructor(channel: EventChannel, id: CmId, parts: Parts) {
    this.#channel = channel;
    this.#id = id;
    this.#parts = parts;
    this.context = parts.context;
    this.pd = parts.pd;
    this.cq = parts.cq;
    this.qp = parts.qp;
    const info = id.info();
    this.host = info.localAddress;
    this.port = info.localPort;
  }

  #check(verb: string): void {
    if (!this.#open) throw new RdmaError(verb, Errno.EBADF, "UdEndpoint is closed");
  }

  #destination(event: CmEvent): UdDestination {
    const ud = event.ud!;
    const path: PathOptions = {
      lid: ud.dlid,
      port: ud.portNum,
      sl: ud.sl,
      gidIndex: ud.sgidIndex,
      hopLimit: ud.hopLimit,
      trafficClass: ud.trafficClass,
      flowLabel: ud.flowLabel,
    };
    if (ud.isGlobal) path.gid = ud.dgid;
    const ah = this.pd.createAddressHandle(path);
    this.#handles.add(ah);
    return { ah, remoteQpn: event.qpNum, remoteQkey: event.qkey };
  }

  /**
   * Finds the UD endpoint listening at `host`:`port` (the CM's SIDR exchange) and returns where
   * to send. CmEventError (REJECTED, UNREACHABLE, ADDR_ERROR) or ETIMEDOUT after `timeoutMs`.
   */
  async resolve(
    options: { host: string; port: number; privateData?: Uint8Array; timeoutMs?: number },
  ): Promise<UdDestination> {
    this.#check("rdma_resolve_addr");
    const opts = optionsObject("options", options);
    const host = hostOption("host", opts.host);
    if (opts.port === undefined) throw new TypeError("port is required");
    const port = optionalInteger("port", opts.port, 0, 1, 65535);
    const data = privateDataBytes(opts.privateData);
    const timeout = timeoutOption({ timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS });
    const deadline = performance.now() + timeout;
    const step = () => Math.max(1, Math.min(RESOLVE_MS, Math.ceil(deadline - performance.now())));
    // A short-lived id of its own, from the endpoint's address: its events cannot be confused.
    const channel = EventChannel.create();
    try {
      using id = CmId.create(channel, PORT_SPACE.UDP);
      const wait = (wanted: number, verb: string) =>
        expectEvent(channel, id, wanted, verb, deadline, timeout);
      id.resolveAddress(this.host, host, port, step());
      await wait(CM_EVENT.ADDR_RESOLVED, "rdma_resolve_addr");
      id.resolveRoute(step());
      await wait(CM_EVENT.ROUTE_RESOLVED, "rdma_resolve_route");
      id.connect(data, 0, 0, 7, 7);
      const event = await wait(CM_EVENT.ESTABLISHED, "rdma_connect");
      this.#check("rdma_connect");
      return this.#destination(event);
    } finally {
      channel.close();
    }
  }

  /**
   * Answers the next resolution request (with this queue pair's number and qkey); returns what
   * the requester sent and where it is. ETIMEDOUT after `timeoutMs` (default 10 s).
   */
  async answer(
    options?: { timeoutMs?: number },
  ): Promise<{ privateData: Uint8Array; remoteAddress: string; remotePort: number }> {
    this.#check("rdma_accept");
    const timeout = timeoutOption({ timeoutMs: options?.timeoutMs ?? DEFAULT_TIMEOUT_MS });
    const deadline = performance.now() + timeout;
    const listenId = this.#id.address;
    for (;;) {
      const left = deadline - performance.now();
      const event = left > 0 ? await this.#channel.next(left) : this.#channel.poll();
      if (event === null) {
        throw new RdmaError("rdma_get_cm_event", Errno.ETIMEDOUT, `no request in ${timeout} ms`);
      }
      if (event.type !== CM_EVENT.CONNECT_REQUEST || event.listenId !== listenId) continue;
      using id = CmId.adopt(pointerAt(event.id)!);
      const info = id.info();
      id.shareQueuePair(this.qp);
      try {
        id.accept(new Uint8Array(0), 0, 0, 7);
      } finally {
        id.detach();
      }
      return {
        privateData: event.privateData,
        remoteAddress: info.remoteAddress,
        remotePort: info.remotePort,
      };
    }
  }

  /**
   * rdma_join_multicast of `group` (an IP multicast address): the queue pair receives what is
   * sent to it; resolves with where to send to the group.
   */
  async join(group: string, options?: { timeoutMs?: number }): Promise<UdDestination> {
    this.#check("rdma_join_multicast");
    hostOption("group", group);
    const timeout = timeoutOption({ timeoutMs: options?.timeoutMs ?? DEFAULT_TIMEOUT_MS });
    const deadline = performance.now() + timeout;
    this.#id.joinMulticast(group);
    this.#groups.add(group);
    const event = await expectEvent(
      this.#channel,
      this.#id,
      CM_EVENT.MULTICAST_JOIN,
      "rdma_join_multicast",
      deadline,
      timeout,
    );
    this.#check("rdma_join_multicast");
    return this.#destination(event);
  }

  /** rdma_leave_multicast of a group joined before. */
  leave(group: string): void {
    this.#check("rdma_leave_multicast");
    if (!this.#groups.delete(group)) {
      throw new RdmaError("rdma_leave_multicast", Errno.EINVAL, `${group} was not joined`);
    }
    this.#id.leaveMulticast(group);
  }

  /** False once `close()` ran. */
  get open(): boolean {
    return this.#open;
  }

  /** Leaves the groups and destroys what the endpoint owns. Idempotent. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    try {
      for (const group of this.#groups) {
        try {
          this.#id.leaveMulticast(group);
        } catch {
          // Leaving is best effort: destroying the id leaves every group anyway.
        }
      }
      this.#groups.clear();
      for (const ah of this.#handles) ah.close();
      this.#handles.clear();
      destroyParts(this.#id, this.#parts);
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

/**
 * Binds a UD id to `host` (and `port`), creates its UD queue pair and listens for resolution
 * requests (answered by `answer()`).
 */
export function openUdEndpoint(options: UdEndpointOptions): UdEndpoint {
  const opts = optionsObject("options", options);
  const host = hostOption("host", opts.host);
  const port = optionalInteger("port", opts.port, 0, 0, 65535);
  const listening: unknown = opts.listen ?? opts.port !== undefined;
  if (typeof listening !== "boolean") throw new TypeError("listen must be a boolean");
  const p = parameters({ qp: opts.qp, pd: opts.pd });
  const channel = EventChannel.create();
  let id: CmId | undefined;
  let parts: Parts | undefined;
  try {
    id = CmId.create(channel, PORT_SPACE.UDP);
    if (listening) id.listen(host, port, 16);
    else id.bind(host, port);
    parts = createParts(id, p, "UD");
    return new UdEndpoint(channel, id, parts);
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
