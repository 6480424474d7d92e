/**
 * Event channels (struct rdma_event_channel) and the events read from them.
 *
 * A channel's fd is nonblocking: `next()` reads what is pending without blocking, and otherwise
 * waits for the fd to become readable through the one waiter of the process (`waitReadable`, as
 * `CompletionQueue.wait()` does: no thread per wait); `close()` during a wait rejects it with
 * EBADF at once. Every event is copied and acknowledged natively before `next()` returns it.
 *
 * @module
 */
import { addressOfPointer } from "../ffi/pointers.ts";
import { CM_EVENT, CM_EVENT_DESC } from "../ffi/records/rdmacm.ts";
import { rdmacmNative } from "../ffi/rdmacm_symbols.ts";
import { Errno, RdmaError } from "../verbs/errors.ts";
import { type ReadableWait, waitReadable } from "../verbs/fd_waiter.ts";
import { NativeHandle } from "../verbs/handle.ts";
import { cmCallError, cmLastError } from "./errors.ts";

const EVENT_NAMES = new Map<number, string>(
  Object.entries(CM_EVENT).map(([name, value]) => [value, name]),
);

/** The name of a CM event type ("ESTABLISHED"), or "EVENT_<n>". */
export function cmEventName(type: number): string {
  return EVENT_NAMES.get(type) ?? `EVENT_${type}`;
}

/** One event of the connection manager, already acknowledged. */
export interface CmEvent {
  /** enum rdma_cm_event_type (CM_EVENT). */
  type: number;
  /** Its name, e.g. "CONNECT_REQUEST". */
  name: string;
  /** -errno, or for REJECTED the CM's reject reason. */
  status: number;
  /** Address of the struct rdma_cm_id it concerns. */
  id: bigint;
  /** CONNECT_REQUEST: the listening id's address; else 0n. */
  listenId: bigint;
  /** The private data it carried (a copy). */
  privateData: Uint8Array;
  /** conn.responder_resources of a connection event. */
  responderResources: number;
  /** conn.initiator_depth of a connection event. */
  initiatorDepth: number;
  /** UD and multicast events: the remote queue pair (0xffffff for a group). */
  qpNum: number;
  /** UD and multicast events: the qkey to send with. */
  qkey: number;
  /** UD and multicast events: the address handle's attributes. */
  ud: UdPath;
}

/** struct ibv_ah_attr of a UD or multicast event. */
export interface UdPath {
  /** Remote LID (0 on RoCE). */
  dlid: number;
  /** Service level. */
  sl: number;
  /** Local port. */
  portNum: number;
  /** A GRH is needed (always on RoCE). */
  isGlobal: boolean;
  /** Local GID index. */
  sgidIndex: number;
  /** GRH hop limit. */
  hopLimit: number;
  /** GRH traffic class. */
  trafficClass: number;
  /** GRH flow label. */
  flowLabel: number;
  /** Destination GID (a copy). */
  dgid: Uint8Array;
}

/** An event channel. Internal to cm/: each listener and connection has its own. */
export class EventChannel extends NativeHandle {
  readonly #desc = new Uint8Array(CM_EVENT_DESC.size);
  readonly #view = new DataView(this.#desc.buffer);
  #waiting = false;
  #wait: ReadableWait | null = null;

  private constructor(pointer: Deno.PointerObject) {
    super(
      pointer,
      "EventChannel",
      "rdma_destroy_event_channel",
      (p) => rdmacmNative().drc_destroy_channel(p),
    );
  }

  /** rdma_create_event_channel, made nonblocking. */
  static create(): EventChannel {
    const pointer = rdmacmNative().drc_create_channel();
    if (pointer === null) throw cmLastError("rdma_create_event_channel");
    return new EventChannel(pointer);
  }

  /** The next event without waiting, or null. */
  poll(): CmEvent | null {
    const result = rdmacmNative().drc_get_event(this.pointerFor("rdma_get_cm_event"), this.#desc);
    if (result < 0) throw cmCallError("rdma_get_cm_event", result);
    if (result === 0) return null;
    const v = this.#view;
    const type = v.getInt32(CM_EVENT_DESC.event, true);
    const length = v.getUint32(CM_EVENT_DESC.private_data_len, true);
    return {
      type,
      name: cmEventName(type),
      status: v.getInt32(CM_EVENT_DESC.status, true),
      id: v.getBigUint64(CM_EVENT_DESC.id, true),
      listenId: v.getBigUint64(CM_EVENT_DESC.listen_id, true),
      privateData: this.#desc.slice(
        CM_EVENT_DESC.private_data,
        CM_EVENT_DESC.private_data + length,
      ),
      responderResources: v.getUint8(CM_EVENT_DESC.responder_resources),
      initiatorDepth: v.getUint8(CM_EVENT_DESC.initiator_depth),
      qpNum: v.getUint32(CM_EVENT_DESC.qp_num, true),
      qkey: v.getUint32(CM_EVENT_DESC.qkey, true),
      ud: {
        dlid: v.getUint16(CM_EVENT_DESC.ah_dlid, true),
        sl: v.getUint8(CM_EVENT_DESC.ah_sl),
        portNum: v.getUint8(CM_EVENT_DESC.ah_port_num),
        isGlobal: v.getUint8(CM_EVENT_DESC.ah_is_global) !== 0,
        sgidIndex: v.getUint8(CM_EVENT_DESC.ah_sgid_index),
        hopLimit: v.getUint8(CM_EVENT_DESC.ah_hop_limit),
        trafficClass: v.getUint8(CM_EVENT_DESC.ah_traffic_class),
        flowLabel: v.getUint32(CM_EVENT_DESC.ah_flow_label, true),
        dgid: this.#desc.slice(CM_EVENT_DESC.ah_dgid, CM_EVENT_DESC.ah_dgid + 16),
      },
    };
  }

  /**
   * The next event, waiting up to `timeoutMs` without blocking the event loop; null on timeout.
   * One wait at a time (EBUSY otherwise); closing the channel rejects a pending wait with EBADF.
   */
  async next(timeoutMs: number): Promise<CmEvent | null> {
    const ready = this.poll();
    if (ready !== null) return ready;
    if (this.#waiting) {
      throw new RdmaError("rdma_get_cm_event", Errno.EBUSY, "another wait is pending");
    }
    const fd = rdmacmNative().drc_channel_fd(this.pointerFor("rdma_get_cm_event"));
    this.#waiting = true;
    const deadline = performance.now() + timeoutMs;
    try {
      for (;;) {
        const left = deadline - performance.now();
        if (left <= 0) return null;
        this.#wait = waitReadable(fd, left);
        const readable = await this.#wait.promise;
        this.#wait = null;
        const event = this.poll();
        if (event !== null) return event;
        if (!readable) return null;
      }
    } finally {
      this.#wait = null;
      this.#waiting = false;
    }
  }

  /** Ends a pending `next()` (EBADF). */
  protected override whenClosed(): void {
    this.#wait?.cancel(
      new RdmaError("rdma_get_cm_event", Errno.EBADF, "the channel was closed"),
    );
  }

  /** Where the native channel lives. */
  get address(): bigint {
    return addressOfPointer(this.pointer);
  }
}
