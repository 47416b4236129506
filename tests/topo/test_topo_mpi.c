/*
 * Real runs on this machine under mpirun: host grouping from allgathered host ids, planning on
 * the machine's own topology, binding a progress thread and checking it took effect inside the
 * process's allowed cpuset.
 * Usage: test_topo_mpi auto|none|restricted|emulated  (TERSE_BIND comes from the environment)
 *   restricted: each rank first binds itself to one PU, as a launcher's --bind-to would.
 *   emulated:   TERSE_HOST_ID splits the ranks into two emulated hosts (even and odd ranks).
 */
#include "topo/hostgroup.h"
#include "topo/topo.h"

#include "core/config.h"

#include "topo_test_util.h"

#include <mpi.h>
#include <pthread.h>

#define ID_LEN 256

typedef struct bind_check {
    const terse__topo_t *t;
    const terse__topo_plan_t *plan;
    hwloc_bitmap_t got; /* the thread's binding after terse__topo_bind_thread */
    terse_status_t st;
} bind_check_t;

static void *progress_main(void *arg)
{
    bind_check_t *c = arg;
    c->st = terse__topo_bind_thread(c->t, c->plan);
    if (hwloc_get_cpubind(terse__topo_hwloc(c->t), c->got, HWLOC_CPUBIND_THREAD) != 0)
        hwloc_bitmap_zero(c->got);
    return NULL;
}

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(argc == 2);
    const char *mode = argv[1];
    int emulated = !strcmp(mode, "emulated"), restricted = !strcmp(mode, "restricted");

    if (emulated) {
        char v[32];
        snprintf(v, sizeof(v), "emulated-host-%d", rank % 2);
        setenv("TERSE_HOST_ID", v, 1);
        terse__config_reload();
    }

    /* Host grouping, checked against MPI's own notion of a shared-memory node. */
    char id[ID_LEN] = {0};
    CHECK(terse__topo_host_id(id, sizeof(id)) == TERSE_OK);
    char *all = calloc((size_t)size, ID_LEN);
    CHECK(all);
    MPI_Allgather(id, ID_LEN, MPI_CHAR, all, ID_LEN, MPI_CHAR, MPI_COMM_WORLD);
    terse__hostgroup_t hg;
    CHECK(terse__hostgroup_compute(all, ID_LEN, size, rank, &hg) == TERSE_OK);
    if (emulated) {
        CHECK(hg.cross_size == (size > 1 ? 2 : 1) && hg.cross_rank == rank % 2);
        CHECK(hg.local_rank == rank / 2 && hg.local_size == (size - rank % 2 + 1) / 2);
        CHECK(hg.order[0] == 0 && hg.order[1] == (size > 2 ? 2 : 1));
    } else {
        MPI_Comm node;
        int lr, ls;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
        MPI_Comm_rank(node, &lr);
        MPI_Comm_size(node, &ls);
        CHECK(hg.local_rank == lr && hg.local_size == ls);
        CHECK(hg.cross_size == 1 && hg.cross_rank == 0);
        MPI_Comm_free(&node);
    }

    terse__topo_t *t = terse__topo_load(NULL);
    CHECK(t && terse__topo_is_this_system(t));
    hwloc_topology_t h = terse__topo_hwloc(t);
    hwloc_bitmap_t proc = hwloc_bitmap_alloc();
    CHECK(hwloc_get_cpubind(h, proc, HWLOC_CPUBIND_PROCESS) == 0);
    if (restricted) {
        int npu = hwloc_get_nbobjs_inside_cpuset_by_type(h, proc, HWLOC_OBJ_PU);
        CHECK(npu > 0);
        hwloc_obj_t pu = hwloc_get_obj_inside_cpuset_by_type(h, proc, HWLOC_OBJ_PU,
                                                             (unsigned)(hg.local_rank % npu));
        CHECK(hwloc_set_cpubind(h, pu->cpuset, HWLOC_CPUBIND_PROCESS) == 0);
        hwloc_bitmap_copy(proc, pu->cpuset);
    }
    hwloc_bitmap_and(proc, proc, hwloc_topology_get_allowed_cpuset(h));

    const char *names[16];
    size_t n = terse__topo_nic_names(t, names, 16);
    terse__topo_request_t req = {0};
    req.nics = names;
    req.num_nics = n < 16 ? n : 16;
    req.local_rank = hg.local_rank;
    req.local_size = hg.local_size;
    req.bind = terse__config()->bind;
    terse__topo_plan_t plan;
    CHECK(terse__topo_plan(t, &req, &plan) == TERSE_OK);
    if (rank == 0)
        terse__topo_print(t, &plan, stdout);
    char line[512];
    terse__topo_plan_string(&plan, line, sizeof(line));
    printf("rank %d (local %d/%d, TERSE_BIND=%s): %s\n", rank, hg.local_rank, hg.local_size,
           req.bind, line);
    fflush(stdout);

    CHECK(hwloc_bitmap_isequal(plan.allowed, proc));
    if (!strcmp(req.bind, "none"))
        CHECK(!plan.bind_thread && !plan.bind_memory);
    else if (req.num_nics > 0)
        CHECK(plan.mode == TERSE_TOPO_AUTO && plan.bind_thread);

    bind_check_t c = {.t = t, .plan = &plan, .got = hwloc_bitmap_alloc()};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, progress_main, &c) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(c.st == TERSE_OK);
    CHECK(!hwloc_bitmap_iszero(c.got));
    CHECK(hwloc_bitmap_isincluded(c.got, proc)); /* never outside what we were given */
    if (plan.bind_thread)
        CHECK(hwloc_bitmap_isequal(c.got, plan.thread_cpus));
    else
        CHECK(hwloc_bitmap_isequal(c.got, proc)); /* inherited, untouched */
    /* The main thread is never rebound by the library. */
    hwloc_bitmap_t main_now = hwloc_bitmap_alloc();
    CHECK(hwloc_get_cpubind(h, main_now, HWLOC_CPUBIND_THREAD) == 0);
    CHECK(hwloc_bitmap_isequal(main_now, proc));

    /* Distinct cores for the first ranks of the host, as long as cores remain. */
    int mine = plan.bind_thread ? hwloc_bitmap_first(plan.thread_cpus) : -1;
    int *firsts = calloc((size_t)size, sizeof(int));
    MPI_Allgather(&mine, 1, MPI_INT, firsts, 1, MPI_INT, MPI_COMM_WORLD);
    int ncores = hwloc_get_nbobjs_inside_cpuset_by_type(h, proc, HWLOC_OBJ_CORE);
    if (plan.bind_thread && !restricted && !emulated) {
        for (int j = 0; j < size; j++) {
            if (j != rank && hg.local_of[j] < ncores && hg.local_rank < ncores)
                CHECK(firsts[j] != mine);
        }
    }

    size_t bytes = 8 << 20;
    char *buf = terse__topo_alloc(t, &plan, bytes, "test slab");
    CHECK(buf);
    memset(buf, rank, bytes);
    int node = terse__topo_numa_of(t, buf);
    if (plan.bind_memory && node >= 0)
        CHECK(node == plan.numa_os_index);
    terse__topo_free(t, buf, bytes);

    free(firsts);
    hwloc_bitmap_free(main_now);
    hwloc_bitmap_free(c.got);
    hwloc_bitmap_free(proc);
    terse__topo_plan_release(&plan);
    terse__topo_release(t);
    terse__hostgroup_release(&hg);
    free(all);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        printf("ok %s on %d ranks\n", mode, size);
    MPI_Finalize();
    return 0;
}
