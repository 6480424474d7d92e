/**
 * A preallocated array of work completions that `CompletionQueue.poll` fills.
 *
 * Reading a field is a DataView read at a fixed offset: polling and inspecting completions
 * allocates nothing (use `wrId(i)`, a number, rather than `wrIdBig(i)` on the hot path).
 *
 * @module
 */
import { WC } from "../ffi/records/verbs.ts";
import { integerIn } from "./validate.ts";

/** One work completion as a plain object (allocates; for convenience and tests). */
export interface WorkCompletion {
  /** The `wrId` of the work request this completes (wr_id). */
  wrId: bigint;
  /** enum ibv_wc_status (WcStatus); 0 is success. */
  status: number;
  /** enum ibv_wc_opcode (WcOpcode). */
  opcode: number;
  /** The provider's error detail (vendor_err); meaningful when `status` is not SUCCESS. */
  vendorError: number;
  /** Bytes transferred (byte_len): for a receive, what arrived (UD: the 40-byte GRH included). */
  byteLength: number;
  /** Immediate data (host order) when `flags` has WcFlags.WITH_IMM, else 0. */
  immData: number;
  /** Number of the local queue pair the request was posted to (qp_num). */
  qpNum: number;
  /** UD receives: the sender's queue pair number (src_qp). */
  srcQp: number;
  /** WcFlags bits. */
  flags: number;
  /** P_Key index (pkey_index); meaningful for GSI queue pairs only. */
  pkeyIndex: number;
  /** UD receives: the sender's LID (slid); 0 on RoCE. */
  slid: number;
  /** UD receives: the service level of the packet (sl). */
  sl: number;
}

const TWO_32 = 2 ** 32;

/** Room for `capacity` completions, reused across polls. */
export class WorkCompletions {
  // Private with getters: the native poll writes up to `capacity` entries into `bytes`, so
  // neither may be reassigned from JavaScript (readonly is a compile-time promise only).
  readonly #bytes: Uint8Array;
  readonly #capacity: number;
  readonly #view: DataView;
  /** How many entries the last poll filled. */
  count = 0;

  /** Room for `capacity` completions (1 to 2^20); throws RangeError otherwise. */
  constructor(capacity: number) {
    this.#capacity = integerIn("capacity", capacity, 1, 1 << 20);
    this.#bytes = new Uint8Array(capacity * WC.size);
    this.#view = new DataView(this.#bytes.buffer);
  }

  /** The packed descriptors (WC.size bytes each), as the shim writes them. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /** How many completions one poll may fill. */
  get capacity(): number {
    return this.#capacity;
  }

  #at(index: number): number {
    if (!(index >= 0 && index < this.count)) {
      throw new RangeError(`completion index ${index} is outside [0, ${this.count})`);
    }
    return index * WC.size;
  }

  /** The work request id, as a number (exact for ids below 2^53). */
  wrId(i: number): number {
    const o = this.#at(i);
    return this.#view.getUint32(o + WC.wr_id + 4, true) * TWO_32 +
      this.#view.getUint32(o + WC.wr_id, true);
  }

  /** The work request id as a bigint (exact for every id). */
  wrIdBig(i: number): bigint {
    return this.#view.getBigUint64(this.#at(i) + WC.wr_id, true);
  }

  /** enum ibv_wc_status (WcStatus) of entry `i`; 0 is success. */
  status(i: number): number {
    return this.#view.getUint32(this.#at(i) + WC.status, true);
  }

  /** enum ibv_wc_opcode (WcOpcode) of entry `i`. */
  opcode(i: number): number {
    return this.#view.getUint32(this.#at(i) + WC.opcode, true);
  }

  /** Bytes transferred by entry `i` (see `WorkCompletion.byteLength`). */
  byteLength(i: number): number {
    return this.#view.getUint32(this.#at(i) + WC.byte_len, true);
  }

  /** Immediate data (host order) of entry `i` when its flags have WITH_IMM, else 0. */
  immData(i: number): number {
    return this.#view.getUint32(this.#at(i) + WC.imm_data, true);
  }

  /** The local queue pair number of entry `i`. */
  qpNum(i: number): number {
    return this.#view.getUint32(this.#at(i) + WC.qp_num, true);
  }

  /** UD receives: the sender's queue pair number in entry `i`. */
  srcQp(i: number): number {
    return this.#view.getUint32(this.#at(i) + WC.src_qp, true);
  }

  /** WcFlags bits of entry `i`. */
  flags(i: number): number {
    return this.#view.getUint32(this.#at(i) + WC.wc_flags, true);
  }

  /** Entry `i` as a plain object. */
  get(i: number): WorkCompletion {
    const o = this.#at(i);
    const v = this.#view;
    return {
      wrId: v.getBigUint64(o + WC.wr_id, true),
      status: v.getUint32(o + WC.status, true),
      opcode: v.getUint32(o + WC.opcode, true),
      vendorError: v.getUint32(o + WC.vendor_err, true),
      byteLength: v.getUint32(o + WC.byte_len, true),
      immData: v.getUint32(o + WC.imm_data, true),
      qpNum: v.getUint32(o + WC.qp_num, true),
      srcQp: v.getUint32(o + WC.src_qp, true),
      flags: v.getUint32(o + WC.wc_flags, true),
      pkeyIndex: v.getUint16(o + WC.pkey_index, true),
      slid: v.getUint16(o + WC.slid, true),
      sl: v.getUint8(o + WC.sl),
    };
  }

  /** The filled entries as plain objects. */
  toArray(): WorkCompletion[] {
    return Array.from({ length: this.count }, (_, i) => this.get(i));
  }
}
