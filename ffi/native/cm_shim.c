/*
 * The connection-manager shim (see cm_shim.h for conventions and records).
 */
#include "cm_shim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <rdma/rdma_cma.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* errno of the last failed shim call on this thread: Deno FFI cannot read errno itself. */
static _Thread_local int last_errno;

static int fail(int err)
{
    last_errno = err > 0 ? err : EIO;
    return -last_errno;
}

EXPORT int drc_last_errno(void)
{
    return last_errno;
}

/* clang-format off */
static const struct record_entry records[] = {
    RECORD_ENTRIES(CM_EVENT_DESC, drc_event_desc, DRC_EVENT_FIELDS)
    RECORD_ENTRIES(CM_ID_DESC, drc_id_desc, DRC_ID_FIELDS)
    DRC_EVENT_TYPES(CONSTANT_ENTRY)
    DRC_PORT_SPACES(CONSTANT_ENTRY)
    DRC_CONSTANTS(CONSTANT_VALUE)
};
/* clang-format on */

EXPORT const char *drc_records(void)
{
    static char text[4096];
    if (!text[0] && !records_text(records, sizeof records / sizeof records[0], text, sizeof text))
        return "";
    return text;
}

/* What getaddrinfo's error -n (an EAI_* value is negative) means. */
EXPORT const char *drc_gai_text(int32_t n)
{
    return gai_strerror(-n);
}

/* ---------- event channels ---------- */

/* An event channel whose fd is nonblocking: drc_get_event() then never blocks. */
EXPORT struct rdma_event_channel *drc_create_channel(void)
{
    struct rdma_event_channel *channel = rdma_create_event_channel();
    if (!channel) {
        fail(errno);
        return NULL;
    }
    int flags = fcntl(channel->fd, F_GETFL);
    if (flags < 0 || fcntl(channel->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int err = errno;
        rdma_destroy_event_channel(channel);
        fail(err);
        return NULL;
    }
    return channel;
}

EXPORT int drc_destroy_channel(struct rdma_event_channel *channel)
{
    rdma_destroy_event_channel(channel);
    return 0;
}

/* The channel's descriptor (nonblocking), for the one waiter (fd_waiter.c) to watch. */
EXPORT int32_t drc_channel_fd(struct rdma_event_channel *channel)
{
    return channel->fd;
}

/*
 * Reads one event, copies it into `out` and acknowledges it at once: rdma_destroy_id() and
 * rdma_migrate_id() wait until every event of their id is acknowledged, so none may stay out.
 * Returns 1 (an event), 0 (none pending) or -errno.
 */
EXPORT int32_t drc_get_event(struct rdma_event_channel *channel, struct drc_event_desc *out)
{
    struct rdma_cm_event *event = NULL;
    if (rdma_get_cm_event(channel, &event))
        return errno == EAGAIN ? 0 : fail(errno);
    memset(out, 0, sizeof *out);
    out->event = event->event;
    out->status = event->status;
    out->id = (uint64_t)(uintptr_t)event->id;
    out->listen_id = (uint64_t)(uintptr_t)event->listen_id;
    const void *data = NULL;
    uint8_t len = 0;
    if (event->id && (event->id->ps == RDMA_PS_UDP || event->id->ps == RDMA_PS_IPOIB)) {
        data = event->param.ud.private_data;
        len = event->param.ud.private_data_len;
        out->qp_num = event->param.ud.qp_num;
        out->qkey = event->param.ud.qkey;
        const struct ibv_ah_attr *ah = &event->param.ud.ah_attr;
        out->ah_dlid = ah->dlid;
        out->ah_sl = ah->sl;
        out->ah_port_num = ah->port_num;
        out->ah_is_global = ah->is_global;
        out->ah_sgid_index = ah->grh.sgid_index;
        out->ah_hop_limit = ah->grh.hop_limit;
        out->ah_traffic_class = ah->grh.traffic_class;
        out->ah_flow_label = ah->grh.flow_label;
        memcpy(out->ah_dgid, ah->grh.dgid.raw, sizeof out->ah_dgid);
    } else {
        data = event->param.conn.private_data;
        len = event->param.conn.private_data_len;
        out->responder_resources = event->param.conn.responder_resources;
        out->initiator_depth = event->param.conn.initiator_depth;
    }
    if (data && len) {
        memcpy(out->private_data, data, len);
        out->private_data_len = len;
    }
    rdma_ack_cm_event(event);
    return 1;
}

/* ---------- ids ---------- */

/* An id in `port_space` (RDMA_PS_TCP: RC connections; RDMA_PS_UDP: UD) reporting to `channel`. */
EXPORT struct rdma_cm_id *drc_create_id(struct rdma_event_channel *channel, int32_t port_space)
{
    struct rdma_cm_id *id = NULL;
    if (rdma_create_id(channel, &id, NULL, (enum rdma_port_space)port_space)) {
        fail(errno);
        return NULL;
    }
    return id;
}

EXPORT int drc_destroy_id(struct rdma_cm_id *id)
{
    return rdma_destroy_id(id) ? fail(errno) : 0;
}

/* Moves `id`'s future events to `channel` (waits until its past ones are acknowledged: all are). */
EXPORT int drc_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *channel)
{
    return rdma_migrate_id(id, channel) ? fail(errno) : 0;
}

/* `host` (a name or numeric address) and `port` as a socket address; 0 or -(DRC_GAI_FAILED + n). */
static int socket_address(const char *host, uint32_t port, int passive,
                          struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (!host) { /* every IPv4 address (getaddrinfo wants a host or a service) */
        struct sockaddr_in *any = (struct sockaddr_in *)out;
        any->sin_family = AF_INET;
        any->sin_addr.s_addr = htonl(INADDR_ANY);
        any->sin_port = htons((uint16_t)port);
        return 0;
    }
    struct addrinfo hints = {.ai_flags = passive ? AI_PASSIVE : 0, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &found);
    if (gai) {
        if (gai == EAI_SYSTEM)
            return fail(errno);
        last_errno = EADDRNOTAVAIL;
        return -(DRC_GAI_FAILED - gai);
    }
    memset(out, 0, sizeof *out);
    memcpy(out, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    if (out->ss_family == AF_INET)
        ((struct sockaddr_in *)out)->sin_port = htons((uint16_t)port);
    else if (out->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)out)->sin6_port = htons((uint16_t)port);
    else
        return fail(EAFNOSUPPORT);
    return 0;
}

/*
 * rdma_resolve_addr from `source` (NULL: any) to `host`:`port`, giving up after timeout_ms: the
 * answer is an ADDR_RESOLVED or ADDR_ERROR event.
 */
EXPORT int drc_resolve_addr(struct rdma_cm_id *id, const char *source, const char *host,
                            uint32_t port, int32_t timeout_ms)
{
    struct sockaddr_storage src, dst;
    int ret = socket_address(host, port, 0, &dst);
    if (ret)
        return ret;
    if (source) {
        ret = socket_address(source, 0, 0, &src);
        if (ret)
            return ret;
    }
    if (rdma_resolve_addr(id, source ? (struct sockaddr *)&src : NULL, (struct sockaddr *)&dst,
                          timeout_ms))
        return fail(errno);
    return 0;
}

/* rdma_resolve_route: the answer is a ROUTE_RESOLVED or ROUTE_ERROR event. */
EXPORT int drc_resolve_route(struct rdma_cm_id *id, int32_t timeout_ms)
{
    return rdma_resolve_route(id, timeout_ms) ? fail(errno) : 0;
}

/* rdma_bind_addr to `host` (NULL: every address) and `port` (0: any), then rdma_listen. */
EXPORT int drc_listen(struct rdma_cm_id *id, const char *host, uint32_t port, int32_t backlog)
{
    struct sockaddr_storage addr;
    int ret = socket_address(host, port, 1, &addr);
    if (ret)
        return ret;
    if (rdma_bind_addr(id, (struct sockaddr *)&addr))
        return fail(errno);
    return rdma_listen(id, backlog) ? fail(errno) : 0;
}

static void address_text(const struct sockaddr *addr, char *out, uint16_t *port)
{
    const void *bytes = NULL;
    if (addr->sa_family == AF_INET) {
        bytes = &((const struct sockaddr_in *)addr)->sin_addr;
        *port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
    } else if (addr->sa_family == AF_INET6) {
        bytes = &((const struct sockaddr_in6 *)addr)->sin6_addr;
        *port = ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    }
    if (!bytes || !inet_ntop(addr->sa_family, bytes, out, DRC_ADDRESS_BYTES))
        out[0] = 0;
}

/* The device, port and both addresses of `id`. */
EXPORT int drc_id_info(struct rdma_cm_id *id, struct drc_id_desc *out)
{
    memset(out, 0, sizeof *out);
    out->verbs = (uint64_t)(uintptr_t)id->verbs;
    out->port_num = id->port_num;
    address_text(rdma_get_local_addr(id), out->local_address, &out->local_port);
    address_text(rdma_get_peer_addr(id), out->remote_address, &out->remote_port);
    return 0;
}

/*
 * Makes `qp` (created with ibv_create_qp on id->verbs) the id's queue pair, as rdma_create_qp does
 * with the one it creates: moved to INIT with the attributes the CM gives (UD: on to RTS), then
 * set as id->qp, so that connect, accept and disconnect move it through its states. Detach it
 * (drc_detach_qp) before destroying it.
 */
EXPORT int drc_attach_qp(struct rdma_cm_id *id, struct ibv_qp *qp)
{
    if (id->qp || qp->context != id->verbs)
        return fail(EINVAL);
    struct ibv_qp_attr attr;
    int mask = 0;
    memset(&attr, 0, sizeof attr);
    attr.qp_state = IBV_QPS_INIT;
    if (rdma_init_qp_attr(id, &attr, &mask))
        return fail(errno);
    int err = ibv_modify_qp(qp, &attr, mask);
    if (err)
        return fail(err);
    if (id->ps == RDMA_PS_UDP || id->ps == RDMA_PS_IPOIB) {
        memset(&attr, 0, sizeof attr);
        attr.qp_state = IBV_QPS_RTR;
        err = ibv_modify_qp(qp, &attr, IBV_QP_STATE);
        if (err)
            return fail(err);
        attr.qp_state = IBV_QPS_RTS;
        attr.sq_psn = 0;
        err = ibv_modify_qp(qp, &attr, IBV_QP_STATE | IBV_QP_SQ_PSN);
        if (err)
            return fail(err);
    }
    id->qp = qp;
    id->pd = qp->pd;
    return 0;
}

EXPORT void drc_detach_qp(struct rdma_cm_id *id)
{
    id->qp = NULL;
}

/*
 * Lends `qp`, a UD queue pair already in RTS, to `id` (a resolution request's) without moving
 * it: rdma_accept then answers with its number. Detach it (drc_detach_qp) before destroying id.
 */
EXPORT int drc_share_qp(struct rdma_cm_id *id, struct ibv_qp *qp)
{
    if (id->qp || qp->context != id->verbs || qp->qp_type != IBV_QPT_UD)
        return fail(EINVAL);
    id->qp = qp;
    id->pd = qp->pd;
    return 0;
}

/* rdma_join_multicast of the IP multicast address `group`: the answer is MULTICAST_JOIN. */
EXPORT int drc_join_multicast(struct rdma_cm_id *id, const char *group)
{
    struct sockaddr_storage addr;
    int ret = socket_address(group, 0, 0, &addr);
    if (ret)
        return ret;
    return rdma_join_multicast(id, (struct sockaddr *)&addr, NULL) ? fail(errno) : 0;
}

/* rdma_leave_multicast of a group joined by drc_join_multicast. */
EXPORT int drc_leave_multicast(struct rdma_cm_id *id, const char *group)
{
    struct sockaddr_storage addr;
    int ret = socket_address(group, 0, 0, &addr);
    if (ret)
        return ret;
    return rdma_leave_multicast(id, (struct sockaddr *)&addr) ? fail(errno) : 0;
}

/* rdma_bind_addr to `host` and `port` (0: any), without listening. */
EXPORT int drc_bind(struct rdma_cm_id *id, const char *host, uint32_t port)
{
    struct sockaddr_storage addr;
    int ret = socket_address(host, port, 1, &addr);
    if (ret)
        return ret;
    return rdma_bind_addr(id, (struct sockaddr *)&addr) ? fail(errno) : 0;
}

static void conn_param(struct rdma_conn_param *param, const uint8_t *data, uint32_t len,
                       uint32_t responder_resources, uint32_t initiator_depth, uint32_t retry_count,
                       uint32_t rnr_retry_count)
{
    memset(param, 0, sizeof *param);
    param->private_data = len ? data : NULL;
    param->private_data_len = (uint8_t)len;
    param->responder_resources = (uint8_t)responder_resources;
    param->initiator_depth = (uint8_t)initiator_depth;
    param->retry_count = (uint8_t)retry_count;
    param->rnr_retry_count = (uint8_t)rnr_retry_count;
}

/* rdma_connect with `len` bytes of private data: the answer is ESTABLISHED, REJECTED, ... */
EXPORT int drc_connect(struct rdma_cm_id *id, const uint8_t *data, uint32_t len,
                       uint32_t responder_resources, uint32_t initiator_depth, uint32_t retry_count,
                       uint32_t rnr_retry_count)
{
    if (len > DRC_PRIVATE_DATA_MAX)
        return fail(EINVAL);
    struct rdma_conn_param param;
    conn_param(&param, data, len, responder_resources, initiator_depth, retry_count,
               rnr_retry_count);
    return rdma_connect(id, &param) ? fail(errno) : 0;
}

/* rdma_accept of a connection request's id: the answer is ESTABLISHED (or an error event). */
EXPORT int drc_accept(struct rdma_cm_id *id, const uint8_t *data, uint32_t len,
                      uint32_t responder_resources, uint32_t initiator_depth,
                      uint32_t rnr_retry_count)
{
    if (len > DRC_PRIVATE_DATA_MAX)
        return fail(EINVAL);
    struct rdma_conn_param param;
    conn_param(&param, data, len, responder_resources, initiator_depth, 0, rnr_retry_count);
    return rdma_accept(id, &param) ? fail(errno) : 0;
}

/* rdma_reject of a connection request, with `len` bytes of private data for the requester. */
EXPORT int drc_reject(struct rdma_cm_id *id, const uint8_t *data, uint32_t len)
{
    if (len > DRC_PRIVATE_DATA_MAX)
        return fail(EINVAL);
    return rdma_reject(id, len ? data : NULL, (uint8_t)len) ? fail(errno) : 0;
}

/* rdma_disconnect: moves the queue pair to ERR (outstanding posts flush) and tells the peer. */
EXPORT int drc_disconnect(struct rdma_cm_id *id)
{
    return rdma_disconnect(id) ? fail(errno) : 0;
}
