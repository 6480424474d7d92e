/**
 * Connecting a queue pair: what one end announces (`localInfo()`), and the INIT, RTR and RTS
 * transitions that use the peer's announcement with this end's options.
 *
 * A queue pair's connection keeps three things between those calls: the GID index announced for
 * each port (RTR sends from it unless told otherwise), the responder depth announced (RTR accepts
 * at least that many reads), and the responder depth the peer announced (RTS issues no more).
 *
 * @module
 */
import { PATH } from "../ffi/records/verbs.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { type PathOptions, writePath } from "./address_handle.ts";
import { Access, ACCESS_MASK, DEFAULT_QKEY, LinkLayer, QpType } from "./constants.ts";
import type { Context } from "./context.ts";
import { errorFromResult } from "./errors.ts";
import { gidBytes, gidText, isIpv4MappedGid } from "./gid.ts";
import type { QueuePair } from "./queue_pair.ts";
import { integerIn, optionalInteger, optionsObject } from "./validate.ts";

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

/** RDMA READs/atomics an RC responder accepts unless told otherwise (or the device's limit). */
const DEFAULT_RESPONDER_DEPTH = 16;

/** The connection of one queue pair: what it announced and heard, and its transitions. */
export class Connection {
  readonly #qp: QueuePair;
  readonly #context: Context;
  /** The GID index `localInfo()` announced for each port: connect() uses it unless told otherwise. */
  readonly #announced = new Map<number, number>(); // port -> GID index
  /** The responder depth `localInfo()` announced, which RTR then uses. */
  #announcedDestRdAtomic: number | undefined;
  /** What the peer said it accepts (`remote.maxDestRdAtomic` at RTR): RTS issues no more. */
  #peerDestRdAtomic: number | undefined;

  /** The connection of `qp`, a queue pair of `context`'s device. */
  constructor(qp: QueuePair, context: Context) {
    this.#qp = qp;
    this.#context = context;
  }

  /** See `QueuePair.localInfo`. */
  localInfo(options?: { port?: number; gidIndex?: number; maxDestRdAtomic?: number }): LocalInfo {
    const qp = this.#qp;
    qp.pointerFor("ibv_query_qp");
    const opts = optionsObject("options", options);
    const port = optionalInteger("port", opts.port, 1, 1, 255);
    const attr = this.#context.queryActivePort(port);
    const maxDestRdAtomic = qp.type !== QpType.RC
      ? 0
      : opts.maxDestRdAtomic !== undefined
      ? this.#explicitDepth("maxDestRdAtomic", opts.maxDestRdAtomic)
      : this.#defaultResponderDepth();
    const gidIndex = opts.gidIndex === undefined
      ? this.#context.defaultGidIndex(port)
      : integerIn("gidIndex", opts.gidIndex, 0, 255);
    const gid = opts.gidIndex === undefined && attr.linkLayer !== LinkLayer.ETHERNET
      ? new Uint8Array(16)
      : this.#context.queryGid(port, gidIndex).gid;
    // After the options' getters ran: a closed queue pair has nothing to announce.
    qp.pointerFor("ibv_query_qp");
    // What the peer is told, this end must do: connect() uses the same, and never accepts fewer
    // reads than any announcement said.
    this.#announced.set(port, gidIndex);
    this.#announcedDestRdAtomic = Math.max(this.#announcedDestRdAtomic ?? 0, maxDestRdAtomic);
    // Text, so the object survives JSON as it is: connect() takes it back.
    return {
      qpn: qp.qpn,
      psn: qp.psn,
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
    const qp = this.#qp.pointerFor("ibv_modify_qp");
    const result = verbsNative().drv_modify_qp_init(qp, port, pkeyIndex, access, qkey);
    if (result !== 0) throw errorFromResult("ibv_modify_qp", result, "to INIT");
  }

  /** INIT -> RTR. RC/UC need `remote`; UD ignores it. */
  toRtr(remote?: ConnectionInfo, options?: ConnectOptions): void {
    const opts = optionsObject("options", options);
    const type = this.#qp.type;
    const desc = new Uint8Array(PATH.size);
    if (type !== QpType.UD) {
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
            : this.#context.defaultGidIndex(port));
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
      if (type === QpType.RC) {
        this.#peerDestRdAtomic = r.maxDestRdAtomic === undefined
          ? undefined
          : integerIn("remote.maxDestRdAtomic", r.maxDestRdAtomic, 0, 255);
        v.setUint8(PATH.max_dest_rd_atomic, this.#responderDepth(opts));
      }
      v.setUint8(PATH.min_rnr_timer, optionalInteger("minRnrTimer", opts.minRnrTimer, 12, 0, 31));
    }
    const result = verbsNative().drv_modify_qp_rtr(this.#qp.pointerFor("ibv_modify_qp"), desc);
    if (result !== 0) throw errorFromResult("ibv_modify_qp", result, "to RTR");
  }

  /** RTR -> RTS, sending from the queue pair's `psn`. */
  toRts(options?: ConnectOptions): void {
    const opts = optionsObject("options", options);
    const timeout = optionalInteger("timeout", opts.timeout, 14, 0, 31);
    const retryCount = optionalInteger("retryCount", opts.retryCount, 7, 0, 7);
    const rnrRetry = optionalInteger("rnrRetry", opts.rnrRetry, 7, 0, 7);
    const depth = this.#qp.type === QpType.RC ? this.#initiatorDepth(opts) : 0;
    // The pointer last, after every getter of `options` ran: one may have closed this queue pair.
    const qp = this.#qp.pointerFor("ibv_modify_qp");
    const result = verbsNative().drv_modify_qp_rts(
      qp,
      this.#qp.psn,
      timeout,
      retryCount,
      rnrRetry,
      depth,
    );
    if (result !== 0) throw errorFromResult("ibv_modify_qp", result, "to RTS");
  }

  /** See `QueuePair.connect`. */
  connect(remote?: ConnectionInfo, options?: ConnectOptions): void {
    if (this.#qp.type !== QpType.UD && (remote === undefined || remote === null)) {
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
}
