/*
 * A communicator's buffers land where its topology plan says (mpirun on this machine):
 * pooled collective scratch, RMA slabs and error-feedback state (e_k, e_s, staging) are on the
 * plan's NUMA node with a bind policy when TERSE_BIND=auto (and a NIC with locality exists),
 * plainly placed with TERSE_BIND=none; the UCX context keeps UCX's device choice on a host with
 * one rail.
 * Usage: test_topo_comm auto|none  (TERSE_BIND comes from the environment)
 */
#include "coll/comm.h"

#include <terse/ef.h>
#include <terse/mpi.h>

#include "topo_test_util.h"

#include <mpi.h>

static int rank;

static terse_status_t mpi_exchange(void *ctx, const void *sbuf, void *rbuf, size_t len)
{
    (void)ctx;
    return MPI_Allgather(sbuf, (int)len, MPI_BYTE, rbuf, (int)len, MPI_BYTE, MPI_COMM_WORLD) ==
                   MPI_SUCCESS
               ? TERSE_OK
               : TERSE_ERR_BOOTSTRAP;
}

/* Checks the pages of [p, p + len) against the plan; returns their node. */
static int check_placed(terse_comm_h comm, const void *p, size_t len, const char *what)
{
    CHECK(p);
    const terse__topo_t *t = comm->topo;
    const terse__topo_plan_t *plan = &comm->plan;
    int node = terse__topo_numa_of(t, p), last = terse__topo_numa_of(t, (const char *)p + len - 1);
    hwloc_nodeset_t ns = hwloc_bitmap_alloc();
    hwloc_membind_policy_t pol = HWLOC_MEMBIND_DEFAULT;
    int got =
        hwloc_get_area_membind(terse__topo_hwloc(t), p, len, ns, &pol, HWLOC_MEMBIND_BYNODESET);
    printf("rank %d: %s (%zu bytes) on numa %d..%d, %s (plan: %s numa %d)\n", rank, what, len, node,
           last, got == 0 && pol == HWLOC_MEMBIND_BIND ? "bound" : "default policy",
           plan->bind_memory ? "bind" : "no binding", plan->numa_os_index);
    if (plan->bind_memory) {
        CHECK(node == plan->numa_os_index && last == plan->numa_os_index);
        CHECK(got == 0 && pol == HWLOC_MEMBIND_BIND && hwloc_bitmap_isequal(ns, plan->nodeset));
    } else {
        CHECK(got != 0 || pol != HWLOC_MEMBIND_BIND);
    }
    hwloc_bitmap_free(ns);
    return node;
}

int main(int argc, char **argv)
{
    int size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(argc == 2);
    const char *mode = argv[1];

    terse_comm_h comm = NULL;
    CHECK(terse_comm_create_mpi(MPI_COMM_WORLD, NULL, &comm) == TERSE_OK);
    CHECK(comm->has_plan && comm->topo && terse__topo_is_this_system(comm->topo));
    const char *names[16];
    size_t nnics = terse__topo_nic_names(comm->topo, names, 16);
    if (!strcmp(mode, "none")) {
        CHECK(!comm->plan.bind_memory && !comm->plan.bind_thread);
        CHECK(comm->plan.ucx_net_devices[0] == '\0');
    } else if (nnics > 0 && comm->plan.nic[0]) {
        CHECK(comm->plan.bind_memory && comm->plan.numa_os_index >= 0);
    }
    printf("rank %d: ucx devices %s\n", rank, comm->tp.devices);
    if (!getenv("UCX_NET_DEVICES") && !comm->plan.ucx_net_devices[0])
        CHECK(strstr(comm->tp.devices, "UCX's choice"));

    /* Pooled scratch: the ring allreduce of a large vector takes one from the pool. */
    size_t n = 1u << 20;
    float *in = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    CHECK(in && out);
    for (size_t i = 0; i < n; i++)
        in[i] = (float)(rank + 1);
    CHECK(terse_allreduce(comm, in, out, n, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM) == TERSE_OK);
    CHECK(out[0] == (float)(size * (size + 1) / 2) && out[n - 1] == out[0]);
    int pooled = 0;
    for (int i = 0; i < TERSE_POOL_MAX; i++) {
        if (!comm->pool[i].ptr)
            continue;
        CHECK(comm->pool[i].allocator == &comm->plan.allocator);
        check_placed(comm, comm->pool[i].ptr, comm->pool[i].size, "collective scratch");
        pooled++;
    }
    if (size > 1)
        CHECK(pooled > 0);

    /* RMA slab. */
    terse__tp_slab_t slab;
    CHECK(terse__tp_slab_create(&comm->tp, 1u << 20, mpi_exchange, NULL, &slab) == TERSE_OK);
    check_placed(comm, slab.base, slab.size, "rma slab");
    terse__tp_slab_destroy(&comm->tp, &slab);

    /* Error feedback: e_k and e_s (zero at creation), staging is used by prepare/averaging. */
    uint32_t id = 7;
    size_t count = 300000;
    terse_ef_params_t ep = {.field_mask = TERSE_EF_FIELD_DOUBLE_WAY | TERSE_EF_FIELD_PERIOD,
                            .mode = TERSE_EF_MODE_SAEF,
                            .ntensors = 1,
                            .ids = &id,
                            .counts = &count,
                            .period = 1,
                            .double_way = 1};
    terse_compressor_t c;
    ep.compressor = &c;
    CHECK(terse_compressor_parse("topk:0.01", &c) == TERSE_OK);
    terse_ef_h ef = NULL;
    CHECK(terse_ef_create(comm, &ep, &ef) == TERSE_OK);
    const float *ek = terse_ef_worker_error(ef, 0), *es = terse_ef_server_error(ef, 0);
    CHECK(ek && es);
    for (size_t i = 0; i < count; i++)
        CHECK(ek[i] == 0.0f && es[i] == 0.0f);
    check_placed(comm, ek, count * sizeof(float), "ef worker errors e_k");
    check_placed(comm, es, count * sizeof(float), "ef server errors e_s");
    /* Averaging (period 1) runs an allreduce into the staging buffer: the state still works. */
    CHECK(terse_ef_prepare(ef, NULL, NULL) == TERSE_OK);
    terse_ef_destroy(ef);

    free(in);
    free(out);
    CHECK(terse_comm_destroy(comm) == TERSE_OK);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        printf("ok %s on %d ranks\n", mode, size);
    MPI_Finalize();
    return 0;
}
