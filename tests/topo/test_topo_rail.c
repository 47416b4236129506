/*
 * Multi-rail takes effect in UCX (mpirun on this machine): a transport created with a plan's
 * rail restriction (terse__tp_init's net_devices, what the communicator passes when the plan
 * names one) offers UCX only that network device while shared memory and self stay usable, and
 * ranks still exchange messages; a user's UCX_NET_DEVICES wins over the plan.
 * Usage: test_topo_rail restrict|user
 */
#include "bootstrap/bootstrap.h"
#include "transport/ucx.h"

#include "topo_test_util.h"

#include <mpi.h>

static terse_status_t mpi_allgather(const void *sbuf, void *rbuf, size_t len, void *info)
{
    (void)info;
    return MPI_Allgather(sbuf, (int)len, MPI_BYTE, rbuf, (int)len, MPI_BYTE, MPI_COMM_WORLD) ==
                   MPI_SUCCESS
               ? TERSE_OK
               : TERSE_ERR_BOOTSTRAP;
}

/* UCX's resources of the context, one "tl/dev" per line of its info dump. */
static char *context_info(terse__tp_t *tp)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    CHECK(f);
    terse__tp_print_info(tp, f);
    fclose(f);
    return out;
}

static void wait_op(terse__tp_t *tp, terse__tp_op_t *op)
{
    while (op->state != TERSE_TP_OP_DONE)
        terse__tp_progress(tp);
    CHECK(op->status == TERSE_TP_STATUS_OK);
}

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(argc == 2);
    int user = !strcmp(argv[1], "user");

    char devs[16][64];
    size_t n = terse__tp_net_devices(devs, 16);
    if (n == 0) {
        if (rank == 0)
            printf("no UCX network device: nothing to restrict (skipped)\n");
        MPI_Finalize();
        return 0;
    }
    const char *rail = devs[n - 1]; /* the plan would name one of these */
    if (user)
        setenv("UCX_NET_DEVICES", "all", 1); /* "all" is no restriction: ours applies */

    terse_oob_t oob = {.allgather = mpi_allgather, .rank = rank, .size = size};
    terse__bootstrap_t bs;
    CHECK(terse__bootstrap_from_oob(&oob, &bs) == TERSE_OK);
    int *same = calloc((size_t)size, sizeof(int));
    for (int i = 0; i < size; i++)
        same[i] = 1;
    terse__tp_t tp;
    char err[256] = "";
    CHECK(terse__tp_init(&tp, &bs, same, rail, err, sizeof(err)) == TERSE_OK);
    char *info = context_info(&tp);
    if (rank == 0)
        printf("restricted to %s: %s\n%s", rail, tp.devices, info);
    CHECK(strstr(tp.devices, rail) && strstr(tp.devices, "this rank's rail"));
    /* Only the rail among network devices; memory transports untouched. */
    for (size_t i = 0; i < n; i++) {
        char needle[80];
        snprintf(needle, sizeof(needle), "/%s\n", devs[i]);
        if (strcmp(devs[i], rail) != 0)
            CHECK(!strstr(info, needle));
    }
    CHECK(!strstr(info, "tcp/lo\n"));
    CHECK(strstr(info, "self/") && (strstr(info, "posix/") || strstr(info, "sysv/")));
    free(info);

    /* Messages still flow around a ring. */
    int right = (rank + 1) % size, left = (rank - 1 + size) % size;
    uint64_t mine = 1000u + (uint64_t)rank, got = 0;
    terse__tp_op_t s = {0}, r = {0};
    terse__tp_recv(&tp, left, 42, ~0ull, &got, sizeof(got), &r);
    terse__tp_send(&tp, right, 42, &mine, sizeof(mine), &s);
    wait_op(&tp, &s);
    wait_op(&tp, &r);
    CHECK(got == 1000u + (uint64_t)left);
    MPI_Barrier(MPI_COMM_WORLD);
    terse__tp_fini(&tp);

    /* The user's UCX_NET_DEVICES wins: the plan's restriction is not applied. */
    setenv("UCX_NET_DEVICES", rail, 1);
    CHECK(terse__tp_user_net_devices());
    CHECK(terse__tp_init(&tp, &bs, same, "terse-no-such-dev0", err, sizeof(err)) == TERSE_OK);
    CHECK(strstr(tp.devices, "(UCX_NET_DEVICES)"));
    MPI_Barrier(MPI_COMM_WORLD);
    terse__tp_fini(&tp);
    unsetenv("UCX_NET_DEVICES");

    free(same);
    terse__bootstrap_close(&bs);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        printf("ok %s on %d ranks\n", argv[1], size);
    MPI_Finalize();
    return 0;
}
