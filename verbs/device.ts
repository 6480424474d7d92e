/**
 * Listing RDMA devices and opening one.
 *
 * On a machine whose kernel has no RDMA support, libibverbs cannot list devices at all and
 * `listDevices()` throws RdmaError with code ENOSYS (rather than returning an empty list, which
 * would hide that the subsystem is missing). A machine with RDMA support and no device returns [].
 *
 * @module
 */
import { DEVICE, DEVICE_NAME_BYTES } from "../ffi/records/verbs.ts";
import { verbsNative } from "../ffi/verbs_symbols.ts";
import { NODE_TYPES, TRANSPORT_TYPES } from "./constants.ts";
import { Context } from "./context.ts";
import { lastError } from "./errors.ts";

/** One RDMA device as listed by libibverbs. */
export interface DeviceInfo {
  /** Device name, e.g. "rxe0" or "mlx5_0". */
  name: string;
  /** Node GUID (host byte order). */
  guid: bigint;
  /** Node GUID as text, "xxxx:xxxx:xxxx:xxxx" like ibv_devices prints it. */
  guidText: string;
  /** enum ibv_node_type by name: "ca", "rnic", ... */
  nodeType: string;
  /** enum ibv_transport_type by name: "ib", "iwarp", ... */
  transport: string;
}

/** Formats a 64-bit GUID as four groups of four hex digits. */
export function formatGuid(guid: bigint): string {
  return guid.toString(16).padStart(16, "0").match(/..../g)!.join(":");
}

/** Lists the RDMA devices. Throws RdmaError (ENOSYS when the kernel has no RDMA support). */
export function listDevices(): DeviceInfo[] {
  const shim = verbsNative();
  const count = new Int32Array(1);
  const list = shim.drv_get_device_list(new Uint8Array(count.buffer));
  if (list === null) throw lastError("ibv_get_device_list");
  try {
    const desc = new Uint8Array(DEVICE.size);
    const view = new DataView(desc.buffer);
    const devices: DeviceInfo[] = [];
    for (let i = 0; i < count[0]; i++) {
      shim.drv_device_info(list, i, desc);
      const name = desc.subarray(DEVICE.name, DEVICE.name + DEVICE_NAME_BYTES);
      const end = name.indexOf(0);
      const guid = view.getBigUint64(DEVICE.guid, true);
      devices.push({
        name: new TextDecoder().decode(name.subarray(0, end < 0 ? DEVICE_NAME_BYTES : end)),
        guid,
        guidText: formatGuid(guid),
        nodeType: NODE_TYPES[view.getInt32(DEVICE.node_type, true)] ?? "unknown",
        transport: TRANSPORT_TYPES[view.getInt32(DEVICE.transport_type, true)] ?? "unknown",
      });
    }
    return devices;
  } finally {
    shim.drv_free_device_list(list);
  }
}

/**
 * Opens the device called `name`, or the first device when no name is given. Throws RdmaError
 * ENODEV when no device matches, TypeError/RangeError for a bad name.
 */
export function openDevice(name?: string): Context {
  return Context.open(name);
}
