/*
 * The planner: (topology, allowed cpuset, NIC names, local rank/size, TERSE_BIND) -> plan.
 *
 * Rails. The devices UCX uses are resolved to hwloc OS devices; names that reach the same PCI
 * function ("ib0" and "mlx4_0:1") are one rail. When some rails are RDMA-capable only those
 * count (a 1 GbE management port next to an HCA is no rail to spread over). Rails near this
 * rank (their cores meet its allowed cpuset) are the candidates, ordered so that consecutive
 * ones sit on different NUMA nodes; local rank r takes candidate r mod count. Ranks of an
 * unbound host thus spread over all NICs and all NUMA nodes before two share a NIC. With two
 * rails or more the plan names the UCX_NET_DEVICES value that keeps UCX on the chosen one.
 *
 * Names that resolve to nothing: virtual devices of this machine (veth in a network
 * namespace, bridges, ifb) cannot be placed by anyone and are only logged at debug level;
 * devices UCX reports that the topology lacks are warned about once per host (local rank 0);
 * names the user gave (UCX_NET_DEVICES) that name no device are warned about by every rank.
 *
 * Cores. Among the ranks that got a rail on the same locality, this rank's slot s picks the
 * s-th allowed core in nearest-first order (under the NIC's attach point, then under its
 * parent, ... up to the machine), so no two progress threads share a core while cores remain
 * and the overflow lands as close to the NIC as the tree allows.
 * Buffers go to the NUMA node of that core (the NIC's node whenever the core is near it): when
 * the launcher keeps a rank away from its NIC, the CPU touching every byte wins over the DMA.
 */
#include "topo/topo_priv.h"

#include "core/alloc.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Largest cpu index TERSE_BIND accepts: far above any machine, low enough to stop typos such
 * as "0-99999999" from allocating huge bitmaps. */
#define TERSE_TOPO_MAX_CPU 65535

typedef struct rail {
    terse__topo_nic_t nic;
    size_t name_index; /* first request name that resolved to it */
    int group;         /* locality group: rails with the same ancestor share one */
} rail_t;

#define NO_RAIL ((size_t)-1)

/* What resolving the request's names found. */
typedef struct rail_scan {
    size_t nrails;
    size_t *name_rail; /* per request name: its rail, NO_RAIL when unresolved */
    size_t nvirtual;   /* names of virtual devices (never placeable) */
    size_t nmissing;   /* other names that resolved to nothing */
} rail_scan_t;

static char *set_string(hwloc_const_bitmap_t set)
{
    char *s = NULL;
    if (hwloc_bitmap_list_asprintf(&s, set) < 0)
        return NULL;
    return s;
}

/* Strict "0-3,8,10-11" parser (spaces allowed around items). hwloc's own list parser accepts
 * trailing garbage and open ranges, which would turn a typo into a silent binding. */
static int parse_cpulist(const char *s, hwloc_bitmap_t set)
{
    const char *p = s;
    hwloc_bitmap_zero(set);
    for (;;) {
        char *end;
        while (isspace((unsigned char)*p))
            p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        errno = 0;
        unsigned long lo = strtoul(p, &end, 10), hi = lo;
        if (errno || lo > TERSE_TOPO_MAX_CPU)
            return -1;
        p = end;
        if (*p == '-') {
            p++;
            if (!isdigit((unsigned char)*p))
                return -1;
            hi = strtoul(p, &end, 10);
            if (errno || hi > TERSE_TOPO_MAX_CPU || hi < lo)
                return -1;
            p = end;
        }
        hwloc_bitmap_set_range(set, (unsigned)lo, (int)hi);
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            return 0;
        if (*p != ',')
            return -1;
        p++;
    }
}

/* The allowed cpuset the plan must stay in. */
static void compute_allowed(const terse__topo_t *t, const terse__topo_request_t *req,
                            hwloc_bitmap_t allowed)
{
    hwloc_const_cpuset_t topo_allowed = hwloc_topology_get_allowed_cpuset(t->hwloc);

    if (req->allowed) {
        hwloc_bitmap_and(allowed, req->allowed, topo_allowed);
        if (hwloc_bitmap_iszero(allowed)) {
            char *s = set_string(req->allowed);
            terse_log_warn("allowed cpuset %s has no cpu of the topology; using its allowed cpus",
                           s ? s : "?");
            free(s);
            hwloc_bitmap_copy(allowed, topo_allowed);
        }
        return;
    }
    /* The launcher's binding of the whole process, not of this thread: the comm may be created
     * from a thread the application has bound more narrowly. */
    if (t->this_system && hwloc_get_cpubind(t->hwloc, allowed, HWLOC_CPUBIND_PROCESS) == 0) {
        hwloc_bitmap_and(allowed, allowed, topo_allowed);
        if (!hwloc_bitmap_iszero(allowed))
            return;
    }
    hwloc_bitmap_copy(allowed, topo_allowed);
}

/* Says why @name cannot be placed, as loud as it deserves (see the top of this file). */
static void report_unplaced(const terse__topo_t *t, const terse__topo_request_t *req,
                            const char *name, int has_io, rail_scan_t *scan)
{
    if (terse__topo_nic_is_virtual(t, name)) {
        terse_log_debug("network device '%s' is virtual (no hardware device behind it); not used "
                        "for placement",
                        name);
        scan->nvirtual++;
        return;
    }
    scan->nmissing++;
    if (req->nics_from_user) {
        if (has_io)
            terse_log_warn("network device '%s' (UCX_NET_DEVICES) names no network device of %s; "
                           "ignoring it for placement",
                           name, t->source);
        else
            terse_log_warn("network device '%s' (UCX_NET_DEVICES) cannot be placed: the topology "
                           "of %s has no i/o information",
                           name, t->source);
        return;
    }
    /* UCX found it, so it exists: every rank of the host would say the same. */
    if (req->local_rank != 0) {
        terse_log_debug("network device '%s' is not in the topology of %s", name, t->source);
    } else if (has_io) {
        terse_log_warn("network device '%s' is not in the topology of %s; ignoring it for "
                       "placement",
                       name, t->source);
    } else {
        terse_log_warn("network device '%s' cannot be placed: the topology of %s has no i/o "
                       "information",
                       name, t->source);
    }
}

/* Resolves request names to distinct rails (fills @scan). */
static void resolve_rails(const terse__topo_t *t, const terse__topo_request_t *req, rail_t *rails,
                          rail_scan_t *scan)
{
    size_t n = 0;
    int ngroups = 0;
    const char *none[1];
    int has_io = terse__topo_nic_names(t, none, 0) > 0;

    for (size_t i = 0; i < req->num_nics; i++) {
        const char *name = req->nics[i];
        terse__topo_nic_t nic;
        scan->name_rail[i] = NO_RAIL;
        if (!name || !name[0])
            continue;
        if (terse__topo_nic_lookup(t, name, &nic) != TERSE_OK) {
            report_unplaced(t, req, name, has_io, scan);
            continue;
        }
        size_t k;
        for (k = 0; k < n; k++) {
            if (rails[k].nic.obj == nic.obj || (nic.pci && rails[k].nic.pci == nic.pci))
                break;
        }
        scan->name_rail[i] = k;
        if (k < n) { /* another name of a device we have (ib0 and mlx4_0 on one HCA) */
            rails[k].nic.rdma |= nic.rdma;
            continue;
        }
        rails[n].nic = nic;
        rails[n].name_index = i;
        rails[n].group = -1;
        for (k = 0; k < n; k++) {
            if (rails[k].nic.ancestor == nic.ancestor) {
                rails[n].group = rails[k].group;
                break;
            }
        }
        if (rails[n].group < 0)
            rails[n].group = ngroups++;
        n++;
    }
    scan->nrails = n;
}

/* The UCX_NET_DEVICES value for rail @r: every request name that resolved to it. */
static void rail_devices(const terse__topo_request_t *req, const rail_scan_t *scan, size_t r,
                         char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < req->num_nics; i++) {
        if (scan->name_rail[i] != r)
            continue;
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = scan->name_rail[j] == r && !strcmp(req->nics[j], req->nics[i]);
        if (dup)
            continue;
        size_t need = strlen(req->nics[i]) + (used ? 1 : 0);
        if (used + need >= len)
            break; /* never a partial name; the first always fits (names are short) */
        used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "", req->nics[i]);
    }
}

/* Orders @cand (indices into rails) round-robin over locality groups, keeping request order
 * within a group, so consecutive local ranks land on different NUMA nodes. */
static void interleave_groups(const rail_t *rails, size_t *cand, size_t n, size_t *tmp)
{
    size_t out = 0;
    /* Round k emits the k-th member of every group, groups in order of first appearance. */
    for (size_t round = 0; out < n; round++) {
        for (size_t i = 0; i < n; i++) {
            size_t pos = 0; /* members of cand[i]'s group before it */
            for (size_t j = 0; j < i; j++)
                pos += rails[cand[j]].group == rails[cand[i]].group;
            if (pos == round)
                tmp[out++] = cand[i];
        }
    }
    memcpy(cand, tmp, n * sizeof(*cand));
}

/* The NUMA node of @cpus, preferring one in @prefer (may be NULL). NULL when none. */
static hwloc_obj_t numa_of_cpus(const terse__topo_t *t, hwloc_const_cpuset_t cpus,
                                hwloc_const_nodeset_t prefer)
{
    hwloc_obj_t any = NULL;
    for (hwloc_obj_t n = hwloc_get_next_obj_by_type(t->hwloc, HWLOC_OBJ_NUMANODE, NULL); n;
         n = hwloc_get_next_obj_by_type(t->hwloc, HWLOC_OBJ_NUMANODE, n)) {
        if (!n->cpuset || !hwloc_bitmap_intersects(n->cpuset, cpus))
            continue;
        if (!prefer || hwloc_bitmap_isset(prefer, n->os_index))
            return n;
        if (!any)
            any = n;
    }
    return any;
}

static void set_memory(const terse__topo_t *t, terse__topo_plan_t *plan,
                       hwloc_const_nodeset_t prefer)
{
    hwloc_obj_t node = numa_of_cpus(t, plan->thread_cpus, prefer);
    if (!node)
        return;
    plan->numa_os_index = (int)node->os_index;
    hwloc_bitmap_only(plan->nodeset, node->os_index);
    plan->bind_memory = 1;
}

/* Visits the allowed cores nearest-first: those under @anc (the NIC's attach point), then
 * those under its parent, and so on up to the machine, each level in hwloc order. Calls
 * @visit(core, level, arg) until it returns nonzero; returns the number visited. Core objects
 * when the topology has them, PUs otherwise. */
static unsigned walk_cores(const terse__topo_t *t, hwloc_obj_t anc, hwloc_const_cpuset_t allowed,
                           int (*visit)(hwloc_obj_t, int, void *), void *arg)
{
    hwloc_obj_type_t type =
        hwloc_get_nbobjs_by_type(t->hwloc, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
    hwloc_bitmap_t done = hwloc_bitmap_alloc(), scope = hwloc_bitmap_alloc();
    unsigned count = 0;
    if (!done || !scope)
        goto out;
    for (int level = 0; anc; anc = anc->parent, level++) {
        hwloc_bitmap_and(scope, anc->cpuset, allowed);
        hwloc_bitmap_andnot(scope, scope, done);
        if (hwloc_bitmap_iszero(scope))
            continue;
        for (hwloc_obj_t o = hwloc_get_next_obj_by_type(t->hwloc, type, NULL); o;
             o = hwloc_get_next_obj_by_type(t->hwloc, type, o)) {
            if (!hwloc_bitmap_intersects(o->cpuset, scope))
                continue;
            count++;
            if (visit && visit(o, level, arg))
                goto out;
        }
        hwloc_bitmap_or(done, done, scope);
    }
out:
    hwloc_bitmap_free(done);
    hwloc_bitmap_free(scope);
    return count;
}

typedef struct core_pick {
    unsigned want; /* index in the walk */
    hwloc_obj_t core;
    int level;
} core_pick_t;

static int visit_pick(hwloc_obj_t o, int level, void *arg)
{
    core_pick_t *p = arg;
    if (p->want-- > 0)
        return 0;
    p->core = o;
    p->level = level;
    return 1;
}

/* The (slot mod count)-th allowed core nearest the rail: writes its allowed cpus to @out and
 * how far up the tree it was found (0: under the NIC's attach point) to @level_p. Returns its
 * logical index, -1 when the allowed cpuset holds no core. */
static int pick_core(const terse__topo_t *t, hwloc_obj_t anc, hwloc_const_cpuset_t allowed,
                     unsigned slot, hwloc_bitmap_t out, int *level_p)
{
    unsigned total = walk_cores(t, anc, allowed, NULL, NULL);
    if (total == 0)
        return -1;
    core_pick_t pick = {.want = slot % total, .core = NULL, .level = 0};
    walk_cores(t, anc, allowed, visit_pick, &pick);
    if (!pick.core)
        return -1;
    hwloc_bitmap_and(out, pick.core->cpuset, allowed);
    *level_p = pick.level;
    return (int)pick.core->logical_index;
}

static void plan_auto(const terse__topo_t *t, const terse__topo_request_t *req, const rail_t *rails,
                      const size_t *cand, size_t ncand, size_t mine, terse__topo_plan_t *plan)
{
    const rail_t *r = &rails[cand[mine]];
    hwloc_bitmap_t near = hwloc_bitmap_alloc();
    if (!near)
        return;

    /* Ranks before us that drive a rail on our locality take the cores before ours. */
    unsigned slot = 0;
    for (int j = 0; j < req->local_rank; j++) {
        if (rails[cand[(size_t)j % ncand]].group == r->group)
            slot++;
    }
    hwloc_bitmap_and(near, r->nic.cpuset, plan->allowed);
    int level = 0;
    int core = pick_core(t, r->nic.ancestor, plan->allowed, slot, plan->thread_cpus, &level);
    if (core < 0) {
        snprintf(plan->reason, sizeof(plan->reason), "no core in the allowed cpuset");
        hwloc_bitmap_copy(plan->thread_cpus, plan->allowed);
        goto out;
    }
    plan->mode = TERSE_TOPO_AUTO;
    plan->bind_thread = 1;
    plan->core_index = core;
    hwloc_bitmap_copy(plan->worker_cpus, hwloc_bitmap_iszero(near) ? plan->allowed : near);
    set_memory(t, plan, r->nic.nodeset);
    if (hwloc_bitmap_iszero(near))
        snprintf(plan->reason, sizeof(plan->reason),
                 "auto: allowed cpus are not near %s; nearest allowed core", plan->nic);
    else if (level > 0)
        snprintf(plan->reason, sizeof(plan->reason),
                 "auto: more ranks than cores near %s; core further away", plan->nic);
    else
        snprintf(plan->reason, sizeof(plan->reason), "auto: core near %s", plan->nic);
out:
    hwloc_bitmap_free(near);
}

static void plan_cpulist(const terse__topo_t *t, const terse__topo_request_t *req, const char *bind,
                         hwloc_const_nodeset_t prefer, terse__topo_plan_t *plan)
{
    hwloc_bitmap_t list = hwloc_bitmap_alloc();
    if (!list)
        return;
    if (parse_cpulist(bind, list) != 0) {
        terse_log_warn("invalid TERSE_BIND value '%s' (expected auto, none or a cpu list such as "
                       "0-3,8); threads and buffers stay unbound",
                       bind);
        snprintf(plan->reason, sizeof(plan->reason), "invalid TERSE_BIND '%.100s'", bind);
        goto out;
    }
    char *allowed_s = set_string(plan->allowed);
    hwloc_bitmap_and(list, list, plan->allowed);
    if (hwloc_bitmap_iszero(list)) {
        terse_log_warn("TERSE_BIND cpus '%s' are all outside the allowed cpuset %s; threads and "
                       "buffers stay unbound",
                       bind, allowed_s ? allowed_s : "?");
        snprintf(plan->reason, sizeof(plan->reason), "TERSE_BIND '%.60s' outside allowed %.60s",
                 bind, allowed_s ? allowed_s : "?");
        free(allowed_s);
        goto out;
    }
    /* A host-wide list with launcher-bound ranks meets each rank's cpuset in part: normal. */
    terse_log_debug("TERSE_BIND '%s' inside allowed cpuset %s", bind, allowed_s ? allowed_s : "?");
    free(allowed_s);

    /* Local rank r takes the r-th listed cpu (mod count) so ranks of a host do not collide. */
    int cpu = hwloc_bitmap_first(list);
    for (int k = req->local_rank % hwloc_bitmap_weight(list); k > 0; k--)
        cpu = hwloc_bitmap_next(list, cpu);
    plan->mode = TERSE_TOPO_CPULIST;
    plan->bind_thread = 1;
    hwloc_bitmap_only(plan->thread_cpus, (unsigned)cpu);
    hwloc_bitmap_copy(plan->worker_cpus, list);
    hwloc_obj_t core = hwloc_get_obj_covering_cpuset(t->hwloc, plan->thread_cpus);
    while (core && core->type != HWLOC_OBJ_CORE)
        core = core->parent;
    plan->core_index = core ? (int)core->logical_index : -1;
    set_memory(t, plan, prefer);
    snprintf(plan->reason, sizeof(plan->reason), "TERSE_BIND list: cpu %d", cpu);
out:
    hwloc_bitmap_free(list);
}

/* The rail of this rank in every mode (which NIC a rank drives matters even when unbound):
 * the candidates (rails of the best kind near the allowed cpus, else all of that kind) in
 * @cand, their count in *ncand_p and this rank's index among them in *mine_p. */
static void choose_rail(const terse__topo_t *t, const terse__topo_request_t *req, const char *bind,
                        rail_t *rails, size_t *cand, rail_scan_t *scan, terse__topo_plan_t *plan,
                        size_t *ncand_p, size_t *mine_p)
{
    resolve_rails(t, req, rails, scan);
    size_t nrails = scan->nrails, ncand = 0, nclass = 0;
    int any_rdma = 0;
    for (size_t i = 0; i < nrails; i++)
        any_rdma |= rails[i].nic.rdma;
    /* Rails of the best kind: RDMA devices when the host has any, otherwise every rail. */
    for (size_t i = 0; i < nrails; i++) {
        if (any_rdma && !rails[i].nic.rdma)
            continue;
        nclass++;
        if (hwloc_bitmap_intersects(rails[i].nic.cpuset, plan->allowed))
            cand[ncand++] = i;
    }
    if (ncand == 0) { /* bound away from every NIC: still spread over them */
        for (size_t i = 0; i < nrails; i++) {
            if (!any_rdma || rails[i].nic.rdma)
                cand[ncand++] = i;
        }
    }
    size_t mine = 0;
    if (ncand > 0) {
        interleave_groups(rails, cand, ncand, cand + ncand);
        mine = (size_t)req->local_rank % ncand;
        const rail_t *r = &rails[cand[mine]];
        plan->nic_index = (int)r->name_index;
        plan->num_rails = (int)ncand;
        snprintf(plan->nic, sizeof(plan->nic), "%s", req->nics[r->name_index]);
        snprintf(plan->osdev, sizeof(plan->osdev), "%s", r->nic.osdev);
        /* Only a choice among rails needs enforcing; TERSE_BIND=none turns placement off. */
        if (nclass >= 2 && strcmp(bind, "none") != 0)
            rail_devices(req, scan, cand[mine], plan->ucx_net_devices,
                         sizeof(plan->ucx_net_devices));
    }
    *ncand_p = ncand;
    *mine_p = mine;
}

/* bind auto without a rail to follow: why, said once per host where nothing is wrong. */
static void plan_unplaced(const terse__topo_t *t, const terse__topo_request_t *req,
                          const rail_scan_t *scan, terse__topo_plan_t *plan)
{
    if (req->num_nics == 0) {
        terse_log_info("no network device given; threads and buffers stay unbound");
        snprintf(plan->reason, sizeof(plan->reason), "no network device found");
    } else if (scan->nmissing == 0) {
        /* Only virtual devices (network namespaces, emulated clusters): nothing is
         * wrong, there is just no locality to follow. One line per host. */
        if (req->local_rank == 0)
            terse_log_info("network devices are virtual (no hardware device behind "
                           "them); threads and buffers stay unbound");
        snprintf(plan->reason, sizeof(plan->reason), "virtual network devices only");
    } else {
        if (req->nics_from_user || req->local_rank == 0)
            terse_log_warn("none of the %zu network devices given was found in the "
                           "topology of %s; threads and buffers stay unbound",
                           req->num_nics, t->source);
        snprintf(plan->reason, sizeof(plan->reason), "no network device found");
    }
}

terse_status_t terse__topo_plan(const terse__topo_t *t, const terse__topo_request_t *req,
                                terse__topo_plan_t *plan_p)
{
    terse__topo_plan_t plan;
    rail_t *rails = NULL;
    size_t *cand = NULL;
    rail_scan_t scan = {0};
    size_t ncand = 0, mine = 0;

    if (!req || !plan_p || req->local_size < 1 || req->local_rank < 0 ||
        req->local_rank >= req->local_size || (req->num_nics && !req->nics)) {
        terse_log_error("invalid topology request (local rank %d of %d)",
                        req ? req->local_rank : -1, req ? req->local_size : -1);
        return TERSE_ERR_INVALID_ARG;
    }
    memset(&plan, 0, sizeof(plan));
    plan.nic_index = -1;
    plan.core_index = -1;
    plan.numa_os_index = -1;
    plan.allowed = hwloc_bitmap_alloc();
    plan.thread_cpus = hwloc_bitmap_alloc();
    plan.worker_cpus = hwloc_bitmap_alloc();
    plan.nodeset = hwloc_bitmap_alloc();
    if (!plan.allowed || !plan.thread_cpus || !plan.worker_cpus || !plan.nodeset)
        goto err_nomem;

    const char *bind = req->bind && req->bind[0] ? req->bind : "auto";
    if (!t) {
        /* Every cpu: we cannot tell which the launcher gave us, and we bind none of them. */
        hwloc_bitmap_fill(plan.allowed);
        hwloc_bitmap_fill(plan.thread_cpus);
        hwloc_bitmap_fill(plan.worker_cpus);
        snprintf(plan.reason, sizeof(plan.reason), "no topology");
        goto done;
    }
    compute_allowed(t, req, plan.allowed);
    hwloc_bitmap_copy(plan.thread_cpus, plan.allowed);
    hwloc_bitmap_copy(plan.worker_cpus, plan.allowed);

    /* Choose the rail in every mode: which NIC a rank drives matters even when unbound. */
    rails = terse__calloc(req->num_nics + 1, sizeof(*rails), "topology rails");
    cand = terse__calloc(2 * (req->num_nics + 1), sizeof(*cand), "topology rail candidates");
    scan.name_rail = terse__calloc(req->num_nics + 1, sizeof(size_t), "topology rail names");
    if (!rails || !cand || !scan.name_rail)
        goto err_nomem;
    choose_rail(t, req, bind, rails, cand, &scan, &plan, &ncand, &mine);

    if (!strcmp(bind, "none")) {
        snprintf(plan.reason, sizeof(plan.reason), "TERSE_BIND=none");
    } else if (!strcmp(bind, "auto")) {
        if (ncand == 0) {
            plan_unplaced(t, req, &scan, &plan);
        } else {
            plan_auto(t, req, rails, cand, ncand, mine, &plan);
        }
    } else {
        plan_cpulist(t, req, bind, ncand ? rails[cand[mine]].nic.nodeset : NULL, &plan);
    }

done:
    terse__free(rails);
    terse__free(cand);
    terse__free(scan.name_rail);
    *plan_p = plan;
    return TERSE_OK;

err_nomem:
    terse_log_error("no memory for a topology plan");
    terse__free(rails);
    terse__free(cand);
    terse__free(scan.name_rail);
    terse__topo_plan_release(&plan);
    return TERSE_ERR_NO_MEMORY;
}

void terse__topo_plan_release(terse__topo_plan_t *plan)
{
    if (!plan)
        return;
    hwloc_bitmap_free(plan->allowed);
    hwloc_bitmap_free(plan->thread_cpus);
    hwloc_bitmap_free(plan->worker_cpus);
    hwloc_bitmap_free(plan->nodeset);
    plan->allowed = plan->thread_cpus = plan->worker_cpus = plan->nodeset = NULL;
    plan->bind_thread = plan->bind_memory = 0;
    plan->allocator.alloc = NULL; /* an allocator still held falls back to plain memory */
}
