/*
 * The one ibv_reg_mr path, for the verbs shim (drv_reg_mr) and the registration cache's verbs
 * registrar (cache/native/registrar_verbs.c): ibv_reg_mr is a static inline function in
 * <infiniband/verbs.h>, and a provider may fail without setting errno.
 */
#ifndef DENO_RDMA_REG_MR_H
#define DENO_RDMA_REG_MR_H

#include <errno.h>
#include <infiniband/verbs.h>
#include <stddef.h>

/* Reported when ibv_reg_mr fails without setting errno: the fallback of every verb in the shim. */
#define REG_MR_UNKNOWN_ERRNO EIO

/*
 * ibv_reg_mr(pd, addr, length, access). On failure returns NULL and sets *err to errno, or to
 * REG_MR_UNKNOWN_ERRNO when the provider left errno 0; on success *err is 0.
 */
static inline struct ibv_mr *reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access,
                                    int *err)
{
    errno = 0;
    struct ibv_mr *mr = ibv_reg_mr(pd, addr, length, access);
    *err = mr ? 0 : errno ? errno : REG_MR_UNKNOWN_ERRNO;
    return mr;
}

#endif
