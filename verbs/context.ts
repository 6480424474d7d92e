/**
 * An open RDMA device: attributes, ports, GID table, and the parent of protection domains and
 * completion queues (which must be closed before it; see handle.ts).
 *
 * @module
 */
import { cStringAt } from "../ffi/pointers.ts";
import {
  ASYNC_EVENT,
  DEVICE_ATTR,
  DEVICE_NAME_BYTES,
  FW_VER_BYTES,
  GID,
  GID_BYTES,
  PORT_ATTR,
} from "../ffi/records/verbs.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { type AsyncEvent, decodeAsyncEvent } from "./async_events.ts";
import {
  CompletionQueue,
  type CompletionQueueOptions,
  type WaitOptions,
} from "./completion_queue.ts";
import { GID_TYPES, LinkLayer, PortState } from "./constants.ts";
import { Errno, errorFromResult, lastError, RdmaError } from "./errors.ts";
import { CompletionChannel } from "./completion_channel.ts";
import { type ReadableWait, waitReadable } from "./fd_waiter.ts";
import { NativeHandle } from "./handle.ts";
import { ProtectionDomain } from "./protection_domain.ts";
import { gidText } from "./gid.ts";
import { roceGidIndex, roceSourceGidIndex } from "./gid_choice.ts";
import { integerIn, timeoutOption } from "./validate.ts";

const PORT_STATE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(PortState).map(([name, value]) => [value, name]),
);

/**
 * Why a port cannot carry traffic, or null when it can: it must be ACTIVE, and an InfiniBand port
 * needs a LID (link layer 0, from old drivers, counts as InfiniBand, as in libibverbs).
 */
export function portProblem(
  attr: Pick<PortAttributes, "state" | "lid" | "linkLayer">,
): string | null {
  if (attr.state !== PortState.ACTIVE) {
    const name = PORT_STATE_NAMES[attr.state] ?? `state ${attr.state}`;
    return `is ${name}, not ACTIVE: check its link` +
      (attr.linkLayer === LinkLayer.ETHERNET
        ? " (the network interface is up?)"
        : " and that a subnet manager runs");
  }
  if (attr.linkLayer !== LinkLayer.ETHERNET && attr.lid === 0) {
    return "is InfiniBand with LID 0: no subnet manager has configured it (start opensm)";
  }
  return null;
}

/** Device attributes (a subset of struct ibv_device_attr). */
export interface DeviceAttributes {
  /** Firmware version text (fw_ver). */
  firmwareVersion: string;
  /** Node GUID (node_guid), in host byte order. */
  nodeGuid: bigint;
  /** System image GUID (sys_image_guid), in host byte order. */
  sysImageGuid: bigint;
  /** Largest memory region in bytes (max_mr_size). */
  maxMrSize: bigint;
  /** Page sizes the device supports, one bit per power of two (page_size_cap). */
  pageSizeCap: bigint;
  /** IEEE OUI of the vendor (vendor_id). */
  vendorId: number;
  /** The vendor's part number of the device (vendor_part_id). */
  vendorPartId: number;
  /** Hardware revision (hw_ver). */
  hwVersion: number;
  /** Queue pairs the device supports (max_qp). */
  maxQp: number;
  /** Work requests one send or receive queue holds at most (max_qp_wr). */
  maxQpWr: number;
  /** Scatter/gather elements per work request at most (max_sge). */
  maxSge: number;
  /** Completion queues the device supports (max_cq). */
  maxCq: number;
  /** Entries one completion queue holds at most (max_cqe). */
  maxCqe: number;
  /** Memory regions the device supports (max_mr). */
  maxMr: number;
  /** Protection domains the device supports (max_pd). */
  maxPd: number;
  /** Reads/atomics one queue pair accepts as responder (max_qp_rd_atom); caps maxDestRdAtomic. */
  maxQpRdAtom: number;
  /** Reads/atomics one queue pair may issue at once (max_qp_init_rd_atom); caps maxRdAtomic. */
  maxQpInitRdAtom: number;
  /** enum ibv_atomic_cap: 0 none, 1 within the HCA, 2 global. */
  atomicCap: number;
  /** Address handles the device supports (max_ah). */
  maxAh: number;
  /** Physical ports, numbered from 1 (phys_port_cnt). */
  physPortCount: number;
}

/** Port attributes (a subset of struct ibv_port_attr). */
export interface PortAttributes {
  /** enum ibv_port_state (PortState). */
  state: number;
  /** enum ibv_mtu (Mtu). */
  maxMtu: number;
  /** enum ibv_mtu (Mtu) in use: what `localInfo()` announces and RTR caps the path MTU at. */
  activeMtu: number;
  /** Entries of the port's GID table (gid_tbl_len), empty ones included. */
  gidTableLength: number;
  /** IBV_PORT_* capability bits (port_cap_flags). */
  portCapFlags: number;
  /** Largest message in bytes (max_msg_sz). */
  maxMessageSize: number;
  /** 0 on RoCE. */
  lid: number;
  /** LID of the subnet manager (sm_lid); 0 on RoCE. */
  smLid: number;
  /** LID mask control (lmc): the port answers to 2^lmc LIDs from `lid`. */
  lmc: number;
  /** LinkLayer: 1 InfiniBand, 2 Ethernet (RoCE). */
  linkLayer: number;
  /** Link width (active_width): 1 1X, 2 4X, 4 8X, 8 12X, 16 2X. */
  activeWidth: number;
  /** Lane speed (active_speed): 1 SDR, 2 DDR, 4 QDR, 8 FDR10, 16 FDR, 32 EDR, 64 HDR, 128 NDR. */
  activeSpeed: number;
  /** Physical link state (phys_state): 1 sleep, 2 polling, 3 disabled, 5 link up, ... */
  physState: number;
}

/** One GID table entry. */
export interface GidEntry {
  /** The port, numbered from 1. */
  port: number;
  /** The entry's index in the port's table: what `gidIndex` options take. */
  index: number;
  /** 16 raw bytes, network order. */
  gid: Uint8Array;
  /** The GID as IPv6 text with full groups. */
  text: string;
  /** "ib", "roce-v1" or "roce-v2". */
  type: string;
  /** Network interface index behind the entry (RoCE), 0 if none. */
  ifindex: number;
}

/** An open device (struct ibv_context). */
export class Context extends NativeHandle {
  /** The device's name, e.g. "rxe0". */
  readonly deviceName: string;
  #waitingAsync = false;
  #asyncWait: ReadableWait | null = null;

  private constructor(pointer: Deno.PointerObject, deviceName: string, owned: boolean) {
    super(
      pointer,
      "Context",
      "ibv_close_device",
      (p) => owned ? verbsNative().drv_close_device(p) : 0,
    );
    this.deviceName = deviceName;
  }

  /**
   * A handle on a context that another library opened and keeps open (librdmacm's, the device of
   * a connection-manager id): the lifetime rules apply to the handle, but closing it leaves the
   * device open for its owner.
   */
  static borrow(pointer: Deno.PointerObject): Context {
    return new Context(pointer, cStringAt(verbsNative().drv_context_device_name(pointer)), false);
  }

  /** Opens `name`, or the first device. Prefer `openDevice()` from the module root. */
  static open(name?: string): Context {
    if (name !== undefined && typeof name !== "string") {
      throw new TypeError(`device name must be a string, got ${typeof name}`);
    }
    const encoded = new TextEncoder().encode((name ?? "") + "\0");
    if (
      name === "" || encoded.length > DEVICE_NAME_BYTES ||
      encoded.indexOf(0) !== encoded.length - 1
    ) {
      throw new RangeError(
        `device name must be 1 to ${DEVICE_NAME_BYTES - 1} bytes without NUL, got ${name}`,
      );
    }
    const pointer = verbsNative().drv_open_device(encoded);
    if (pointer === null) throw lastError("ibv_open_device", name ?? "first device");
    return new Context(pointer, cStringAt(verbsNative().drv_context_device_name(pointer)), true);
  }

  /** ibv_query_device. */
  queryDevice(): DeviceAttributes {
    const desc = new Uint8Array(DEVICE_ATTR.size);
    const result = verbsNative().drv_query_device(this.pointerFor("ibv_query_device"), desc);
    if (result !== 0) throw errorFromResult("ibv_query_device", result);
    const v = new DataView(desc.buffer);
    const firmware = desc.subarray(DEVICE_ATTR.fw_ver, DEVICE_ATTR.fw_ver + FW_VER_BYTES);
    const end = firmware.indexOf(0);
    const i32 = (o: number) => v.getInt32(o, true);
    const u32 = (o: number) => v.getUint32(o, true);
    return {
      firmwareVersion: new TextDecoder().decode(firmware.subarray(0, end < 0 ? FW_VER_BYTES : end)),
      nodeGuid: v.getBigUint64(DEVICE_ATTR.node_guid, true),
      sysImageGuid: v.getBigUint64(DEVICE_ATTR.sys_image_guid, true),
      maxMrSize: v.getBigUint64(DEVICE_ATTR.max_mr_size, true),
      pageSizeCap: v.getBigUint64(DEVICE_ATTR.page_size_cap, true),
      vendorId: u32(DEVICE_ATTR.vendor_id),
      vendorPartId: u32(DEVICE_ATTR.vendor_part_id),
      hwVersion: u32(DEVICE_ATTR.hw_ver),
      maxQp: i32(DEVICE_ATTR.max_qp),
      maxQpWr: i32(DEVICE_ATTR.max_qp_wr),
      maxSge: i32(DEVICE_ATTR.max_sge),
      maxCq: i32(DEVICE_ATTR.max_cq),
      maxCqe: i32(DEVICE_ATTR.max_cqe),
      maxMr: i32(DEVICE_ATTR.max_mr),
      maxPd: i32(DEVICE_ATTR.max_pd),
      maxQpRdAtom: i32(DEVICE_ATTR.max_qp_rd_atom),
      maxQpInitRdAtom: i32(DEVICE_ATTR.max_qp_init_rd_atom),
      atomicCap: i32(DEVICE_ATTR.atomic_cap),
      maxAh: i32(DEVICE_ATTR.max_ah),
      physPortCount: u32(DEVICE_ATTR.phys_port_cnt),
    };
  }

  /** ibv_query_port. Ports are numbered from 1. */
  queryPort(port = 1): PortAttributes {
    integerIn("port", port, 1, 255);
    const desc = new Uint8Array(PORT_ATTR.size);
    const result = verbsNative().drv_query_port(this.pointerFor("ibv_query_port"), port, desc);
    if (result !== 0) throw errorFromResult("ibv_query_port", result, `port ${port}`);
    const v = new DataView(desc.buffer);
    return {
      state: v.getUint32(PORT_ATTR.state, true),
      maxMtu: v.getUint32(PORT_ATTR.max_mtu, true),
      activeMtu: v.getUint32(PORT_ATTR.active_mtu, true),
      gidTableLength: v.getInt32(PORT_ATTR.gid_tbl_len, true),
      portCapFlags: v.getUint32(PORT_ATTR.port_cap_flags, true),
      maxMessageSize: v.getUint32(PORT_ATTR.max_msg_sz, true),
      lid: v.getUint16(PORT_ATTR.lid, true),
      smLid: v.getUint16(PORT_ATTR.sm_lid, true),
      lmc: v.getUint8(PORT_ATTR.lmc),
      linkLayer: v.getUint8(PORT_ATTR.link_layer),
      activeWidth: v.getUint8(PORT_ATTR.active_width),
      activeSpeed: v.getUint8(PORT_ATTR.active_speed),
      physState: v.getUint8(PORT_ATTR.phys_state),
    };
  }

  /**
   * ibv_query_port of a port that can carry traffic; throws RdmaError ENETDOWN when it is not
   * ACTIVE, or is an InfiniBand port without a LID (no subnet manager has configured it): a
   * connection made through it would only time out.
   */
  queryActivePort(port = 1): PortAttributes {
    const attr = this.queryPort(port);
    const problem = portProblem(attr);
    if (problem !== null) {
      throw new RdmaError(
        "ibv_query_port",
        Errno.ENETDOWN,
        `${this.deviceName} port ${port} ${problem}`,
      );
    }
    return attr;
  }

  /**
   * The GID index used when none is given: on Ethernet (RoCE) ports `roceGidIndex` of the port's
   * table; on InfiniBand, 0.
   */
  defaultGidIndex(port = 1): number {
    if (this.queryPort(port).linkLayer !== LinkLayer.ETHERNET) return 0;
    return roceGidIndex(this.gidTable(port));
  }

  /**
   * The GID index to reach `destination` from when none is given: on Ethernet (RoCE) ports
   * `roceSourceGidIndex` of the port's table, on InfiniBand 0.
   */
  sourceGidIndex(port: number, destination: Uint8Array): number {
    if (this.queryPort(port).linkLayer !== LinkLayer.ETHERNET) return 0;
    return roceSourceGidIndex(this.gidTable(port), destination);
  }

  /** ibv_query_gid_ex: one GID table entry. Throws RdmaError (ENODATA) for an empty entry. */
  queryGid(port: number, index: number): GidEntry {
    integerIn("port", port, 1, 255);
    integerIn("gid index", index, 0, 0xffff);
    const desc = new Uint8Array(GID.size);
    const result = verbsNative().drv_query_gid(this.pointerFor("ibv_query_gid"), port, index, desc);
    if (result !== 0) throw errorFromResult("ibv_query_gid", result, `port ${port} index ${index}`);
    const v = new DataView(desc.buffer);
    const gid = desc.slice(GID.gid, GID.gid + GID_BYTES);
    return {
      port,
      index,
      gid,
      text: gidText(gid),
      type: GID_TYPES[v.getUint32(GID.gid_type, true)] ?? "unknown",
      ifindex: v.getUint32(GID.ndev_ifindex, true),
    };
  }

  /** The populated entries of a port's GID table. */
  gidTable(port = 1): GidEntry[] {
    const entries: GidEntry[] = [];
    const length = this.queryPort(port).gidTableLength;
    for (let index = 0; index < length; index++) {
      const desc = new Uint8Array(GID.size);
      if (verbsNative().drv_query_gid(this.pointerFor("ibv_query_gid"), port, index, desc) !== 0) {
        continue; // an empty slot
      }
      if (desc.subarray(GID.gid, GID.gid + GID_BYTES).some((b) => b !== 0)) {
        entries.push(this.queryGid(port, index));
      }
    }
    return entries;
  }

  /**
   * The device's next asynchronous event (ibv_get_async_event): a port going down or up, a queue
   * pair or completion queue in error, the device failing. Waits through the one waiter of the
   * process (no thread of its own), so the event loop keeps running, for up to `timeoutMs` (default: no limit); null on timeout. Each event is
   * acknowledged before it is returned. One wait at a time (EBUSY); closing the context ends it
   * (EBADF).
   */
  async waitAsyncEvent(options?: WaitOptions): Promise<AsyncEvent | null> {
    const timeout = timeoutOption(options);
    if (this.#waitingAsync) {
      throw new RdmaError(
        "ibv_get_async_event",
        Errno.EBUSY,
        "another waitAsyncEvent() is pending",
      );
    }
    const native = verbsNative();
    let pointer = this.pointerFor("ibv_get_async_event");
    const fd = native.drv_context_async_fd(pointer);
    if (fd < 0) throw errorFromResult("fcntl", fd, "making the async descriptor nonblocking");
    this.#waitingAsync = true;
    const out = new Uint8Array(ASYNC_EVENT.size);
    const deadline = performance.now() + timeout;
    try {
      for (;;) {
        const result = native.drv_take_async_event(pointer, out);
        if (result < 0) throw errorFromResult("ibv_get_async_event", result);
        if (result > 0) return decodeAsyncEvent(out);
        const left = deadline - performance.now();
        if (left <= 0) return null;
        this.#asyncWait = waitReadable(fd, left);
        const readable = await this.#asyncWait.promise;
        this.#asyncWait = null;
        pointer = this.pointerFor("ibv_get_async_event");
        if (!readable) return null;
      }
    } finally {
      this.#asyncWait = null;
      this.#waitingAsync = false;
    }
  }

  /** Ends a pending `waitAsyncEvent()` (EBADF). */
  protected override whenClosed(): void {
    this.#asyncWait?.cancel(
      new RdmaError("ibv_get_async_event", Errno.EBADF, "Context was closed"),
    );
  }

  /** ibv_create_comp_channel: a channel several completion queues can share. */
  createCompletionChannel(): CompletionChannel {
    return CompletionChannel.create(this);
  }

  /** ibv_alloc_pd. */
  allocProtectionDomain(): ProtectionDomain {
    return ProtectionDomain.allocate(this);
  }

  /** ibv_create_cq (and ibv_create_comp_channel when `options.channel` is true). */
  createCompletionQueue(options?: CompletionQueueOptions): CompletionQueue {
    return CompletionQueue.create(this, options);
  }
}
