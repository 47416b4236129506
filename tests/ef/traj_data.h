/* The least-squares problem the error-feedback trajectory tests share with ef_reference.py:
 * each rank's data (A, b), and rank 0's output file of every rank's data followed by the
 * trajectory. */
#ifndef TERSE_TEST_TRAJ_DATA_H
#define TERSE_TEST_TRAJ_DATA_H

#include "../mpi/test_util.h"

#define NP 40 /* parameters: tensor ids 3 (25) and 7 (15) */
#define M  30 /* rows of data per rank */
static const size_t counts[2] = {25, 15};
static const uint32_t ids[2] = {3, 7};

static float A[M][NP], b[M];

static void make_data(int rank)
{
    uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(rank + 1);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < NP; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            A[i][j] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        }
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        b[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

/* g = A^T (A x - b) / M in double (the reference does the same in float64); callers round */
static void grad_f64(const double *x, double *g)
{
    double r[M];
    for (int i = 0; i < M; i++) {
        double acc = 0;
        for (int j = 0; j < NP; j++)
            acc += (double)A[i][j] * x[j];
        r[i] = acc - b[i];
    }
    for (int j = 0; j < NP; j++) {
        double acc = 0;
        for (int i = 0; i < M; i++)
            acc += (double)A[i][j] * r[i];
        g[j] = acc / M;
    }
}

/* Collective over MPI_COMM_WORLD: rank 0 writes header (K, NP, M, T), every rank's (A | b)
 * rows as float32, then the trajectory's bytes. */
static void write_traj(const char *path, int T, const void *traj, size_t traj_bytes)
{
    float mine[M * (NP + 1)];
    for (int i = 0; i < M; i++) {
        memcpy(mine + i * (NP + 1), A[i], sizeof(A[i]));
        mine[i * (NP + 1) + NP] = b[i];
    }
    float *all = test_rank == 0 ? malloc(sizeof(mine) * (size_t)test_size) : NULL;
    MPI_Gather(mine, M * (NP + 1), MPI_FLOAT, all, M * (NP + 1), MPI_FLOAT, 0, MPI_COMM_WORLD);
    if (test_rank != 0)
        return;
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "open %s", path);
    if (f) {
        int32_t hdr[4] = {test_size, NP, M, T};
        fwrite(hdr, sizeof(hdr), 1, f);
        fwrite(all, sizeof(mine), (size_t)test_size, f);
        fwrite(traj, 1, traj_bytes, f);
        fclose(f);
    }
    free(all);
}

#endif
