/* A rank that dies mid-run: the survivors' next collective fails with an error naming it
 * (peer failed or timeout), never hangs. Launched without MPI through the environment
 * rendezvous (TERSE_RANK/TERSE_SIZE/TERSE_ROOT_ADDR), which this also tests. */
#include <terse/terse.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    terse_comm_h comm;
    terse_status_t st = terse_comm_create(NULL, &comm);
    if (st != TERSE_OK) {
        fprintf(stderr, "comm create: %s\n", terse_status_string(st));
        return 2;
    }
    int rank = terse_comm_rank(comm), size = terse_comm_size(comm);
    float v[1000], out[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = (float)rank;
    st = terse_allreduce(comm, v, out, 1000, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
    if (st != TERSE_OK || out[0] != (float)(size * (size - 1) / 2)) {
        fprintf(stderr, "rank %d: first allreduce: %s\n", rank, terse_comm_last_error(comm));
        return 1;
    }
    if (rank == size - 1)
        _exit(0); /* dies without a word */
    st = terse_allreduce(comm, v, out, 1000, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
    const char *why = terse_comm_last_error(comm);
    int ok = (st == TERSE_ERR_PEER_FAILED || st == TERSE_ERR_TIMEOUT) && strstr(why, "rank");
    printf("rank %d: %s: %s -> %s\n", rank, terse_status_name(st), why, ok ? "ok" : "WRONG");
    /* later calls fail fast too */
    st = terse_barrier(comm);
    ok = ok && st != TERSE_OK;
    terse_comm_destroy(comm);
    return ok ? 0 : 1;
}
