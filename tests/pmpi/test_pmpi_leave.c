/* Leaving right after a large collective on terse: a rank that finished its part of an
 * MPI_Allgather frees the communicator (or finalizes) while its peers may still be inside the
 * call, waiting on a third rank. Before the leavers waited for the others, closing their
 * connections made UCX report them dead to those peers ("Endpoint timeout"), and the error
 * reached the program through MPI_ERRORS_ARE_FATAL (seen at 64 MiB on 1 Gbit/s links). On one
 * host, over TCP, odd rounds make it likely: an MPI_Allgatherv where rank 0 gives nearly all
 * the data, so rank 1 is done hops before rank size-1, which still waits for that block from
 * rank size-2 when rank 1 leaves. Results are checked too. */
#include "pmpi_test.h"

#include <stdint.h>

static void fill(uint32_t *p, size_t n, int rank, int round)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint32_t)(rank * 2654435761u) ^ (uint32_t)(i * 40503u + (size_t)round);
}

static int check(const uint32_t *all, size_t n, int size, int round)
{
    uint32_t *want = malloc(n * sizeof(*want));
    int bad = 0;
    for (int r = 0; r < size && !bad; r++) {
        fill(want, n, r, round);
        bad = memcmp(all + (size_t)r * n, want, n * sizeof(*want)) != 0;
    }
    free(want);
    return bad;
}

/* MPI_Allgatherv of n * size elements in all: rank 0 gives all but 16 per other rank. */
static void skewed_round(MPI_Comm c, uint32_t *all, size_t n, int round)
{
    int *counts = malloc(2 * (size_t)pt_size * sizeof(int)), *displs = counts + pt_size;
    size_t total = n * (size_t)pt_size, small = 16;
    for (int r = 0, off = 0; r < pt_size; off += counts[r], r++) {
        counts[r] = r ? (int)small : (int)(total - small * (size_t)(pt_size - 1));
        displs[r] = off;
    }
    uint32_t *part = malloc((size_t)counts[pt_rank] * sizeof(*part));
    fill(part, (size_t)counts[pt_rank], pt_rank, round);
    int rc = MPI_Allgatherv(part, counts[pt_rank], MPI_UINT32_T, all, counts, displs,
                            MPI_UINT32_T, c);
    CHECK(rc == MPI_SUCCESS, "round %d: MPI_Allgatherv returned %d", round, rc);
    for (int r = 0; r < pt_size; r++) {
        uint32_t *want = malloc((size_t)counts[r] * sizeof(*want));
        fill(want, (size_t)counts[r], r, round);
        CHECK(!memcmp(all + displs[r], want, (size_t)counts[r] * sizeof(*want)),
              "round %d: wrong allgatherv block of rank %d", round, r);
        free(want);
    }
    free(part);
    free(counts);
}

int main(int argc, char **argv)
{
    pt_init(&argc, &argv, MPI_THREAD_SINGLE);
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    size_t bytes = argc > 2 ? (size_t)atol(argv[2]) : (8u << 20); /* the whole result */
    size_t n = bytes / sizeof(uint32_t) / (size_t)pt_size;
    uint32_t *mine = malloc(n * sizeof(*mine)), *all = malloc(n * (size_t)pt_size * sizeof(*all));
    for (int round = 0; round < rounds; round++) {
        MPI_Comm c;
        MPI_Comm_dup(MPI_COMM_WORLD, &c);
        fill(mine, n, pt_rank, round);
        if (round % 2 == 0) {
            int rc = MPI_Allgather(mine, (int)n, MPI_UINT32_T, all, (int)n, MPI_UINT32_T, c);
            CHECK(rc == MPI_SUCCESS, "round %d: MPI_Allgather returned %d", round, rc);
            CHECK(!check(all, n, pt_size, round), "round %d: wrong allgather result", round);
        } else {
            skewed_round(c, all, n, round);
        }
        MPI_Comm_free(&c); /* at once: peers may still be in the call */
    }
    int total = 0;
    PMPI_Allreduce(&pt_failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    /* the same at MPI_Finalize, on MPI_COMM_WORLD: nothing synchronises after this call (a
     * failure is this rank's exit status) */
    fill(mine, n, pt_rank, rounds);
    MPI_Allgather(mine, (int)n, MPI_UINT32_T, all, (int)n, MPI_UINT32_T, MPI_COMM_WORLD);
    int last_bad = check(all, n, pt_size, rounds);
    if (last_bad)
        fprintf(stderr, "rank %d: last round: wrong allgather result\n", pt_rank);
    if (pt_rank == 0)
        printf("%s: %d failure(s) over %d ranks before the last round\n", total ? "FAIL" : "PASS",
               total, pt_size);
    free(mine);
    free(all);
    MPI_Finalize();
    return total || last_bad ? 1 : 0;
}
