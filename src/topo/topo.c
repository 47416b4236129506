/* Topology loading, device lookup, binding and NUMA-local memory. Planning is in topo_plan.c. */
#include "topo/topo_priv.h"

#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels answer EINVAL */
#endif

/* The machine's topology is loaded once per process and kept: a load scans sysfs for every PCI
 * device and takes tens of milliseconds on large hosts, and the answer cannot change while we
 * run. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static terse__topo_t *shared_topo;

static terse__topo_t *topo_create(const char *xml_path)
{
    hwloc_topology_t h;
    const char *what = xml_path ? xml_path : "this machine";

    if (hwloc_topology_init(&h) != 0) {
        terse_log_warn("failed to initialise hwloc for %s: %m; threads and buffers stay unbound",
                       what);
        return NULL;
    }
    /* Keep network and OpenFabrics OS devices with their PCI devices: that is all we need to
     * find where a NIC attaches, and it skips the bridges and devices nobody asked for. */
    hwloc_topology_set_io_types_filter(h, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (xml_path && hwloc_topology_set_xml(h, xml_path) != 0) {
        terse_log_warn("cannot use topology file '%s': %m; threads and buffers stay unbound",
                       xml_path);
        goto err_destroy;
    }
    if (hwloc_topology_load(h) != 0) {
        terse_log_warn("failed to load the topology of %s: %m; threads and buffers stay unbound",
                       what);
        goto err_destroy;
    }

    terse__topo_t *t = terse__calloc(1, sizeof(*t), "topology");
    if (!t)
        goto err_destroy;
    t->hwloc = h;
    t->refs = 1;
    t->this_system = hwloc_topology_is_thissystem(h);
    snprintf(t->source, sizeof(t->source), "%s", what);
    terse_log_debug("loaded topology of %s: %d pus, %d numa nodes%s", what,
                    hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_PU),
                    hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_NUMANODE),
                    t->this_system ? "" : " (not this system: binding disabled)");
    return t;

err_destroy:
    hwloc_topology_destroy(h);
    return NULL;
}

terse__topo_t *terse__topo_load(const char *xml_path)
{
    if (xml_path)
        return topo_create(xml_path);

    pthread_mutex_lock(&shared_lock);
    if (shared_topo) {
        shared_topo->refs++;
    } else {
        shared_topo = topo_create(NULL);
        if (shared_topo)
            shared_topo->shared = 1;
    }
    terse__topo_t *t = shared_topo;
    pthread_mutex_unlock(&shared_lock);
    return t;
}

void terse__topo_release(terse__topo_t *t)
{
    if (!t)
        return;
    if (t->shared) {
        /* The machine's topology stays cached for the life of the process: communicators come
         * and go (elastic jobs, tests) and a reload costs a sysfs scan each time. Keeping it
         * also keeps hwloc's I/O plugin loaded; unloading it at the last destroy orphans
         * libpciaccess state that leak checkers then report. */
        pthread_mutex_lock(&shared_lock);
        t->refs--;
        pthread_mutex_unlock(&shared_lock);
        return;
    }
    if (--t->refs > 0)
        return;
    hwloc_topology_destroy(t->hwloc);
    terse__free(t);
}

hwloc_topology_t terse__topo_hwloc(const terse__topo_t *t)
{
    return t ? t->hwloc : NULL;
}

int terse__topo_is_this_system(const terse__topo_t *t)
{
    return t && t->this_system;
}

static int is_nic_osdev(hwloc_obj_t o)
{
    return o->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK ||
           o->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS;
}

/* UCX names InfiniBand ports "mlx5_0:1"; hwloc knows the device as "mlx5_0". Interface names
 * never contain ':' followed only by digits (aliases like "eth0:1" are the same device too). */
static size_t base_name_len(const char *name)
{
    const char *colon = strrchr(name, ':');
    if (colon && colon[1] != '\0' && strspn(colon + 1, "0123456789") == strlen(colon + 1))
        return (size_t)(colon - name);
    return strlen(name);
}

void terse__topo_nic_fill(const terse__topo_t *t, hwloc_obj_t o, terse__topo_nic_t *nic)
{
    memset(nic, 0, sizeof(*nic));
    snprintf(nic->osdev, sizeof(nic->osdev), "%s", o->name ? o->name : "");
    nic->obj = o;
    for (hwloc_obj_t p = o->parent; p; p = p->parent) {
        if (p->type == HWLOC_OBJ_PCI_DEVICE) {
            nic->pci = p;
            break;
        }
        if (p->type != HWLOC_OBJ_OS_DEVICE)
            break;
    }
    nic->rdma = o->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS;
    for (hwloc_obj_t c = nic->pci ? nic->pci->io_first_child : NULL; c && !nic->rdma;
         c = c->next_sibling) {
        nic->rdma =
            c->type == HWLOC_OBJ_OS_DEVICE && c->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS;
    }
    nic->ancestor = hwloc_get_non_io_ancestor_obj(t->hwloc, o);
    nic->cpuset = nic->ancestor->cpuset;
    nic->nodeset = nic->ancestor->nodeset;
    nic->numa_os_index =
        hwloc_bitmap_weight(nic->nodeset) == 1 ? hwloc_bitmap_first(nic->nodeset) : -1;
}

terse_status_t terse__topo_nic_lookup(const terse__topo_t *t, const char *name,
                                      terse__topo_nic_t *nic_p)
{
    if (!t || !name || !nic_p)
        return TERSE_ERR_INVALID_ARG;
    size_t len = base_name_len(name);
    for (hwloc_obj_t o = hwloc_get_next_osdev(t->hwloc, NULL); o;
         o = hwloc_get_next_osdev(t->hwloc, o)) {
        if (is_nic_osdev(o) && o->name && strlen(o->name) == len && !strncmp(o->name, name, len)) {
            terse__topo_nic_fill(t, o, nic_p);
            return TERSE_OK;
        }
    }
    terse_log_debug("network device '%s' not found in the topology of %s", name, t->source);
    return TERSE_ERR_INVALID_ARG;
}

int terse__topo_nic_is_virtual(const terse__topo_t *t, const char *name)
{
    static const char *const classes[] = {"/sys/class/net", "/sys/class/infiniband"};
    if (!t || !t->this_system || !name || !name[0])
        return 0;
    size_t len = base_name_len(name);
    if (len == 0 || len > NAME_MAX || memchr(name, '/', len) || (len <= 2 && name[0] == '.'))
        return 0;
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%.*s", classes[i], (int)len, name);
        if (stat(path, &st) != 0)
            continue;
        /* Hardware devices link to their bus device; virtual ones live under
         * /sys/devices/virtual and have no "device" entry. */
        snprintf(path, sizeof(path), "%s/%.*s/device", classes[i], (int)len, name);
        return stat(path, &st) != 0;
    }
    return 0;
}

size_t terse__topo_nic_names(const terse__topo_t *t, const char **names, size_t max)
{
    size_t n = 0;
    if (!t)
        return 0;
    for (hwloc_obj_t o = hwloc_get_next_osdev(t->hwloc, NULL); o;
         o = hwloc_get_next_osdev(t->hwloc, o)) {
        if (!is_nic_osdev(o) || !o->name)
            continue;
        if (n < max)
            names[n] = o->name;
        n++;
    }
    return n;
}

static terse_status_t bind_to(const terse__topo_t *t, hwloc_const_cpuset_t set, const char *who)
{
    if (!t->this_system) {
        terse_log_warn("topology of %s is not this machine's; %s left unbound", t->source, who);
        return TERSE_ERR_NOT_SUPPORTED;
    }
    if (hwloc_set_cpubind(t->hwloc, set, HWLOC_CPUBIND_THREAD) != 0) {
        char *s = NULL;
        hwloc_bitmap_list_asprintf(&s, set);
        terse_log_warn("failed to bind %s to cpus %s: %m; it runs unbound", who, s ? s : "?");
        free(s);
        return TERSE_ERR_NOT_SUPPORTED;
    }
    return TERSE_OK;
}

terse_status_t terse__topo_bind_thread(const terse__topo_t *t, const terse__topo_plan_t *plan)
{
    if (!t || !plan || !plan->bind_thread)
        return TERSE_OK;
    return bind_to(t, plan->thread_cpus, "progress thread");
}

int terse__topo_default_threads(const terse__topo_t *t, const terse__topo_plan_t *plan,
                                int local_size)
{
    if (!t || !plan || !plan->allowed)
        return 1;
    hwloc_topology_t h = terse__topo_hwloc(t);
    int mine = hwloc_get_nbobjs_inside_cpuset_by_type(h, plan->allowed, HWLOC_OBJ_CORE);
    int host = hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_CORE);
    if (mine <= 0)
        return 1;
    int share = local_size > 1 && (long)mine * local_size > host ? local_size : 1;
    return mine / share > 1 ? mine / share : 1;
}

terse_status_t terse__topo_bind_worker(const terse__topo_t *t, const terse__topo_plan_t *plan)
{
    if (!t || !plan || !plan->bind_thread)
        return TERSE_OK;
    return bind_to(t, plan->worker_cpus, "compression worker");
}

/* Faults in every page of [p, p + len) now. The kernel does it in one call where it can
 * (MADV_POPULATE_WRITE honours the area's memory policy, so pages are born on the bound node);
 * otherwise one write per page. */
static void populate(void *p, size_t len)
{
    if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
        return;
    long page = sysconf(_SC_PAGESIZE);
    size_t step = page > 0 ? (size_t)page : 4096;
    for (size_t off = 0; off < len; off += step)
        ((volatile char *)p)[off] = 0;
}

void *terse__topo_alloc(const terse__topo_t *t, const terse__topo_plan_t *plan, size_t size,
                        const char *what)
{
    size_t len = size ? size : 1;
    if (!t || !plan || !plan->bind_memory || !t->this_system) {
        terse_log_debug("%s: %zu bytes, default placement (%s)", what, len,
                        !t                            ? "no topology"
                        : !plan || !plan->bind_memory ? "plan binds no memory"
                                                      : "topology is not this machine's");
        return terse__alloc_scratch(len, what); /* MAP_POPULATE: fastest pre-faulting */
    }
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        terse_log_error("failed to map %zu bytes for %s: %m", len, what);
        return NULL;
    }
    /* Bind before the first touch so pages are born on the node (no migration). Without
     * HWLOC_MEMBIND_STRICT hwloc asks Linux for a preferred node, so a full node falls back to
     * another instead of failing the allocation. */
    if (hwloc_set_area_membind(t->hwloc, p, len, plan->nodeset, HWLOC_MEMBIND_BIND,
                               HWLOC_MEMBIND_BYNODESET) != 0)
        terse_log_debug("cannot bind %s to numa node %d (%m); default placement", what,
                        plan->numa_os_index);
    /* Pre-fault: first touch costs ~11 us per page on some VMs; pay it here, not in the hot
     * path (same contract as terse__alloc_scratch). */
    populate(p, len);
    return p;
}

void terse__topo_free(const terse__topo_t *t, void *p, size_t size)
{
    (void)t;
    terse__free_scratch(p, size);
}

static void *plan_alloc(void *ctx, size_t size, const char *what)
{
    const terse__topo_plan_t *plan = ctx;
    return terse__topo_alloc(plan->topo, plan, size, what);
}

const terse__allocator_t *terse__topo_plan_allocator(const terse__topo_t *t,
                                                     terse__topo_plan_t *plan)
{
    if (!plan)
        return NULL;
    plan->topo = t;
    plan->allocator.alloc = plan_alloc;
    plan->allocator.ctx = plan;
    return &plan->allocator;
}

int terse__topo_numa_of(const terse__topo_t *t, const void *p)
{
    if (!t || !t->this_system || !p)
        return -1;
    hwloc_nodeset_t ns = hwloc_bitmap_alloc();
    if (!ns)
        return -1;
    int node = -1;
    if (hwloc_get_area_memlocation(t->hwloc, p, 1, ns, HWLOC_MEMBIND_BYNODESET) == 0)
        node = hwloc_bitmap_first(ns);
    hwloc_bitmap_free(ns);
    return node;
}

terse_status_t terse__topo_host_id(char *buf, size_t len)
{
    const terse__config_t *cfg = terse__config();
    char host[256] = "", boot[64] = "";

    if (!buf || len == 0)
        return TERSE_ERR_INVALID_ARG;
    if (cfg->host_id[0]) {
        if ((size_t)snprintf(buf, len, "%s", cfg->host_id) >= len) {
            terse_log_error("TERSE_HOST_ID '%s' is longer than %zu bytes", cfg->host_id, len - 1);
            return TERSE_ERR_INVALID_ARG;
        }
        return TERSE_OK;
    }
    if (gethostname(host, sizeof(host) - 1) != 0) {
        terse_log_warn("gethostname failed: %m; grouping ranks by boot id only");
        host[0] = '\0';
    }
    /* The boot id is a random UUID per boot: it tells apart cloned VMs or containers that
     * report the same hostname on different machines. */
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof(boot), f))
            boot[0] = '\0';
        fclose(f);
        boot[strcspn(boot, "\r\n")] = '\0';
    } else {
        terse_log_debug("cannot read /proc/sys/kernel/random/boot_id: %m; host id is the hostname");
    }
    if (!host[0] && !boot[0]) {
        terse_log_error("no hostname and no boot id; set TERSE_HOST_ID to group ranks by host");
        return TERSE_ERR_NOT_SUPPORTED;
    }
    if ((size_t)snprintf(buf, len, "%s%s%s", host, boot[0] ? ":" : "", boot) >= len) {
        terse_log_error("host id of %s does not fit in %zu bytes", host, len - 1);
        return TERSE_ERR_INVALID_ARG;
    }
    return TERSE_OK;
}
