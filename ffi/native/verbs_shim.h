/*
 * The verbs shim: the part of libibverbs that Deno FFI cannot call directly, plus errno.
 *
 * libibverbs keeps its data path (post send/recv, poll CQ, request notification) and a few calls
 * (ibv_reg_mr, ibv_query_port) as static inline functions or macros, and Deno FFI cannot read errno.
 * Every call that can fail goes through this shim, which records errno on the calling thread before
 * anything else can clobber it (drv_last_errno).
 *
 * Conventions:
 *   - functions returning a pointer return NULL on failure; the cause is drv_last_errno();
 *   - functions returning int return 0 on success and -errno on failure (and record errno too);
 *   - struct layouts stay here: TypeScript passes scalars or one of the packed descriptors below,
 *     and the shim builds the ibv_* structs itself. Offsets are little-endian, fixed and checked by
 *     _Static_assert in verbs_shim.c; ffi/layout.ts mirrors them (and a host test compares the two
 *     through drv_layout_offset()).
 */
#ifndef DENO_RDMA_VERBS_SHIM_H
#define DENO_RDMA_VERBS_SHIM_H

#include <stdint.h>

/* Device list entry, filled by drv_device_info(). */
struct drv_device_desc {
	char name[64];          /*  0: NUL-terminated device name (IBV_SYSFS_NAME_MAX) */
	uint64_t guid;          /* 64: node GUID in host byte order */
	int32_t node_type;      /* 72: enum ibv_node_type */
	int32_t transport_type; /* 76: enum ibv_transport_type */
};                              /* 80 bytes */

/* Device attributes, filled by drv_query_device(). */
struct drv_device_attr_desc {
	char fw_ver[64];             /*   0 */
	uint64_t node_guid;          /*  64: host byte order */
	uint64_t sys_image_guid;     /*  72: host byte order */
	uint64_t max_mr_size;        /*  80 */
	uint64_t page_size_cap;      /*  88 */
	uint32_t vendor_id;          /*  96 */
	uint32_t vendor_part_id;     /* 100 */
	uint32_t hw_ver;             /* 104 */
	int32_t max_qp;              /* 108 */
	int32_t max_qp_wr;           /* 112 */
	int32_t max_sge;             /* 116 */
	int32_t max_cq;              /* 120 */
	int32_t max_cqe;             /* 124 */
	int32_t max_mr;              /* 128 */
	int32_t max_pd;              /* 132 */
	int32_t max_qp_rd_atom;      /* 136 */
	int32_t max_qp_init_rd_atom; /* 140 */
	int32_t atomic_cap;          /* 144: enum ibv_atomic_cap */
	int32_t max_ah;              /* 148 */
	uint32_t phys_port_cnt;      /* 152 */
	uint32_t reserved;           /* 156 */
};                                   /* 160 bytes */

/* Port attributes, filled by drv_query_port(). */
struct drv_port_attr_desc {
	uint32_t state;          /*  0: enum ibv_port_state */
	uint32_t max_mtu;        /*  4: enum ibv_mtu */
	uint32_t active_mtu;     /*  8: enum ibv_mtu */
	int32_t gid_tbl_len;     /* 12 */
	uint32_t port_cap_flags; /* 16 */
	uint32_t max_msg_sz;     /* 20 */
	uint16_t lid;            /* 24 */
	uint16_t sm_lid;         /* 26 */
	uint8_t lmc;             /* 28 */
	uint8_t link_layer;      /* 29: IBV_LINK_LAYER_* */
	uint8_t active_width;    /* 30 */
	uint8_t active_speed;    /* 31 */
	uint8_t phys_state;      /* 32 */
	uint8_t reserved[7];     /* 33 */
};                               /* 40 bytes */

/* GID table entry, filled by drv_query_gid(). */
struct drv_gid_desc {
	uint8_t gid[16];       /*  0: raw, network byte order */
	uint32_t gid_type;     /* 16: enum ibv_gid_type (IB, RoCE v1, RoCE v2) */
	uint32_t ndev_ifindex; /* 20: network device index, 0 if none */
};                             /* 24 bytes */

/*
 * Remote path: the address part of RTR and of an address handle. drv_modify_qp_rtr() reads all of
 * it; drv_create_ah() reads the address fields (dlid .. traffic_class).
 */
struct drv_path_desc {
	uint32_t dest_qpn;          /*  0: RC only */
	uint32_t rq_psn;            /*  4: RC only */
	uint16_t dlid;              /*  8 */
	uint8_t sl;                 /* 10 */
	uint8_t port_num;           /* 11 */
	uint8_t path_mtu;           /* 12: enum ibv_mtu, RC only */
	uint8_t is_global;          /* 13: 1 = add a GRH (required on RoCE) */
	uint8_t sgid_index;         /* 14 */
	uint8_t hop_limit;          /* 15 */
	uint8_t dgid[16];           /* 16: network byte order */
	uint32_t flow_label;        /* 32 */
	uint8_t traffic_class;      /* 36 */
	uint8_t max_dest_rd_atomic; /* 37: RC only */
	uint8_t min_rnr_timer;      /* 38: RC only */
	uint8_t reserved;           /* 39 */
};                                  /* 40 bytes */

/* One scatter/gather element, as in struct ibv_sge but with a fixed layout. */
struct drv_sge_desc {
	uint64_t addr;   /* 0 */
	uint32_t length; /* 8 */
	uint32_t lkey;   /* 12 */
};                       /* 16 bytes */

#define DRV_MAX_SGE 16

/* Most copies of one send descriptor that drv_post_send_chain() links into one post. */
#define DRV_MAX_CHAIN 64

/* One send work request (no chaining: one descriptor, one ibv_post_send). */
struct drv_send_desc {
	uint64_t wr_id;        /*  0 */
	uint32_t opcode;       /*  8: enum ibv_wr_opcode */
	uint32_t send_flags;   /* 12: enum ibv_send_flags */
	uint32_t imm_data;     /* 16: host byte order; the shim converts to network order */
	uint32_t num_sge;      /* 20: at most DRV_MAX_SGE */
	uint64_t remote_addr;  /* 24: RDMA and atomic operations */
	uint32_t rkey;         /* 32 */
	uint32_t remote_qpn;   /* 36: UD */
	uint64_t compare_add;  /* 40: atomic: the value to add, or the value to compare */
	uint64_t swap;         /* 48: atomic compare-and-swap: the new value */
	uint64_t ah;           /* 56: UD: struct ibv_ah * */
	uint32_t remote_qkey;  /* 64: UD */
	uint32_t reserved;     /* 68 */
	struct drv_sge_desc sg_list[DRV_MAX_SGE]; /* 72 */
};                                            /* 328 bytes */

/* One receive work request. */
struct drv_recv_desc {
	uint64_t wr_id;    /*  0 */
	uint32_t num_sge;  /*  8: at most DRV_MAX_SGE */
	uint32_t reserved; /* 12 */
	struct drv_sge_desc sg_list[DRV_MAX_SGE]; /* 16 */
};                                            /* 272 bytes */

/* One work completion, written by drv_poll_cq(). */
struct drv_wc_desc {
	uint64_t wr_id;         /*  0 */
	uint32_t status;        /*  8: enum ibv_wc_status */
	uint32_t opcode;        /* 12: enum ibv_wc_opcode */
	uint32_t vendor_err;    /* 16 */
	uint32_t byte_len;      /* 20 */
	uint32_t imm_data;      /* 24: host byte order (valid when wc_flags has IBV_WC_WITH_IMM) */
	uint32_t qp_num;        /* 28 */
	uint32_t src_qp;        /* 32 */
	uint32_t wc_flags;      /* 36 */
	uint16_t pkey_index;    /* 40 */
	uint16_t slid;          /* 42 */
	uint8_t sl;             /* 44 */
	uint8_t dlid_path_bits; /* 45 */
	uint16_t reserved;      /* 46 */
};                              /* 48 bytes */

/*
 * drv_poll_cq_checked() returns -(DRV_POLL_FAILED + n) when at least one of the n completions it
 * polled did not succeed; errno values stay below it, so -errno and this never overlap.
 */
#define DRV_POLL_FAILED 4096

#endif
