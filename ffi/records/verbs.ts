/**
 * Records and constants shared with libdeno_rdma_verbs.so, as its C sources describe them
 * (ffi/native/records.h). Written by `deno task build` (tools/records.ts): do not edit.
 *
 * @module
 */

/** MAX_SGE, from C. */
export const MAX_SGE = 16;

/** MAX_CHAIN, from C. */
export const MAX_CHAIN = 64;

/** POLL_FAILED, from C. */
export const POLL_FAILED = 4096;

/** DEVICE_NAME_BYTES, from C. */
export const DEVICE_NAME_BYTES = 64;

/** FW_VER_BYTES, from C. */
export const FW_VER_BYTES = 64;

/** GID_BYTES, from C. */
export const GID_BYTES = 16;

/** DEVICE: size and field offsets in bytes, from C. */
export const DEVICE = {
  size: 80,
  name: 0,
  guid: 64,
  node_type: 72,
  transport_type: 76,
} as const;

/** DEVICE_ATTR: size and field offsets in bytes, from C. */
export const DEVICE_ATTR = {
  size: 160,
  fw_ver: 0,
  node_guid: 64,
  sys_image_guid: 72,
  max_mr_size: 80,
  page_size_cap: 88,
  vendor_id: 96,
  vendor_part_id: 100,
  hw_ver: 104,
  max_qp: 108,
  max_qp_wr: 112,
  max_sge: 116,
  max_cq: 120,
  max_cqe: 124,
  max_mr: 128,
  max_pd: 132,
  max_qp_rd_atom: 136,
  max_qp_init_rd_atom: 140,
  atomic_cap: 144,
  max_ah: 148,
  phys_port_cnt: 152,
  reserved: 156,
} as const;

/** PORT_ATTR: size and field offsets in bytes, from C. */
export const PORT_ATTR = {
  size: 40,
  state: 0,
  max_mtu: 4,
  active_mtu: 8,
  gid_tbl_len: 12,
  port_cap_flags: 16,
  max_msg_sz: 20,
  lid: 24,
  sm_lid: 26,
  lmc: 28,
  link_layer: 29,
  active_width: 30,
  active_speed: 31,
  phys_state: 32,
  reserved: 33,
} as const;

/** GID: size and field offsets in bytes, from C. */
export const GID = {
  size: 24,
  gid: 0,
  gid_type: 16,
  ndev_ifindex: 20,
} as const;

/** PATH: size and field offsets in bytes, from C. */
export const PATH = {
  size: 40,
  dest_qpn: 0,
  rq_psn: 4,
  dlid: 8,
  sl: 10,
  port_num: 11,
  path_mtu: 12,
  is_global: 13,
  sgid_index: 14,
  hop_limit: 15,
  dgid: 16,
  flow_label: 32,
  traffic_class: 36,
  max_dest_rd_atomic: 37,
  min_rnr_timer: 38,
  reserved: 39,
} as const;

/** SGE: size and field offsets in bytes, from C. */
export const SGE = {
  size: 16,
  addr: 0,
  length: 8,
  lkey: 12,
} as const;

/** SEND: size and field offsets in bytes, from C. */
export const SEND = {
  size: 328,
  wr_id: 0,
  opcode: 8,
  send_flags: 12,
  imm_data: 16,
  num_sge: 20,
  remote_addr: 24,
  rkey: 32,
  remote_qpn: 36,
  compare_add: 40,
  swap: 48,
  ah: 56,
  remote_qkey: 64,
  reserved: 68,
  sg_list: 72,
} as const;

/** RECV: size and field offsets in bytes, from C. */
export const RECV = {
  size: 272,
  wr_id: 0,
  num_sge: 8,
  reserved: 12,
  sg_list: 16,
} as const;

/** WC: size and field offsets in bytes, from C. */
export const WC = {
  size: 48,
  wr_id: 0,
  status: 8,
  opcode: 12,
  vendor_err: 16,
  byte_len: 20,
  imm_data: 24,
  qp_num: 28,
  src_qp: 32,
  wc_flags: 36,
  pkey_index: 40,
  slid: 42,
  sl: 44,
  dlid_path_bits: 45,
  reserved: 46,
} as const;

/** QP_ATTR: size and field offsets in bytes, from C. */
export const QP_ATTR = {
  size: 36,
  max_send_wr: 0,
  max_recv_wr: 4,
  max_send_sge: 8,
  max_recv_sge: 12,
  max_inline_data: 16,
  max_rd_atomic: 20,
  max_dest_rd_atomic: 24,
  port_num: 28,
  sgid_index: 32,
} as const;

/** SRQ_ATTR: size and field offsets in bytes, from C. */
export const SRQ_ATTR = {
  size: 12,
  max_wr: 0,
  max_sge: 4,
  srq_limit: 8,
} as const;

/** ASYNC_EVENT: size and field offsets in bytes, from C. */
export const ASYNC_EVENT = {
  size: 24,
  event_type: 0,
  element: 4,
  number: 8,
  reserved: 12,
  handle: 16,
} as const;

/** EVENT_ELEMENT: values, from C. */
export const EVENT_ELEMENT = {
  QP: 1,
  CQ: 2,
  SRQ: 3,
  PORT: 4,
  DEVICE: 5,
  WQ: 6,
} as const;
