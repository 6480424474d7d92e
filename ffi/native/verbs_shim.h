/*
 * The verbs shim: the part of libibverbs that Deno FFI cannot call directly, plus errno.
 *
 * libibverbs keeps its data path (post send/recv, poll CQ, request notification) and a few calls
 * (ibv_reg_mr, ibv_query_port) as static inline functions or macros, and Deno FFI cannot read
 * errno. Every call that can fail goes through this shim, which records errno on the calling thread
 * before anything else can clobber it (drv_last_errno).
 *
 * Conventions:
 *   - functions returning a pointer return NULL on failure; the cause is drv_last_errno();
 *   - functions returning int return 0 on success and -errno on failure (and record errno too);
 *   - struct layouts stay here: TypeScript passes scalars or one of the packed descriptors below,
 *     and the shim builds the ibv_* structs itself. Each descriptor is a field list (records.h),
 *     the one source of its layout: `deno task build` writes ffi/records/verbs.ts from what
 *     drv_records() reports, and a host test fails when that file is out of date.
 */
#ifndef DENO_RDMA_VERBS_SHIM_H
#define DENO_RDMA_VERBS_SHIM_H

#include <stdint.h>

#include "records.h"

#define EXPORT __attribute__((visibility("default")))

/* Bytes of a device name (IBV_SYSFS_NAME_MAX), of a firmware version (struct ibv_device_attr's
 * fw_ver) and of a GID. */
#define DRV_DEVICE_NAME_BYTES 64
#define DRV_FW_VER_BYTES 64
#define DRV_GID_BYTES 16

/* Device list entry, filled by drv_device_info(). */
#define DRV_DEVICE_FIELDS(FIELD, ctx)                                                  \
    FIELD(ctx, char, name, [DRV_DEVICE_NAME_BYTES]) /* NUL-terminated device name */   \
    FIELD(ctx, uint64_t, guid, )                    /* node GUID in host byte order */ \
    FIELD(ctx, int32_t, node_type, )                /* enum ibv_node_type */           \
    FIELD(ctx, int32_t, transport_type, )           /* enum ibv_transport_type */
RECORD_STRUCT(drv_device_desc, DRV_DEVICE_FIELDS);

/* Device attributes, filled by drv_query_device(). */
#define DRV_DEVICE_ATTR_FIELDS(FIELD, ctx)                             \
    FIELD(ctx, char, fw_ver, [DRV_FW_VER_BYTES]) /* NUL-terminated */  \
    FIELD(ctx, uint64_t, node_guid, )            /* host byte order */ \
    FIELD(ctx, uint64_t, sys_image_guid, )       /* host byte order */ \
    FIELD(ctx, uint64_t, max_mr_size, )                                \
    FIELD(ctx, uint64_t, page_size_cap, )                              \
    FIELD(ctx, uint32_t, vendor_id, )                                  \
    FIELD(ctx, uint32_t, vendor_part_id, )                             \
    FIELD(ctx, uint32_t, hw_ver, )                                     \
    FIELD(ctx, int32_t, max_qp, )                                      \
    FIELD(ctx, int32_t, max_qp_wr, )                                   \
    FIELD(ctx, int32_t, max_sge, )                                     \
    FIELD(ctx, int32_t, max_cq, )                                      \
    FIELD(ctx, int32_t, max_cqe, )                                     \
    FIELD(ctx, int32_t, max_mr, )                                      \
    FIELD(ctx, int32_t, max_pd, )                                      \
    FIELD(ctx, int32_t, max_qp_rd_atom, )                              \
    FIELD(ctx, int32_t, max_qp_init_rd_atom, )                         \
    FIELD(ctx, int32_t, atomic_cap, ) /* enum ibv_atomic_cap */        \
    FIELD(ctx, int32_t, max_ah, )                                      \
    FIELD(ctx, uint32_t, phys_port_cnt, )                              \
    FIELD(ctx, uint32_t, reserved, )
RECORD_STRUCT(drv_device_attr_desc, DRV_DEVICE_ATTR_FIELDS);

/* Port attributes, filled by drv_query_port(). */
#define DRV_PORT_ATTR_FIELDS(FIELD, ctx)                         \
    FIELD(ctx, uint32_t, state, )      /* enum ibv_port_state */ \
    FIELD(ctx, uint32_t, max_mtu, )    /* enum ibv_mtu */        \
    FIELD(ctx, uint32_t, active_mtu, ) /* enum ibv_mtu */        \
    FIELD(ctx, int32_t, gid_tbl_len, )                           \
    FIELD(ctx, uint32_t, port_cap_flags, )                       \
    FIELD(ctx, uint32_t, max_msg_sz, )                           \
    FIELD(ctx, uint16_t, lid, )                                  \
    FIELD(ctx, uint16_t, sm_lid, )                               \
    FIELD(ctx, uint8_t, lmc, )                                   \
    FIELD(ctx, uint8_t, link_layer, ) /* IBV_LINK_LAYER_* */     \
    FIELD(ctx, uint8_t, active_width, )                          \
    FIELD(ctx, uint8_t, active_speed, )                          \
    FIELD(ctx, uint8_t, phys_state, )                            \
    FIELD(ctx, uint8_t, reserved, [7])
RECORD_STRUCT(drv_port_attr_desc, DRV_PORT_ATTR_FIELDS);

/* GID table entry, filled by drv_query_gid(). */
#define DRV_GID_FIELDS(FIELD, ctx)                                                           \
    FIELD(ctx, uint8_t, gid, [DRV_GID_BYTES]) /* raw, network byte order */                  \
    FIELD(ctx, uint32_t, gid_type, )          /* enum ibv_gid_type (IB, RoCE v1, RoCE v2) */ \
    FIELD(ctx, uint32_t, ndev_ifindex, )      /* network device index, 0 if none */
RECORD_STRUCT(drv_gid_desc, DRV_GID_FIELDS);

/*
 * Remote path: the address part of RTR and of an address handle. drv_modify_qp_rtr() reads all of
 * it; drv_create_ah() reads the address fields (dlid .. traffic_class).
 */
#define DRV_PATH_FIELDS(FIELD, ctx)                                         \
    FIELD(ctx, uint32_t, dest_qpn, ) /* RC only */                          \
    FIELD(ctx, uint32_t, rq_psn, )   /* RC only */                          \
    FIELD(ctx, uint16_t, dlid, )                                            \
    FIELD(ctx, uint8_t, sl, )                                               \
    FIELD(ctx, uint8_t, port_num, )                                         \
    FIELD(ctx, uint8_t, path_mtu, )  /* enum ibv_mtu, RC only */            \
    FIELD(ctx, uint8_t, is_global, ) /* 1 = add a GRH (required on RoCE) */ \
    FIELD(ctx, uint8_t, sgid_index, )                                       \
    FIELD(ctx, uint8_t, hop_limit, )                                        \
    FIELD(ctx, uint8_t, dgid, [DRV_GID_BYTES]) /* network byte order */     \
    FIELD(ctx, uint32_t, flow_label, )                                      \
    FIELD(ctx, uint8_t, traffic_class, )                                    \
    FIELD(ctx, uint8_t, max_dest_rd_atomic, ) /* RC only */                 \
    FIELD(ctx, uint8_t, min_rnr_timer, )      /* RC only */                 \
    FIELD(ctx, uint8_t, reserved, )
RECORD_STRUCT(drv_path_desc, DRV_PATH_FIELDS);

/* One scatter/gather element, as in struct ibv_sge but with a fixed layout. */
#define DRV_SGE_FIELDS(FIELD, ctx) \
    FIELD(ctx, uint64_t, addr, )   \
    FIELD(ctx, uint32_t, length, ) \
    FIELD(ctx, uint32_t, lkey, )
RECORD_STRUCT(drv_sge_desc, DRV_SGE_FIELDS);

#define DRV_MAX_SGE 16

/* Most copies of one send descriptor that drv_post_send_chain() links into one post. */
#define DRV_MAX_CHAIN 64

/* One send work request (no chaining: one descriptor, one ibv_post_send). */
#define DRV_SEND_FIELDS(FIELD, ctx)                                                               \
    FIELD(ctx, uint64_t, wr_id, )                                                                 \
    FIELD(ctx, uint32_t, opcode, )      /* enum ibv_wr_opcode */                                  \
    FIELD(ctx, uint32_t, send_flags, )  /* enum ibv_send_flags */                                 \
    FIELD(ctx, uint32_t, imm_data, )    /* host byte order; the shim converts to network order */ \
    FIELD(ctx, uint32_t, num_sge, )     /* at most DRV_MAX_SGE */                                 \
    FIELD(ctx, uint64_t, remote_addr, ) /* RDMA and atomic operations */                          \
    FIELD(ctx, uint32_t, rkey, )                                                                  \
    FIELD(ctx, uint32_t, remote_qpn, )  /* UD */                                                  \
    FIELD(ctx, uint64_t, compare_add, ) /* atomic: the value to add, or the value to compare */   \
    FIELD(ctx, uint64_t, swap, )        /* atomic compare-and-swap: the new value */              \
    FIELD(ctx, uint64_t, ah, )          /* UD: struct ibv_ah * */                                 \
    FIELD(ctx, uint32_t, remote_qkey, ) /* UD */                                                  \
    FIELD(ctx, uint32_t, reserved, )                                                              \
    FIELD(ctx, struct drv_sge_desc, sg_list, [DRV_MAX_SGE])
RECORD_STRUCT(drv_send_desc, DRV_SEND_FIELDS);

/* One receive work request. */
#define DRV_RECV_FIELDS(FIELD, ctx)                           \
    FIELD(ctx, uint64_t, wr_id, )                             \
    FIELD(ctx, uint32_t, num_sge, ) /* at most DRV_MAX_SGE */ \
    FIELD(ctx, uint32_t, reserved, )                          \
    FIELD(ctx, struct drv_sge_desc, sg_list, [DRV_MAX_SGE])
RECORD_STRUCT(drv_recv_desc, DRV_RECV_FIELDS);

/* One work completion, written by drv_poll_cq(). */
#define DRV_WC_FIELDS(FIELD, ctx)                                                     \
    FIELD(ctx, uint64_t, wr_id, )                                                     \
    FIELD(ctx, uint32_t, status, ) /* enum ibv_wc_status */                           \
    FIELD(ctx, uint32_t, opcode, ) /* enum ibv_wc_opcode */                           \
    FIELD(ctx, uint32_t, vendor_err, )                                                \
    FIELD(ctx, uint32_t, byte_len, )                                                  \
    FIELD(ctx, uint32_t,                                                              \
          imm_data, ) /* host byte order (valid when wc_flags has IBV_WC_WITH_IMM) */ \
    FIELD(ctx, uint32_t, qp_num, )                                                    \
    FIELD(ctx, uint32_t, src_qp, )                                                    \
    FIELD(ctx, uint32_t, wc_flags, )                                                  \
    FIELD(ctx, uint16_t, pkey_index, )                                                \
    FIELD(ctx, uint16_t, slid, )                                                      \
    FIELD(ctx, uint8_t, sl, )                                                         \
    FIELD(ctx, uint8_t, dlid_path_bits, )                                             \
    FIELD(ctx, uint16_t, reserved, )
RECORD_STRUCT(drv_wc_desc, DRV_WC_FIELDS);

/*
 * A queue pair's capacities (what the provider gave, which may exceed what was asked), its
 * read/atomic depths and its path's port and source GID index, filled by drv_query_qp_attributes().
 */
#define DRV_QP_ATTR_FIELDS(FIELD, ctx)                                          \
    FIELD(ctx, uint32_t, max_send_wr, )                                         \
    FIELD(ctx, uint32_t, max_recv_wr, )                                         \
    FIELD(ctx, uint32_t, max_send_sge, )                                        \
    FIELD(ctx, uint32_t, max_recv_sge, )                                        \
    FIELD(ctx, uint32_t, max_inline_data, )                                     \
    FIELD(ctx, uint32_t, max_rd_atomic, )      /* as initiator; 0 before RTS */ \
    FIELD(ctx, uint32_t, max_dest_rd_atomic, ) /* as responder; 0 before RTR */ \
    FIELD(ctx, uint32_t, port_num, )           /* 0 before INIT */              \
    FIELD(ctx, uint32_t, sgid_index, )         /* the path's source GID index (RC/UC, RTR) */
RECORD_STRUCT(drv_qp_attr_desc, DRV_QP_ATTR_FIELDS);

/* A shared receive queue's size and armed limit, filled by drv_query_srq(). */
#define DRV_SRQ_ATTR_FIELDS(FIELD, ctx) \
    FIELD(ctx, uint32_t, max_wr, )      \
    FIELD(ctx, uint32_t, max_sge, )     \
    FIELD(ctx, uint32_t, srq_limit, ) /* 0 when not armed */
RECORD_STRUCT(drv_srq_attr_desc, DRV_SRQ_ATTR_FIELDS);

/* What an asynchronous event concerns (drv_async_event_desc.element). */
enum drv_event_element {
    DRV_EVENT_QP = 1,
    DRV_EVENT_CQ = 2,
    DRV_EVENT_SRQ = 3,
    DRV_EVENT_PORT = 4,
    DRV_EVENT_DEVICE = 5,
    DRV_EVENT_WQ = 6,
};

/* The same as a constant set, CONSTANT(set, TypeScript name, value). */
#define DRV_EVENT_ELEMENTS(CONSTANT)                  \
    CONSTANT(EVENT_ELEMENT, QP, DRV_EVENT_QP)         \
    CONSTANT(EVENT_ELEMENT, CQ, DRV_EVENT_CQ)         \
    CONSTANT(EVENT_ELEMENT, SRQ, DRV_EVENT_SRQ)       \
    CONSTANT(EVENT_ELEMENT, PORT, DRV_EVENT_PORT)     \
    CONSTANT(EVENT_ELEMENT, DEVICE, DRV_EVENT_DEVICE) \
    CONSTANT(EVENT_ELEMENT, WQ, DRV_EVENT_WQ)

/* One asynchronous event of a device, filled by drv_take_async_event(). */
#define DRV_ASYNC_EVENT_FIELDS(FIELD, ctx)                                                       \
    FIELD(ctx, uint32_t, event_type, ) /* enum ibv_event_type */                                 \
    FIELD(ctx, uint32_t, element, )    /* enum drv_event_element */                              \
    FIELD(ctx, uint32_t, number, ) /* the queue pair's number (QP) or the port's (PORT), or 0 */ \
    FIELD(ctx, uint32_t, reserved, )                                                             \
    FIELD(ctx, uint64_t, handle, ) /* the address of the struct ibv_cq, ibv_srq or ibv_wq, or 0 */
RECORD_STRUCT(drv_async_event_desc, DRV_ASYNC_EVENT_FIELDS);

/* The constants TypeScript needs, as CONSTANT_VALUE(TypeScript name, value). */
#define DRV_CONSTANTS(CONSTANT)                        \
    CONSTANT(MAX_SGE, DRV_MAX_SGE)                     \
    CONSTANT(MAX_CHAIN, DRV_MAX_CHAIN)                 \
    CONSTANT(POLL_FAILED, DRV_POLL_FAILED)             \
    CONSTANT(DEVICE_NAME_BYTES, DRV_DEVICE_NAME_BYTES) \
    CONSTANT(FW_VER_BYTES, DRV_FW_VER_BYTES)           \
    CONSTANT(GID_BYTES, DRV_GID_BYTES)

/*
 * drv_poll_cq_checked() returns -(DRV_POLL_FAILED + n) when at least one of the n completions it
 * polled did not succeed; errno values stay below it, so -errno and this never overlap.
 */
#define DRV_POLL_FAILED 4096

#endif
