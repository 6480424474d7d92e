/**
 * Records and constants shared with libdeno_rdma_cm.so, as its C sources describe them
 * (ffi/native/records.h). Written by `deno task build` (tools/records.ts): do not edit.
 *
 * @module
 */

/** CM_PRIVATE_DATA_MAX, from C. */
export const CM_PRIVATE_DATA_MAX = 255;

/** CM_ADDRESS_BYTES, from C. */
export const CM_ADDRESS_BYTES = 64;

/** CM_GAI_FAILED, from C. */
export const CM_GAI_FAILED = 8192;

/** CM_EVENT_DESC: size and field offsets in bytes, from C. */
export const CM_EVENT_DESC = {
  size: 328,
  event: 0,
  status: 4,
  id: 8,
  listen_id: 16,
  private_data_len: 24,
  qp_num: 28,
  qkey: 32,
  responder_resources: 36,
  initiator_depth: 37,
  reserved: 38,
  ah_flow_label: 40,
  ah_dlid: 44,
  ah_sl: 46,
  ah_port_num: 47,
  ah_is_global: 48,
  ah_sgid_index: 49,
  ah_hop_limit: 50,
  ah_traffic_class: 51,
  ah_dgid: 52,
  private_data: 68,
} as const;

/** CM_ID_DESC: size and field offsets in bytes, from C. */
export const CM_ID_DESC = {
  size: 144,
  verbs: 0,
  port_num: 8,
  local_port: 12,
  remote_port: 14,
  local_address: 16,
  remote_address: 80,
} as const;

/** CM_EVENT: values, from C. */
export const CM_EVENT = {
  ADDR_RESOLVED: 0,
  ADDR_ERROR: 1,
  ROUTE_RESOLVED: 2,
  ROUTE_ERROR: 3,
  CONNECT_REQUEST: 4,
  CONNECT_RESPONSE: 5,
  CONNECT_ERROR: 6,
  UNREACHABLE: 7,
  REJECTED: 8,
  ESTABLISHED: 9,
  DISCONNECTED: 10,
  DEVICE_REMOVAL: 11,
  MULTICAST_JOIN: 12,
  MULTICAST_ERROR: 13,
  ADDR_CHANGE: 14,
  TIMEWAIT_EXIT: 15,
} as const;

/** PORT_SPACE: values, from C. */
export const PORT_SPACE = {
  TCP: 262,
  UDP: 273,
  IPOIB: 2,
} as const;
