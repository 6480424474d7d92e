/**
 * Shared receive queues (ibv_create_srq): one pool of posted receives that several queue pairs of
 * a protection domain draw from, instead of each keeping its own.
 *
 * @module
 */
import { addressOfPointer } from "../ffi/pointers.ts";
import { MAX_SGE, RECV, SRQ_ATTR } from "../ffi/records/verbs.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import type { AsyncEvent } from "./async_events.ts";
import { errorFromResult, lastError } from "./errors.ts";
import { NativeHandle } from "./handle.ts";
import type { ProtectionDomain } from "./protection_domain.ts";
import { encodeRecv, type RecvRequest } from "./recv_encoding.ts";
import { SgeWriter } from "./scatter_gather.ts";
import { integerIn, optionalInteger, optionsObject } from "./validate.ts";

/** Options of `ProtectionDomain.createSharedReceiveQueue`. */
export interface SharedReceiveQueueOptions {
  /** Receives it can hold. Default 1024. */
  maxWr?: number;
  /** Scatter/gather elements per receive. Default 1. */
  maxSge?: number;
}

/** A shared receive queue (struct ibv_srq). Pass it as `srq` when creating queue pairs. */
export class SharedReceiveQueue extends NativeHandle {
  /** The protection domain it belongs to (its queue pairs must too). */
  readonly pd: ProtectionDomain;
  /** Scatter/gather elements a receive may have. */
  readonly maxSge: number;
  readonly #sges: SgeWriter;
  readonly #recv = new Uint8Array(RECV.size);
  readonly #recvView = new DataView(this.#recv.buffer);
  /** Where the native queue lives: how an asynchronous event names it. */
  readonly #address: bigint;

  private constructor(pointer: Deno.PointerObject, pd: ProtectionDomain, maxSge: number) {
    super(
      pointer,
      "SharedReceiveQueue",
      "ibv_destroy_srq",
      (p) => verbsNative().drv_destroy_srq(p),
      [
        pd,
      ],
    );
    this.pd = pd;
    this.maxSge = maxSge;
    this.#address = addressOfPointer(pointer);
    this.#sges = new SgeWriter(pd);
  }

  /** ibv_create_srq. Prefer `ProtectionDomain.createSharedReceiveQueue`. */
  static create(pd: ProtectionDomain, options?: SharedReceiveQueueOptions): SharedReceiveQueue {
    NativeHandle.expect(pd, "ProtectionDomain", "pd");
    const opts = optionsObject("options", options);
    const maxWr = optionalInteger("maxWr", opts.maxWr, 1024, 1, 1 << 20);
    const maxSge = optionalInteger("maxSge", opts.maxSge, 1, 1, MAX_SGE);
    const pointer = verbsNative().drv_create_srq(pd.pointerFor("ibv_create_srq"), maxWr, maxSge, 0);
    if (pointer === null) {
      throw lastError("ibv_create_srq", `${maxWr} receives of ${maxSge} sges`);
    }
    return new SharedReceiveQueue(pointer, pd, maxSge);
  }

  /** ibv_post_srq_recv of one receive, taken by whichever of its queue pairs gets a message first. */
  postRecv(wr: RecvRequest): void {
    encodeRecv(this.#sges, this.#recvView, wr, this.maxSge, "ibv_post_srq_recv");
    // After encoding: a getter in `wr` may have closed this queue.
    const srq = this.pointerFor("ibv_post_srq_recv");
    const result = verbsNative().drv_post_srq_recv(srq, this.#recv);
    if (result !== 0) throw errorFromResult("ibv_post_srq_recv", result);
  }

  /**
   * Arms the limit (ibv_modify_srq IBV_SRQ_LIMIT): once fewer than `limit` receives are left, the
   * context reports one SRQ_LIMIT_REACHED asynchronous event (`Context.waitAsyncEvent`), and the
   * limit is disarmed until armed again. Post more receives when it comes.
   */
  armLimit(limit: number): void {
    const value = integerIn("limit", limit, 1, 0xffffffff);
    const result = verbsNative().drv_arm_srq_limit(this.pointerFor("ibv_modify_srq"), value);
    if (result !== 0) throw errorFromResult("ibv_modify_srq", result, `limit ${value}`);
  }

  /** Whether `event` (from `Context.waitAsyncEvent`) is about this queue (SRQ_LIMIT_REACHED, ...). */
  concerns(event: AsyncEvent): boolean {
    return event.element === "srq" && event.handle === this.#address;
  }

  /** ibv_query_srq: the receives and sges it holds (which may exceed the request) and the limit. */
  query(): { maxWr: number; maxSge: number; limit: number } {
    const desc = new Uint8Array(SRQ_ATTR.size);
    const result = verbsNative().drv_query_srq(this.pointerFor("ibv_query_srq"), desc);
    if (result !== 0) throw errorFromResult("ibv_query_srq", result);
    const v = new DataView(desc.buffer);
    return {
      maxWr: v.getUint32(SRQ_ATTR.max_wr, true),
      maxSge: v.getUint32(SRQ_ATTR.max_sge, true),
      limit: v.getUint32(SRQ_ATTR.srq_limit, true),
    };
  }
}
