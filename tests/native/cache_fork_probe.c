/*
 * Test support: the registration cache across fork(), seen from a forked child (the child's copy
 * of a cache must not deregister the parent's regions; tests/host/cache_fork.test.ts).
 */
#include <dlfcn.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

#include "child_status.h"

/*
 * fork(); the child munmaps [p, p + n) (memory the parent has cached, with the registrar double)
 * and exits with how many deregistrations the double made in the child. `double_path` is the
 * loaded registrar double's library path (its counters are read through it). Returns the child's
 * status, or -2 when that library is not loaded.
 */
int probe_fork_child_munmap_deregistrations(void *p, size_t n, const char *double_path)
{
    void *lib = dlopen(double_path, RTLD_NOW | RTLD_NOLOAD);
    int (*counters)(double *, int) =
        lib ? (int (*)(double *, int))dlsym(lib, "rcache_double_counters") : NULL;
    if (!counters)
        return -2;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        alarm(10);
        double before[2], after[2];
        counters(before, 2);
        munmap(p, n);
        counters(after, 2);
        _exit((int)(after[1] - before[1]));
    }
    return child_status(pid);
}
