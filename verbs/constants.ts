/**
 * Numeric constants of libibverbs (values as in <infiniband/verbs.h>), as frozen objects.
 *
 * @module
 */

/** IBV_ACCESS_* bits for memory regions and queue pairs. */
export const Access = Object.freeze(
  {
    LOCAL_WRITE: 1,
    REMOTE_WRITE: 1 << 1,
    REMOTE_READ: 1 << 2,
    REMOTE_ATOMIC: 1 << 3,
    MW_BIND: 1 << 4,
    ZERO_BASED: 1 << 5,
    ON_DEMAND: 1 << 6,
    HUGETLB: 1 << 7,
    RELAXED_ORDERING: 1 << 20,
  } as const,
);

/** Every Access bit together; anything else is rejected. */
export const ACCESS_MASK = Object.values(Access).reduce((a, b) => a | b, 0);

/** enum ibv_mtu. */
export const Mtu = Object.freeze(
  {
    MTU_256: 1,
    MTU_512: 2,
    MTU_1024: 3,
    MTU_2048: 4,
    MTU_4096: 5,
  } as const,
);

/** Bytes of an enum ibv_mtu value (0 for an unknown value). */
export function mtuBytes(mtu: number): number {
  return mtu >= 1 && mtu <= 5 ? 128 << mtu : 0;
}

/** enum ibv_qp_type (the types this library supports). */
export const QpType = Object.freeze({ RC: 2, UC: 3, UD: 4 } as const);

/** enum ibv_qp_state. */
export const QpState = Object.freeze(
  {
    RESET: 0,
    INIT: 1,
    RTR: 2,
    RTS: 3,
    SQD: 4,
    SQE: 5,
    ERR: 6,
  } as const,
);

/** enum ibv_wr_opcode. */
export const WrOpcode = Object.freeze(
  {
    RDMA_WRITE: 0,
    RDMA_WRITE_WITH_IMM: 1,
    SEND: 2,
    SEND_WITH_IMM: 3,
    RDMA_READ: 4,
    ATOMIC_CMP_AND_SWP: 5,
    ATOMIC_FETCH_AND_ADD: 6,
  } as const,
);

/** enum ibv_send_flags. */
export const SendFlags = Object.freeze(
  {
    FENCE: 1,
    SIGNALED: 1 << 1,
    SOLICITED: 1 << 2,
    INLINE: 1 << 3,
  } as const,
);

/** enum ibv_wc_status (the common values; others are reported by number). */
export const WcStatus = Object.freeze(
  {
    SUCCESS: 0,
    LOC_LEN_ERR: 1,
    LOC_QP_OP_ERR: 2,
    LOC_EEC_OP_ERR: 3,
    LOC_PROT_ERR: 4,
    WR_FLUSH_ERR: 5,
    MW_BIND_ERR: 6,
    BAD_RESP_ERR: 7,
    LOC_ACCESS_ERR: 8,
    REM_INV_REQ_ERR: 9,
    REM_ACCESS_ERR: 10,
    REM_OP_ERR: 11,
    RETRY_EXC_ERR: 12,
    RNR_RETRY_EXC_ERR: 13,
    LOC_RDD_VIOL_ERR: 14,
    REM_INV_RD_REQ_ERR: 15,
    REM_ABORT_ERR: 16,
    INV_EECN_ERR: 17,
    INV_EEC_STATE_ERR: 18,
    FATAL_ERR: 19,
    RESP_TIMEOUT_ERR: 20,
    GENERAL_ERR: 21,
  } as const,
);

/** Name of an enum ibv_wc_status value, e.g. "REM_ACCESS_ERR". */
export function wcStatusName(status: number): string {
  for (const [name, value] of Object.entries(WcStatus)) if (value === status) return name;
  return `STATUS_${status}`;
}

/** enum ibv_wc_opcode. */
export const WcOpcode = Object.freeze(
  {
    SEND: 0,
    RDMA_WRITE: 1,
    RDMA_READ: 2,
    COMP_SWAP: 3,
    FETCH_ADD: 4,
    BIND_MW: 5,
    LOCAL_INV: 6,
    TSO: 7,
    RECV: 128,
    RECV_RDMA_WITH_IMM: 129,
  } as const,
);

/** enum ibv_wc_flags. */
export const WcFlags = Object.freeze(
  {
    GRH: 1,
    WITH_IMM: 1 << 1,
    IP_CSUM_OK: 1 << 2,
    WITH_INV: 1 << 3,
  } as const,
);

/** enum ibv_port_state. */
export const PortState = Object.freeze(
  {
    NOP: 0,
    DOWN: 1,
    INIT: 2,
    ARMED: 3,
    ACTIVE: 4,
    ACTIVE_DEFER: 5,
  } as const,
);

/** IBV_LINK_LAYER_*. */
export const LinkLayer = Object.freeze({ UNSPECIFIED: 0, INFINIBAND: 1, ETHERNET: 2 } as const);

/** enum ibv_node_type, by name. */
export const NODE_TYPES: Readonly<Record<number, string>> = Object.freeze({
  [-1]: "unknown",
  1: "ca",
  2: "switch",
  3: "router",
  4: "rnic",
  5: "usnic",
  6: "usnic-udp",
  7: "unspecified",
});

/** enum ibv_transport_type, by name. */
export const TRANSPORT_TYPES: Readonly<Record<number, string>> = Object.freeze({
  [-1]: "unknown",
  0: "ib",
  1: "iwarp",
  2: "usnic",
  3: "usnic-udp",
  4: "unspecified",
});

/** enum ibv_gid_type (as reported by ibv_query_gid_ex), by name. */
export const GID_TYPES: Readonly<Record<number, string>> = Object.freeze({
  0: "ib",
  1: "roce-v1",
  2: "roce-v2",
});

/** The 40-byte GRH that UD receive buffers reserve in front of the payload. */
export const GRH_BYTES = 40;

/** The qkey to use for UD when nothing else is agreed (any value both ends share works). */
export const DEFAULT_QKEY = 0x11111111;
