/**
 * Prepared send work requests: validated and encoded once by `QueuePair.prepareSend`, then posted
 * many times, the way C programs reuse one `struct ibv_send_wr` (perftest) or build requests with
 * `ibv_wr_*`. What usually changes between posts (work request id, remote offset, length,
 * signaling) has a setter that writes straight into the descriptor; `post()` is one FFI call and
 * allocates nothing.
 *
 * @module
 */
import { MAX_CHAIN, SEND, SGE } from "../ffi/records/verbs.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { SendFlags, WrOpcode } from "./constants.ts";
import { errorFromResult } from "./errors.ts";
import { closeEpoch, type NativeHandle } from "./handle.ts";
import { MemoryRegion } from "./memory_region.ts";
import { CHECK_POSTABLE, type Postable } from "./scatter_gather.ts";

const TWO_32 = 2 ** 32;
const VERB = "ibv_post_send";

/**
 * What `QueuePair.prepareSend` passes to the constructor: the descriptor goes to the provider
 * unchecked (its `ah` field as a pointer), so nothing else may make one. Internal: not exported by
 * mod.ts (tests use it to drive the class without a device).
 */
export const PREPARED_BY_QUEUE_PAIR: unique symbol = Symbol("QueuePair.prepareSend");

/** A send work request encoded once; see `QueuePair.prepareSend`. */
export class PreparedSend {
  /** The request's WrOpcode (fixed at preparation). */
  readonly opcode: number;
  /**
   * Bytes of the first scatter/gather element as prepared: the most `length` may be set to (so a
   * request never reaches past what was validated). 0 when the request has no local buffer.
   */
  readonly maxLength: number;
  /** The queue pair first, then the regions and address handle the request names. */
  readonly #handles: readonly NativeHandle[];
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  /** Accepted copies of the last post (filled by the shim; read only when it fails). */
  readonly #posted = new Uint32Array(1);
  readonly #remoteBase: bigint;
  /** The same as a number when it is below 2^53 (the usual case: no bigint work per set). */
  readonly #remoteBaseNumber: number;
  readonly #remote: boolean;
  readonly #atomic: boolean;
  #remoteOffset = 0;
  readonly #postChain = verbsNative().drv_post_send_chain;
  /** The JavaScript memory its regions registered: a detached one fails the next post. */
  readonly #buffers: readonly ArrayBuffer[];
  /** The queue pair's pointer, checked (with every other handle's) at closeEpoch #checkedAt. */
  #qp: Deno.PointerObject | null = null;
  #checkedAt = -1;

  /** Elements that check themselves at every post (a cache's Registration: not released). */
  readonly #postables: readonly Postable[];

  /**
   * Use `QueuePair.prepareSend`. `descriptor` is a valid send descriptor (`SEND` layout);
   * `handles` starts with the queue pair and lists every handle the descriptor refers to;
   * `postables` are the elements that say themselves whether they may still be posted.
   */
  constructor(
    token: typeof PREPARED_BY_QUEUE_PAIR,
    descriptor: Uint8Array,
    handles: readonly NativeHandle[],
    postables: readonly Postable[] = [],
  ) {
    if (token !== PREPARED_BY_QUEUE_PAIR) {
      throw new TypeError("a PreparedSend comes from QueuePair.prepareSend");
    }
    if (!(descriptor instanceof Uint8Array) || descriptor.length !== SEND.size) {
      throw new TypeError(`descriptor must be a ${SEND.size}-byte Uint8Array`);
    }
    if (!Array.isArray(handles) || handles.length === 0) {
      throw new TypeError("handles must start with the queue pair");
    }
    this.#bytes = descriptor;
    this.#view = new DataView(descriptor.buffer, descriptor.byteOffset, descriptor.byteLength);
    this.#handles = handles;
    this.#postables = postables;
    this.#buffers = handles.flatMap((h) =>
      h instanceof MemoryRegion && h.bytes !== null ? [h.bytes.buffer as ArrayBuffer] : []
    );
    const v = this.#view;
    this.opcode = v.getUint32(SEND.opcode, true);
    this.maxLength = v.getUint32(SEND.num_sge, true) > 0
      ? v.getUint32(SEND.sg_list + SGE.length, true)
      : 0;
    this.#atomic = this.opcode === WrOpcode.ATOMIC_CMP_AND_SWP ||
      this.opcode === WrOpcode.ATOMIC_FETCH_AND_ADD;
    this.#remote = this.#atomic || this.opcode === WrOpcode.RDMA_WRITE ||
      this.opcode === WrOpcode.RDMA_WRITE_WITH_IMM || this.opcode === WrOpcode.RDMA_READ;
    this.#remoteBase = v.getBigUint64(SEND.remote_addr, true);
    this.#remoteBaseNumber = this.#remoteBase <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(this.#remoteBase)
      : -1;
  }

  /** The work request id of the next post (a chain of n uses wrId .. wrId + n - 1). */
  get wrId(): bigint {
    return this.#view.getBigUint64(SEND.wr_id, true);
  }

  /** Numbers must be non-negative safe integers; bigints must fit in 64 bits. */
  set wrId(value: number | bigint) {
    const v = this.#view;
    if (typeof value === "number") {
      if (!(value >= 0 && value <= Number.MAX_SAFE_INTEGER && Number.isInteger(value))) {
        throw new RangeError(`wrId must be a non-negative safe integer, got ${value}`);
      }
      // Below 2^32 (the usual id) the split needs no floating-point division, which costs
      // hundreds of nanoseconds per post under emulation.
      const high = value < TWO_32 ? 0 : Math.floor(value / TWO_32);
      v.setUint32(SEND.wr_id, high === 0 ? value : value % TWO_32, true);
      v.setUint32(SEND.wr_id + 4, high, true);
    } else if (typeof value === "bigint") {
      if (value < 0n || value >= 1n << 64n) throw new RangeError("wrId must fit in 64 bits");
      v.setBigUint64(SEND.wr_id, value, true);
    } else {
      throw new TypeError(`wrId must be a number or a bigint, got ${typeof value}`);
    }
  }

  /** Bytes added to the prepared `remoteAddress` (RDMA and atomic requests only). Default 0. */
  get remoteOffset(): number {
    return this.#remoteOffset;
  }

  set remoteOffset(offset: number) {
    if (!this.#remote) throw new TypeError("remoteOffset applies to RDMA and atomic requests");
    if (!(typeof offset === "number" && offset >= 0 && Number.isSafeInteger(offset))) {
      throw new RangeError(`remoteOffset must be a non-negative safe integer, got ${offset}`);
    }
    if (this.#atomic && offset % 8 !== 0) {
      throw new RangeError("an atomic request's remoteOffset must be a multiple of 8");
    }
    const base = this.#remoteBaseNumber;
    if (base >= 0 && base + offset <= Number.MAX_SAFE_INTEGER) {
      const address = base + offset;
      this.#view.setUint32(SEND.remote_addr, address % TWO_32, true);
      this.#view.setUint32(SEND.remote_addr + 4, Math.floor(address / TWO_32), true);
    } else {
      const address = this.#remoteBase + BigInt(offset);
      if (address >= 1n << 64n) {
        throw new RangeError("remoteAddress + remoteOffset exceeds 64 bits");
      }
      this.#view.setBigUint64(SEND.remote_addr, address, true);
    }
    this.#remoteOffset = offset;
  }

  /** Bytes of the first scatter/gather element: 1 .. maxLength (single-element requests only). */
  get length(): number {
    return this.maxLength === 0 ? 0 : this.#view.getUint32(SEND.sg_list + SGE.length, true);
  }

  set length(bytes: number) {
    if (this.maxLength === 0 || this.#view.getUint32(SEND.num_sge, true) !== 1) {
      throw new TypeError("length applies to requests with exactly one scatter/gather element");
    }
    if (this.#atomic) throw new TypeError("an atomic request's length is fixed at 8");
    if (!(typeof bytes === "number" && Number.isInteger(bytes))) {
      throw new RangeError(`length must be an integer, got ${bytes}`);
    }
    if (bytes < 1 || bytes > this.maxLength) {
      throw new RangeError(`length must be in [1, ${this.maxLength}], got ${bytes}`);
    }
    this.#view.setUint32(SEND.sg_list + SGE.length, bytes, true);
  }

  /** Whether the request asks for a completion (in a chain: the last copy only). */
  get signaled(): boolean {
    return (this.#view.getUint32(SEND.send_flags, true) & SendFlags.SIGNALED) !== 0;
  }

  set signaled(value: boolean) {
    if (typeof value !== "boolean") throw new TypeError("signaled must be a boolean");
    const flags = this.#view.getUint32(SEND.send_flags, true);
    this.#view.setUint32(
      SEND.send_flags,
      value ? flags | SendFlags.SIGNALED : flags & ~SendFlags.SIGNALED,
      true,
    );
  }

  /**
   * Posts the request, or a chain of `count` copies (at most 64) in one ibv_post_send, with work
   * request ids wrId, wrId + 1, ... . In a chain only the last copy is signaled (when `signaled`),
   * as perftest's --post_list with matching CQ moderation; a queue pair created with signalAll
   * signals every copy regardless. Throws RdmaError EBADF when the queue pair or a region the
   * request names is closed, and RdmaError (ENOMEM when the send queue is full) when the provider
   * refuses a copy: the copies before it were posted, and the error's message says how many.
   */
  post(count = 1): void {
    if (count !== 1 && !(count >= 1 && count <= MAX_CHAIN && Number.isInteger(count))) {
      throw new RangeError(`count must be an integer in [1, ${MAX_CHAIN}], got ${count}`);
    }
    // The handles are checked again only after some handle closed (closeEpoch moved).
    let qp = this.#qp;
    if (qp === null || this.#checkedAt !== closeEpoch || this.#anyDetached()) {
      qp = this.#checkHandles();
    }
    const postables = this.#postables;
    for (let i = 0; i < postables.length; i++) postables[i][CHECK_POSTABLE](VERB);
    const result = this.#postChain(qp, this.#bytes, count, 1, this.#posted);
    if (result !== 0) {
      throw errorFromResult(VERB, result, `${this.#posted[0]} of ${count} posted`);
    }
  }

  #anyDetached(): boolean {
    const buffers = this.#buffers;
    for (let i = 0; i < buffers.length; i++) if (buffers[i].detached) return true;
    return false;
  }

  /** The queue pair's pointer; throws RdmaError EBADF if any handle the request names closed. */
  #checkHandles(): Deno.PointerObject {
    const handles = this.#handles;
    this.#qp = null;
    const qp = handles[0].pointerFor(VERB);
    for (let i = 1; i < handles.length; i++) handles[i].pointerFor(VERB);
    this.#qp = qp;
    this.#checkedAt = closeEpoch;
    return qp;
  }
}
