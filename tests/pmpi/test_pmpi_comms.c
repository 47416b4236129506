/* Communicators under libterse_pmpi: MPI_Comm_split and MPI_Comm_dup children, free and
 * re-create (each gets a fresh terse communicator), MPI_COMM_SELF and intercommunicators (MPI's),
 * and, with "threads", threads calling collectives on communicators of their own at the same
 * time under MPI_THREAD_MULTIPLE (Horovod's background thread). A plain MPI program:
 * mpirun -np N [-x LD_PRELOAD=libterse_pmpi.so] test_pmpi_comms [threads] */
#include "pmpi_test.h"

#include <pthread.h>

/* Allreduce of @p n floats on @p comm: element i of rank r is r + i % 5 (exact sums). */
static int allreduce_ok(MPI_Comm comm, int n, int in_place, const char *what)
{
    int r, size;
    MPI_Comm_rank(comm, &r);
    MPI_Comm_size(comm, &size);
    float *s = malloc((size_t)n * sizeof(float)), *d = malloc((size_t)n * sizeof(float));
    for (int i = 0; i < n; i++)
        (in_place ? d : s)[i] = (float)(r + i % 5);
    int rc = MPI_Allreduce(in_place ? MPI_IN_PLACE : s, d, n, MPI_FLOAT, MPI_SUM, comm);
    int bad = rc != MPI_SUCCESS;
    for (int i = 0; i < n && !bad; i++)
        bad = d[i] != (float)(size * (size - 1) / 2 + size * (i % 5));
    CHECK(!bad, "%s: allreduce of %d floats over %d ranks wrong (rc %d)", what, n, size, rc);
    free(s);
    free(d);
    return !bad;
}

static void check_comms(int n)
{
    MPI_Comm half, dup, again;
    allreduce_ok(MPI_COMM_WORLD, n, 0, "world");
    MPI_Comm_split(MPI_COMM_WORLD, pt_rank % 2, -pt_rank, &half);
    allreduce_ok(half, n, 1, "split child");
    MPI_Comm_dup(half, &dup);
    allreduce_ok(dup, n + 1, 0, "dup of a split child");
    allreduce_ok(half, n, 0, "split child after its dup");
    MPI_Comm_free(&dup);
    allreduce_ok(half, n + 2, 1, "split child after its dup was freed");
    /* Free and re-create, several times: each new communicator starts over. */
    for (int k = 0; k < 3; k++) {
        MPI_Comm_dup(MPI_COMM_WORLD, &again);
        allreduce_ok(again, n + k, k % 2, "re-created dup of world");
        MPI_Comm_free(&again);
    }
    /* Undefined colour: ranks without a communicator take no part. */
    MPI_Comm some;
    MPI_Comm_split(MPI_COMM_WORLD, pt_rank == 0 ? MPI_UNDEFINED : 1, 0, &some);
    if (some != MPI_COMM_NULL) {
        allreduce_ok(some, n, 0, "world without rank 0");
        MPI_Comm_free(&some);
    }
    allreduce_ok(MPI_COMM_SELF, n, 0, "MPI_COMM_SELF");
    /* Intercommunicator between the even and odd halves: MPI's, each side gets the other
     * side's sum. */
    if (pt_size >= 2) {
        MPI_Comm inter, side;
        int lsize, rsize;
        /* key = rank: each side's leader (its local rank 0) is world rank 0 or 1 */
        MPI_Comm_split(MPI_COMM_WORLD, pt_rank % 2, pt_rank, &side);
        MPI_Intercomm_create(side, 0, MPI_COMM_WORLD, pt_rank % 2 ? 0 : 1, 77, &inter);
        MPI_Comm_free(&side);
        MPI_Comm_size(inter, &lsize);
        MPI_Comm_remote_size(inter, &rsize);
        float *s = malloc((size_t)n * sizeof(float)), *d = malloc((size_t)n * sizeof(float));
        for (int i = 0; i < n; i++)
            s[i] = (float)(pt_rank % 2 + 1);
        MPI_Allreduce(s, d, n, MPI_FLOAT, MPI_SUM, inter);
        float want = (float)(rsize * (pt_rank % 2 ? 1 : 2));
        int bad = 0;
        for (int i = 0; i < n; i++)
            bad += d[i] != want;
        CHECK(!bad, "intercommunicator allreduce: %d wrong (want %g)", bad, want);
        MPI_Comm_free(&inter);
        free(s);
        free(d);
    }
    MPI_Comm_free(&half);
}

typedef struct thread_arg {
    MPI_Comm comm;
    int n, iters, id;
    int ok;
} thread_arg_t;

/* One thread's loop: blocking allreduces and Iallreduce+Wait on its own communicator. */
static void *thread_main(void *p)
{
    thread_arg_t *a = p;
    int size;
    MPI_Comm_size(a->comm, &size);
    float *buf = malloc((size_t)a->n * sizeof(float));
    a->ok = 1;
    for (int it = 0; it < a->iters; it++) {
        char what[64];
        snprintf(what, sizeof(what), "thread %d iteration %d", a->id, it);
        a->ok &= allreduce_ok(a->comm, a->n + a->id, it % 2, what);
        for (int i = 0; i < a->n; i++)
            buf[i] = (float)(a->id + it);
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, buf, a->n, MPI_FLOAT, MPI_MAX, a->comm, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        int bad = 0;
        for (int i = 0; i < a->n; i++)
            bad += buf[i] != (float)(a->id + it);
        CHECK(!bad, "thread %d iallreduce max: %d wrong", a->id, bad);
        a->ok &= !bad;
    }
    free(buf);
    return NULL;
}

static void check_threads(int n)
{
    enum { T = 3 };
    pthread_t th[T];
    thread_arg_t args[T];
    /* Communicators are made by the main thread, in the same order everywhere (MPI requires
     * it); their terse communicators are then created by the threads, concurrently. */
    for (int t = 0; t < T; t++) {
        MPI_Comm_dup(MPI_COMM_WORLD, &args[t].comm);
        args[t].n = n;
        args[t].iters = 6;
        args[t].id = t;
    }
    for (int t = 0; t < T; t++)
        pthread_create(&th[t], NULL, thread_main, &args[t]);
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        MPI_Comm_free(&args[t].comm);
    }
}

int main(int argc, char **argv)
{
    int threads = argc > 1 && !strcmp(argv[1], "threads");
    pt_init(&argc, &argv, threads ? MPI_THREAD_MULTIPLE : MPI_THREAD_SINGLE);
    int n = (int)(pt_threshold() / sizeof(float)) * 4 + 7;
    if (threads)
        check_threads(n);
    else
        check_comms(n);
    return pt_finish();
}
