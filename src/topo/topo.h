/*
 * Topology layer: where terse's threads and buffers should live on a host.
 *
 * hwloc tells us which cores and NUMA node sit next to the network device UCX uses. The
 * planner turns (topology, allowed cpuset, device names, local rank/size, TERSE_BIND) into a
 * plan: the NIC this rank drives, the core for its progress thread, the cores its compression
 * workers may use, and the NUMA node for its buffers. The planner is a pure function of its
 * inputs so every decision can be tested on recorded machine topologies (tests/topo/xml/).
 *
 * Nothing here is fatal: a topology that fails to load, an unknown device or a bad TERSE_BIND
 * value give a warning and an unbound plan, and the library runs exactly as without hwloc.
 */
#ifndef TERSE_TOPO_TOPO_H
#define TERSE_TOPO_TOPO_H

#include <terse/status.h>

#include "core/alloc.h"

#include <hwloc.h>
#include <stddef.h>
#include <stdio.h>

typedef struct terse__topo terse__topo_t;

/* Longest device name we keep ("mlx5_bond_0:1" and interface names fit easily). */
#define TERSE_TOPO_NAME_MAX 64

/**
 * Loads a topology with its I/O devices (network and OpenFabrics OS devices).
 * @xml_path NULL: this machine; the object is loaded once per process, shared and kept until
 * exit, so every communicator may call this freely (and must release what it loaded). Otherwise a
 * private topology read from the XML file (tests, offline planning with terse_info); such a
 * topology is never "this system", so binding and memory binding on it are refused. Returns NULL
 * after a warning naming the cause when loading fails; callers then run unbound (every function
 * below accepts a NULL topology and behaves as "unbound").
 */
terse__topo_t *terse__topo_load(const char *xml_path);

/* Drops a reference from terse__topo_load(). NULL is ignored. */
void terse__topo_release(terse__topo_t *t);

/* The hwloc topology itself, for callers that need a query not offered here. Never modify. */
hwloc_topology_t terse__topo_hwloc(const terse__topo_t *t);

/* 1 when bindings apply to the machine we run on (not an XML of another machine). */
int terse__topo_is_this_system(const terse__topo_t *t);

/* A network device as hwloc sees it. Pointers refer into the topology: valid until release. */
typedef struct terse__topo_nic {
    char osdev[TERSE_TOPO_NAME_MAX]; /* hwloc OS device name: "mlx5_0", "ib0", "eth0" */
    hwloc_obj_t obj;                 /* the OS device */
    hwloc_obj_t pci;                 /* its PCI device, NULL if none (identity for dedup) */
    hwloc_obj_t ancestor;            /* nearest non-I/O object: where it attaches */
    hwloc_const_cpuset_t cpuset;     /* cores near it (ancestor's cpuset) */
    hwloc_const_nodeset_t nodeset;   /* NUMA nodes near it */
    int numa_os_index;               /* its NUMA node, -1 when the locality spans several */
    int rdma;                        /* 1: an OpenFabrics (RDMA) device, or a port of one */
} terse__topo_nic_t;

/**
 * Maps a device name as UCX reports it ("mlx5_0:1", "ib0", "eth0", "mlx4_0") to its hwloc OS
 * device. A trailing ":<port>" is ignored. Returns TERSE_OK and fills @nic_p, or
 * TERSE_ERR_INVALID_ARG when the topology has no such device. Logs at debug level only: the
 * planner, which knows whether a miss matters, gives the warning.
 */
terse_status_t terse__topo_nic_lookup(const terse__topo_t *t, const char *name,
                                      terse__topo_nic_t *nic_p);

/**
 * 1 when @name (a trailing ":<port>" ignored) is a virtual device of this machine: it exists in
 * /sys/class/net or /sys/class/infiniband but has no hardware device behind it (veth, bridges,
 * ifb, lo, soft RoCE), so no topology can place it. 0 otherwise, and always 0 for a topology
 * that is not this system (an XML file says nothing about this machine's sysfs).
 */
int terse__topo_nic_is_virtual(const terse__topo_t *t, const char *name);

/* Network/OpenFabrics OS devices of the topology, in hwloc order: fills up to @max names
 * (pointers into the topology) and returns how many exist. For terse_info and tests. */
size_t terse__topo_nic_names(const terse__topo_t *t, const char **names, size_t max);

/* What the planner is asked. Zero-initialise, then set the fields. */
typedef struct terse__topo_request {
    /* The cpuset the launcher gave this process. NULL: this process's binding (this system)
     * or the topology's allowed cpuset (XML). Never bound outside it. */
    hwloc_const_cpuset_t allowed;
    const char *const *nics; /* device names UCX uses for the communicator (may repeat) */
    size_t num_nics;
    int nics_from_user; /* 1: the names are the user's (UCX_NET_DEVICES): warn for any that
                         * names no device; 0: UCX reported them (virtual ones stay quiet) */
    int local_rank;     /* this rank's index among the ranks of its host */
    int local_size;     /* ranks on this host (>= 1) */
    const char *bind;   /* TERSE_BIND value: "auto" | "none" | "<cpulist>"; NULL = "auto" */
} terse__topo_request_t;

typedef enum terse__topo_mode {
    TERSE_TOPO_UNBOUND = 0, /* nothing bound: no NIC, no topology, bad input or "none" */
    TERSE_TOPO_AUTO = 1,    /* near the NIC chosen for this rank */
    TERSE_TOPO_CPULIST = 2  /* inside the TERSE_BIND list */
} terse__topo_mode_t;

/* The plan. Owns its bitmaps: release it with terse__topo_plan_release(). */
typedef struct terse__topo_plan {
    terse__topo_mode_t mode;
    int bind_thread;                 /* 1: bind the progress thread to thread_cpus */
    int bind_memory;                 /* 1: allocate buffers on nodeset */
    int nic_index;                   /* index in request->nics of this rank's NIC, -1: none */
    char nic[TERSE_TOPO_NAME_MAX];   /* that name as UCX spells it ("mlx5_0:1"), "" if none */
    char osdev[TERSE_TOPO_NAME_MAX]; /* its hwloc OS device ("mlx5_0"), "" if none */
    int num_rails;                   /* distinct devices the host's ranks spread over */
    int core_index;                  /* progress thread core, hwloc logical index (L#), -1 */
    int numa_os_index;               /* buffers' NUMA node (os index), -1 none */
    hwloc_bitmap_t allowed;          /* the allowed cpuset the plan respected */
    hwloc_bitmap_t thread_cpus;      /* progress thread; = allowed when not binding */
    hwloc_bitmap_t worker_cpus;      /* compression workers: near cores inside allowed */
    hwloc_bitmap_t nodeset;          /* buffers' NUMA node; empty when not binding memory */
    char reason[160];                /* one line: why this plan (shown by terse_info) */
    /* Multi-rail: the UCX_NET_DEVICES value that keeps UCX on this rank's rail (every request
     * name of that device, "mlx5_0:1,ib0"), "" when there is nothing to restrict: fewer than
     * two rails of the best kind on the host, or TERSE_BIND=none. The communicator applies it
     * unless the user set UCX_NET_DEVICES. */
    char ucx_net_devices[256];
    /* Filled by terse__topo_plan_allocator(); not by the planner. */
    terse__allocator_t allocator;
    const terse__topo_t *topo;
} terse__topo_plan_t;

/**
 * Chooses where this rank's threads and buffers go.
 * Rails: when some of the devices are RDMA-capable (an OpenFabrics device on the PCI function),
 * only those are spread over; plain Ethernet ports (a management NIC next to an HCA) are used
 * only on hosts without RDMA devices.
 * Bad input (unknown devices, a TERSE_BIND list that is unparsable or outside the allowed
 * cpuset) gives a warning naming the value and an unbound plan; so does a missing topology
 * (@t NULL). Returns TERSE_OK with @plan_p filled (release it), or TERSE_ERR_INVALID_ARG for a
 * NULL @req/@plan_p or local_rank outside [0, local_size), TERSE_ERR_NO_MEMORY.
 */
terse_status_t terse__topo_plan(const terse__topo_t *t, const terse__topo_request_t *req,
                                terse__topo_plan_t *plan_p);

/* Frees the plan's bitmaps; the struct may be planned into again. NULL-safe, idempotent. */
void terse__topo_plan_release(terse__topo_plan_t *plan);

/**
 * Binds the calling thread to plan->thread_cpus (call it first thing in the progress thread).
 * TERSE_OK when bound or when the plan binds nothing; TERSE_ERR_NOT_SUPPORTED (after a
 * warning) when the OS refused or the topology is not this machine. Never fatal for callers.
 */
terse_status_t terse__topo_bind_thread(const terse__topo_t *t, const terse__topo_plan_t *plan);

/* Compression threads for this rank: the cores of plan->allowed over the @local_size ranks of
 * its host when their cpusets must overlap (more cores asked than the host has), else all of
 * them; at least 1. The other ranks' cpusets are not exchanged: launchers give either
 * disjoint sets (--bind-to core) or every rank the same one, and this tells those apart. */
int terse__topo_default_threads(const terse__topo_t *t, const terse__topo_plan_t *plan,
                                int local_size);

/* Same for a compression worker thread: binds it to plan->worker_cpus. */
terse_status_t terse__topo_bind_worker(const terse__topo_t *t, const terse__topo_plan_t *plan);

/**
 * A page-aligned, pre-faulted buffer of @size bytes on the plan's NUMA node, for registered
 * slabs, compression scratch and error-feedback state; plain anonymous memory when the plan
 * binds no memory or the OS does not support it. @what names it in logs. NULL on failure
 * (logged). Free with terse__topo_free(). @t and @plan may be NULL.
 */
void *terse__topo_alloc(const terse__topo_t *t, const terse__topo_plan_t *plan, size_t size,
                        const char *what);
/* Same as terse__free_scratch(@p, @size): @t may be NULL or gone. */
void terse__topo_free(const terse__topo_t *t, void *p, size_t size);

/**
 * An allocator (core/alloc.h) that gives terse__topo_alloc(@t, @plan, ...) memory, for the
 * communicator's pooled scratch, RMA slabs and error-feedback buffers. Stored in @plan, which
 * must stay where it is while the allocator is used; memory it gave is freed with
 * terse__free_scratch and may outlive the plan. @t NULL or a plan that binds no memory: plain
 * pre-faulted memory. Returns &plan->allocator (NULL for a NULL @plan).
 */
const terse__allocator_t *terse__topo_plan_allocator(const terse__topo_t *t,
                                                     terse__topo_plan_t *plan);

/* The NUMA node (os index) where the page at @p lives, -1 if unknown. For tests and logs. */
int terse__topo_numa_of(const terse__topo_t *t, const void *p);

/**
 * This host's identity, for grouping ranks by host: TERSE_HOST_ID when set (emulated
 * clusters), otherwise "<hostname>:<boot id>" (the boot id tells apart machines that share a
 * hostname, e.g. cloned VMs). TERSE_ERR_INVALID_ARG if @len is too small for it.
 */
terse_status_t terse__topo_host_id(char *buf, size_t len);

/* Human summary: machine, NUMA nodes, NICs with NUMA node and cores, and @plan (may be NULL).
 * For terse_info and info-level logs. @t may be NULL ("topology not available"). */
void terse__topo_print(const terse__topo_t *t, const terse__topo_plan_t *plan, FILE *out);

/* One-line form of @plan for logs ("nic mlx5_0:1 (numa 0), thread core 3, buffers numa 0"). */
void terse__topo_plan_string(const terse__topo_plan_t *plan, char *buf, size_t len);

#endif
