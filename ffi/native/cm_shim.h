/*
 * The connection-manager shim: librdmacm (rdma/rdma_cma.h) for Deno FFI.
 *
 * librdmacm takes and returns socket addresses and structs (struct rdma_conn_param, struct
 * rdma_cm_event) that TypeScript should not lay out itself, and reports failures through errno.
 * Conventions as in verbs_shim.h: functions returning a pointer return NULL on failure with the
 * cause in drc_last_errno(); functions returning int return 0 (or a count) on success and -errno
 * on failure. Event channels are made nonblocking when created, so reading an event never blocks
 * the caller; waiting for one is the verbs' one waiter's job (ffi/native/fd_waiter.c).
 */
#ifndef DENO_RDMA_CM_SHIM_H
#define DENO_RDMA_CM_SHIM_H

#include <stdint.h>

#include "records.h"

/* Private data an event carries at most (struct rdma_conn_param's private_data_len is a uint8_t).
 */
#define DRC_PRIVATE_DATA_MAX 255
/* Bytes of an address in text (INET6_ADDRSTRLEN is 46), NUL included. */
#define DRC_ADDRESS_BYTES 64
/*
 * drc_resolve_addr() and drc_listen() return -(DRC_GAI_FAILED + n) when getaddrinfo() failed with
 * EAI_* code -n; errno values stay below it. drc_gai_text() describes n.
 */
#define DRC_GAI_FAILED 8192

/* One CM event, copied out of struct rdma_cm_event by drc_get_event() before it is acknowledged. */
#define DRC_EVENT_FIELDS(FIELD, ctx)                                                         \
    FIELD(ctx, int32_t, event, )      /* enum rdma_cm_event_type */                          \
    FIELD(ctx, int32_t, status, )     /* event->status: -errno, or the CM's reject reason */ \
    FIELD(ctx, uint64_t, id, )        /* the struct rdma_cm_id * it is about */              \
    FIELD(ctx, uint64_t, listen_id, ) /* CONNECT_REQUEST: the listening id, else 0 */        \
    FIELD(ctx, uint32_t, private_data_len, )                                                 \
    FIELD(ctx, uint32_t, qp_num, )             /* UD and multicast: the remote queue pair */ \
    FIELD(ctx, uint32_t, qkey, )               /* UD and multicast */                        \
    FIELD(ctx, uint8_t, responder_resources, ) /* conn.responder_resources */                \
    FIELD(ctx, uint8_t, initiator_depth, )     /* conn.initiator_depth */                    \
    FIELD(ctx, uint16_t, reserved, )                                                         \
    /* UD and multicast: where to send (struct ibv_ah_attr, its GRH flattened) */            \
    FIELD(ctx, uint32_t, ah_flow_label, )                                                    \
    FIELD(ctx, uint16_t, ah_dlid, )                                                          \
    FIELD(ctx, uint8_t, ah_sl, )                                                             \
    FIELD(ctx, uint8_t, ah_port_num, )                                                       \
    FIELD(ctx, uint8_t, ah_is_global, )                                                      \
    FIELD(ctx, uint8_t, ah_sgid_index, )                                                     \
    FIELD(ctx, uint8_t, ah_hop_limit, )                                                      \
    FIELD(ctx, uint8_t, ah_traffic_class, )                                                  \
    FIELD(ctx, uint8_t, ah_dgid, [16])                                                       \
    FIELD(ctx, uint8_t, private_data, [DRC_PRIVATE_DATA_MAX + 1]) /* private_data_len bytes */
RECORD_STRUCT(drc_event_desc, DRC_EVENT_FIELDS);

/* What an id is bound to, filled by drc_id_info(). */
#define DRC_ID_FIELDS(FIELD, ctx)                                                       \
    FIELD(ctx, uint64_t, verbs, ) /* struct ibv_context *, 0 until bound to a device */ \
    FIELD(ctx, uint32_t, port_num, )                                                    \
    FIELD(ctx, uint16_t, local_port, )                    /* host byte order */         \
    FIELD(ctx, uint16_t, remote_port, )                   /* host byte order */         \
    FIELD(ctx, char, local_address, [DRC_ADDRESS_BYTES])  /* NUL-terminated text */     \
    FIELD(ctx, char, remote_address, [DRC_ADDRESS_BYTES]) /* NUL-terminated text */
RECORD_STRUCT(drc_id_desc, DRC_ID_FIELDS);

/* enum rdma_cm_event_type, as CONSTANT(set, name, value). */
#define DRC_EVENT_TYPES(CONSTANT)                                        \
    CONSTANT(CM_EVENT, ADDR_RESOLVED, RDMA_CM_EVENT_ADDR_RESOLVED)       \
    CONSTANT(CM_EVENT, ADDR_ERROR, RDMA_CM_EVENT_ADDR_ERROR)             \
    CONSTANT(CM_EVENT, ROUTE_RESOLVED, RDMA_CM_EVENT_ROUTE_RESOLVED)     \
    CONSTANT(CM_EVENT, ROUTE_ERROR, RDMA_CM_EVENT_ROUTE_ERROR)           \
    CONSTANT(CM_EVENT, CONNECT_REQUEST, RDMA_CM_EVENT_CONNECT_REQUEST)   \
    CONSTANT(CM_EVENT, CONNECT_RESPONSE, RDMA_CM_EVENT_CONNECT_RESPONSE) \
    CONSTANT(CM_EVENT, CONNECT_ERROR, RDMA_CM_EVENT_CONNECT_ERROR)       \
    CONSTANT(CM_EVENT, UNREACHABLE, RDMA_CM_EVENT_UNREACHABLE)           \
    CONSTANT(CM_EVENT, REJECTED, RDMA_CM_EVENT_REJECTED)                 \
    CONSTANT(CM_EVENT, ESTABLISHED, RDMA_CM_EVENT_ESTABLISHED)           \
    CONSTANT(CM_EVENT, DISCONNECTED, RDMA_CM_EVENT_DISCONNECTED)         \
    CONSTANT(CM_EVENT, DEVICE_REMOVAL, RDMA_CM_EVENT_DEVICE_REMOVAL)     \
    CONSTANT(CM_EVENT, MULTICAST_JOIN, RDMA_CM_EVENT_MULTICAST_JOIN)     \
    CONSTANT(CM_EVENT, MULTICAST_ERROR, RDMA_CM_EVENT_MULTICAST_ERROR)   \
    CONSTANT(CM_EVENT, ADDR_CHANGE, RDMA_CM_EVENT_ADDR_CHANGE)           \
    CONSTANT(CM_EVENT, TIMEWAIT_EXIT, RDMA_CM_EVENT_TIMEWAIT_EXIT)

/* enum rdma_port_space. */
#define DRC_PORT_SPACES(CONSTANT)          \
    CONSTANT(PORT_SPACE, TCP, RDMA_PS_TCP) \
    CONSTANT(PORT_SPACE, UDP, RDMA_PS_UDP) \
    CONSTANT(PORT_SPACE, IPOIB, RDMA_PS_IPOIB)

/* Single constants, as CONSTANT_VALUE(TypeScript name, value). */
#define DRC_CONSTANTS(CONSTANT)                         \
    CONSTANT(CM_PRIVATE_DATA_MAX, DRC_PRIVATE_DATA_MAX) \
    CONSTANT(CM_ADDRESS_BYTES, DRC_ADDRESS_BYTES)       \
    CONSTANT(CM_GAI_FAILED, DRC_GAI_FAILED)

#endif
