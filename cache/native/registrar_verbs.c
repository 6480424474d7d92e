/*
 * The cache's own registrar: ibv_reg_mr / ibv_dereg_mr on a protection domain.
 */
#include <infiniband/verbs.h>

#include "rcache_internal.h"
#include "reg_mr.h"

static int verbs_reg(void *context, uintptr_t addr, size_t length, uint32_t access,
                     struct rcache_registration *out)
{
    int err;
    struct ibv_mr *mr = reg_mr((struct ibv_pd *)context, (void *)addr, length, (int)access, &err);
    if (!mr)
        return err;
    out->mr = mr;
    out->lkey = mr->lkey;
    out->rkey = mr->rkey;
    return 0;
}

static int verbs_dereg(void *context, void *mr, size_t length)
{
    (void)context;
    (void)length;
    return ibv_dereg_mr((struct ibv_mr *)mr);
}

struct rcache_registrar rc_verbs_registrar(void *pd)
{
    return (struct rcache_registrar){.reg = verbs_reg, .dereg = verbs_dereg, .context = pd};
}
