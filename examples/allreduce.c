/* The smallest useful terse program: bootstrap from MPI, allreduce a gradient-sized buffer,
 * check the answer. Build: see examples/CMakeLists.txt or
 *   cc allreduce.c $(pkg-config --cflags --libs terse) -lterse_mpi $(mpicc --showme:link)
 * Run: mpirun -np 4 ./allreduce_example */
#include <terse/mpi.h>
#include <terse/terse.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    terse_comm_h comm;
    int rank, size, bad = 0;
    size_t n = 1 << 22; /* 4M floats: 16 MiB, a mid-sized layer */

    MPI_Init(&argc, &argv);
    terse_status_t st = terse_comm_create_mpi(MPI_COMM_WORLD, NULL, &comm);
    if (st != TERSE_OK) {
        fprintf(stderr, "terse_comm_create_mpi: %s\n", terse_status_string(st));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    rank = terse_comm_rank(comm);
    size = terse_comm_size(comm);

    float *grad = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        grad[i] = (float)(rank + 1);

    /* Nonblocking: post, do other work, wait. */
    terse_request_h req;
    st = terse_iallreduce(comm, TERSE_IN_PLACE, grad, n, TERSE_DTYPE_FLOAT32, TERSE_OP_AVG, &req);
    if (st == TERSE_OK) {
        st = terse_wait(req);
        if (rank == 0)
            printf("allreduce of %zu floats on %d ranks used the %s algorithm\n", n, size,
                   terse_request_algorithm(req));
        terse_request_free(req);
    }
    if (st != TERSE_OK) {
        fprintf(stderr, "rank %d: allreduce failed: %s (%s)\n", rank, terse_status_string(st),
                terse_comm_last_error(comm));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    float expect = (float)(size + 1) / 2.0f; /* average of 1..size */
    for (size_t i = 0; i < n; i++)
        bad += grad[i] != expect;
    printf("rank %d of %d (local %d of %d): average %.2f, expected %.2f, %s\n", rank, size,
           terse_comm_local_rank(comm), terse_comm_local_size(comm), grad[0], expect,
           bad ? "WRONG" : "ok");
    free(grad);
    terse_comm_destroy(comm);
    MPI_Finalize();
    return bad ? 1 : 0;
}
