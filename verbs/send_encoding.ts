/**
 * Send work requests: validating one and encoding it into a send descriptor (`SEND` layout), for
 * `QueuePair.postSend` and `QueuePair.prepareSend`.
 *
 * @module
 */
import { SEND } from "../ffi/records/verbs.ts";
import { AddressHandle } from "./address_handle.ts";
import { DEFAULT_QKEY, QpType, SendFlags, WrOpcode } from "./constants.ts";
import type { MemoryRegion } from "./memory_region.ts";
import type { ProtectionDomain } from "./protection_domain.ts";
import {
  foreignPdError,
  type Postable,
  type ScatterGather,
  type SgeWriter,
} from "./scatter_gather.ts";
import { integerIn, optionalInteger, writeU64 } from "./validate.ts";

/** A send work request. */
export interface SendRequest {
  /** WrOpcode. Default SEND. */
  opcode?: number;
  /** Comes back in the completion (wr_id). Default 0. */
  wrId?: number | bigint;
  /** Local buffers; none for a zero-byte send or write. */
  sge?: ScatterGather | readonly ScatterGather[];
  /** Ask for a completion (when the QP does not signal all). */
  signaled?: boolean;
  /** Set the solicited event bit (SendFlags.SOLICITED). */
  solicited?: boolean;
  /** Copy the payload into the request (SendFlags.INLINE): up to the QP's `maxInlineData` bytes. */
  inline?: boolean;
  /** Start after earlier RDMA READs and atomics have completed (SendFlags.FENCE). */
  fence?: boolean;
  /** Immediate data (host order) for SEND_WITH_IMM and RDMA_WRITE_WITH_IMM. */
  imm?: number;
  /** RDMA and atomics: the remote address and key. */
  remoteAddress?: number | bigint;
  /** The rkey of the remote region. */
  rkey?: number;
  /** Fetch-add: the addend. Compare-swap: the expected value. */
  compareAdd?: number | bigint;
  /** Compare-swap: the new value. */
  swap?: number | bigint;
  /** UD: the destination. */
  ah?: AddressHandle;
  /** UD: the destination queue pair number (required). */
  remoteQpn?: number;
  /** UD: the destination's qkey. Default DEFAULT_QKEY. */
  remoteQkey?: number;
}

const VALID_OPCODES = new Set<number>(Object.values(WrOpcode));

/**
 * Encodes the send requests of one queue pair, and remembers the handles the last encoding used
 * (its regions, registrations and address handle), so that posting checks them again after the
 * request's last getter ran and `prepareSend` keeps them. Its scatter/gather writer is the queue
 * pair's one, which receives use too: a getter that posts on the same queue pair while a request
 * is encoded is EBUSY, whichever of the two it posts.
 */
export class SendEncoder {
  readonly #sges: SgeWriter;
  readonly #pd: ProtectionDomain;
  readonly #type: number;
  readonly #maxSge: number;
  readonly #maxInlineData: number;
  /** The address handle the last encoding used (prepareSend keeps it open). */
  #ah: AddressHandle | null = null;

  /**
   * For a queue pair of QpType `type` whose lists `sges` writes (for its protection domain) and
   * whose sends take `maxSge` elements and `maxInlineData` bytes inline.
   */
  constructor(sges: SgeWriter, type: number, maxSge: number, maxInlineData: number) {
    this.#sges = sges;
    this.#pd = sges.pd;
    this.#type = type;
    this.#maxSge = maxSge;
    this.#maxInlineData = maxInlineData;
  }

  /**
   * Validates `wr` and encodes it into a send descriptor (`SEND` layout); throws TypeError or
   * RangeError, leaving `v` partly written, when the request is invalid.
   */
  encode(wr: SendRequest, v: DataView): void {
    this.#sges.begin("ibv_post_send");
    try {
      this.#encodeFields(wr, v);
    } finally {
      this.#sges.end();
    }
  }

  /** The regions, registrations and address handle the last encoding used are still usable. */
  recheck(verb: string): void {
    this.#sges.recheck(verb);
    this.#ah?.pointerFor(verb);
  }

  /** Drops the last encoding's regions and registrations (see `SgeWriter.forget`). */
  forget(): void {
    this.#sges.forget();
  }

  /** A copy of the regions the last encoding used. */
  regions(): MemoryRegion[] {
    return this.#sges.regions();
  }

  /** A copy of the self-checking elements the last encoding used. */
  postables(): Postable[] {
    return this.#sges.postables();
  }

  /** The address handle the last encoding used, or null. */
  get addressHandle(): AddressHandle | null {
    return this.#ah;
  }

  #encodeFields(wr: SendRequest, v: DataView): void {
    if (wr === null || typeof wr !== "object") throw new TypeError("wr must be an object");
    const opcode = wr.opcode ?? WrOpcode.SEND;
    if (typeof opcode !== "number") throw new TypeError("opcode must be a WrOpcode value");
    if (!VALID_OPCODES.has(opcode)) throw new RangeError(`unknown opcode ${opcode}`);
    const sges = this.#sges;
    const count = sges.write(v, SEND.sg_list, wr.sge, this.#maxSge, "ibv_post_send");
    writeU64(v, SEND.wr_id, "wrId", wr.wrId ?? 0);
    v.setUint32(SEND.opcode, opcode, true);
    let flags = 0;
    if (wr.signaled) flags |= SendFlags.SIGNALED;
    if (wr.solicited) flags |= SendFlags.SOLICITED;
    if (wr.inline) {
      // The provider would only say EINVAL.
      if (sges.bytes > this.#maxInlineData) {
        throw new RangeError(
          `${sges.bytes} bytes inline; this queue pair takes ${this.#maxInlineData}`,
        );
      }
      flags |= SendFlags.INLINE;
    }
    if (wr.fence) flags |= SendFlags.FENCE;
    v.setUint32(SEND.send_flags, flags, true);
    const withImm = opcode === WrOpcode.SEND_WITH_IMM || opcode === WrOpcode.RDMA_WRITE_WITH_IMM;
    if (withImm && wr.imm === undefined) throw new TypeError("this opcode needs imm");
    v.setUint32(SEND.imm_data, withImm ? integerIn("imm", wr.imm, 0, 0xffffffff) : 0, true);
    v.setUint32(SEND.num_sge, count, true);
    const remote = opcode === WrOpcode.RDMA_WRITE || opcode === WrOpcode.RDMA_WRITE_WITH_IMM ||
      opcode === WrOpcode.RDMA_READ || opcode === WrOpcode.ATOMIC_CMP_AND_SWP ||
      opcode === WrOpcode.ATOMIC_FETCH_AND_ADD;
    const atomic = opcode === WrOpcode.ATOMIC_CMP_AND_SWP ||
      opcode === WrOpcode.ATOMIC_FETCH_AND_ADD;
    const ud = this.#type === QpType.UD;
    if (remote) {
      if (ud) throw new RangeError("UD queue pairs only send");
      if (wr.remoteAddress === undefined || wr.rkey === undefined) {
        throw new TypeError("RDMA and atomic operations need remoteAddress and rkey");
      }
      writeU64(v, SEND.remote_addr, "remoteAddress", wr.remoteAddress);
      v.setUint32(SEND.rkey, integerIn("rkey", wr.rkey, 0, 0xffffffff), true);
    } else {
      v.setUint32(SEND.remote_addr, 0, true);
      v.setUint32(SEND.remote_addr + 4, 0, true);
      v.setUint32(SEND.rkey, 0, true);
    }
    if (atomic) {
      if (count !== 1 || sges.bytes !== 8) {
        throw new RangeError("atomic operations take exactly one 8-byte sge");
      }
      if (v.getUint32(SEND.remote_addr, true) % 8 !== 0) {
        throw new RangeError("atomic remoteAddress must be 8-byte aligned");
      }
      if (wr.compareAdd === undefined) throw new TypeError("atomic operations need compareAdd");
      writeU64(v, SEND.compare_add, "compareAdd", wr.compareAdd);
      if (opcode === WrOpcode.ATOMIC_CMP_AND_SWP && wr.swap === undefined) {
        throw new TypeError("compare-and-swap needs swap");
      }
      writeU64(v, SEND.swap, "swap", wr.swap ?? 0);
    }
    this.#ah = null;
    if (ud) {
      const ah = wr.ah;
      // Its address goes to the provider as a struct ibv_ah *: only a real handle will do.
      if (!(ah instanceof AddressHandle)) {
        throw new TypeError("UD sends need ah: an AddressHandle (pd.createAddressHandle)");
      }
      if (ah.pd !== this.#pd) throw foreignPdError("ibv_post_send", "the address handle");
      v.setUint32(SEND.remote_qpn, integerIn("remoteQpn", wr.remoteQpn, 0, 0xffffff), true);
      v.setUint32(
        SEND.remote_qkey,
        optionalInteger("remoteQkey", wr.remoteQkey, DEFAULT_QKEY, 0, 0xffffffff),
        true,
      );
      // Last, after every getter of `wr` ran: one of them may have closed the handle.
      writeU64(v, SEND.ah, "ah", ah.address);
      this.#ah = ah;
    }
  }
}
