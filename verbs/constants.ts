/**
 * Numeric constants of libibverbs (values as in <infiniband/verbs.h>), as frozen objects.
 *
 * @module
 */

/** IBV_ACCESS_* bits for memory regions and queue pairs. */
export const Access: {
  /** Local writes by the device (receives, RDMA READ results); needed by REMOTE_WRITE/ATOMIC. */
  readonly LOCAL_WRITE: 1;
  /** Peers may RDMA WRITE into the memory (1 << 1). */
  readonly REMOTE_WRITE: number;
  /** Peers may RDMA READ the memory (1 << 2). */
  readonly REMOTE_READ: number;
  /** Peers may run atomic operations on the memory (1 << 3). */
  readonly REMOTE_ATOMIC: number;
  /** Memory windows may be bound to the region (1 << 4). */
  readonly MW_BIND: number;
  /** Remote addresses are offsets from the region's start (1 << 5). */
  readonly ZERO_BASED: number;
  /** On-demand paging: the pages are not pinned at registration (1 << 6). */
  readonly ON_DEMAND: number;
  /** Huge pages back the region; with ON_DEMAND only (1 << 7). */
  readonly HUGETLB: number;
  /** The device may relax the order of its writes to the memory (1 << 20). */
  readonly RELAXED_ORDERING: number;
} = Object.freeze(
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
export const Mtu: {
  readonly MTU_256: 1;
  readonly MTU_512: 2;
  readonly MTU_1024: 3;
  readonly MTU_2048: 4;
  readonly MTU_4096: 5;
} = Object.freeze(
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
export const QpType: {
  /** Reliable connected. */
  readonly RC: 2;
  /** Unreliable connected. */
  readonly UC: 3;
  /** Unreliable datagram. */
  readonly UD: 4;
} = Object.freeze({ RC: 2, UC: 3, UD: 4 } as const);

/** enum ibv_qp_state. */
export const QpState: {
  readonly RESET: 0;
  readonly INIT: 1;
  /** Ready to receive. */
  readonly RTR: 2;
  /** Ready to send. */
  readonly RTS: 3;
  /** Send queue drained. */
  readonly SQD: 4;
  /** Send queue error. */
  readonly SQE: 5;
  readonly ERR: 6;
} = Object.freeze(
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
export const WrOpcode: {
  readonly RDMA_WRITE: 0;
  readonly RDMA_WRITE_WITH_IMM: 1;
  readonly SEND: 2;
  readonly SEND_WITH_IMM: 3;
  readonly RDMA_READ: 4;
  readonly ATOMIC_CMP_AND_SWP: 5;
  readonly ATOMIC_FETCH_AND_ADD: 6;
} = Object.freeze(
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
export const SendFlags: {
  /** Start only after earlier RDMA READs and atomics of the queue pair have completed. */
  readonly FENCE: 1;
  /** Produce a completion even when the queue pair does not signal every send (1 << 1). */
  readonly SIGNALED: number;
  /** Set the solicited event bit: wakes a peer that waits for solicited completions (1 << 2). */
  readonly SOLICITED: number;
  /** Copy the payload into the request: no lkey is used, the buffer is free at once (1 << 3). */
  readonly INLINE: number;
} = Object.freeze(
  {
    FENCE: 1,
    SIGNALED: 1 << 1,
    SOLICITED: 1 << 2,
    INLINE: 1 << 3,
  } as const,
);

/** enum ibv_wc_status (the common values; others are reported by number). */
export const WcStatus: {
  readonly SUCCESS: 0;
  readonly LOC_LEN_ERR: 1;
  readonly LOC_QP_OP_ERR: 2;
  readonly LOC_EEC_OP_ERR: 3;
  readonly LOC_PROT_ERR: 4;
  /** Flushed without running: the queue pair is in ERR (toError(), or an earlier error). */
  readonly WR_FLUSH_ERR: 5;
  readonly MW_BIND_ERR: 6;
  readonly BAD_RESP_ERR: 7;
  readonly LOC_ACCESS_ERR: 8;
  readonly REM_INV_REQ_ERR: 9;
  readonly REM_ACCESS_ERR: 10;
  readonly REM_OP_ERR: 11;
  /** No acknowledgement from the peer within `timeout`, `retryCount` times over. */
  readonly RETRY_EXC_ERR: 12;
  /** The peer had no receive posted (RNR NAK), `rnrRetry` times over. */
  readonly RNR_RETRY_EXC_ERR: 13;
  readonly LOC_RDD_VIOL_ERR: 14;
  readonly REM_INV_RD_REQ_ERR: 15;
  readonly REM_ABORT_ERR: 16;
  readonly INV_EECN_ERR: 17;
  readonly INV_EEC_STATE_ERR: 18;
  readonly FATAL_ERR: 19;
  readonly RESP_TIMEOUT_ERR: 20;
  readonly GENERAL_ERR: 21;
} = Object.freeze(
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
export const WcOpcode: {
  readonly SEND: 0;
  readonly RDMA_WRITE: 1;
  readonly RDMA_READ: 2;
  readonly COMP_SWAP: 3;
  readonly FETCH_ADD: 4;
  readonly BIND_MW: 5;
  readonly LOCAL_INV: 6;
  readonly TSO: 7;
  /** A receive completed (the peer's SEND or SEND_WITH_IMM). */
  readonly RECV: 128;
  /** A receive consumed by the peer's RDMA_WRITE_WITH_IMM. */
  readonly RECV_RDMA_WITH_IMM: 129;
} = Object.freeze(
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
export const WcFlags: {
  /** A GRH is present: the first 40 bytes of a UD receive buffer hold it. */
  readonly GRH: 1;
  /** `immData` holds immediate data (1 << 1). */
  readonly WITH_IMM: number;
  /** The device verified the IP checksum (1 << 2). */
  readonly IP_CSUM_OK: number;
  /** A received SEND_WITH_INV invalidated a local rkey (1 << 3). */
  readonly WITH_INV: number;
} = Object.freeze(
  {
    GRH: 1,
    WITH_IMM: 1 << 1,
    IP_CSUM_OK: 1 << 2,
    WITH_INV: 1 << 3,
  } as const,
);

/** enum ibv_port_state. */
export const PortState: {
  readonly NOP: 0;
  /** The link is down. */
  readonly DOWN: 1;
  /** The link is up; the subnet manager has not activated the port yet. */
  readonly INIT: 2;
  readonly ARMED: 3;
  /** The port can carry traffic. */
  readonly ACTIVE: 4;
  readonly ACTIVE_DEFER: 5;
} = Object.freeze(
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
export const LinkLayer: {
  /** Not reported (older drivers); treated as InfiniBand. */
  readonly UNSPECIFIED: 0;
  readonly INFINIBAND: 1;
  /** RoCE. */
  readonly ETHERNET: 2;
} = Object.freeze({ UNSPECIFIED: 0, INFINIBAND: 1, ETHERNET: 2 } as const);

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
