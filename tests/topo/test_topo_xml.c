/*
 * Planner tests on recorded machine topologies (tests/topo/xml) and fallbacks.
 * Usage: test_topo_xml <xml dir> <case>
 */
#include "topo/topo.h"

#include "core/config.h"

#include "topo_test_util.h"

#include <pthread.h>

static const char *xml_dir;

static terse__topo_t *load(const char *file)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", xml_dir, file);
    terse__topo_t *t = terse__topo_load(path);
    CHECK(t);
    CHECK(!terse__topo_is_this_system(t));
    return t;
}

static hwloc_obj_t numa(terse__topo_t *t, unsigned os_index)
{
    hwloc_obj_t n = hwloc_get_numanode_obj_by_os_index(terse__topo_hwloc(t), os_index);
    CHECK(n);
    return n;
}

static terse__topo_plan_t plan_for(terse__topo_t *t, const char *const *nics, size_t nnics,
                                   int rank, int size, const char *bind,
                                   hwloc_const_cpuset_t allowed)
{
    terse__topo_request_t req = {0};
    terse__topo_plan_t plan;
    req.allowed = allowed;
    req.nics = nics;
    req.num_nics = nnics;
    req.local_rank = rank;
    req.local_size = size;
    req.bind = bind;
    CHECK(terse__topo_plan(t, &req, &plan) == TERSE_OK);
    char line[512];
    terse__topo_plan_string(&plan, line, sizeof(line));
    printf("rank %d/%d: %s\n", rank, size, line);
    return plan;
}

static void check_unbound(const terse__topo_plan_t *p)
{
    CHECK(p->mode == TERSE_TOPO_UNBOUND);
    CHECK(!p->bind_thread);
    CHECK(!p->bind_memory);
    CHECK(p->numa_os_index == -1);
    CHECK(hwloc_bitmap_isequal(p->thread_cpus, p->allowed));
}

/* Every rank of a host planned with @nics; checks cores are distinct, inside @allowed. */
static void check_spread(terse__topo_t *t, const char *const *nics, size_t nnics, int size,
                         hwloc_const_cpuset_t allowed, terse__topo_plan_t *plans)
{
    hwloc_bitmap_t used = hwloc_bitmap_alloc();
    for (int r = 0; r < size; r++) {
        plans[r] = plan_for(t, nics, nnics, r, size, "auto", allowed);
        terse__topo_plan_t *p = &plans[r];
        CHECK(p->mode == TERSE_TOPO_AUTO && p->bind_thread && p->bind_memory);
        CHECK(!hwloc_bitmap_iszero(p->thread_cpus));
        CHECK(hwloc_bitmap_isincluded(p->thread_cpus, p->allowed));
        CHECK(hwloc_bitmap_isincluded(p->worker_cpus, p->allowed));
        if (allowed)
            CHECK(hwloc_bitmap_isincluded(p->thread_cpus, allowed));
        CHECK(!hwloc_bitmap_intersects(p->thread_cpus, used)); /* no two ranks on one core */
        hwloc_bitmap_or(used, used, p->thread_cpus);
        /* Buffers on the node of the progress thread. */
        CHECK(hwloc_bitmap_isincluded(p->thread_cpus, numa(t, (unsigned)p->numa_os_index)->cpuset));
        CHECK(hwloc_bitmap_weight(p->nodeset) == 1 &&
              hwloc_bitmap_first(p->nodeset) == p->numa_os_index);
    }
    hwloc_bitmap_free(used);
}

static void release_plans(terse__topo_plan_t *plans, int n)
{
    for (int r = 0; r < n; r++)
        terse__topo_plan_release(&plans[r]);
}

/* 2 sockets, HCA mlx4_0 (ib0) on NUMA node 0: all ranks' threads and buffers there. */
static void case_pci2n(void)
{
    terse__topo_t *t = load("24em64t-2n6c2t-pci.xml");
    terse__topo_nic_t a, b, c;
    CHECK(terse__topo_nic_lookup(t, "mlx4_0", &a) == TERSE_OK && a.numa_os_index == 0);
    CHECK(terse__topo_nic_lookup(t, "mlx4_0:1", &b) == TERSE_OK && b.obj == a.obj);
    CHECK(terse__topo_nic_lookup(t, "ib0", &c) == TERSE_OK && c.numa_os_index == 0);
    CHECK(c.pci && c.pci == a.pci);
    CHECK(hwloc_bitmap_isequal(a.cpuset, numa(t, 0)->cpuset));
    CHECK(terse__topo_nic_lookup(t, "eth0", &c) == TERSE_OK && c.numa_os_index == 0);
    CHECK(terse__topo_nic_lookup(t, "mlx5_0:1", &c) == TERSE_ERR_INVALID_ARG);

    const char *nics[] = {"mlx4_0:1"};
    terse__topo_plan_t plans[8];
    for (int size = 1; size <= 6; size++) {
        check_spread(t, nics, 1, size, NULL, plans);
        for (int r = 0; r < size; r++) {
            CHECK(plans[r].numa_os_index == 0);
            CHECK(!strcmp(plans[r].nic, "mlx4_0:1") && !strcmp(plans[r].osdev, "mlx4_0"));
            CHECK(plans[r].nic_index == 0 && plans[r].num_rails == 1);
            CHECK(hwloc_bitmap_isincluded(plans[r].thread_cpus, numa(t, 0)->cpuset));
            CHECK(hwloc_bitmap_isequal(plans[r].worker_cpus, numa(t, 0)->cpuset));
            CHECK(hwloc_bitmap_weight(plans[r].thread_cpus) == 2); /* one core, both threads */
        }
        release_plans(plans, size);
    }
    /* 8 ranks: 6 cores near the HCA, then the far socket rather than sharing a core. */
    check_spread(t, nics, 1, 8, NULL, plans);
    for (int r = 0; r < 8; r++)
        CHECK(plans[r].numa_os_index == (r < 6 ? 0 : 1));
    release_plans(plans, 8);

    /* Names of one device are one rail. */
    const char *same[] = {"mlx4_0:1", "ib0", "eth2"};
    check_spread(t, same, 3, 2, NULL, plans);
    CHECK(plans[0].num_rails == 1 && plans[1].nic_index == 0);
    release_plans(plans, 2);

    /* Two Ethernet rails on one node: ranks alternate NICs, cores stay distinct on node 0, and
     * each rank is told to keep UCX on its own port. */
    const char *two[] = {"eth0", "eth1"};
    check_spread(t, two, 2, 4, NULL, plans);
    for (int r = 0; r < 4; r++) {
        CHECK(plans[r].num_rails == 2 && plans[r].nic_index == r % 2);
        CHECK(plans[r].numa_os_index == 0);
        CHECK(!strcmp(plans[r].ucx_net_devices, r % 2 ? "eth1" : "eth0"));
    }
    release_plans(plans, 4);

    /* A 1 GbE port next to the HCA is no rail: every rank drives the HCA, under all its names,
     * and with one rail left there is nothing to restrict. */
    const char *mixed[] = {"eth0", "mlx4_0:1", "ib0"};
    check_spread(t, mixed, 3, 4, NULL, plans);
    for (int r = 0; r < 4; r++) {
        CHECK(plans[r].num_rails == 1 && plans[r].nic_index == 1);
        CHECK(!strcmp(plans[r].osdev, "mlx4_0"));
        CHECK(plans[r].ucx_net_devices[0] == '\0');
    }
    release_plans(plans, 4);
    terse__topo_nic_t eth0, ib;
    CHECK(terse__topo_nic_lookup(t, "eth0", &eth0) == TERSE_OK && !eth0.rdma);
    CHECK(terse__topo_nic_lookup(t, "ib0", &ib) == TERSE_OK && ib.rdma); /* IPoIB port of the HCA */
    terse__topo_release(t);
}

/* Four NUMA nodes, two NICs on each: ranks spread over nodes first, then over ports. */
static void case_multirail(void)
{
    terse__topo_t *t = load("96em64t-4n4d3ca2co-pci.xml");
    const char *nics[] = {"eth0", "eth1", "eth2", "eth3", "eth4", "eth5", "eth6", "eth7"};
    terse__topo_plan_t plans[16];
    for (int i = 0; i < 8; i++) {
        terse__topo_nic_t nic;
        CHECK(terse__topo_nic_lookup(t, nics[i], &nic) == TERSE_OK);
        CHECK(nic.numa_os_index == i / 2);
    }
    check_spread(t, nics, 8, 4, NULL, plans);
    for (int r = 0; r < 4; r++) {
        CHECK(plans[r].num_rails == 8);
        CHECK(plans[r].nic_index == 2 * r); /* eth0, eth2, eth4, eth6 */
        CHECK(plans[r].numa_os_index == r);
        /* the choice takes effect: UCX is kept on this rank's NIC */
        CHECK(!strcmp(plans[r].ucx_net_devices, nics[2 * r]));
    }
    release_plans(plans, 4);
    /* Placement off: the rail is still named, UCX is left alone. */
    for (int r = 0; r < 4; r++) {
        terse__topo_plan_t p = plan_for(t, nics, 8, r, 4, "none", NULL);
        CHECK(p.nic_index == 2 * r && p.ucx_net_devices[0] == '\0');
        terse__topo_plan_release(&p);
    }

    check_spread(t, nics, 8, 8, NULL, plans);
    int seen = 0;
    for (int r = 0; r < 8; r++) {
        seen |= 1 << plans[r].nic_index;
        CHECK(plans[r].numa_os_index == plans[r].nic_index / 2);
    }
    CHECK(seen == 0xff); /* every NIC used once */
    release_plans(plans, 8);

    /* 16 ranks: two per NIC, each NUMA node's 4 ranks on 4 distinct cores of that node. */
    check_spread(t, nics, 8, 16, NULL, plans);
    for (int r = 0; r < 16; r++)
        CHECK(plans[r].numa_os_index == plans[r].nic_index / 2);
    release_plans(plans, 16);

    /* A launcher that bound the ranks to node 2: only its NICs are candidates. */
    hwloc_const_cpuset_t n2 = numa(t, 2)->cpuset;
    check_spread(t, nics, 8, 2, n2, plans);
    CHECK(plans[0].nic_index == 4 && plans[1].nic_index == 5);
    CHECK(plans[0].num_rails == 2);
    CHECK(!strcmp(plans[0].ucx_net_devices, "eth4") && !strcmp(plans[1].ucx_net_devices, "eth5"));
    CHECK(plans[0].numa_os_index == 2 && plans[1].numa_os_index == 2);
    release_plans(plans, 2);

    /* Bound away from the only NIC: stay inside the allowed cpus, buffers on their node. */
    const char *far[] = {"eth4"};
    hwloc_const_cpuset_t n0 = numa(t, 0)->cpuset;
    check_spread(t, far, 1, 2, n0, plans);
    CHECK(plans[0].nic_index == 0 && plans[0].numa_os_index == 0);
    CHECK(strstr(plans[0].reason, "not near"));
    release_plans(plans, 2);
    terse__topo_release(t);
}

/* 24 NUMA nodes in 12 groups: the HCA's node, not node 0. */
static void case_numa24(void)
{
    terse__topo_t *t = load("192em64t-12gr2n8c2t.xml");
    hwloc_topology_t h = terse__topo_hwloc(t);
    CHECK(hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_NUMANODE) == 24);
    terse__topo_nic_t ib, eth;
    CHECK(terse__topo_nic_lookup(t, "mlx4_0:1", &ib) == TERSE_OK);
    CHECK(terse__topo_nic_lookup(t, "eth0", &eth) == TERSE_OK && eth.numa_os_index == 0);
    CHECK(ib.numa_os_index > 0);
    hwloc_obj_t node = numa(t, (unsigned)ib.numa_os_index);
    int cores = hwloc_get_nbobjs_inside_cpuset_by_type(h, node->cpuset, HWLOC_OBJ_CORE);
    CHECK(cores >= 2);

    const char *nics[] = {"mlx4_0:1"};
    terse__topo_plan_t plans[24];
    check_spread(t, nics, 1, 24, NULL, plans);
    for (int r = 0; r < 24; r++) {
        if (r < cores)
            CHECK(plans[r].numa_os_index == ib.numa_os_index);
        else
            CHECK(plans[r].numa_os_index != ib.numa_os_index);
        /* The overflow goes to the NIC's group (its sibling node) before the rest. */
        if (r >= cores && r < 2 * cores)
            CHECK(hwloc_bitmap_isincluded(plans[r].thread_cpus, ib.ancestor->parent->cpuset));
    }
    release_plans(plans, 24);

    /* Ethernet on node 0 and the HCA's IPoIB port: the HCA is the rail for every rank. */
    const char *two[] = {"eth0", "ib0"};
    check_spread(t, two, 2, 2, NULL, plans);
    CHECK(plans[0].numa_os_index == ib.numa_os_index && plans[1].numa_os_index == ib.numa_os_index);
    CHECK(plans[0].nic_index == 1 && plans[1].nic_index == 1 && plans[0].num_rails == 1);
    release_plans(plans, 2);
    terse__topo_release(t);
}

/* SR-IOV: usnic_N on physical functions of both sockets; VFs carry no OS device. */
static void case_vfs(void)
{
    terse__topo_t *t = load("16intel64-manyVFs.xml");
    terse__topo_nic_t u0, u2, e4;
    CHECK(terse__topo_nic_lookup(t, "usnic_0", &u0) == TERSE_OK && u0.numa_os_index == 0);
    CHECK(terse__topo_nic_lookup(t, "usnic_2:1", &u2) == TERSE_OK && u2.numa_os_index == 1);
    CHECK(terse__topo_nic_lookup(t, "eth4", &e4) == TERSE_OK && e4.pci == u0.pci);

    const char *nics[] = {"usnic_0:1", "usnic_2:1"};
    terse__topo_plan_t plans[4];
    check_spread(t, nics, 2, 4, NULL, plans);
    for (int r = 0; r < 4; r++)
        CHECK(plans[r].numa_os_index == r % 2 && plans[r].nic_index == r % 2);
    release_plans(plans, 4);

    /* Every UCX name of the chosen device goes into the restriction, once. */
    const char *names[] = {"usnic_0:1", "eth4", "usnic_2:1", "usnic_0:1"};
    check_spread(t, names, 4, 2, NULL, plans);
    CHECK(plans[0].num_rails == 2 && !strcmp(plans[0].ucx_net_devices, "usnic_0:1,eth4"));
    CHECK(!strcmp(plans[1].ucx_net_devices, "usnic_2:1"));
    release_plans(plans, 2);

    const char *same[] = {"eth4", "usnic_0"};
    check_spread(t, same, 2, 1, NULL, plans);
    CHECK(plans[0].num_rails == 1);
    release_plans(plans, 1);

    const char *list[16];
    CHECK(terse__topo_nic_names(t, list, 16) >= 3);
    terse__topo_release(t);
}

/* Restricted cpuset (0xf06f) and no I/O: never bind outside what the process was given. */
static void case_cpusets(void)
{
    terse__topo_t *t = load("16amd64-8n2c-cpusets.xml");
    hwloc_bitmap_t expect = hwloc_bitmap_alloc(), pair = hwloc_bitmap_alloc();
    hwloc_bitmap_from_ulong(expect, 0xf06fUL);

    /* No NIC: unbound, inside the allowed set, and only informational. */
    capture_begin();
    terse__topo_plan_t p = plan_for(t, NULL, 0, 0, 1, "auto", NULL);
    const char *log = capture_end();
    CHECK(!strstr(log, " warn]"));
    check_unbound(&p);
    CHECK(hwloc_bitmap_isequal(p.allowed, expect));
    terse__topo_plan_release(&p);

    /* A host-wide list meets the allowed set in part: ranks take distinct allowed cpus. */
    hwloc_bitmap_t used = hwloc_bitmap_alloc();
    for (int r = 0; r < 10; r++) {
        p = plan_for(t, NULL, 0, r, 10, "0-15", NULL);
        CHECK(p.mode == TERSE_TOPO_CPULIST && p.bind_thread);
        CHECK(hwloc_bitmap_weight(p.thread_cpus) == 1);
        CHECK(hwloc_bitmap_isincluded(p.thread_cpus, expect));
        CHECK(!hwloc_bitmap_intersects(p.thread_cpus, used));
        CHECK(hwloc_bitmap_isequal(p.worker_cpus, expect));
        hwloc_bitmap_or(used, used, p.thread_cpus);
        terse__topo_plan_release(&p);
    }
    CHECK(hwloc_bitmap_isequal(used, expect));
    hwloc_bitmap_free(used);

    /* Entirely outside the allowed set: warning naming the value, unbound. */
    capture_begin();
    p = plan_for(t, NULL, 0, 0, 1, "4,7-11", NULL);
    log = capture_end();
    CHECK(has_warning(log, "4,7-11"));
    check_unbound(&p);
    terse__topo_plan_release(&p);

    /* An explicit allowed cpuset (the launcher's binding) narrows further. */
    hwloc_bitmap_set_range(pair, 12, 13);
    for (int r = 0; r < 3; r++) {
        p = plan_for(t, NULL, 0, r, 3, "0-15", pair);
        CHECK(hwloc_bitmap_isequal(p.allowed, pair));
        CHECK(hwloc_bitmap_isincluded(p.thread_cpus, pair));
        CHECK(hwloc_bitmap_first(p.thread_cpus) == 12 + r % 2);
        terse__topo_plan_release(&p);
    }

    /* A NIC asked for on a topology without I/O: warned, unbound. */
    const char *nics[] = {"mlx5_0:1"};
    capture_begin();
    p = plan_for(t, nics, 1, 0, 1, "auto", pair);
    log = capture_end();
    CHECK(has_warning(log, "mlx5_0:1") && has_warning(log, "no i/o information"));
    check_unbound(&p);
    CHECK(hwloc_bitmap_isequal(p.allowed, pair));
    terse__topo_plan_release(&p);

    hwloc_bitmap_free(expect);
    hwloc_bitmap_free(pair);
    terse__topo_release(t);
}

static void case_no_nic(void)
{
    terse__topo_t *t = load("24em64t-2n6c2t-pci.xml");
    terse__topo_plan_t p = plan_for(t, NULL, 0, 1, 2, "auto", NULL);
    check_unbound(&p);
    CHECK(p.nic_index == -1 && p.nic[0] == '\0');
    CHECK(hwloc_bitmap_isequal(p.allowed, hwloc_topology_get_allowed_cpuset(terse__topo_hwloc(t))));
    terse__topo_plan_release(&p);
    terse__topo_release(t);
}

static void case_unknown_device(void)
{
    terse__topo_t *t = load("24em64t-2n6c2t-pci.xml");
    const char *bad[] = {"mlx5_9:1"};
    capture_begin();
    terse__topo_plan_t p = plan_for(t, bad, 1, 0, 1, "auto", NULL);
    const char *log = capture_end();
    CHECK(has_warning(log, "'mlx5_9:1'"));
    check_unbound(&p);
    terse__topo_plan_release(&p);

    /* One bad name among good ones: warned (an XML says nothing about this machine's virtual
     * devices), the good one is used. */
    const char *mixed[] = {"veth0", "mlx4_0:1"};
    capture_begin();
    p = plan_for(t, mixed, 2, 0, 1, "auto", NULL);
    log = capture_end();
    CHECK(has_warning(log, "'veth0'"));
    CHECK(p.mode == TERSE_TOPO_AUTO && p.nic_index == 1 && p.numa_os_index == 0);
    terse__topo_plan_release(&p);

    /* Devices UCX reported (not the user's): one warning per host, from local rank 0. */
    capture_begin();
    p = plan_for(t, bad, 1, 1, 2, "auto", NULL);
    log = capture_end();
    CHECK(!strstr(log, " warn]"));
    check_unbound(&p);
    terse__topo_plan_release(&p);

    /* Names the user gave (UCX_NET_DEVICES): every rank warns. */
    terse__topo_request_t req = {0};
    req.nics = bad;
    req.num_nics = 1;
    req.nics_from_user = 1;
    req.local_rank = 1;
    req.local_size = 2;
    capture_begin();
    CHECK(terse__topo_plan(t, &req, &p) == TERSE_OK);
    log = capture_end();
    CHECK(has_warning(log, "'mlx5_9:1' (UCX_NET_DEVICES)"));
    check_unbound(&p);
    terse__topo_plan_release(&p);
    terse__topo_release(t);
}

/* Virtual devices of this machine (veth in a network namespace, lo, ifb): no hwloc topology can
 * place them, so they are not worth a warning; unknown names still are. */
static void case_virtual(void)
{
    terse__topo_t *t = terse__topo_load(NULL);
    CHECK(t && terse__topo_is_this_system(t));
    CHECK(terse__topo_nic_is_virtual(t, "lo")); /* virtual on every Linux machine */
    CHECK(terse__topo_nic_is_virtual(t, "lo:0"));
    CHECK(!terse__topo_nic_is_virtual(t, "terse-no-such-dev0"));
    CHECK(!terse__topo_nic_is_virtual(t, "../net/lo"));
    CHECK(!terse__topo_nic_is_virtual(t, ""));
    const char *names[16];
    size_t n = terse__topo_nic_names(t, names, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        CHECK(!terse__topo_nic_is_virtual(t, names[i])); /* hwloc only lists real devices */

    const char *virt[] = {"lo"};
    for (int user = 0; user <= 1; user++) {
        for (int r = 0; r < 2; r++) {
            terse__topo_request_t req = {0};
            terse__topo_plan_t p;
            req.nics = virt;
            req.num_nics = 1;
            req.nics_from_user = user;
            req.local_rank = r;
            req.local_size = 2;
            capture_begin();
            CHECK(terse__topo_plan(t, &req, &p) == TERSE_OK);
            const char *log = capture_end();
            CHECK(!strstr(log, " warn]"));
            check_unbound(&p);
            CHECK(strstr(p.reason, "virtual"));
            terse__topo_plan_release(&p);
        }
    }
    /* A virtual device next to real ones: quietly skipped, the real one is used. */
    if (n > 0) {
        const char *mixed[] = {"lo", names[0]};
        capture_begin();
        terse__topo_plan_t p = plan_for(t, mixed, 2, 0, 1, "auto", NULL);
        const char *log = capture_end();
        CHECK(!strstr(log, " warn]"));
        CHECK(p.nic_index == 1 && p.mode == TERSE_TOPO_AUTO);
        terse__topo_plan_release(&p);
    }
    /* A name of nothing from the user is still warned about, naming the value. */
    const char *bogus[] = {"terse-no-such-dev0"};
    terse__topo_request_t req = {0};
    terse__topo_plan_t p;
    req.nics = bogus;
    req.num_nics = 1;
    req.nics_from_user = 1;
    req.local_rank = 1;
    req.local_size = 2;
    capture_begin();
    CHECK(terse__topo_plan(t, &req, &p) == TERSE_OK);
    const char *log = capture_end();
    CHECK(has_warning(log, "'terse-no-such-dev0'"));
    check_unbound(&p);
    terse__topo_plan_release(&p);
    terse__topo_release(t);
}

/* NUMA-placed scratch through the plan's allocator: grow-only buffers keep their contract on a
 * foreign topology (plain memory) and on this machine (bound to the plan's node). */
static void check_buf(terse__topo_t *t, terse__topo_plan_t *p, int expect_bound)
{
    const terse__allocator_t *a = terse__topo_plan_allocator(t, p);
    CHECK(a == &p->allocator && a->alloc);
    terse__buf_t b = {0};
    b.what = "test scratch";
    b.allocator = a;
    CHECK(terse__buf_reserve(&b, 100000) == 0 && b.ptr && b.size >= 100000);
    for (size_t i = 0; i < b.size; i++)
        CHECK(((unsigned char *)b.ptr)[i] == 0); /* zeroed like terse__alloc_scratch */
    void *first = b.ptr;
    size_t first_size = b.size;
    CHECK(terse__buf_reserve(&b, 5000) == 0 && b.ptr == first && b.size == first_size);
    CHECK(terse__buf_reserve(&b, first_size + 1) == 0 && b.size >= 2 * first_size);
    memset(b.ptr, 3, b.size);
    if (terse__topo_is_this_system(t)) {
        hwloc_topology_t h = terse__topo_hwloc(t);
        int node = terse__topo_numa_of(t, b.ptr);
        int last = terse__topo_numa_of(t, (char *)b.ptr + b.size - 1);
        hwloc_nodeset_t ns = hwloc_bitmap_alloc();
        hwloc_membind_policy_t pol = HWLOC_MEMBIND_DEFAULT;
        int got = hwloc_get_area_membind(h, b.ptr, b.size, ns, &pol, HWLOC_MEMBIND_BYNODESET);
        char *s = NULL;
        hwloc_bitmap_list_asprintf(&s, ns);
        printf("scratch of %zu bytes: pages on numa %d..%d, policy %d nodes %s (plan numa %d)\n",
               b.size, node, last, pol, s ? s : "?", p->numa_os_index);
        free(s);
        if (expect_bound) {
            CHECK(node == p->numa_os_index && last == p->numa_os_index);
            CHECK(got == 0 && pol == HWLOC_MEMBIND_BIND && hwloc_bitmap_isequal(ns, p->nodeset));
        } else {
            CHECK(got != 0 || pol != HWLOC_MEMBIND_BIND);
        }
        hwloc_bitmap_free(ns);
    }
    terse__buf_release(&b);
    CHECK(!b.ptr && !b.size);
    /* A released plan's allocator gives plain memory instead of touching freed bitmaps. */
    terse__topo_plan_release(p);
    void *q = terse__alloc_scratch_with(a, 8192, "after release");
    CHECK(q);
    terse__free_scratch(q, 8192);
    q = terse__alloc_scratch_with(NULL, 0, "plain");
    CHECK(q);
    terse__free_scratch(q, 0);
}

static void case_alloc(void)
{
    /* Another machine's topology: planned on its node 0, allocated plainly. */
    terse__topo_t *x = load("24em64t-2n6c2t-pci.xml");
    const char *hca[] = {"mlx4_0:1"};
    terse__topo_plan_t p = plan_for(x, hca, 1, 0, 1, "auto", NULL);
    CHECK(p.bind_memory && p.numa_os_index == 0);
    check_buf(x, &p, 0);
    terse__topo_release(x);

    /* This machine: bound to the plan's node (the NIC's) with auto, plain with none. */
    terse__topo_t *t = terse__topo_load(NULL);
    CHECK(t);
    const char *names[16];
    size_t n = terse__topo_nic_names(t, names, 16);
    n = n < 16 ? n : 16;
    p = plan_for(t, names, n, 0, 1, "auto", NULL);
    int bound = p.bind_memory;
    if (n > 0)
        CHECK(bound); /* a NIC with locality: its node */
    check_buf(t, &p, bound);
    p = plan_for(t, names, n, 0, 1, "none", NULL);
    CHECK(!p.bind_memory);
    check_buf(t, &p, 0);
    p = plan_for(NULL, names, n, 0, 1, "auto", NULL); /* no topology at all */
    check_buf(NULL, &p, 0);
    terse__topo_release(t);
}

static void case_bind_outside(void)
{
    terse__topo_t *t = load("24em64t-2n6c2t-pci.xml");
    const char *nics[] = {"mlx4_0:1"};
    capture_begin();
    terse__topo_plan_t p = plan_for(t, nics, 1, 0, 1, "40-47", NULL);
    const char *log = capture_end();
    CHECK(has_warning(log, "40-47"));
    check_unbound(&p);
    CHECK(!strcmp(p.nic, "mlx4_0:1")); /* the rail is still chosen */
    terse__topo_plan_release(&p);

    hwloc_bitmap_t allowed = hwloc_bitmap_alloc();
    hwloc_bitmap_set_range(allowed, 0, 1);
    capture_begin();
    p = plan_for(t, nics, 1, 0, 1, "2-3", allowed);
    log = capture_end();
    CHECK(has_warning(log, "2-3") && has_warning(log, "0-1"));
    check_unbound(&p);
    CHECK(hwloc_bitmap_isequal(p.thread_cpus, allowed));
    terse__topo_plan_release(&p);
    hwloc_bitmap_free(allowed);
    terse__topo_release(t);
}

static void case_bind_garbage(void)
{
    terse__topo_t *t = load("24em64t-2n6c2t-pci.xml");
    const char *nics[] = {"mlx4_0:1"};
    const char *bad[] = {"0-3,x", "3-1", "abc", "-1", "1,,2", "99999999", "0-", "Auto", "2 3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        capture_begin();
        terse__topo_plan_t p = plan_for(t, nics, 1, 0, 1, bad[i], NULL);
        const char *log = capture_end();
        char needle[64];
        snprintf(needle, sizeof(needle), "'%s'", bad[i]);
        CHECK(has_warning(log, needle));
        check_unbound(&p);
        terse__topo_plan_release(&p);
    }
    terse__topo_release(t);
}

static void case_cpulist(void)
{
    terse__topo_t *t = load("24em64t-2n6c2t-pci.xml");
    const char *nics[] = {"mlx4_0:1"};
    for (int r = 0; r < 4; r++) {
        terse__topo_plan_t p = plan_for(t, nics, 1, r, 4, " 12-14 , 20", NULL);
        int want[] = {12, 13, 14, 20};
        CHECK(p.mode == TERSE_TOPO_CPULIST && p.bind_thread && p.bind_memory);
        CHECK(hwloc_bitmap_weight(p.thread_cpus) == 1 &&
              hwloc_bitmap_first(p.thread_cpus) == want[r]);
        CHECK(hwloc_bitmap_isincluded(p.thread_cpus, numa(t, (unsigned)p.numa_os_index)->cpuset));
        CHECK(p.core_index >= 0);
        terse__topo_plan_release(&p);
    }
    terse__topo_release(t);
}

static void case_none(void)
{
    terse__topo_t *t = load("96em64t-4n4d3ca2co-pci.xml");
    const char *nics[] = {"eth0", "eth2"};
    terse__topo_plan_t p = plan_for(t, nics, 2, 1, 2, "none", NULL);
    check_unbound(&p);
    CHECK(p.nic_index == 1 && !strcmp(p.nic, "eth2")); /* still spread over rails */
    terse__topo_plan_release(&p);
    terse__topo_release(t);
}

static void case_bad_xml(void)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/does-not-exist.xml", xml_dir);
    capture_begin();
    terse__topo_t *t = terse__topo_load(path);
    const char *log = capture_end();
    CHECK(!t);
    CHECK(has_warning(log, "does-not-exist.xml"));

    char junk[] = "/tmp/terse-topo-junk-XXXXXX";
    int fd = mkstemp(junk);
    CHECK(fd >= 0);
    CHECK(write(fd, "<topology>not really", 20) == 20);
    close(fd);
    capture_begin();
    t = terse__topo_load(junk);
    log = capture_end();
    unlink(junk);
    CHECK(!t);
    CHECK(has_warning(log, junk));

    /* Everything still works without a topology. */
    const char *nics[] = {"mlx5_0:1"};
    terse__topo_plan_t p = plan_for(NULL, nics, 1, 0, 1, "auto", NULL);
    check_unbound(&p);
    CHECK(terse__topo_bind_thread(NULL, &p) == TERSE_OK);
    CHECK(terse__topo_bind_worker(NULL, &p) == TERSE_OK);
    char *buf = terse__topo_alloc(NULL, &p, 1 << 20, "test buffer");
    CHECK(buf);
    memset(buf, 1, 1 << 20);
    terse__topo_free(NULL, buf, 1 << 20);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    terse__topo_print(NULL, &p, f);
    fclose(f);
    CHECK(strstr(out, "not available") && strstr(out, "plan:"));
    free(out);
    terse__topo_plan_release(&p);
    terse__topo_plan_release(&p); /* idempotent */
    terse__topo_release(NULL);
}

static void case_invalid(void)
{
    terse__topo_t *t = load("24em64t-2n6c2t-pci.xml");
    terse__topo_request_t req = {0};
    terse__topo_plan_t p;
    req.local_size = 2;
    req.local_rank = 2;
    CHECK(terse__topo_plan(t, &req, &p) == TERSE_ERR_INVALID_ARG);
    req.local_rank = -1;
    CHECK(terse__topo_plan(t, &req, &p) == TERSE_ERR_INVALID_ARG);
    req.local_rank = 0;
    req.local_size = 0;
    CHECK(terse__topo_plan(t, &req, &p) == TERSE_ERR_INVALID_ARG);
    CHECK(terse__topo_plan(t, NULL, &p) == TERSE_ERR_INVALID_ARG);
    req.local_size = 1;
    CHECK(terse__topo_plan(t, &req, NULL) == TERSE_ERR_INVALID_ARG);
    /* Binding a plan made from another machine's topology is refused, not attempted. */
    const char *nics[] = {"mlx4_0:1"};
    p = plan_for(t, nics, 1, 0, 1, "auto", NULL);
    CHECK(p.bind_thread);
    CHECK(terse__topo_bind_thread(t, &p) == TERSE_ERR_NOT_SUPPORTED);
    char *buf = terse__topo_alloc(t, &p, 3 * 4096 + 5, "test buffer");
    CHECK(buf);
    buf[3 * 4096 + 4] = 1;
    terse__topo_free(t, buf, 3 * 4096 + 5);
    terse__topo_plan_release(&p);
    terse__topo_release(t);
}

static void case_print(void)
{
    terse__topo_t *t = load("24em64t-2n6c2t-pci.xml");
    const char *nics[] = {"mlx4_0:1"};
    terse__topo_plan_t p = plan_for(t, nics, 1, 1, 2, "auto", NULL);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    terse__topo_print(t, &p, f);
    fclose(f);
    fputs(out, stdout);
    CHECK(strstr(out, "2 numa nodes"));
    CHECK(strstr(out, "nic mlx4_0 (openfabrics pci 0000:05:00.0): numa 0"));
    CHECK(strstr(out, "nic ib0 (net"));
    CHECK(strstr(out, "plan: allowed"));
    CHECK(strstr(out, "buffers numa 0"));
    free(out);
    terse__topo_plan_release(&p);
    terse__topo_release(t);
}

/* The real machine, without MPI: shared load, binding, NUMA memory, host id. */
static void *bind_thread_main(void *arg)
{
    const terse__topo_plan_t *p = arg;
    terse__topo_t *t = terse__topo_load(NULL);
    intptr_t ok = 1;
    if (terse__topo_bind_thread(t, p) != TERSE_OK)
        ok = 0;
    hwloc_bitmap_t now = hwloc_bitmap_alloc();
    if (hwloc_get_cpubind(terse__topo_hwloc(t), now, HWLOC_CPUBIND_THREAD) != 0 ||
        !hwloc_bitmap_isequal(now, p->thread_cpus))
        ok = 0;
    hwloc_bitmap_free(now);
    terse__topo_release(t);
    return (void *)ok;
}

static void case_this_machine(void)
{
    terse__topo_t *t = terse__topo_load(NULL);
    CHECK(t);
    CHECK(terse__topo_load(NULL) == t); /* one per process */
    terse__topo_release(t);
    CHECK(terse__topo_is_this_system(t));

    const char *names[16];
    size_t n = terse__topo_nic_names(t, names, 16);
    terse__topo_plan_t p = plan_for(t, names, n < 16 ? n : 16, 0, 1, "auto", NULL);
    terse__topo_print(t, &p, stdout);
    if (n > 0)
        CHECK(p.mode == TERSE_TOPO_AUTO);
    pthread_t th;
    void *ok = NULL;
    CHECK(pthread_create(&th, NULL, bind_thread_main, &p) == 0);
    CHECK(pthread_join(th, &ok) == 0 && ok == (void *)1);
    size_t size = 4 << 20;
    char *buf = terse__topo_alloc(t, &p, size, "test buffer");
    CHECK(buf);
    memset(buf, 7, size);
    int node = terse__topo_numa_of(t, buf);
    printf("buffer on numa node %d, plan numa %d\n", node, p.numa_os_index);
    if (p.bind_memory && node >= 0)
        CHECK(node == p.numa_os_index);
    terse__topo_free(t, buf, size);
    terse__topo_plan_release(&p);

    char id[256];
    CHECK(terse__topo_host_id(id, sizeof(id)) == TERSE_OK && id[0]);
    printf("host id %s\n", id);
    char tiny[2];
    CHECK(terse__topo_host_id(tiny, sizeof(tiny)) == TERSE_ERR_INVALID_ARG);
    setenv("TERSE_HOST_ID", "emulated-host-3", 1);
    terse__config_reload();
    CHECK(terse__topo_host_id(id, sizeof(id)) == TERSE_OK && !strcmp(id, "emulated-host-3"));
    unsetenv("TERSE_HOST_ID");
    terse__config_reload();
    terse__topo_release(t);
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    {"pci2n", case_pci2n},
    {"multirail", case_multirail},
    {"numa24", case_numa24},
    {"vfs", case_vfs},
    {"cpusets", case_cpusets},
    {"no_nic", case_no_nic},
    {"unknown_device", case_unknown_device},
    {"bind_outside", case_bind_outside},
    {"bind_garbage", case_bind_garbage},
    {"cpulist", case_cpulist},
    {"none", case_none},
    {"bad_xml", case_bad_xml},
    {"invalid", case_invalid},
    {"print", case_print},
    {"virtual", case_virtual},
    {"alloc", case_alloc},
    {"this_machine", case_this_machine},
};

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s <xml dir> <case>\n", argv[0]);
        return 2;
    }
    xml_dir = argv[1];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!strcmp(argv[2], cases[i].name)) {
            cases[i].fn();
            printf("ok %s\n", cases[i].name);
            return 0;
        }
    }
    fprintf(stderr, "unknown case %s\n", argv[2]);
    return 2;
}
