/*
 * The verbs shim (see verbs_shim.h for conventions and descriptor layouts).
 *
 * No function here allocates on the data path: poll/post use stack structs of bounded size.
 */
#include "verbs_shim.h"
#include "reg_mr.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* errno of the last failed shim call on this thread: Deno FFI cannot read errno itself. */
static _Thread_local int last_errno;

/* Records errno (or a fallback when a verb failed without setting it) and returns -errno. */
static int fail(int err)
{
    last_errno = err > 0 ? err : EIO;
    return -last_errno;
}

/* Verbs that return a pointer set errno on failure; some providers leave it 0. */
static void *fail_ptr(void)
{
    fail(errno);
    return NULL;
}

EXPORT int drv_last_errno(void)
{
    return last_errno;
}

/* Name ("ENOMEM") and description ("Cannot allocate memory") of an errno value. */
#if __GLIBC_PREREQ(2, 32)
EXPORT const char *drv_errno_name(int err)
{
    const char *name = strerrorname_np(err);
    return name ? name : "";
}

EXPORT const char *drv_errno_text(int err)
{
    const char *text = strerrordesc_np(err);
    return text ? text : "Unknown error";
}
#else
/* Before glibc 2.32 there is no strerrorname_np/strerrordesc_np: the names from the kernel's
 * list, the descriptions from strerror_r, which returns its own buffer for an unknown value. */
static const char *errno_name(int err)
{
    switch (err) {
#define NAME(e) \
    case e:     \
        return #e;
        NAME(EPERM)
        NAME(ENOENT)
        NAME(ESRCH)
        NAME(EINTR)
        NAME(EIO)
        NAME(ENXIO)
        NAME(E2BIG)
        NAME(ENOEXEC)
        NAME(EBADF)
        NAME(ECHILD)
        NAME(EAGAIN)
        NAME(ENOMEM)
        NAME(EACCES)
        NAME(EFAULT)
        NAME(ENOTBLK)
        NAME(EBUSY)
        NAME(EEXIST)
        NAME(EXDEV)
        NAME(ENODEV)
        NAME(ENOTDIR)
        NAME(EISDIR)
        NAME(EINVAL)
        NAME(ENFILE)
        NAME(EMFILE)
        NAME(ENOTTY)
        NAME(ETXTBSY)
        NAME(EFBIG)
        NAME(ENOSPC)
        NAME(ESPIPE)
        NAME(EROFS)
        NAME(EMLINK)
        NAME(EPIPE)
        NAME(EDOM)
        NAME(ERANGE)
        NAME(EDEADLK)
        NAME(ENAMETOOLONG)
        NAME(ENOLCK)
        NAME(ENOSYS)
        NAME(ENOTEMPTY)
        NAME(ELOOP)
        NAME(ENOMSG)
        NAME(EIDRM)
        NAME(ECHRNG)
        NAME(EL2NSYNC)
        NAME(EL3HLT)
        NAME(EL3RST)
        NAME(ELNRNG)
        NAME(EUNATCH)
        NAME(ENOCSI)
        NAME(EL2HLT)
        NAME(EBADE)
        NAME(EBADR)
        NAME(EXFULL)
        NAME(ENOANO)
        NAME(EBADRQC)
        NAME(EBADSLT)
        NAME(EBFONT)
        NAME(ENOSTR)
        NAME(ENODATA)
        NAME(ETIME)
        NAME(ENOSR)
        NAME(ENONET)
        NAME(ENOPKG)
        NAME(EREMOTE)
        NAME(ENOLINK)
        NAME(EADV)
        NAME(ESRMNT)
        NAME(ECOMM)
        NAME(EPROTO)
        NAME(EMULTIHOP)
        NAME(EDOTDOT)
        NAME(EBADMSG)
        NAME(EOVERFLOW)
        NAME(ENOTUNIQ)
        NAME(EBADFD)
        NAME(EREMCHG)
        NAME(ELIBACC)
        NAME(ELIBBAD)
        NAME(ELIBSCN)
        NAME(ELIBMAX)
        NAME(ELIBEXEC)
        NAME(EILSEQ)
        NAME(ERESTART)
        NAME(ESTRPIPE)
        NAME(EUSERS)
        NAME(ENOTSOCK)
        NAME(EDESTADDRREQ)
        NAME(EMSGSIZE)
        NAME(EPROTOTYPE)
        NAME(ENOPROTOOPT)
        NAME(EPROTONOSUPPORT)
        NAME(ESOCKTNOSUPPORT)
        NAME(EOPNOTSUPP)
        NAME(EPFNOSUPPORT)
        NAME(EAFNOSUPPORT)
        NAME(EADDRINUSE)
        NAME(EADDRNOTAVAIL)
        NAME(ENETDOWN)
        NAME(ENETUNREACH)
        NAME(ENETRESET)
        NAME(ECONNABORTED)
        NAME(ECONNRESET)
        NAME(ENOBUFS)
        NAME(EISCONN)
        NAME(ENOTCONN)
        NAME(ESHUTDOWN)
        NAME(ETOOMANYREFS)
        NAME(ETIMEDOUT)
        NAME(ECONNREFUSED)
        NAME(EHOSTDOWN)
        NAME(EHOSTUNREACH)
        NAME(EALREADY)
        NAME(EINPROGRESS)
        NAME(ESTALE)
        NAME(EUCLEAN)
        NAME(ENOTNAM)
        NAME(ENAVAIL)
        NAME(EISNAM)
        NAME(EREMOTEIO)
        NAME(EDQUOT)
        NAME(ENOMEDIUM)
        NAME(EMEDIUMTYPE)
        NAME(ECANCELED)
        NAME(ENOKEY)
        NAME(EKEYEXPIRED)
        NAME(EKEYREVOKED)
        NAME(EKEYREJECTED)
        NAME(EOWNERDEAD)
        NAME(ENOTRECOVERABLE)
        NAME(ERFKILL)
        NAME(EHWPOISON)
#undef NAME
    default:
        return "";
    }
}

EXPORT const char *drv_errno_name(int err)
{
    return errno_name(err);
}

EXPORT const char *drv_errno_text(int err)
{
    char buf[8];
    const char *text = strerror_r(err, buf, sizeof buf);
    return text == buf || !errno_name(err)[0] ? "Unknown error" : text;
}
#endif

/* ---------- the records TypeScript shares (records.h; tools/records.ts reads them) ---------- */

/* Each entry list ends in a comma, which clang-format cannot see: kept one list per line. */
/* clang-format off */
static const struct record_entry records[] = {
    RECORD_ENTRIES(DEVICE, drv_device_desc, DRV_DEVICE_FIELDS)
    RECORD_ENTRIES(DEVICE_ATTR, drv_device_attr_desc, DRV_DEVICE_ATTR_FIELDS)
    RECORD_ENTRIES(PORT_ATTR, drv_port_attr_desc, DRV_PORT_ATTR_FIELDS)
    RECORD_ENTRIES(GID, drv_gid_desc, DRV_GID_FIELDS)
    RECORD_ENTRIES(PATH, drv_path_desc, DRV_PATH_FIELDS)
    RECORD_ENTRIES(SGE, drv_sge_desc, DRV_SGE_FIELDS)
    RECORD_ENTRIES(SEND, drv_send_desc, DRV_SEND_FIELDS)
    RECORD_ENTRIES(RECV, drv_recv_desc, DRV_RECV_FIELDS)
    RECORD_ENTRIES(WC, drv_wc_desc, DRV_WC_FIELDS)
    RECORD_ENTRIES(QP_ATTR, drv_qp_attr_desc, DRV_QP_ATTR_FIELDS)
    RECORD_ENTRIES(SRQ_ATTR, drv_srq_attr_desc, DRV_SRQ_ATTR_FIELDS)
    RECORD_ENTRIES(ASYNC_EVENT, drv_async_event_desc, DRV_ASYNC_EVENT_FIELDS)
    DRV_EVENT_ELEMENTS(CONSTANT_ENTRY)
    DRV_CONSTANTS(CONSTANT_VALUE)
};
/* clang-format on */

EXPORT const char *drv_records(void)
{
    /* Built once; static so that TypeScript reads it as a C string. */
    static char text[8192];
    if (!text[0] && !records_text(records, sizeof records / sizeof records[0], text, sizeof text))
        return "";
    return text;
}

/* ---------- devices ---------- */

/* Returns the device list (free with drv_free_device_list) and its length in *count. */
EXPORT struct ibv_device **drv_get_device_list(int32_t *count)
{
    errno = 0;
    struct ibv_device **list = ibv_get_device_list(count);
    if (!list)
        return fail_ptr();
    return list;
}

EXPORT void drv_free_device_list(struct ibv_device **list)
{
    ibv_free_device_list(list);
}

EXPORT int drv_device_info(struct ibv_device **list, int32_t index, struct drv_device_desc *out)
{
    struct ibv_device *device = list[index];
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", ibv_get_device_name(device));
    out->guid = be64toh(ibv_get_device_guid(device));
    out->node_type = device->node_type;
    out->transport_type = device->transport_type;
    return 0;
}

/* Opens the device called `name`, or the first one when name is empty. ENODEV if none matches. */
EXPORT struct ibv_context *drv_open_device(const char *name)
{
    int count = 0;
    errno = 0;
    struct ibv_device **list = ibv_get_device_list(&count);
    if (!list)
        return fail_ptr();
    struct ibv_device *chosen = NULL;
    for (int i = 0; i < count && !chosen; i++) {
        if (name[0] == '\0' || strcmp(ibv_get_device_name(list[i]), name) == 0)
            chosen = list[i];
    }
    struct ibv_context *context = NULL;
    int err = ENODEV;
    if (chosen) {
        errno = 0;
        context = ibv_open_device(chosen);
        err = errno;
    }
    ibv_free_device_list(list);
    if (!context)
        fail(err);
    return context;
}

EXPORT const char *drv_context_device_name(struct ibv_context *context)
{
    return ibv_get_device_name(context->device);
}

EXPORT int drv_close_device(struct ibv_context *context)
{
    errno = 0;
    return ibv_close_device(context) ? fail(errno) : 0;
}

EXPORT int drv_query_device(struct ibv_context *context, struct drv_device_attr_desc *out)
{
    struct ibv_device_attr attr;
    int err = ibv_query_device(context, &attr);
    if (err)
        return fail(err);
    memset(out, 0, sizeof *out);
    snprintf(out->fw_ver, sizeof out->fw_ver, "%s", attr.fw_ver);
    out->node_guid = be64toh(attr.node_guid);
    out->sys_image_guid = be64toh(attr.sys_image_guid);
    out->max_mr_size = attr.max_mr_size;
    out->page_size_cap = attr.page_size_cap;
    out->vendor_id = attr.vendor_id;
    out->vendor_part_id = attr.vendor_part_id;
    out->hw_ver = attr.hw_ver;
    out->max_qp = attr.max_qp;
    out->max_qp_wr = attr.max_qp_wr;
    out->max_sge = attr.max_sge;
    out->max_cq = attr.max_cq;
    out->max_cqe = attr.max_cqe;
    out->max_mr = attr.max_mr;
    out->max_pd = attr.max_pd;
    out->max_qp_rd_atom = attr.max_qp_rd_atom;
    out->max_qp_init_rd_atom = attr.max_qp_init_rd_atom;
    out->atomic_cap = attr.atomic_cap;
    out->max_ah = attr.max_ah;
    out->phys_port_cnt = attr.phys_port_cnt;
    return 0;
}

EXPORT int drv_query_port(struct ibv_context *context, uint32_t port,
                          struct drv_port_attr_desc *out)
{
    struct ibv_port_attr attr;
    /* ibv_query_port is a macro around ibv_query_port_ex-style compat code. */
    int err = ibv_query_port(context, (uint8_t)port, &attr);
    if (err)
        return fail(err);
    memset(out, 0, sizeof *out);
    out->state = attr.state;
    out->max_mtu = attr.max_mtu;
    out->active_mtu = attr.active_mtu;
    out->gid_tbl_len = attr.gid_tbl_len;
    out->port_cap_flags = attr.port_cap_flags;
    out->max_msg_sz = attr.max_msg_sz;
    out->lid = attr.lid;
    out->sm_lid = attr.sm_lid;
    out->lmc = attr.lmc;
    out->link_layer = attr.link_layer;
    out->active_width = attr.active_width;
    out->active_speed = attr.active_speed;
    out->phys_state = attr.phys_state;
    return 0;
}

EXPORT int drv_query_gid(struct ibv_context *context, uint32_t port, uint32_t index,
                         struct drv_gid_desc *out)
{
    struct ibv_gid_entry entry;
    int err = ibv_query_gid_ex(context, port, index, &entry, 0);
    if (err)
        return fail(err);
    memset(out, 0, sizeof *out);
    memcpy(out->gid, entry.gid.raw, sizeof out->gid);
    out->gid_type = entry.gid_type;
    out->ndev_ifindex = entry.ndev_ifindex;
    return 0;
}

/* ---------- protection domains and memory regions ---------- */

EXPORT struct ibv_pd *drv_alloc_pd(struct ibv_context *context)
{
    errno = 0;
    struct ibv_pd *pd = ibv_alloc_pd(context);
    return pd ? pd : fail_ptr();
}

EXPORT int drv_dealloc_pd(struct ibv_pd *pd)
{
    int err = ibv_dealloc_pd(pd);
    return err ? fail(err) : 0;
}

EXPORT struct ibv_mr *drv_reg_mr(struct ibv_pd *pd, void *addr, uint64_t length, int32_t access)
{
    int err;
    struct ibv_mr *mr = reg_mr(pd, addr, (size_t)length, access, &err); /* reg_mr.h */
    if (!mr)
        fail(err);
    return mr;
}

EXPORT int drv_dereg_mr(struct ibv_mr *mr)
{
    int err = ibv_dereg_mr(mr);
    return err ? fail(err) : 0;
}

EXPORT uint32_t drv_mr_lkey(struct ibv_mr *mr)
{
    return mr->lkey;
}

EXPORT uint32_t drv_mr_rkey(struct ibv_mr *mr)
{
    return mr->rkey;
}

/* ---------- completion channels and completion queues ---------- */

EXPORT struct ibv_comp_channel *drv_create_comp_channel(struct ibv_context *context)
{
    errno = 0;
    struct ibv_comp_channel *channel = ibv_create_comp_channel(context);
    return channel ? channel : fail_ptr();
}

EXPORT int drv_destroy_comp_channel(struct ibv_comp_channel *channel)
{
    int err = ibv_destroy_comp_channel(channel);
    return err ? fail(err) : 0;
}

EXPORT struct ibv_cq *drv_create_cq(struct ibv_context *context, int32_t cqe,
                                    struct ibv_comp_channel *channel, int32_t comp_vector)
{
    errno = 0;
    struct ibv_cq *cq = ibv_create_cq(context, cqe, NULL, channel, comp_vector);
    return cq ? cq : fail_ptr();
}

EXPORT int drv_destroy_cq(struct ibv_cq *cq)
{
    int err = ibv_destroy_cq(cq);
    return err ? fail(err) : 0;
}

EXPORT int32_t drv_cq_capacity(struct ibv_cq *cq)
{
    return cq->cqe;
}

EXPORT int drv_req_notify_cq(struct ibv_cq *cq, int32_t solicited_only)
{
    int err = ibv_req_notify_cq(cq, solicited_only);
    return err ? fail(err) : 0;
}

/*
 * Polls up to `max` completions into `out`. Returns how many (>= 0) or -errno.
 * Polls in stack-sized batches and converts each to the fixed descriptor layout.
 */
EXPORT int32_t drv_poll_cq(struct ibv_cq *cq, int32_t max, struct drv_wc_desc *out)
{
    enum { BATCH = 16 };
    struct ibv_wc wc[BATCH];
    int32_t total = 0;
    while (total < max) {
        int want = max - total < BATCH ? max - total : BATCH;
        int got = ibv_poll_cq(cq, want, wc);
        if (got < 0)
            return total > 0 ? total : fail(EIO);
        for (int i = 0; i < got; i++) {
            struct drv_wc_desc *d = &out[total + i];
            d->wr_id = wc[i].wr_id;
            d->status = wc[i].status;
            d->opcode = wc[i].opcode;
            d->vendor_err = wc[i].vendor_err;
            d->byte_len = wc[i].byte_len;
            d->imm_data = (wc[i].wc_flags & IBV_WC_WITH_IMM) ? be32toh(wc[i].imm_data) : 0;
            d->qp_num = wc[i].qp_num;
            d->src_qp = wc[i].src_qp;
            d->wc_flags = wc[i].wc_flags;
            d->pkey_index = wc[i].pkey_index;
            d->slid = wc[i].slid;
            d->sl = wc[i].sl;
            d->dlid_path_bits = wc[i].dlid_path_bits;
            d->reserved = 0;
        }
        total += got;
        if (got < want)
            break;
    }
    return total;
}

/*
 * drv_poll_cq plus the status check every caller makes, so a busy-polling loop pays one FFI call
 * and one comparison per reap instead of reading each status back in JavaScript. Fills `out` like
 * drv_poll_cq. Returns n >= 0 when all n completions succeeded, -(DRV_POLL_FAILED + n) when any of
 * the n did not (the caller finds which in `out`; the rest of the n are real completions too), or
 * -errno.
 */
EXPORT int32_t drv_poll_cq_checked(struct ibv_cq *cq, int32_t max, struct drv_wc_desc *out)
{
    _Static_assert(DRV_POLL_FAILED > 4095, "errno values must stay below DRV_POLL_FAILED");
    int32_t n = drv_poll_cq(cq, max, out);
    if (n <= 0)
        return n;
    for (int32_t i = 0; i < n; i++)
        if (out[i].status != IBV_WC_SUCCESS)
            return -(DRV_POLL_FAILED + n);
    return n;
}

/* Makes `fd` nonblocking, so a read with nothing to read returns EAGAIN instead of waiting. */
static int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/*
 * The channel's descriptor, made nonblocking: the one waiter (fd_waiter.c) polls it, and
 * drv_take_cq_event() reads it without ever blocking. Returns the fd or -errno.
 */
EXPORT int32_t drv_comp_channel_fd(struct ibv_comp_channel *channel)
{
    int err = set_nonblocking(channel->fd);
    return err ? err : channel->fd;
}

/*
 * Takes one completion event from the channel if there is one, acknowledges it, and stores the
 * address of the queue it concerns in *cq_out (several queues may share a channel). Returns 1
 * (taken), 0 (none pending) or -errno. Never blocks: the channel's fd is nonblocking.
 */
EXPORT int32_t drv_take_cq_event(struct ibv_comp_channel *channel, uint64_t *cq_out)
{
    struct ibv_cq *cq = NULL;
    void *cq_context = NULL;
    errno = 0;
    if (ibv_get_cq_event(channel, &cq, &cq_context))
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -(errno ? errno : EIO);
    ibv_ack_cq_events(cq, 1);
    *cq_out = (uint64_t)(uintptr_t)cq;
    return 1;
}

/* The device's asynchronous event descriptor, made nonblocking (see drv_comp_channel_fd). */
EXPORT int32_t drv_context_async_fd(struct ibv_context *context)
{
    int err = set_nonblocking(context->async_fd);
    return err ? err : context->async_fd;
}

/*
 * Takes one asynchronous event of the device if there is one, copies it into `out` (what it
 * concerns, and which one) and acknowledges it at once (destroying a queue pair waits for its
 * events' acks). Returns 1 (taken), 0 (none pending) or -errno. Never blocks: the descriptor is
 * nonblocking, since the kernel drops the unread events of an object destroyed between the
 * waiter seeing the descriptor readable and this read.
 */
EXPORT int32_t drv_take_async_event(struct ibv_context *context, struct drv_async_event_desc *out)
{
    int err = set_nonblocking(context->async_fd);
    if (err)
        return err;
    struct ibv_async_event event;
    errno = 0;
    if (ibv_get_async_event(context, &event))
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -(errno ? errno : EIO);
    memset(out, 0, sizeof *out);
    out->event_type = event.event_type;
    out->element = DRV_EVENT_DEVICE;
    uintptr_t object = 0; /* the CQ, SRQ or WQ, for the caller to tell which one */
    switch (event.event_type) {
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR:
    case IBV_EVENT_COMM_EST:
    case IBV_EVENT_SQ_DRAINED:
    case IBV_EVENT_PATH_MIG:
    case IBV_EVENT_PATH_MIG_ERR:
    case IBV_EVENT_QP_LAST_WQE_REACHED:
        out->element = DRV_EVENT_QP;
        out->number = event.element.qp->qp_num;
        break;
    case IBV_EVENT_CQ_ERR:
        out->element = DRV_EVENT_CQ;
        object = (uintptr_t)event.element.cq;
        break;
    case IBV_EVENT_SRQ_ERR:
    case IBV_EVENT_SRQ_LIMIT_REACHED:
        out->element = DRV_EVENT_SRQ;
        object = (uintptr_t)event.element.srq;
        break;
    case IBV_EVENT_WQ_FATAL:
        out->element = DRV_EVENT_WQ;
        object = (uintptr_t)event.element.wq;
        break;
    case IBV_EVENT_PORT_ACTIVE:
    case IBV_EVENT_PORT_ERR:
    case IBV_EVENT_LID_CHANGE:
    case IBV_EVENT_PKEY_CHANGE:
    case IBV_EVENT_SM_CHANGE:
    case IBV_EVENT_CLIENT_REREGISTER:
    case IBV_EVENT_GID_CHANGE:
        out->element = DRV_EVENT_PORT;
        out->number = (uint32_t)event.element.port_num;
        break;
    default:
        break;
    }
    out->handle = (uint64_t)object;
    ibv_ack_async_event(&event);
    return 1;
}

/* ---------- shared receive queues ---------- */

EXPORT struct ibv_srq *drv_create_srq(struct ibv_pd *pd, uint32_t max_wr, uint32_t max_sge,
                                      uint32_t srq_limit)
{
    struct ibv_srq_init_attr attr = {
        .attr = {.max_wr = max_wr, .max_sge = max_sge, .srq_limit = srq_limit},
    };
    errno = 0;
    struct ibv_srq *srq = ibv_create_srq(pd, &attr);
    return srq ? srq : fail_ptr();
}

EXPORT int drv_destroy_srq(struct ibv_srq *srq)
{
    int err = ibv_destroy_srq(srq);
    return err ? fail(err) : 0;
}

/* Arms the limit: one IBV_EVENT_SRQ_LIMIT_REACHED when fewer receives than `limit` are left. */
EXPORT int drv_arm_srq_limit(struct ibv_srq *srq, uint32_t limit)
{
    struct ibv_srq_attr attr = {.srq_limit = limit};
    int err = ibv_modify_srq(srq, &attr, IBV_SRQ_LIMIT);
    return err ? fail(err) : 0;
}

/* What the provider gave and the armed limit. */
EXPORT int drv_query_srq(struct ibv_srq *srq, struct drv_srq_attr_desc *out)
{
    struct ibv_srq_attr attr;
    int err = ibv_query_srq(srq, &attr);
    if (err)
        return fail(err);
    memset(out, 0, sizeof *out);
    out->max_wr = attr.max_wr;
    out->max_sge = attr.max_sge;
    out->srq_limit = attr.srq_limit;
    return 0;
}

/* ---------- queue pairs and address handles ---------- */

/* `srq` may be NULL; with one, the queue pair's receives come from it (max_recv_* are ignored). */
EXPORT struct ibv_qp *drv_create_qp(struct ibv_pd *pd, struct ibv_cq *send_cq,
                                    struct ibv_cq *recv_cq, struct ibv_srq *srq, int32_t qp_type,
                                    uint32_t max_send_wr, uint32_t max_recv_wr,
                                    uint32_t max_send_sge, uint32_t max_recv_sge,
                                    uint32_t max_inline_data, int32_t sq_sig_all)
{
    struct ibv_qp_init_attr attr = {
        .send_cq = send_cq,
        .recv_cq = recv_cq,
        .srq = srq,
        .cap =
            {
                .max_send_wr = max_send_wr,
                .max_recv_wr = max_recv_wr,
                .max_send_sge = max_send_sge,
                .max_recv_sge = max_recv_sge,
                .max_inline_data = max_inline_data,
            },
        .qp_type = (enum ibv_qp_type)qp_type,
        .sq_sig_all = sq_sig_all,
    };
    errno = 0;
    struct ibv_qp *qp = ibv_create_qp(pd, &attr);
    return qp ? qp : fail_ptr();
}

EXPORT int drv_destroy_qp(struct ibv_qp *qp)
{
    int err = ibv_destroy_qp(qp);
    return err ? fail(err) : 0;
}

EXPORT uint32_t drv_qp_num(struct ibv_qp *qp)
{
    return qp->qp_num;
}

/* The capacities the provider gave the queue pair (it may round requests up), its read/atomic
 * depths and its path's port and source GID index. */
EXPORT int drv_query_qp_attributes(struct ibv_qp *qp, struct drv_qp_attr_desc *out)
{
    struct ibv_qp_attr attr;
    struct ibv_qp_init_attr init;
    int err = ibv_query_qp(qp, &attr,
                           IBV_QP_CAP | IBV_QP_MAX_QP_RD_ATOMIC | IBV_QP_MAX_DEST_RD_ATOMIC |
                               IBV_QP_PORT | IBV_QP_AV,
                           &init);
    if (err)
        return fail(err);
    memset(out, 0, sizeof *out);
    out->max_send_wr = attr.cap.max_send_wr;
    out->max_recv_wr = attr.cap.max_recv_wr;
    out->max_send_sge = attr.cap.max_send_sge;
    out->max_recv_sge = attr.cap.max_recv_sge;
    out->max_inline_data = attr.cap.max_inline_data;
    out->max_rd_atomic = attr.max_rd_atomic;
    out->max_dest_rd_atomic = attr.max_dest_rd_atomic;
    out->port_num = attr.port_num;
    out->sgid_index = attr.ah_attr.grh.sgid_index;
    return 0;
}

/* The state the device reports (qp->state is only what libibverbs last set: a queue pair the
 * device moved to ERR still reads RTS there). -errno on failure. */
EXPORT int32_t drv_qp_state(struct ibv_qp *qp)
{
    struct ibv_qp_attr attr;
    struct ibv_qp_init_attr init;
    int err = ibv_query_qp(qp, &attr, IBV_QP_STATE, &init);
    return err ? fail(err) : (int32_t)attr.qp_state;
}

/* RESET -> INIT. RC uses access_flags, UD uses qkey. */
EXPORT int drv_modify_qp_init(struct ibv_qp *qp, uint32_t port, uint32_t pkey_index,
                              int32_t access_flags, uint32_t qkey)
{
    struct ibv_qp_attr attr = {
        .qp_state = IBV_QPS_INIT,
        .pkey_index = (uint16_t)pkey_index,
        .port_num = (uint8_t)port,
    };
    int mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT;
    if (qp->qp_type == IBV_QPT_UD) {
        attr.qkey = qkey;
        mask |= IBV_QP_QKEY;
    } else {
        attr.qp_access_flags = (unsigned)access_flags;
        mask |= IBV_QP_ACCESS_FLAGS;
    }
    int err = ibv_modify_qp(qp, &attr, mask);
    return err ? fail(err) : 0;
}

static void fill_ah_attr(struct ibv_ah_attr *ah, const struct drv_path_desc *path)
{
    memset(ah, 0, sizeof *ah);
    ah->dlid = path->dlid;
    ah->sl = path->sl;
    ah->port_num = path->port_num;
    ah->is_global = path->is_global ? 1 : 0;
    memcpy(ah->grh.dgid.raw, path->dgid, sizeof path->dgid);
    ah->grh.sgid_index = path->sgid_index;
    ah->grh.hop_limit = path->hop_limit;
    ah->grh.flow_label = path->flow_label;
    ah->grh.traffic_class = path->traffic_class;
}

/* INIT -> RTR. RC takes the remote path from `path`; UD needs only the state change. */
EXPORT int drv_modify_qp_rtr(struct ibv_qp *qp, const struct drv_path_desc *path)
{
    struct ibv_qp_attr attr = {.qp_state = IBV_QPS_RTR};
    int mask = IBV_QP_STATE;
    /* Connected types need the path; the read/atomic and RNR fields are RC's alone (the kernel
     * refuses them for UC, and requires the four path fields for both). */
    if (qp->qp_type == IBV_QPT_RC || qp->qp_type == IBV_QPT_UC) {
        attr.path_mtu = (enum ibv_mtu)path->path_mtu;
        attr.dest_qp_num = path->dest_qpn;
        attr.rq_psn = path->rq_psn;
        fill_ah_attr(&attr.ah_attr, path);
        mask |= IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN;
    }
    if (qp->qp_type == IBV_QPT_RC) {
        attr.max_dest_rd_atomic = path->max_dest_rd_atomic;
        attr.min_rnr_timer = path->min_rnr_timer;
        mask |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
    }
    int err = ibv_modify_qp(qp, &attr, mask);
    return err ? fail(err) : 0;
}

/* RTR -> RTS. The retry/timeout/atomic fields apply to RC only. */
EXPORT int drv_modify_qp_rts(struct ibv_qp *qp, uint32_t sq_psn, uint32_t timeout,
                             uint32_t retry_cnt, uint32_t rnr_retry, uint32_t max_rd_atomic)
{
    struct ibv_qp_attr attr = {.qp_state = IBV_QPS_RTS, .sq_psn = sq_psn};
    int mask = IBV_QP_STATE | IBV_QP_SQ_PSN;
    if (qp->qp_type == IBV_QPT_RC) {
        attr.timeout = (uint8_t)timeout;
        attr.retry_cnt = (uint8_t)retry_cnt;
        attr.rnr_retry = (uint8_t)rnr_retry;
        attr.max_rd_atomic = (uint8_t)max_rd_atomic;
        mask |= IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
    }
    int err = ibv_modify_qp(qp, &attr, mask);
    return err ? fail(err) : 0;
}

/* Any state -> ERR: flushes outstanding work requests as IBV_WC_WR_FLUSH_ERR completions. */
EXPORT int drv_modify_qp_error(struct ibv_qp *qp)
{
    struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};
    int err = ibv_modify_qp(qp, &attr, IBV_QP_STATE);
    return err ? fail(err) : 0;
}

EXPORT struct ibv_ah *drv_create_ah(struct ibv_pd *pd, const struct drv_path_desc *path)
{
    struct ibv_ah_attr attr;
    fill_ah_attr(&attr, path);
    errno = 0;
    struct ibv_ah *ah = ibv_create_ah(pd, &attr);
    return ah ? ah : fail_ptr();
}

EXPORT int drv_destroy_ah(struct ibv_ah *ah)
{
    int err = ibv_destroy_ah(ah);
    return err ? fail(err) : 0;
}

/* ---------- data path ---------- */

static int copy_sges(struct ibv_sge *sge, const struct drv_sge_desc *src, uint32_t n)
{
    if (n > DRV_MAX_SGE)
        return fail(EINVAL);
    for (uint32_t i = 0; i < n; i++) {
        sge[i].addr = src[i].addr;
        sge[i].length = src[i].length;
        sge[i].lkey = src[i].lkey;
    }
    return 0;
}

/* Fills one ibv_send_wr from a descriptor whose scatter/gather list is already in `sge`. */
static void fill_send_wr(struct ibv_send_wr *wr, const struct ibv_qp *qp,
                         const struct drv_send_desc *d, struct ibv_sge *sge)
{
    *wr = (struct ibv_send_wr){
        .wr_id = d->wr_id,
        .sg_list = sge,
        .num_sge = (int)d->num_sge,
        .opcode = (enum ibv_wr_opcode)d->opcode,
        .send_flags = d->send_flags,
        .imm_data = htobe32(d->imm_data),
    };
    switch (d->opcode) {
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM:
    case IBV_WR_RDMA_READ:
        wr->wr.rdma.remote_addr = d->remote_addr;
        wr->wr.rdma.rkey = d->rkey;
        break;
    case IBV_WR_ATOMIC_CMP_AND_SWP:
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
        wr->wr.atomic.remote_addr = d->remote_addr;
        wr->wr.atomic.rkey = d->rkey;
        wr->wr.atomic.compare_add = d->compare_add;
        wr->wr.atomic.swap = d->swap;
        break;
    default:
        if (qp->qp_type == IBV_QPT_UD) {
            wr->wr.ud.ah = (struct ibv_ah *)(uintptr_t)d->ah;
            wr->wr.ud.remote_qpn = d->remote_qpn;
            wr->wr.ud.remote_qkey = d->remote_qkey;
        }
        break;
    }
}

EXPORT int drv_post_send(struct ibv_qp *qp, const struct drv_send_desc *d)
{
    struct ibv_sge sge[DRV_MAX_SGE];
    if (copy_sges(sge, d->sg_list, d->num_sge))
        return -EINVAL;
    struct ibv_send_wr wr;
    fill_send_wr(&wr, qp, d, sge);
    struct ibv_send_wr *bad = NULL;
    int err = ibv_post_send(qp, &wr, &bad);
    return err ? fail(err) : 0;
}

/*
 * Posts `count` copies of one descriptor as a single linked list (one ibv_post_send, as perftest
 * does with --post_list): copy i gets wr_id + i. With signal_last, only the last copy keeps
 * IBV_SEND_SIGNALED, so a chain costs one completion (CQ moderation). The copies share one
 * scatter/gather array: the provider reads it during the call only. The chain lives on the stack,
 * hence the bound. Returns 0, or -errno with the number of copies the provider accepted in
 * *posted (the copies before the one it refused).
 */
EXPORT int drv_post_send_chain(struct ibv_qp *qp, const struct drv_send_desc *d, uint32_t count,
                               int32_t signal_last, uint32_t *posted)
{
    if (count == 0 || count > DRV_MAX_CHAIN)
        return fail(EINVAL);
    struct ibv_sge sge[DRV_MAX_SGE];
    if (copy_sges(sge, d->sg_list, d->num_sge))
        return -EINVAL;
    struct ibv_send_wr wr[DRV_MAX_CHAIN];
    fill_send_wr(&wr[0], qp, d, sge);
    if (signal_last && count > 1)
        wr[0].send_flags &= ~(unsigned)IBV_SEND_SIGNALED;
    for (uint32_t i = 1; i < count; i++) {
        wr[i] = wr[0]; /* wr[0].next is still NULL: each copy starts unlinked */
        wr[i].wr_id = d->wr_id + i;
    }
    for (uint32_t i = 1; i < count; i++)
        wr[i - 1].next = &wr[i];
    wr[count - 1].send_flags = d->send_flags;
    struct ibv_send_wr *bad = NULL;
    int err = ibv_post_send(qp, wr, &bad);
    if (posted)
        *posted = err ? (uint32_t)(bad ? bad - wr : 0) : count;
    return err ? fail(err) : 0;
}

EXPORT int drv_post_recv(struct ibv_qp *qp, const struct drv_recv_desc *d)
{
    struct ibv_sge sge[DRV_MAX_SGE];
    if (copy_sges(sge, d->sg_list, d->num_sge))
        return -EINVAL;
    struct ibv_recv_wr wr = {.wr_id = d->wr_id, .sg_list = sge, .num_sge = (int)d->num_sge};
    struct ibv_recv_wr *bad = NULL;
    int err = ibv_post_recv(qp, &wr, &bad);
    return err ? fail(err) : 0;
}

EXPORT int drv_post_srq_recv(struct ibv_srq *srq, const struct drv_recv_desc *d)
{
    struct ibv_sge sge[DRV_MAX_SGE];
    if (copy_sges(sge, d->sg_list, d->num_sge))
        return -EINVAL;
    struct ibv_recv_wr wr = {.wr_id = d->wr_id, .sg_list = sge, .num_sge = (int)d->num_sge};
    struct ibv_recv_wr *bad = NULL;
    int err = ibv_post_srq_recv(srq, &wr, &bad);
    return err ? fail(err) : 0;
}
