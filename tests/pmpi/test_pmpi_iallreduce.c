/* MPI_Iallreduce under libterse_pmpi: MPI_Wait, MPI_Test loops, several in flight with
 * MPI_Waitall/Waitany/Waitsome, mixed with point-to-point requests, MPI's own messages sent
 * while one is in flight (the peer must get them), and a communicator freed with one in
 * flight. A plain MPI program: mpirun -np N [-x LD_PRELOAD=libterse_pmpi.so] test_pmpi_iallreduce */
#include "pmpi_test.h"

/* rank r's element i: r * 2 + i % 3, so the sum over ranks is exact */
static void fill(double *b, int n, int salt)
{
    for (int i = 0; i < n; i++)
        b[i] = pt_rank * 2 + (i + salt) % 3;
}

static int wrong(const double *b, int n, int salt)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad += b[i] != (double)(pt_size * (pt_size - 1) + pt_size * ((i + salt) % 3));
    return bad;
}

int main(int argc, char **argv)
{
    pt_init(&argc, &argv, MPI_THREAD_SINGLE);
    int n = (int)(pt_threshold() / sizeof(double)) * 8 + 5;
    enum { K = 4 };
    double *b[K];
    MPI_Request rq[K + 2];
    for (int k = 0; k < K; k++)
        b[k] = malloc((size_t)n * sizeof(double));

    /* Wait */
    fill(b[0], n, 0);
    MPI_Iallreduce(MPI_IN_PLACE, b[0], n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &rq[0]);
    MPI_Wait(&rq[0], MPI_STATUS_IGNORE);
    CHECK(rq[0] == MPI_REQUEST_NULL, "request not freed by MPI_Wait");
    CHECK(!wrong(b[0], n, 0), "iallreduce + wait: %d wrong", wrong(b[0], n, 0));

    /* Test until done, out of place */
    fill(b[1], n, 1);
    int flag = 0, spins = 0;
    MPI_Iallreduce(b[1], b[0], n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &rq[0]);
    while (!flag) {
        MPI_Test(&rq[0], &flag, MPI_STATUS_IGNORE);
        spins++;
    }
    CHECK(!wrong(b[0], n, 1), "iallreduce + test (%d tests): %d wrong", spins, wrong(b[0], n, 1));

    /* Several in flight, with a ring exchange of MPI's own in the same Waitall */
    int right = (pt_rank + 1) % pt_size, left = (pt_rank + pt_size - 1) % pt_size;
    int token = pt_rank, got = -1;
    for (int k = 0; k < K; k++) {
        fill(b[k], n, k);
        MPI_Iallreduce(MPI_IN_PLACE, b[k], n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &rq[k]);
    }
    MPI_Irecv(&got, 1, MPI_INT, left, 5, MPI_COMM_WORLD, &rq[K]);
    MPI_Isend(&token, 1, MPI_INT, right, 5, MPI_COMM_WORLD, &rq[K + 1]);
    MPI_Waitall(K + 2, rq, MPI_STATUSES_IGNORE);
    for (int k = 0; k < K; k++)
        CHECK(!wrong(b[k], n, k), "waitall, call %d: %d wrong", k, wrong(b[k], n, k));
    CHECK(got == left, "ring token %d, want %d", got, left);

    /* Waitany and Waitsome */
    for (int k = 0; k < K; k++) {
        fill(b[k], n, k + 1);
        MPI_Iallreduce(MPI_IN_PLACE, b[k], n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &rq[k]);
    }
    int idx, outcount, idxs[K], done = 0;
    MPI_Waitany(K, rq, &idx, MPI_STATUS_IGNORE);
    CHECK(idx >= 0 && idx < K && rq[idx] == MPI_REQUEST_NULL, "waitany index %d", idx);
    done++;
    while (done < K) {
        MPI_Waitsome(K, rq, &outcount, idxs, MPI_STATUSES_IGNORE);
        CHECK(outcount > 0, "waitsome outcount %d with %d left", outcount, K - done);
        if (outcount <= 0)
            break;
        done += outcount;
    }
    for (int k = 0; k < K; k++)
        CHECK(!wrong(b[k], n, k + 1), "waitany/waitsome, call %d: %d wrong", k, wrong(b[k], n, k + 1));

    /* MPI progress while in flight: a large message of MPI's own, sent before the Wait, must
     * reach a peer that receives it before its own Wait. */
    int big = 1 << 20;
    char *msg = malloc((size_t)big), *in = malloc((size_t)big);
    memset(msg, pt_rank + 1, (size_t)big);
    fill(b[0], n, 2);
    MPI_Iallreduce(MPI_IN_PLACE, b[0], n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &rq[0]);
    MPI_Sendrecv(msg, big, MPI_CHAR, right, 9, in, big, MPI_CHAR, left, 9, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
    MPI_Wait(&rq[0], MPI_STATUS_IGNORE);
    CHECK(!wrong(b[0], n, 2), "iallreduce around a sendrecv: %d wrong", wrong(b[0], n, 2));
    CHECK(in[big - 1] == (char)(left + 1), "sendrecv payload");
    free(msg);
    free(in);

    /* Free the communicator with a call in flight: MPI lets the call finish. Only with the
     * preload: Open MPI 4.1.4's own Iallreduce (libnbc) crashes in MPI_Wait on it. */
    const char *pre = getenv("TERSE_TEST_PRELOADED");
    if (pre && atoi(pre)) {
        MPI_Comm dup;
        MPI_Comm_dup(MPI_COMM_WORLD, &dup);
        fill(b[1], n, 0);
        MPI_Iallreduce(MPI_IN_PLACE, b[1], n, MPI_DOUBLE, MPI_SUM, dup, &rq[0]);
        MPI_Comm_free(&dup);
        MPI_Wait(&rq[0], MPI_STATUS_IGNORE);
        CHECK(!wrong(b[1], n, 0), "iallreduce on a freed communicator: %d wrong", wrong(b[1], n, 0));
    }

    for (int k = 0; k < K; k++)
        free(b[k]);
    return pt_finish();
}
