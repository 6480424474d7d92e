/**
 * Queue pairs (RC, UC and UD): creation, queries, and posting work requests. Connecting them is
 * connection.ts's job, encoding sends send_encoding.ts's and receives recv_encoding.ts's.
 *
 * Posting reuses one send and one receive descriptor per queue pair, so `postSend`/`postRecv`
 * allocate nothing beyond the request object the caller passes. Memory regions named in a request
 * must stay registered until its completion is polled (the verbs contract; not checked here).
 *
 * @module
 */
import { MAX_SGE, QP_ATTR, RECV, SEND } from "../ffi/records/verbs.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import type { AsyncEvent } from "./async_events.ts";
import { CompletionQueue } from "./completion_queue.ts";
import {
  Connection,
  type ConnectionInfo,
  type ConnectOptions,
  type LocalInfo,
} from "./connection.ts";
import { QpType } from "./constants.ts";
import type { Context } from "./context.ts";
import { Errno, errorFromResult, lastError, RdmaError } from "./errors.ts";
import { NativeHandle } from "./handle.ts";
import { PREPARED_BY_QUEUE_PAIR, PreparedSend } from "./prepared_send.ts";
import type { ProtectionDomain } from "./protection_domain.ts";
import { encodeRecv, type RecvRequest } from "./recv_encoding.ts";
import { SgeWriter } from "./scatter_gather.ts";
import { SendEncoder, type SendRequest } from "./send_encoding.ts";
import { SharedReceiveQueue } from "./shared_receive_queue.ts";
import { optionalInteger, optionsObject } from "./validate.ts";

/** Options of `ProtectionDomain.createQueuePair`. */
export interface QueuePairOptions {
  /** "RC", "UC" or "UD" (or a QpType value). */
  type: "RC" | "UC" | "UD" | number;
  /** Where send completions go (send_cq); from the protection domain's device context. */
  sendCq: CompletionQueue;
  /** Default: `sendCq`. */
  recvCq?: CompletionQueue;
  /**
   * A shared receive queue of the same protection domain: receives come from it (post them
   * there; `postRecv` on the queue pair is refused) and `maxRecvWr`/`maxRecvSge` do not apply.
   */
  srq?: SharedReceiveQueue;
  /** Default 128. */
  maxSendWr?: number;
  /** Default 128. */
  maxRecvWr?: number;
  /** Default 1. */
  maxSendSge?: number;
  /** Default 1. */
  maxRecvSge?: number;
  /** Default 0. */
  maxInlineData?: number;
  /** Every send produces a completion (sq_sig_all). Default true. */
  signalAll?: boolean;
}

const TYPE_NAMES: Record<string, number> = { RC: QpType.RC, UC: QpType.UC, UD: QpType.UD };

/** From `QueuePair.queryAttributes()`: its capacities (struct ibv_qp_cap) and read depths. */
export interface QueuePairAttributes {
  /** Work requests the send queue holds (cap.max_send_wr). */
  maxSendWr: number;
  /** Work requests the receive queue holds (cap.max_recv_wr). */
  maxRecvWr: number;
  /** Scatter/gather elements per send (cap.max_send_sge). */
  maxSendSge: number;
  /** Scatter/gather elements per receive (cap.max_recv_sge). */
  maxRecvSge: number;
  /** Bytes a send may carry inline (cap.max_inline_data). */
  maxInlineData: number;
  /** RDMA READs/atomics this end may have outstanding as initiator (0 before RTS). */
  maxRdAtomic: number;
  /** RDMA READs/atomics this end accepts as responder (0 before RTR). */
  maxDestRdAtomic: number;
  /** The local port (0 before INIT). */
  port: number;
  /** The source GID index of the path (RC/UC, from RTR on; meaningful when a GRH is used). */
  gidIndex: number;
}

/** A queue pair (struct ibv_qp). */
export class QueuePair extends NativeHandle {
  /** QpType value. */
  readonly type: number;
  /** The queue pair number. */
  readonly qpn: number;
  /** This end's initial packet sequence number (random, 24 bits). */
  readonly psn: number;
  /** Where send completions go. */
  readonly sendCq: CompletionQueue;
  /** Where receive completions go (`sendCq` unless another was given). */
  readonly recvCq: CompletionQueue;
  /** Scatter/gather elements a send may have: as asked at creation (default 1). */
  readonly maxSendSge: number;
  /** Scatter/gather elements a receive may have: as asked at creation (default 1). */
  readonly maxRecvSge: number;
  /** The shared receive queue its receives come from, or null. */
  readonly srq: SharedReceiveQueue | null;
  /** Bytes a send may carry inline: what the provider gave, which may exceed what was asked. */
  readonly maxInlineData: number;
  readonly #context: Context;
  readonly #send = new Uint8Array(SEND.size);
  readonly #sendView = new DataView(this.#send.buffer);
  readonly #recv = new Uint8Array(RECV.size);
  readonly #recvView = new DataView(this.#recv.buffer);
  /** Writes the scatter/gather lists of both sends and receives (one guard against re-entry). */
  readonly #sges: SgeWriter;
  /** Encodes sends with `#sges`; remembers what the last used (prepareSend keeps it). */
  readonly #sender: SendEncoder;
  /** What localInfo() announced and the peer said, and the transitions. */
  readonly #connection: Connection;

  private constructor(
    pointer: Deno.PointerObject,
    pd: ProtectionDomain,
    context: Context,
    type: number,
    sendCq: CompletionQueue,
    recvCq: CompletionQueue,
    maxSendSge: number,
    maxRecvSge: number,
    maxInlineData: number,
    srq: SharedReceiveQueue | null,
  ) {
    super(
      pointer,
      "QueuePair",
      "ibv_destroy_qp",
      (p) => verbsNative().drv_destroy_qp(p),
      srq === null ? [pd, sendCq, recvCq] : [pd, sendCq, recvCq, srq],
    );
    this.srq = srq;
    this.type = type;
    this.qpn = verbsNative().drv_qp_num(pointer);
    this.psn = crypto.getRandomValues(new Uint32Array(1))[0] & 0xffffff;
    this.sendCq = sendCq;
    this.recvCq = recvCq;
    this.maxSendSge = maxSendSge;
    this.maxRecvSge = maxRecvSge;
    this.maxInlineData = maxInlineData;
    this.#context = context;
    this.#sges = new SgeWriter(pd);
    this.#sender = new SendEncoder(this.#sges, type, maxSendSge, maxInlineData);
    this.#connection = new Connection(this, context);
  }

  /** ibv_create_qp. Prefer `ProtectionDomain.createQueuePair`. */
  static create(pd: ProtectionDomain, context: Context, options: QueuePairOptions): QueuePair {
    NativeHandle.expect(pd, "ProtectionDomain", "pd");
    NativeHandle.expect(context, "Context", "context");
    const opts = optionsObject("options", options);
    const type = typeof opts.type === "string" ? TYPE_NAMES[opts.type] : opts.type;
    if (typeof type !== "number") throw new TypeError(`type must be "RC", "UC" or "UD"`);
    if (!Object.values(QpType).includes(type as 2 | 3 | 4)) {
      throw new RangeError(`unsupported queue pair type ${type}`);
    }
    const sendCq = opts.sendCq;
    const recvCq = opts.recvCq ?? sendCq;
    if (!(sendCq instanceof CompletionQueue) || !(recvCq instanceof CompletionQueue)) {
      throw new TypeError("sendCq (and recvCq if given) must be CompletionQueues");
    }
    // The kernel looks handles up per opened device: another context's queue is not this one.
    if (pd.context !== context) {
      throw new TypeError("pd must belong to context");
    }
    if (sendCq.context !== context || recvCq.context !== context) {
      throw new TypeError(
        "sendCq and recvCq must come from the protection domain's context (the same openDevice)",
      );
    }
    const maxSendWr = optionalInteger("maxSendWr", opts.maxSendWr, 128, 1, 1 << 20);
    const maxRecvWr = optionalInteger("maxRecvWr", opts.maxRecvWr, 128, 1, 1 << 20);
    const maxSendSge = optionalInteger("maxSendSge", opts.maxSendSge, 1, 1, MAX_SGE);
    const maxRecvSge = optionalInteger("maxRecvSge", opts.maxRecvSge, 1, 1, MAX_SGE);
    const maxInline = optionalInteger("maxInlineData", opts.maxInlineData, 0, 0, 1 << 16);
    if (opts.signalAll !== undefined && typeof opts.signalAll !== "boolean") {
      throw new TypeError("signalAll must be a boolean");
    }
    const srq = opts.srq ?? null;
    if (srq !== null && !(srq instanceof SharedReceiveQueue)) {
      throw new TypeError("srq must be a SharedReceiveQueue");
    }
    if (srq !== null && srq.pd !== pd) {
      throw new TypeError("srq must belong to the queue pair's protection domain");
    }
    if (srq !== null && type === QpType.UC) {
      throw new TypeError("a shared receive queue serves RC and UD queue pairs, not UC");
    }
    const pointer = verbsNative().drv_create_qp(
      pd.pointerFor("ibv_create_qp"),
      sendCq.pointerFor("ibv_create_qp"),
      recvCq.pointerFor("ibv_create_qp"),
      srq === null ? null : srq.pointerFor("ibv_create_qp"),
      type,
      maxSendWr,
      srq === null ? maxRecvWr : 0, // a receive queue of its own: some providers refuse sizes
      maxSendSge,
      srq === null ? maxRecvSge : 0,
      maxInline,
      opts.signalAll === false ? 0 : 1,
    );
    if (pointer === null) {
      const asked = `${maxSendWr}/${maxRecvWr} work requests, ${maxSendSge}/${maxRecvSge} sges, ` +
        `${maxInline} bytes inline`;
      throw lastError(
        "ibv_create_qp",
        `${asked} (queryDevice() has the device's limits; ` +
          `inline data also has to fit a send queue entry)`,
      );
    }
    // The provider may round the inline size up: sends are checked against what it gave.
    const caps = new Uint8Array(QP_ATTR.size);
    const given = verbsNative().drv_query_qp_attributes(pointer, caps) === 0
      ? new DataView(caps.buffer).getUint32(QP_ATTR.max_inline_data, true)
      : maxInline;
    return new QueuePair(
      pointer,
      pd,
      context,
      type,
      sendCq,
      recvCq,
      maxSendSge,
      maxRecvSge,
      Math.max(given, maxInline),
      srq,
    );
  }

  /**
   * ibv_query_qp: the capacities the provider gave (which may be more than was asked) and the
   * read/atomic depths in force.
   */
  queryAttributes(): QueuePairAttributes {
    const desc = new Uint8Array(QP_ATTR.size);
    const result = verbsNative().drv_query_qp_attributes(this.pointerFor("ibv_query_qp"), desc);
    if (result !== 0) throw errorFromResult("ibv_query_qp", result, "attributes");
    const v = new DataView(desc.buffer);
    const u32 = (offset: number) => v.getUint32(offset, true);
    return {
      maxSendWr: u32(QP_ATTR.max_send_wr),
      maxRecvWr: u32(QP_ATTR.max_recv_wr),
      maxSendSge: u32(QP_ATTR.max_send_sge),
      maxRecvSge: u32(QP_ATTR.max_recv_sge),
      maxInlineData: u32(QP_ATTR.max_inline_data),
      maxRdAtomic: u32(QP_ATTR.max_rd_atomic),
      maxDestRdAtomic: u32(QP_ATTR.max_dest_rd_atomic),
      port: u32(QP_ATTR.port_num),
      gidIndex: u32(QP_ATTR.sgid_index),
    };
  }

  /** Whether `event` (from `Context.waitAsyncEvent`) is about this queue pair (QP_FATAL, ...). */
  concerns(event: AsyncEvent): boolean {
    return event.element === "qp" && event.qpn === this.qpn;
  }

  /** The current state (QpState), as the device reports it (ibv_query_qp). */
  get state(): number {
    const state = verbsNative().drv_qp_state(this.pointerFor("ibv_query_qp"));
    if (state < 0) throw errorFromResult("ibv_query_qp", state, "state");
    return state;
  }

  /** `Context.defaultGidIndex` of this queue pair's device. */
  defaultGidIndex(port = 1): number {
    return this.#context.defaultGidIndex(port);
  }

  /**
   * What the peer needs to connect to this queue pair (send it over any channel). Throws
   * RdmaError ENETDOWN when the port cannot carry traffic (`Context.queryActivePort`). On
   * InfiniBand without `gidIndex` the GID is all zero: the peer addresses this end by LID, with
   * no GRH, as perftest does without `-x`.
   */
  localInfo(
    options?: { port?: number; gidIndex?: number; maxDestRdAtomic?: number },
  ): LocalInfo {
    return this.#connection.localInfo(options);
  }

  /** RESET -> INIT. */
  toInit(options?: ConnectOptions): void {
    this.#connection.toInit(options);
  }

  /** INIT -> RTR. RC/UC need `remote`; UD ignores it. */
  toRtr(remote?: ConnectionInfo, options?: ConnectOptions): void {
    this.#connection.toRtr(remote, options);
  }

  /** RTR -> RTS, sending from this end's `psn`. */
  toRts(options?: ConnectOptions): void {
    this.#connection.toRts(options);
  }

  /**
   * RESET -> INIT -> RTR -> RTS in one call. RC/UC: `remote` is the peer's `localInfo()`.
   * UD: `remote` is not needed (pass undefined); destinations go in each send.
   */
  connect(remote?: ConnectionInfo, options?: ConnectOptions): void {
    this.#connection.connect(remote, options);
  }

  /** Moves to ERR: outstanding requests complete with WR_FLUSH_ERR. */
  toError(): void {
    const result = verbsNative().drv_modify_qp_error(this.pointerFor("ibv_modify_qp"));
    if (result !== 0) throw errorFromResult("ibv_modify_qp", result, "to ERR");
  }

  /**
   * ibv_post_send of one work request. Throws RdmaError when the queue refuses it (ENOMEM when
   * full).
   */
  postSend(wr: SendRequest): void {
    const sender = this.#sender;
    sender.encode(wr, this.#sendView);
    // After encoding, when no more user code runs: a getter in `wr` may have closed this queue
    // pair or anything the request names, or detached a region's buffer.
    try {
      sender.recheck("ibv_post_send");
    } finally {
      sender.forget();
    }
    const qp = this.pointerFor("ibv_post_send");
    const result = verbsNative().drv_post_send(qp, this.#send);
    if (result !== 0) throw errorFromResult("ibv_post_send", result);
  }

  /**
   * Validates and encodes `wr` once, for posting many times with `PreparedSend.post()` (one FFI
   * call, no allocation, no re-validation). Regions named in `wr` must stay registered while the
   * prepared request is in use (posting checks that they are not closed).
   */
  prepareSend(wr: SendRequest): PreparedSend {
    this.pointerFor("ibv_post_send");
    const sender = this.#sender;
    const bytes = new Uint8Array(SEND.size);
    sender.encode(wr, new DataView(bytes.buffer));
    // The handles the encoding used (reading `wr` again could give others).
    const keepOpen: NativeHandle[] = [this, ...sender.regions()];
    const postables = sender.postables();
    try {
      sender.recheck("ibv_post_send"); // none closed meanwhile
    } finally {
      sender.forget();
    }
    const ah = sender.addressHandle;
    if (ah !== null) keepOpen.push(ah);
    this.pointerFor("ibv_post_send");
    return new PreparedSend(PREPARED_BY_QUEUE_PAIR, bytes, keepOpen, postables);
  }

  /** ibv_post_recv of one work request. */
  postRecv(wr: RecvRequest): void {
    if (this.srq !== null) {
      throw new RdmaError(
        "ibv_post_recv",
        Errno.EINVAL,
        "this queue pair receives through its shared receive queue: post there",
      );
    }
    encodeRecv(this.#sges, this.#recvView, wr, this.maxRecvSge, "ibv_post_recv");
    // After encoding: a getter in `wr` may have closed this queue pair.
    const qp = this.pointerFor("ibv_post_recv");
    const result = verbsNative().drv_post_recv(qp, this.#recv);
    if (result !== 0) throw errorFromResult("ibv_post_recv", result);
  }
}
