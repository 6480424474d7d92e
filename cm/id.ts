/**
 * Connection-manager ids (struct rdma_cm_id): the calls on one id, each failing with an RdmaError
 * naming the librdmacm call. Internal to cm/: connections and listeners own theirs and destroy
 * them after their queue pair is detached and before their channel.
 *
 * @module
 */
import { addressOfPointer, cString } from "../ffi/pointers.ts";
import { CM_ID_DESC, CM_PRIVATE_DATA_MAX } from "../ffi/records/rdmacm.ts";
import { rdmacmNative } from "../ffi/rdmacm_symbols.ts";
import { NativeHandle } from "../verbs/handle.ts";
import type { QueuePair } from "../verbs/queue_pair.ts";
import { cmCallError, cmLastError } from "./errors.ts";
import type { EventChannel } from "./events.ts";

/** What an id is bound to (drc_id_info). */
export interface IdInfo {
  /** Address of its struct ibv_context, 0n until bound to a device. */
  verbs: bigint;
  port: number;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

function text(bytes: Uint8Array, offset: number, length: number): string {
  const field = bytes.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return new TextDecoder().decode(field.subarray(0, end < 0 ? length : end));
}

/** A private-data argument: a copy of its bytes (at most 255), checked. */
export function privateDataBytes(value: unknown, what = "privateData"): Uint8Array {
  if (value === undefined) return new Uint8Array(0);
  if (!ArrayBuffer.isView(value)) throw new TypeError(`${what} must be a Uint8Array`);
  if (value.byteLength === 0 && (value.buffer as ArrayBuffer).detached) {
    throw new TypeError(`${what}'s buffer was detached (transferred)`);
  }
  if (value.byteLength > CM_PRIVATE_DATA_MAX) {
    throw new RangeError(`${what} must be at most ${CM_PRIVATE_DATA_MAX} bytes`);
  }
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice();
}

/** One rdma_cm_id. */
export class CmId extends NativeHandle {
  private constructor(pointer: Deno.PointerObject) {
    super(pointer, "CmId", "rdma_destroy_id", (p) => rdmacmNative().drc_destroy_id(p));
  }

  /** rdma_create_id in `portSpace` (PORT_SPACE.TCP or UDP) on `channel`. */
  static create(channel: EventChannel, portSpace: number): CmId {
    const pointer = rdmacmNative().drc_create_id(channel.pointerFor("rdma_create_id"), portSpace);
    if (pointer === null) throw cmLastError("rdma_create_id");
    return new CmId(pointer);
  }

  /** Takes ownership of an id the CM created (a connection request's). */
  static adopt(pointer: Deno.PointerObject): CmId {
    return new CmId(pointer);
  }

  /** Where the native id lives: how events name it. */
  get address(): bigint {
    return addressOfPointer(this.pointer);
  }

  resolveAddress(source: string | undefined, host: string, port: number, timeoutMs: number): void {
    const result = rdmacmNative().drc_resolve_addr(
      this.pointerFor("rdma_resolve_addr"),
      source === undefined ? null : cString(source),
      cString(host),
      port,
      timeoutMs,
    );
    if (result !== 0) throw cmCallError("rdma_resolve_addr", result, `${host}:${port}`);
  }

  resolveRoute(timeoutMs: number): void {
    const result = rdmacmNative().drc_resolve_route(
      this.pointerFor("rdma_resolve_route"),
      timeoutMs,
    );
    if (result !== 0) throw cmCallError("rdma_resolve_route", result);
  }

  listen(host: string | undefined, port: number, backlog: number): void {
    const result = rdmacmNative().drc_listen(
      this.pointerFor("rdma_listen"),
      host === undefined ? null : cString(host),
      port,
      backlog,
    );
    if (result !== 0) {
      throw cmCallError("rdma_listen", result, `${host ?? "every address"} port ${port}`);
    }
  }

  migrate(channel: EventChannel): void {
    const result = rdmacmNative().drc_migrate_id(
      this.pointerFor("rdma_migrate_id"),
      channel.pointerFor("rdma_migrate_id"),
    );
    if (result !== 0) throw cmCallError("rdma_migrate_id", result);
  }

  info(): IdInfo {
    const desc = new Uint8Array(CM_ID_DESC.size);
    rdmacmNative().drc_id_info(this.pointerFor("rdma_get_local_addr"), desc);
    const v = new DataView(desc.buffer);
    return {
      verbs: v.getBigUint64(CM_ID_DESC.verbs, true),
      port: v.getUint32(CM_ID_DESC.port_num, true),
      localAddress: text(
        desc,
        CM_ID_DESC.local_address,
        CM_ID_DESC.remote_address - CM_ID_DESC.local_address,
      ),
      localPort: v.getUint16(CM_ID_DESC.local_port, true),
      remoteAddress: text(
        desc,
        CM_ID_DESC.remote_address,
        CM_ID_DESC.size - CM_ID_DESC.remote_address,
      ),
      remotePort: v.getUint16(CM_ID_DESC.remote_port, true),
    };
  }

  attach(qp: QueuePair): void {
    const result = rdmacmNative().drc_attach_qp(
      this.pointerFor("rdma_create_qp"),
      qp.pointerFor("rdma_create_qp"),
    );
    if (result !== 0) throw cmCallError("rdma_create_qp", result, "attaching the queue pair");
  }

  /** Lends a UD queue pair already in RTS to this id (a resolution request's) to answer with. */
  shareQueuePair(qp: QueuePair): void {
    const result = rdmacmNative().drc_share_qp(
      this.pointerFor("rdma_accept"),
      qp.pointerFor("rdma_accept"),
    );
    if (result !== 0) throw cmCallError("rdma_accept", result, "lending the queue pair");
  }

  bind(host: string, port: number): void {
    const result = rdmacmNative().drc_bind(this.pointerFor("rdma_bind_addr"), cString(host), port);
    if (result !== 0) throw cmCallError("rdma_bind_addr", result, `${host} port ${port}`);
  }

  joinMulticast(group: string): void {
    const result = rdmacmNative().drc_join_multicast(
      this.pointerFor("rdma_join_multicast"),
      cString(group),
    );
    if (result !== 0) throw cmCallError("rdma_join_multicast", result, group);
  }

  leaveMulticast(group: string): void {
    const result = rdmacmNative().drc_leave_multicast(
      this.pointerFor("rdma_leave_multicast"),
      cString(group),
    );
    if (result !== 0) throw cmCallError("rdma_leave_multicast", result, group);
  }

  detach(): void {
    rdmacmNative().drc_detach_qp(this.pointerFor("rdma_destroy_qp"));
  }

  connect(data: Uint8Array, resources: number, depth: number, retry: number, rnr: number): void {
    const result = rdmacmNative().drc_connect(
      this.pointerFor("rdma_connect"),
      data,
      data.byteLength,
      resources,
      depth,
      retry,
      rnr,
    );
    if (result !== 0) throw cmCallError("rdma_connect", result);
  }

  accept(data: Uint8Array, resources: number, depth: number, rnr: number): void {
    const result = rdmacmNative().drc_accept(
      this.pointerFor("rdma_accept"),
      data,
      data.byteLength,
      resources,
      depth,
      rnr,
    );
    if (result !== 0) throw cmCallError("rdma_accept", result);
  }

  reject(data: Uint8Array): void {
    const result = rdmacmNative().drc_reject(this.pointerFor("rdma_reject"), data, data.byteLength);
    if (result !== 0) throw cmCallError("rdma_reject", result);
  }

  disconnect(): void {
    const result = rdmacmNative().drc_disconnect(this.pointerFor("rdma_disconnect"));
    if (result !== 0) throw cmCallError("rdma_disconnect", result);
  }
}
