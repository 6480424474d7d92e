/**
 * `CmEventError`: a connection-manager operation that ended in an error event (REJECTED,
 * UNREACHABLE, ADDR_ERROR, ...) rather than a failed call. It is an `RdmaError` whose `verb` is the
 * CM call that started the operation and whose errno says what happened, with the event's name,
 * its status and the private data it carried (a listener's reason for rejecting).
 *
 * @module
 */
import { Errno, RdmaError } from "../verbs/errors.ts";
import { CM_GAI_FAILED } from "../ffi/records/rdmacm.ts";
import { cStringAt } from "../ffi/pointers.ts";
import { rdmacmNative } from "../ffi/rdmacm_symbols.ts";
import type { CmEvent } from "./events.ts";

/** errno values the CM errors use, besides the verbs' ones. */
export const CmErrno = {
  ENOENT: 2,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  ECONNRESET: 104,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
} as const;

/** An operation of the connection manager that ended in an error event. */
export class CmEventError extends RdmaError {
  /** The event's name, e.g. "REJECTED". */
  readonly event: string;
  /** The event's status: -errno, or for REJECTED the CM's reject reason (28: by the peer). */
  readonly status: number;
  /** The private data the event carried (a rejecting listener's), possibly padded with zeros. */
  readonly privateData: Uint8Array;

  /** `verb` ended in `event`, reported as `errno`. */
  constructor(verb: string, errno: number, event: CmEvent, detail: string) {
    super(verb, errno, `${event.name} (status ${event.status}): ${detail}`);
    this.name = "CmEventError";
    this.event = event.name;
    this.status = event.status;
    this.privateData = event.privateData;
  }
}

/** The error of a CM call that returned `result` (-errno, or a getaddrinfo failure). */
export function cmCallError(verb: string, result: number, detail?: string): RdmaError {
  if (result <= -CM_GAI_FAILED) {
    const gai = -(result + CM_GAI_FAILED);
    const text = cStringAt(rdmacmNative().drc_gai_text(gai));
    return new RdmaError(verb, CmErrno.EADDRNOTAVAIL, `${detail ? detail + ": " : ""}${text}`);
  }
  return new RdmaError(verb, result < 0 ? -result : Errno.EIO, detail);
}

/** The error of a CM call that returned a NULL pointer. */
export function cmLastError(verb: string, detail?: string): RdmaError {
  const errno = rdmacmNative().drc_last_errno();
  return new RdmaError(verb, errno > 0 ? errno : Errno.EIO, detail);
}
