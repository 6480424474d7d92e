/**
 * Address handles: where a UD send goes (ibv_create_ah / ibv_destroy_ah).
 *
 * @module
 */
import { addressOfPointer } from "../ffi/pointers.ts";
import { GID_BYTES, PATH } from "../ffi/records/verbs.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { lastError } from "./errors.ts";
import { NativeHandle } from "./handle.ts";
import type { ProtectionDomain } from "./protection_domain.ts";
import { gidBytes } from "./gid.ts";
import { integerIn, optionalInteger, optionsObject } from "./validate.ts";

/** The remote end of a path: what an address handle and an RC RTR transition need. */
export interface PathOptions {
  /** Remote LID (0 on RoCE). */
  lid?: number;
  /** Remote GID (16 bytes or IPv6 text). Needed on RoCE, where a GRH is required. */
  gid?: Uint8Array | string;
  /** Local GID index to send from (sgid_index). Default: `Context.sourceGidIndex(port, gid)` (a
   * RoCE v2 entry with the same kind of address as `gid` on Ethernet, 0 on InfiniBand). */
  gidIndex?: number;
  /** Local port. Default 1. */
  port?: number;
  /** Service level. Default 0. */
  sl?: number;
  /** GRH hop limit. Default 64. */
  hopLimit?: number;
  /** GRH traffic class (on RoCE v2, the IP DSCP and ECN bits). Default 0. */
  trafficClass?: number;
  /** GRH flow label, 20 bits. Default 0. */
  flowLabel?: number;
}

/** Writes the address fields of `path` into a drv_path_desc (see ffi/records/verbs.ts). */
export function writePath(desc: Uint8Array, path: PathOptions): void {
  const v = new DataView(desc.buffer, desc.byteOffset, desc.byteLength);
  v.setUint16(PATH.dlid, optionalInteger("lid", path.lid, 0, 0, 0xffff), true);
  v.setUint8(PATH.sl, optionalInteger("sl", path.sl, 0, 0, 15));
  v.setUint8(PATH.port_num, optionalInteger("port", path.port, 1, 1, 255));
  v.setUint8(PATH.sgid_index, optionalInteger("gidIndex", path.gidIndex, 0, 0, 255));
  v.setUint8(PATH.hop_limit, optionalInteger("hopLimit", path.hopLimit, 64, 0, 255));
  v.setUint8(PATH.traffic_class, optionalInteger("trafficClass", path.trafficClass, 0, 0, 255));
  v.setUint32(
    PATH.flow_label,
    optionalInteger("flowLabel", path.flowLabel, 0, 0, 0xfffff),
    true,
  );
  if (path.gid !== undefined) {
    const gid = gidBytes("gid", path.gid);
    desc.set(gid, PATH.dgid);
    // An all-zero GID means "no GRH" (InfiniBand within a subnet).
    v.setUint8(PATH.is_global, gid.some((b) => b !== 0) ? 1 : 0);
  } else {
    v.setUint8(PATH.is_global, 0);
  }
}

/** An address handle (struct ibv_ah), for UD sends. */
export class AddressHandle extends NativeHandle {
  /** The protection domain it was created in: only its UD queue pairs can send through it. */
  readonly pd: ProtectionDomain;

  private constructor(pointer: Deno.PointerObject, pd: ProtectionDomain) {
    super(pointer, "AddressHandle", "ibv_destroy_ah", (p) => verbsNative().drv_destroy_ah(p), [pd]);
    this.pd = pd;
  }

  /** ibv_create_ah. Prefer `ProtectionDomain.createAddressHandle`. */
  static create(pd: ProtectionDomain, path: PathOptions): AddressHandle {
    NativeHandle.expect(pd, "ProtectionDomain", "pd");
    const p = optionsObject("path", path);
    // Each field read once, getters included (a spread copies own properties only).
    const opts: PathOptions = {
      lid: p.lid,
      gid: p.gid,
      gidIndex: p.gidIndex,
      port: p.port,
      sl: p.sl,
      hopLimit: p.hopLimit,
      trafficClass: p.trafficClass,
      flowLabel: p.flowLabel,
    };
    if (opts.lid === undefined && opts.gid === undefined) {
      throw new TypeError("an address handle needs a lid or a gid");
    }
    if (opts.lid !== undefined) integerIn("lid", opts.lid, 0, 0xffff);
    const desc = new Uint8Array(PATH.size);
    writePath(desc, opts); // validates every field
    if (opts.gidIndex === undefined && desc[PATH.is_global] === 1) {
      const gid = desc.slice(PATH.dgid, PATH.dgid + GID_BYTES);
      const port = desc[PATH.port_num];
      desc[PATH.sgid_index] = pd.context.sourceGidIndex(port, gid);
    }
    const pointer = verbsNative().drv_create_ah(pd.pointerFor("ibv_create_ah"), desc);
    if (pointer === null) throw lastError("ibv_create_ah");
    return new AddressHandle(pointer, pd);
  }

  /** The native address as the send descriptor carries it. */
  get address(): bigint {
    return addressOfPointer(this.pointerFor("ibv_post_send"));
  }
}
