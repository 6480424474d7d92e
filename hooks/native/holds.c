/*
 * Holds: users that rely on the hooks staying in place (a registration cache) hold them, and
 * opal_mem_hooks_finalize() refuses while any do (lifecycle.c).
 */
#include "memhooks_internal.h"

static _Atomic int holders;

void memhooks_hold(void)
{
    atomic_fetch_add(&holders, 1);
}

void memhooks_unhold(void)
{
    atomic_fetch_sub(&holders, 1);
}

int memhooks_holders(void)
{
    return atomic_load(&holders);
}
