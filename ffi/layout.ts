/**
 * Byte layouts of the shim's packed descriptors; the C side is `ffi/native/verbs_shim.h`.
 * All fields are little-endian. A host test compares these numbers with the shim's own
 * `drv_layout_description()`.
 *
 * @module
 */

/** Most scatter/gather elements in one work request descriptor (DRV_MAX_SGE). */
export const MAX_SGE = 16;

/** Most copies of one send descriptor posted as one chain (DRV_MAX_CHAIN). */
export const MAX_CHAIN = 64;

export const DEVICE = { size: 80, name: 0, guid: 64, node_type: 72, transport_type: 76 } as const;

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
} as const;

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
} as const;

export const GID = { size: 24, gid: 0, gid_type: 16, ndev_ifindex: 20 } as const;

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
} as const;

export const SGE = { size: 16, addr: 0, length: 8, lkey: 12 } as const;

export const SEND = {
  size: 72 + SGE.size * MAX_SGE,
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
  sg_list: 72,
} as const;

export const RECV = { size: 16 + SGE.size * MAX_SGE, wr_id: 0, num_sge: 8, sg_list: 16 } as const;

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
} as const;

/** Every layout by the name the shim's self-description uses. */
export const LAYOUTS: Record<string, Record<string, number>> = {
  device: DEVICE,
  device_attr: DEVICE_ATTR,
  port_attr: PORT_ATTR,
  gid: GID,
  path: PATH,
  sge: SGE,
  send: SEND,
  recv: RECV,
  wc: WC,
};
