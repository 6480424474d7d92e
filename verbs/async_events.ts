/**
 * A device's asynchronous events (enum ibv_event_type): what `Context.waitAsyncEvent` returns,
 * decoded from the shim's record of one (`ASYNC_EVENT`).
 *
 * @module
 */
import { ASYNC_EVENT, EVENT_ELEMENT } from "../ffi/records/verbs.ts";

/** enum ibv_event_type. */
export const AsyncEventType: {
  /** A completion queue overran or failed; its queue pairs are in error. */
  readonly CQ_ERR: 0;
  /** A queue pair failed and went to ERR. */
  readonly QP_FATAL: 1;
  /** A queue pair received an invalid request (its peer broke the protocol). */
  readonly QP_REQ_ERR: 2;
  /** A queue pair received a request that violated an access right. */
  readonly QP_ACCESS_ERR: 3;
  /** A queue pair in RTR received its first message. */
  readonly COMM_EST: 4;
  /** A queue pair's send queue drained (SQD state). */
  readonly SQ_DRAINED: 5;
  /** A queue pair migrated to its alternate path. */
  readonly PATH_MIG: 6;
  /** A path migration failed. */
  readonly PATH_MIG_ERR: 7;
  /** The device failed: close everything and open it again. */
  readonly DEVICE_FATAL: 8;
  /** A port became ACTIVE. */
  readonly PORT_ACTIVE: 9;
  /** A port left ACTIVE (link down, cable out). */
  readonly PORT_ERR: 10;
  /** A port's LID changed (InfiniBand). */
  readonly LID_CHANGE: 11;
  /** A port's P_Key table changed (InfiniBand). */
  readonly PKEY_CHANGE: 12;
  /** The subnet manager of a port changed (InfiniBand). */
  readonly SM_CHANGE: 13;
  /** A shared receive queue failed. */
  readonly SRQ_ERR: 14;
  /** A shared receive queue fell below its armed limit. */
  readonly SRQ_LIMIT_REACHED: 15;
  /** A queue pair on a shared receive queue took its last receive (in ERR). */
  readonly QP_LAST_WQE_REACHED: 16;
  /** The subnet manager asks clients to register again (InfiniBand). */
  readonly CLIENT_REREGISTER: 17;
  /** A port's GID table changed (an address added or removed on RoCE). */
  readonly GID_CHANGE: 18;
  /** A work queue failed. */
  readonly WQ_FATAL: 19;
} = Object.freeze(
  {
    CQ_ERR: 0,
    QP_FATAL: 1,
    QP_REQ_ERR: 2,
    QP_ACCESS_ERR: 3,
    COMM_EST: 4,
    SQ_DRAINED: 5,
    PATH_MIG: 6,
    PATH_MIG_ERR: 7,
    DEVICE_FATAL: 8,
    PORT_ACTIVE: 9,
    PORT_ERR: 10,
    LID_CHANGE: 11,
    PKEY_CHANGE: 12,
    SM_CHANGE: 13,
    SRQ_ERR: 14,
    SRQ_LIMIT_REACHED: 15,
    QP_LAST_WQE_REACHED: 16,
    CLIENT_REREGISTER: 17,
    GID_CHANGE: 18,
    WQ_FATAL: 19,
  } as const,
);

const NAMES = new Map<number, string>(
  Object.entries(AsyncEventType).map(([name, value]) => [value, name]),
);

/** "PORT_ERR" for AsyncEventType.PORT_ERR; "UNKNOWN(n)" for a type this library does not know. */
export function asyncEventName(type: number): string {
  return NAMES.get(type) ?? `UNKNOWN(${type})`;
}

/** What an event concerns, by the shim's number for it (enum drv_event_element). */
const ELEMENTS: ReadonlyMap<number, AsyncEvent["element"]> = new Map([
  [EVENT_ELEMENT.QP, "qp"],
  [EVENT_ELEMENT.CQ, "cq"],
  [EVENT_ELEMENT.SRQ, "srq"],
  [EVENT_ELEMENT.PORT, "port"],
  [EVENT_ELEMENT.DEVICE, "device"],
  [EVENT_ELEMENT.WQ, "wq"],
]);

/** One asynchronous event of a device. */
export interface AsyncEvent {
  /** AsyncEventType. */
  type: number;
  /** Its name, e.g. "PORT_ERR". */
  typeName: string;
  /** What it concerns. */
  element: "qp" | "cq" | "srq" | "port" | "device" | "wq";
  /** The queue pair's number, for a queue pair event. */
  qpn?: number;
  /** The port's number, for a port event. */
  port?: number;
  /**
   * The address of the native completion queue, shared receive queue or work queue, for their
   * events: `cq.concerns(event)` and `srq.concerns(event)` compare it.
   */
  handle?: bigint;
}

/** The event the shim wrote into `desc` (an `ASYNC_EVENT` record). */
export function decodeAsyncEvent(desc: Uint8Array): AsyncEvent {
  const v = new DataView(desc.buffer, desc.byteOffset, desc.byteLength);
  const type = v.getUint32(ASYNC_EVENT.event_type, true);
  const element = ELEMENTS.get(v.getUint32(ASYNC_EVENT.element, true)) ?? "device";
  const event: AsyncEvent = { type, typeName: asyncEventName(type), element };
  if (element === "qp") event.qpn = v.getUint32(ASYNC_EVENT.number, true);
  if (element === "port") event.port = v.getUint32(ASYNC_EVENT.number, true);
  if (element === "cq" || element === "srq" || element === "wq") {
    event.handle = v.getBigUint64(ASYNC_EVENT.handle, true);
  }
  return event;
}
