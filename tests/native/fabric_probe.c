/*
 * Debian's libfabric (libfabric1) beside the memory hooks, for tests/rxe/hooks_libfabric.test.ts
 * in a process of its own. libfabric is opened here with dlopen, when the test says so (the load
 * order is the test's subject); its headers (libfabric-dev) give the types and the inline calls.
 *
 * libfabric 1.17's memhooks monitor (prov/util/src/util_mem_hooks.c) writes
 * `movabs r11, hook; jmp r11` over libc's mmap, munmap, mremap, madvise, shmat, shmdt and brk when
 * the first MR cache is added to it (ofi_monitors_add_cache), which the verbs provider does when
 * a domain opens (vrb_domain, ofi_mr_cache_init); its hooks notify libfabric's caches and make the
 * system call themselves. When the last cache goes (the domain closes) it writes back the bytes it
 * found. FI_MR_CACHE_MONITOR=memhooks must be in the environment before the first fi_getinfo.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>

#define MiB (1024 * 1024)

typedef int (*getinfo_fn)(uint32_t version, const char *node, const char *service, uint64_t flags,
                          const struct fi_info *hints, struct fi_info **info);
typedef void (*freeinfo_fn)(struct fi_info *info);
typedef struct fi_info *(*dupinfo_fn)(const struct fi_info *info);
typedef const char *(*strerror_fn)(int errnum);
typedef int (*fabric_fn)(struct fi_fabric_attr *attr, struct fid_fabric **fabric, void *context);

static void *lib;
static getinfo_fn getinfo;
static freeinfo_fn freeinfo;
static dupinfo_fn dupinfo;
static strerror_fn fierror;
static fabric_fn open_fabric;
static struct fi_info *info;
static struct fid_fabric *fabric;
static struct fid_domain *domain;
static char message[1024];

static int fail(const char *step, int rc)
{
    snprintf(message, sizeof message, "%s: %s (%d)", step, fierror ? fierror(-rc) : "?", rc);
    return rc < 0 ? rc : -FI_EOTHER;
}

/* Every provider and endpoint type fi_getinfo offers without hints, into `message`. */
static void describe_offers(void)
{
    struct fi_info *all = NULL;
    int rc = getinfo(FI_VERSION(1, 5), NULL, NULL, 0, NULL, &all);
    size_t n = strlen(message);
    n += (size_t)snprintf(message + n, sizeof message - n, "; without hints:");
    if (rc) {
        snprintf(message + n, sizeof message - n, " %s (%d)", fierror(-rc), rc);
        return;
    }
    for (struct fi_info *i = all; i && n < sizeof message; i = i->next)
        n += (size_t)snprintf(message + n, sizeof message - n, " %s/%s/%s",
                              i->fabric_attr->prov_name, i->domain_attr->name,
                              i->ep_attr->type == FI_EP_MSG     ? "msg"
                              : i->ep_attr->type == FI_EP_RDM   ? "rdm"
                              : i->ep_attr->type == FI_EP_DGRAM ? "dgram"
                                                                : "other");
    freeinfo(all);
}

/*
 * Loads libfabric and opens a verbs fabric and domain (FI_EP_MSG, the verbs provider's own
 * endpoint type): from here on libfabric's memhooks monitor owns libc's entries. 0, -FI_ENOSYS
 * when libfabric is not installed, or libfabric's negative error (fabric_probe_message says which
 * step, and what fi_getinfo offers when it found nothing).
 */
int fabric_probe_open(void)
{
    if (domain)
        return 0;
    lib = lib ? lib : dlopen("libfabric.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(message, sizeof message, "dlopen libfabric.so.1: %s", dlerror());
        return -FI_ENOSYS;
    }
    getinfo = (getinfo_fn)dlsym(lib, "fi_getinfo");
    freeinfo = (freeinfo_fn)dlsym(lib, "fi_freeinfo");
    dupinfo = (dupinfo_fn)dlsym(lib, "fi_dupinfo");
    fierror = (strerror_fn)dlsym(lib, "fi_strerror");
    open_fabric = (fabric_fn)dlsym(lib, "fi_fabric");
    if (!getinfo || !freeinfo || !dupinfo || !fierror || !open_fabric) {
        snprintf(message, sizeof message, "libfabric.so.1 lacks fi_getinfo or its kin");
        return -FI_ENOSYS;
    }
    struct fi_info *hints = dupinfo(NULL);
    if (!hints)
        return fail("fi_dupinfo", -FI_ENOMEM);
    hints->ep_attr->type = FI_EP_MSG;
    hints->caps = FI_MSG | FI_RMA;
    hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
    hints->fabric_attr->prov_name = strdup("verbs");
    /* By host A's address (rxeA), as a source: without a node the verbs provider resolves this
     * host's name, which the aarch64 guest's root cannot (EAI_AGAIN: it has no DNS). */
    const char *node = getenv("DENO_RDMA_HOST_A");
    int rc = getinfo(FI_VERSION(1, 5), node ? node : "10.10.0.1", NULL, FI_SOURCE, hints, &info);
    freeinfo(hints);
    if (rc) {
        info = NULL;
        fail("fi_getinfo(verbs, FI_EP_MSG)", rc);
        describe_offers();
        return rc;
    }
    rc = open_fabric(info->fabric_attr, &fabric, NULL);
    if (rc)
        return fail("fi_fabric", rc);
    rc = fi_domain(fabric, info, &domain, NULL);
    if (rc) {
        domain = NULL;
        return fail("fi_domain", rc);
    }
    snprintf(message, sizeof message, "%s %s %s", info->fabric_attr->prov_name,
             info->fabric_attr->name, info->domain_attr->name);
    return 0;
}

static int reg(void *buf, size_t len, uint64_t *key)
{
    struct fid_mr *mr;
    int rc =
        fi_mr_reg(domain, buf, len, FI_SEND | FI_RECV | FI_READ | FI_WRITE, 0, 0, 0, &mr, NULL);
    if (rc)
        return fail("fi_mr_reg", rc);
    *key = fi_mr_key(mr);
    rc = fi_close(&mr->fid);
    return rc ? fail("fi_close(mr)", rc) : 0;
}

/*
 * libfabric's own MR cache at work: 1 MiB registered and closed twice (keys[0], keys[1]: the
 * same key when the second was a hit of its cache), then unmapped and mapped again at the same
 * address (through libc's munmap and mmap, whoever owns them) and registered again (keys[2]: a
 * new key when libfabric's monitor saw the unmap). 0; 1 when the mapping did not come back at the
 * same address; or libfabric's negative error.
 */
int fabric_probe_mr_check(uint64_t *keys)
{
    if (!domain)
        return fail("fabric_probe_mr_check", -FI_EINVAL);
    uint8_t *buf = mmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return fail("mmap", -FI_ENOMEM);
    memset(buf, 1, MiB);
    int rc = reg(buf, MiB, &keys[0]);
    if (!rc)
        rc = reg(buf, MiB, &keys[1]);
    if (rc) {
        munmap(buf, MiB);
        return rc;
    }
    munmap(buf, MiB);
    uint8_t *again = mmap(buf, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (again == MAP_FAILED)
        return fail("mmap again", -FI_ENOMEM);
    if (again != buf) {
        munmap(again, MiB);
        return 1;
    }
    memset(buf, 2, MiB);
    rc = reg(buf, MiB, &keys[2]);
    munmap(buf, MiB);
    return rc;
}

/* Closes the domain (libfabric's monitor stops: it writes back the bytes it found) and the
 * fabric. libfabric stays loaded. 0 or libfabric's negative error. */
int fabric_probe_close(void)
{
    int rc = 0;
    if (domain)
        rc = fi_close(&domain->fid);
    domain = NULL;
    if (fabric && !rc)
        rc = fi_close(&fabric->fid);
    fabric = NULL;
    if (info)
        freeinfo(info);
    info = NULL;
    return rc ? fail("fi_close", rc) : 0;
}

/* What the last call did or why it failed. */
const char *fabric_probe_message(void)
{
    return message;
}
