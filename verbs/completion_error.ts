/**
 * The error `CompletionQueue.pollChecked` throws for a work completion that did not succeed.
 *
 * A failed completion is not a failed verb (the poll itself worked), so it is not an RdmaError: it
 * carries the completion's status (WcStatus) and the request it belongs to.
 *
 * @module
 */
import { wcStatusName } from "./constants.ts";
import type { WorkCompletion } from "./work_completions.ts";

/** A work completion whose status is not WcStatus.SUCCESS. */
export class CompletionError extends Error {
  /** enum ibv_wc_status (WcStatus), never SUCCESS. */
  readonly status: number;
  /** Its name, e.g. "REM_ACCESS_ERR". */
  readonly statusName: string;
  /** The work request id of the failed request. */
  readonly wrId: bigint;
  /** The provider's vendor error code (0 when it gives none). */
  readonly vendorError: number;
  /** Where the completion sits in the WorkCompletions the poll filled. */
  readonly index: number;
  /** The whole completion. */
  readonly completion: WorkCompletion;

  /** The failed `completion`, found at `index` of the polled WorkCompletions. */
  constructor(completion: WorkCompletion, index: number) {
    const statusName = wcStatusName(completion.status);
    super(
      `work request ${completion.wrId} completed with ${statusName} ` +
        `(status ${completion.status}, vendor error ${completion.vendorError})`,
    );
    this.name = "CompletionError";
    this.status = completion.status;
    this.statusName = statusName;
    this.wrId = completion.wrId;
    this.vendorError = completion.vendorError;
    this.index = index;
    this.completion = completion;
  }
}
