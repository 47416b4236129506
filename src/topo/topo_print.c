/* Human-readable topology and plan summaries (terse_info, info-level logs). */
#include "topo/topo_priv.h"

#include <stdlib.h>
#include <string.h>

static const char *list_or(hwloc_const_bitmap_t set, char **tofree)
{
    *tofree = NULL;
    if (!set || hwloc_bitmap_list_asprintf(tofree, set) < 0 || !*tofree)
        return "?";
    return *tofree;
}

void terse__topo_plan_string(const terse__topo_plan_t *plan, char *buf, size_t len)
{
    char *a = NULL, *b = NULL;
    if (!plan || !plan->allowed) {
        snprintf(buf, len, "no plan");
        return;
    }
    int n = snprintf(buf, len, "nic %s", plan->nic[0] ? plan->nic : "(none)");
    if (plan->nic[0] && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, " [%s, %d rail%s]", plan->osdev, plan->num_rails,
                      plan->num_rails == 1 ? "" : "s");
    if ((size_t)n < len && plan->bind_thread)
        n += snprintf(buf + n, len - (size_t)n, ", thread cpus %s (core L#%d), workers %s",
                      list_or(plan->thread_cpus, &a), plan->core_index,
                      list_or(plan->worker_cpus, &b));
    else if ((size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, ", threads unbound");
    if ((size_t)n < len && plan->bind_memory)
        n += snprintf(buf + n, len - (size_t)n, ", buffers numa %d", plan->numa_os_index);
    else if ((size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, ", buffers unbound");
    if ((size_t)n < len && plan->ucx_net_devices[0])
        n += snprintf(buf + n, len - (size_t)n, ", ucx devices %s", plan->ucx_net_devices);
    if ((size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " (%s)", plan->reason);
    free(a);
    free(b);
}

void terse__topo_print(const terse__topo_t *t, const terse__topo_plan_t *plan, FILE *out)
{
    char *s = NULL, *s2 = NULL;
    if (!t) {
        fprintf(out, "topology: not available (threads and buffers unbound)\n");
        goto print_plan;
    }
    hwloc_topology_t h = t->hwloc;
    hwloc_obj_t root = hwloc_get_root_obj(h);
    const char *host = hwloc_obj_get_info_by_name(root, "HostName");
    fprintf(out, "topology: %s%s%s%s: %d packages, %d cores, %d pus, %d numa nodes%s\n", t->source,
            host ? " (" : "", host ? host : "", host ? ")" : "",
            hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_PACKAGE),
            hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_CORE), hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_PU),
            hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_NUMANODE),
            t->this_system ? "" : " [not this system]");
    fprintf(out, "  allowed cpus %s\n", list_or(hwloc_topology_get_allowed_cpuset(h), &s));
    free(s);
    for (hwloc_obj_t n = hwloc_get_next_obj_by_type(h, HWLOC_OBJ_NUMANODE, NULL); n;
         n = hwloc_get_next_obj_by_type(h, HWLOC_OBJ_NUMANODE, n)) {
        fprintf(out, "  numa %u: cpus %s, %llu MiB\n", n->os_index, list_or(n->cpuset, &s),
                (unsigned long long)(n->attr ? n->attr->numanode.local_memory >> 20 : 0));
        free(s);
    }
    int nics = 0;
    for (hwloc_obj_t o = hwloc_get_next_osdev(h, NULL); o; o = hwloc_get_next_osdev(h, o)) {
        terse__topo_nic_t nic;
        if (o->attr->osdev.type != HWLOC_OBJ_OSDEV_NETWORK &&
            o->attr->osdev.type != HWLOC_OBJ_OSDEV_OPENFABRICS)
            continue;
        terse__topo_nic_fill(t, o, &nic);
        char numa[16];
        if (nic.numa_os_index >= 0)
            snprintf(numa, sizeof(numa), "%d", nic.numa_os_index);
        else
            snprintf(numa, sizeof(numa), "%s", "any");
        char bus[32] = "";
        if (nic.pci)
            snprintf(bus, sizeof(bus), " pci %04x:%02x:%02x.%01x", nic.pci->attr->pcidev.domain,
                     nic.pci->attr->pcidev.bus, nic.pci->attr->pcidev.dev,
                     nic.pci->attr->pcidev.func);
        fprintf(out, "  nic %s (%s%s): numa %s, cpus %s\n", nic.osdev,
                o->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS ? "openfabrics" : "net", bus,
                numa, list_or(nic.cpuset, &s));
        free(s);
        nics++;
    }
    if (nics == 0)
        fprintf(out, "  no network devices (no i/o information)\n");
print_plan:
    if (plan && plan->allowed) {
        char line[512];
        terse__topo_plan_string(plan, line, sizeof(line));
        fprintf(out, "  plan: allowed %s; %s\n", list_or(plan->allowed, &s2), line);
        free(s2);
    }
}
