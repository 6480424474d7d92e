/**
 * A device's asynchronous events (enum ibv_event_type): what `Context.waitAsyncEvent` returns.
 *
 * @module
 */

/** enum ibv_event_type. */
export const AsyncEventType = Object.freeze(
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

/** What an event concerns, as the shim reports it (drv_wait_async_event). */
const ELEMENTS = ["", "qp", "cq", "srq", "port", "device"] as const;

/** One asynchronous event of a device. */
export interface AsyncEvent {
  /** AsyncEventType. */
  type: number;
  /** Its name, e.g. "PORT_ERR". */
  typeName: string;
  /** What it concerns. */
  element: "qp" | "cq" | "srq" | "port" | "device";
  /** The queue pair's number, for a queue pair event. */
  qpn?: number;
  /** The port's number, for a port event. */
  port?: number;
}

/** The event the shim wrote into `out` (type, element kind, number). */
export function decodeAsyncEvent(out: Uint32Array): AsyncEvent {
  const element = ELEMENTS[out[1]] || "device";
  const event: AsyncEvent = { type: out[0], typeName: asyncEventName(out[0]), element };
  if (element === "qp") event.qpn = out[2];
  if (element === "port") event.port = out[2];
  return event;
}
