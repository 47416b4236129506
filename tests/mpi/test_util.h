/* Shared helpers for the mpirun tests: create a terse communicator from MPI, check macros. */
#ifndef TERSE_TEST_UTIL_H
#define TERSE_TEST_UTIL_H

#include <terse/mpi.h>
#include <terse/terse.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_rank, test_size, test_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", test_rank, __FILE__, __LINE__,  \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            test_failures++;                                                                       \
        }                                                                                          \
    } while (0)

static inline terse_comm_h test_init(int *argc, char ***argv)
{
    terse_comm_h comm = NULL;
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &test_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &test_size);
    terse_status_t st = terse_comm_create_mpi(MPI_COMM_WORLD, NULL, &comm);
    if (st != TERSE_OK) {
        fprintf(stderr, "rank %d: terse_comm_create_mpi: %s\n", test_rank, terse_status_string(st));
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return comm;
}

/* Returns the exit code: every rank fails if any rank failed. */
static inline int test_finish(terse_comm_h comm)
{
    int total = 0;
    if (comm)
        terse_comm_destroy(comm);
    MPI_Allreduce(&test_failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (test_rank == 0)
        printf("%s: %d failure(s) over %d ranks\n", total ? "FAIL" : "PASS", total, test_size);
    MPI_Finalize();
    return total ? 1 : 0;
}

/* Is @buf bit-identical on every rank? Compares each rank's bytes with rank 0's. */
static inline int test_identical(const void *buf, size_t bytes)
{
    unsigned char *ref = malloc(bytes ? bytes : 1);
    memcpy(ref, buf, bytes);
    int ok = 1, all = 0;
    for (size_t off = 0; off < bytes; off += (1u << 30)) {
        size_t n = bytes - off < (1u << 30) ? bytes - off : (1u << 30);
        MPI_Bcast(ref + off, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
    ok = memcmp(ref, buf, bytes) == 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    free(ref);
    return all;
}

#endif
