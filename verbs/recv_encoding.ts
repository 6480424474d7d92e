/**
 * Receive work requests: validating one and encoding it into a receive descriptor (`RECV`
 * layout), for `QueuePair.postRecv` and `SharedReceiveQueue.postRecv`.
 *
 * @module
 */
import { RECV } from "../ffi/records/verbs.ts";
import type { ScatterGather, SgeWriter } from "./scatter_gather.ts";
import { writeU64 } from "./validate.ts";

/** A receive work request. */
export interface RecvRequest {
  /** Comes back in the completion (wr_id). Default 0. */
  wrId?: number | bigint;
  /** Where received bytes go (UD: the first 40 take the GRH); none for a zero-byte receive. */
  sge?: ScatterGather | readonly ScatterGather[];
}

/**
 * Validates a receive of at most `max` elements and encodes it (its list, wr_id, num_sge) into
 * `view` with the queue's `sges`, checking its regions again after the request's last getter ran
 * and forgetting them before it returns. Errors name `verb`.
 */
export function encodeRecv(
  sges: SgeWriter,
  view: DataView,
  wr: RecvRequest,
  max: number,
  verb: string,
): void {
  if (wr === null || typeof wr !== "object") throw new TypeError("wr must be an object");
  sges.begin(verb);
  try {
    const count = sges.write(view, RECV.sg_list, wr.sge, max, verb);
    writeU64(view, RECV.wr_id, "wrId", wr.wrId ?? 0);
    view.setUint32(RECV.num_sge, count, true);
    sges.recheck(verb);
  } finally {
    sges.end();
    sges.forget();
  }
}
