/**
 * Queue pairs (RC, UC and UD): creation, the INIT/RTR/RTS transitions from a plain object of
 * connection parameters, and posting work requests.
 *
 * Posting reuses one send and one receive descriptor per queue pair, so `postSend`/`postRecv`
 * allocate nothing beyond the request object the caller passes. Memory regions named in a request
 * must stay registered until its completion is polled (the verbs contract; not checked here).
 *
 * @module
 */
import { MAX_SGE, PATH, QP_ATTR, RECV, SEND } from "../ffi/records/verbs.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { AddressHandle, type PathOptions, writePath } from "./address_handle.ts";
import { CompletionQueue } from "./completion_queue.ts";
import {
  Access,
  ACCESS_MASK,
  DEFAULT_QKEY,
  LinkLayer,
  QpType,
  SendFlags,
  WrOpcode,
} from "./constants.ts";
import type { AsyncEvent } from "./async_events.ts";
import type { Context } from "./context.ts";
import type { ProtectionDomain } from "./protection_domain.ts";
import { Errno, errorFromResult, lastError, RdmaError } from "./errors.ts";
import { NativeHandle } from "./handle.ts";
import { PREPARED_BY_QUEUE_PAIR, PreparedSend } from "./prepared_send.ts";
import { foreignPdError, type ScatterGather, SgeWriter } from "./scatter_gather.ts";
import { SharedReceiveQueue } from "./shared_receive_queue.ts";

export type { ScatterGather } from "./scatter_gather.ts";
import { gidBytes, gidText, isIpv4MappedGid } from "./gid.ts";
import { integerIn, optionalInteger, optionsObject, writeU64 } from "./validate.ts";

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

/** What one end tells the other to connect (what `localInfo()` returns may be JSON'd). */
export interface ConnectionInfo {
  /** The sender's queue pair number (the peer's dest_qp_num). */
  qpn: number;
  /** The sender's initial packet sequence number, 24 bits (the peer's rq_psn). */
  psn: number;
  /** 0 on RoCE. */
  lid: number;
  /** 16 bytes or IPv6 text. */
  gid: Uint8Array | string;
  /** The sender's own GID index (informational for the peer). */
  gidIndex?: number;
  /** enum ibv_mtu (Mtu). The path MTU is the smaller of both ends'. */
  mtu?: number;
  /** The sender's port (informational for the peer). */
  port?: number;
  /**
   * RC: RDMA READs/atomics the sender accepts as responder; the other end issues at most this
   * many at once. Absent (a peer that does not say): 1.
   */
  maxDestRdAtomic?: number;
}

/** `QueuePair.localInfo()`: every field set, the GID as IPv6 text; JSON keeps it whole. */
export interface LocalInfo extends Required<ConnectionInfo> {
  /** The GID as IPv6 text (all zero on InfiniBand when no `gidIndex` was asked for). */
  gid: string;
}

/** Local choices for `connect()`; all optional. */
export interface ConnectOptions {
  /** Local port. Default: the one `localInfo()` announced (if it announced one port), else 1. */
  port?: number;
  /**
   * Local GID index. Default: the one `localInfo()` announced for the port, else on RoCE an entry
   * with the same kind of address as the remote GID (`Context.sourceGidIndex`).
   */
  gidIndex?: number;
  /** What remote peers may do through this QP (RC/UC). Default: local write only. */
  access?: number;
  /** P_Key table index (pkey_index). Default 0. */
  pkeyIndex?: number;
  /** UD qkey. Default DEFAULT_QKEY. */
  qkey?: number;
  /** enum ibv_mtu cap. Default: the port's active MTU (and the remote's, if smaller). */
  mtu?: number;
  /** RC local ack timeout exponent (4.096 us * 2^timeout). Default 14. */
  timeout?: number;
  /** Default 7. */
  retryCount?: number;
  /** Default 7 (infinite). */
  rnrRetry?: number;
  /**
   * Outstanding RDMA reads/atomics this end issues. Default: what the peer accepts
   * (`remote.maxDestRdAtomic`, 1 when it does not say), within the device's limit.
   */
  maxRdAtomic?: number;
  /**
   * Outstanding RDMA reads/atomics this end accepts. Default: what `localInfo()` announced, else
   * 16 (or the device's limit if lower). Never less than `localInfo()` announced: the peer may
   * issue that many.
   */
  maxDestRdAtomic?: number;
  /** Default 12 (0.64 ms). */
  minRnrTimer?: number;
  /** RC/UC service level of the path. Default 0. */
  sl?: number;
  /** RC/UC GRH hop limit. Default 64. */
  hopLimit?: number;
  /** RC/UC GRH traffic class. Default 0. */
  trafficClass?: number;
}

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

/** A receive work request. */
export interface RecvRequest {
  /** Comes back in the completion (wr_id). Default 0. */
  wrId?: number | bigint;
  /** Where received bytes go (UD: the first 40 take the GRH); none for a zero-byte receive. */
  sge?: ScatterGather | readonly ScatterGather[];
}

const VALID_OPCODES = new Set<number>(Object.values(WrOpcode));
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

/** RDMA READs/atomics an RC responder accepts unless told otherwise (or the device's limit). */
const DEFAULT_RESPONDER_DEPTH = 16;

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
  /** The GID index `localInfo()` announced for each port: connect() uses it unless told otherwise. */
  readonly #announced = new Map<number, number>(); // port -> GID index
  /** The responder depth `localInfo()` announced, which RTR then uses. */
  #announcedDestRdAtomic: number | undefined;
  /** What the peer said it accepts (`remote.maxDestRdAtomic` at RTR): RTS issues no more. */
  #peerDestRdAtomic: number | undefined;
  /** Encodes scatter/gather lists; remembers the regions of the last (prepareSend keeps them). */
  readonly #sges: SgeWriter;
  /** The address handle the last encoding used (prepareSend keeps it open). */
  #encodedAh: AddressHandle | null = null;
  /** Regions and address handles of another protection domain fail on the device, later. */
  readonly #pd: ProtectionDomain;

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
    this.#pd = pd;
    this.#sges = new SgeWriter(pd);
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
    this.pointerFor("ibv_query_qp");
    const opts = optionsObject("options", options);
    const port = optionalInteger("port", opts.port, 1, 1, 255);
    const attr = this.#context.queryActivePort(port);
    const maxDestRdAtomic = this.type !== QpType.RC
      ? 0
      : opts.maxDestRdAtomic !== undefined
      ? this.#explicitDepth("maxDestRdAtomic", opts.maxDestRdAtomic)
      : this.#defaultResponderDepth();
    const gidIndex = opts.gidIndex === undefined
      ? this.defaultGidIndex(port)
      : integerIn("gidIndex", opts.gidIndex, 0, 255);
    const gid = opts.gidIndex === undefined && attr.linkLayer !== LinkLayer.ETHERNET
      ? new Uint8Array(16)
      : this.#context.queryGid(port, gidIndex).gid;
    // After the options' getters ran: a closed queue pair has nothing to announce.
    this.pointerFor("ibv_query_qp");
    // What the peer is told, this end must do: connect() uses the same, and never accepts fewer
    // reads than any announcement said.
    this.#announced.set(port, gidIndex);
    this.#announcedDestRdAtomic = Math.max(this.#announcedDestRdAtomic ?? 0, maxDestRdAtomic);
    // Text, so the object survives JSON as it is: connect() takes it back.
    return {
      qpn: this.qpn,
      psn: this.psn,
      lid: attr.lid,
      gid: gidText(gid),
      gidIndex,
      mtu: attr.activeMtu,
      port,
      maxDestRdAtomic,
    };
  }

  /** RESET -> INIT. */
  toInit(options?: ConnectOptions): void {
    const opts = optionsObject("options", options);
    const access = optionalInteger("access", opts.access, Access.LOCAL_WRITE, 0, 0x7fffffff);
    if ((access & ~ACCESS_MASK) !== 0) throw new RangeError("access has unknown bits");
    const port = this.#localPort(opts);
    const pkeyIndex = optionalInteger("pkeyIndex", opts.pkeyIndex, 0, 0, 0xffff);
    const qkey = optionalInteger("qkey", opts.qkey, DEFAULT_QKEY, 0, 0xffffffff);
    // The pointer last, after every getter of `options` ran: one may have closed this queue pair.
    const qp = this.pointerFor("ibv_modify_qp");
    const result = verbsNative().drv_modify_qp_init(qp, port, pkeyIndex, access, qkey);
    if (result !== 0) throw errorFromResult("ibv_modify_qp", result, "to INIT");
  }

  /** INIT -> RTR. RC/UC need `remote`; UD ignores it. */
  toRtr(remote?: ConnectionInfo, options?: ConnectOptions): void {
    const opts = optionsObject("options", options);
    const desc = new Uint8Array(PATH.size);
    if (this.type !== QpType.UD) {
      const r = optionsObject("remote", remote) as Partial<ConnectionInfo>;
      const v = new DataView(desc.buffer);
      v.setUint32(PATH.dest_qpn, integerIn("remote.qpn", r.qpn, 0, 0xffffff), true);
      v.setUint32(PATH.rq_psn, integerIn("remote.psn", r.psn, 0, 0xffffff), true);
      const port = this.#localPort(opts);
      const remoteGid = r.gid === undefined ? undefined : gidBytes("remote.gid", r.gid);
      const gidIndex = opts.gidIndex !== undefined
        ? integerIn("gidIndex", opts.gidIndex, 0, 255)
        : this.#announced.get(port) ??
          (remoteGid !== undefined && remoteGid.some((b) => b !== 0)
            ? this.#context.sourceGidIndex(port, remoteGid)
            : this.defaultGidIndex(port));
      if (remoteGid !== undefined) this.#checkSameFamily(port, gidIndex, remoteGid);
      const path: PathOptions = {
        lid: integerIn("remote.lid", r.lid, 0, 0xffff),
        gid: remoteGid,
        gidIndex,
        port,
        sl: opts.sl,
        hopLimit: opts.hopLimit,
        trafficClass: opts.trafficClass,
      };
      writePath(desc, path);
      const active = this.#context.queryActivePort(port).activeMtu;
      const mtu = Math.min(
        active,
        optionalInteger("remote.mtu", r.mtu, active, 1, 5),
        optionalInteger("mtu", opts.mtu, active, 1, 5),
      );
      v.setUint8(PATH.path_mtu, mtu);
      if (this.type === QpType.RC) {
        this.#peerDestRdAtomic = r.maxDestRdAtomic === undefined
          ? undefined
          : integerIn("remote.maxDestRdAtomic", r.maxDestRdAtomic, 0, 255);
        v.setUint8(PATH.max_dest_rd_atomic, this.#responderDepth(opts));
      }
      v.setUint8(PATH.min_rnr_timer, optionalInteger("minRnrTimer", opts.minRnrTimer, 12, 0, 31));
    }
    const result = verbsNative().drv_modify_qp_rtr(this.pointerFor("ibv_modify_qp"), desc);
    if (result !== 0) throw errorFromResult("ibv_modify_qp", result, "to RTR");
  }

  /** RTR -> RTS, sending from this end's `psn`. */
  toRts(options?: ConnectOptions): void {
    const opts = optionsObject("options", options);
    const timeout = optionalInteger("timeout", opts.timeout, 14, 0, 31);
    const retryCount = optionalInteger("retryCount", opts.retryCount, 7, 0, 7);
    const rnrRetry = optionalInteger("rnrRetry", opts.rnrRetry, 7, 0, 7);
    const depth = this.type === QpType.RC ? this.#initiatorDepth(opts) : 0;
    // The pointer last, after every getter of `options` ran: one may have closed this queue pair.
    const qp = this.pointerFor("ibv_modify_qp");
    const result = verbsNative().drv_modify_qp_rts(
      qp,
      this.psn,
      timeout,
      retryCount,
      rnrRetry,
      depth,
    );
    if (result !== 0) throw errorFromResult("ibv_modify_qp", result, "to RTS");
  }

  /**
   * RESET -> INIT -> RTR -> RTS in one call. RC/UC: `remote` is the peer's `localInfo()`.
   * UD: `remote` is not needed (pass undefined); destinations go in each send.
   */
  connect(remote?: ConnectionInfo, options?: ConnectOptions): void {
    if (this.type !== QpType.UD && (remote === undefined || remote === null)) {
      throw new TypeError("connect() needs the remote end's connection info");
    }
    this.toInit(options);
    this.toRtr(remote, options);
    this.toRts(options);
  }

  /** The device's read/atomic limit as responder (maxDestRdAtomic) or initiator (maxRdAtomic). */
  #deviceDepthLimit(name: "maxRdAtomic" | "maxDestRdAtomic"): number {
    const device = this.#context.queryDevice();
    return name === "maxRdAtomic" ? device.maxQpInitRdAtom : device.maxQpRdAtom;
  }

  /** An explicit depth, within what the device takes: ibv_modify_qp would only say EINVAL. */
  #explicitDepth(name: "maxRdAtomic" | "maxDestRdAtomic", value: unknown): number {
    const depth = integerIn(name, value, 0, 255);
    const limit = depth > 1 ? this.#deviceDepthLimit(name) : depth;
    if (depth > limit) {
      throw new RangeError(
        `${name} ${depth} is more than ${this.#context.deviceName} takes (${limit})`,
      );
    }
    return depth;
  }

  /** RC responder depth: asked for but never below what localInfo() announced, else announced,
   * else the default. */
  #responderDepth(opts: { maxDestRdAtomic?: number }): number {
    const announced = this.#announcedDestRdAtomic;
    if (opts.maxDestRdAtomic === undefined) return announced ?? this.#defaultResponderDepth();
    const asked = this.#explicitDepth("maxDestRdAtomic", opts.maxDestRdAtomic);
    return Math.max(asked, announced ?? 0); // the peer may issue what it was told
  }

  #defaultResponderDepth(): number {
    return Math.min(DEFAULT_RESPONDER_DEPTH, this.#deviceDepthLimit("maxDestRdAtomic"));
  }

  /** RC initiator depth: asked for (never above what the peer accepts), else the peer's. */
  #initiatorDepth(opts: ConnectOptions): number {
    const peer = this.#peerDestRdAtomic;
    if (opts.maxRdAtomic !== undefined) {
      const depth = this.#explicitDepth("maxRdAtomic", opts.maxRdAtomic);
      if (peer !== undefined && depth > peer) {
        throw new RangeError(`maxRdAtomic ${depth} is more than the peer accepts (${peer})`);
      }
      return depth;
    }
    return Math.min(peer ?? 1, this.#deviceDepthLimit("maxRdAtomic"));
  }

  /**
   * On RoCE, an IPv4 source GID cannot reach an IPv6 destination or the reverse: the device would
   * only say EINVAL at RTR. (A zero GID means no GRH: nothing to compare.)
   */
  #checkSameFamily(port: number, gidIndex: number, remote: Uint8Array): void {
    if (!remote.some((b) => b !== 0)) return;
    if (this.#context.queryPort(port).linkLayer !== LinkLayer.ETHERNET) return;
    const local = this.#context.queryGid(port, gidIndex).gid;
    if (isIpv4MappedGid(local) !== isIpv4MappedGid(remote)) {
      throw new RangeError(
        `GID index ${gidIndex} (${gidText(local)}) cannot reach the peer's GID ` +
          `${gidText(remote)}: one is IPv4, the other IPv6; use a gidIndex of the peer's kind`,
      );
    }
  }

  /** The local port: asked for, else the one `localInfo()` announced, else 1. */
  #localPort(opts: ConnectOptions): number {
    if (opts.port !== undefined) return integerIn("port", opts.port, 1, 255);
    const announced = this.#announced;
    return announced.size === 1 ? announced.keys().next().value! : 1;
  }

  /** Moves to ERR: outstanding requests complete with WR_FLUSH_ERR. */
  toError(): void {
    const result = verbsNative().drv_modify_qp_error(this.pointerFor("ibv_modify_qp"));
    if (result !== 0) throw errorFromResult("ibv_modify_qp", result, "to ERR");
  }

  /**
   * Validates `wr` and encodes it into a send descriptor (`SEND` layout); throws TypeError or
   * RangeError, leaving `v` partly written, when the request is invalid.
   */
  #encodeSend(wr: SendRequest, v: DataView): void {
    this.#sges.begin("ibv_post_send");
    try {
      this.#encodeSendFields(wr, v);
    } finally {
      this.#sges.end();
    }
  }

  #encodeSendFields(wr: SendRequest, v: DataView): void {
    if (wr === null || typeof wr !== "object") throw new TypeError("wr must be an object");
    const opcode = wr.opcode ?? WrOpcode.SEND;
    if (typeof opcode !== "number") throw new TypeError("opcode must be a WrOpcode value");
    if (!VALID_OPCODES.has(opcode)) throw new RangeError(`unknown opcode ${opcode}`);
    const count = this.#sges.write(
      v,
      SEND.sg_list,
      wr.sge,
      this.maxSendSge,
      "ibv_post_send",
    );
    writeU64(v, SEND.wr_id, "wrId", wr.wrId ?? 0);
    v.setUint32(SEND.opcode, opcode, true);
    let flags = 0;
    if (wr.signaled) flags |= SendFlags.SIGNALED;
    if (wr.solicited) flags |= SendFlags.SOLICITED;
    if (wr.inline) {
      // The provider would only say EINVAL.
      if (this.#sges.bytes > this.maxInlineData) {
        throw new RangeError(
          `${this.#sges.bytes} bytes inline; this queue pair takes ${this.maxInlineData}`,
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
    if (remote) {
      if (this.type === QpType.UD) throw new RangeError("UD queue pairs only send");
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
      if (count !== 1 || this.#sges.bytes !== 8) {
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
    this.#encodedAh = null;
    if (this.type === QpType.UD) {
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
      this.#encodedAh = ah;
    }
  }

  /**
   * ibv_post_send of one work request. Throws RdmaError when the queue refuses it (ENOMEM when
   * full).
   */
  postSend(wr: SendRequest): void {
    this.#encodeSend(wr, this.#sendView);
    // After encoding, when no more user code runs: a getter in `wr` may have closed this queue
    // pair or anything the request names, or detached a region's buffer.
    try {
      this.#recheckEncoded("ibv_post_send");
    } finally {
      this.#sges.forget();
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
    const bytes = new Uint8Array(SEND.size);
    this.#encodeSend(wr, new DataView(bytes.buffer));
    // The handles the encoding used (reading `wr` again could give others).
    const keepOpen: NativeHandle[] = [this, ...this.#sges.regions()];
    const postables = this.#sges.postables();
    try {
      this.#recheckEncoded("ibv_post_send"); // none closed meanwhile
    } finally {
      this.#sges.forget();
    }
    if (this.#encodedAh !== null) keepOpen.push(this.#encodedAh);
    this.pointerFor("ibv_post_send");
    return new PreparedSend(PREPARED_BY_QUEUE_PAIR, bytes, keepOpen, postables);
  }

  /** The regions, registrations and address handle the last encoding used are still usable. */
  #recheckEncoded(verb: string): void {
    this.#sges.recheck(verb);
    this.#encodedAh?.pointerFor(verb);
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
    this.#sges.encodeRecv(this.#recvView, wr, this.maxRecvSge, "ibv_post_recv");
    // After encoding: a getter in `wr` may have closed this queue pair.
    const qp = this.pointerFor("ibv_post_recv");
    const result = verbsNative().drv_post_recv(qp, this.#recv);
    if (result !== 0) throw errorFromResult("ibv_post_recv", result);
  }
}
