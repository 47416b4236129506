/* pmpi_loop: an unmodified MPI program that times MPI_Allreduce (or MPI_Allgather, MPI_Bcast)
 * over a range of sizes, for perf/pmpi_bench.sh to run with and without
 * LD_PRELOAD=libterse_pmpi.so. It knows nothing of terse.
 *   mpirun -np 4 pmpi_loop [--op allreduce|allgather|bcast] [--min-bytes 4k] [--max-bytes 256m]
 *                          [--csv FILE]
 * Sizes go up by 4x. Each size: one warmup call, then iterations (20 up to 1 MiB, 5 up to
 * 16 MiB, 3 above); the time of a call is the slowest rank's, the row the median over calls.
 * CSV columns: op,bytes,ranks,iters,median_s,min_s */
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static size_t parse_bytes(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*end == 'k' || *end == 'K') v *= 1024;
    if (*end == 'm' || *end == 'M') v *= 1024 * 1024;
    if (*end == 'g' || *end == 'G') v *= 1024.0 * 1024 * 1024;
    return (size_t)v;
}

static void one_call(const char *op, float *buf, float *out, int count, int size)
{
    if (!strcmp(op, "allgather"))
        MPI_Allgather(buf, count / size, MPI_FLOAT, out, count / size, MPI_FLOAT, MPI_COMM_WORLD);
    else if (!strcmp(op, "bcast"))
        MPI_Bcast(buf, count, MPI_FLOAT, 0, MPI_COMM_WORLD);
    else
        MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

int main(int argc, char **argv)
{
    const char *op = "allreduce", *csv = NULL;
    size_t lo = 4096, hi = 256u << 20;
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--op")) op = argv[i + 1];
        else if (!strcmp(argv[i], "--min-bytes")) lo = parse_bytes(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-bytes")) hi = parse_bytes(argv[i + 1]);
        else if (!strcmp(argv[i], "--csv")) csv = argv[i + 1];
    }
    FILE *f = rank == 0 && csv ? fopen(csv, "w") : NULL;
    if (f)
        fprintf(f, "op,bytes,ranks,iters,median_s,min_s\n");
    /* allgather: bytes is the whole result, each rank gives bytes / size */
    float *buf = malloc(hi), *out = malloc(hi);
    memset(buf, 0, hi);
    for (size_t bytes = lo; bytes <= hi; bytes *= 4) {
        int count = (int)(bytes / sizeof(float));
        int iters = bytes <= (1u << 20) ? 20 : bytes <= (16u << 20) ? 5 : 3;
        double t[20];
        for (int it = -1; it < iters; it++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            one_call(op, buf, out, count, size);
            double dt = MPI_Wtime() - t0, mx;
            MPI_Reduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
            if (it >= 0)
                t[it] = mx;
        }
        if (rank == 0) {
            qsort(t, (size_t)iters, sizeof(double), cmp_double);
            printf("%-10s %10zu bytes  median %.6f s  min %.6f s\n", op, bytes, t[iters / 2], t[0]);
            fflush(stdout);
            if (f)
                fprintf(f, "%s,%zu,%d,%d,%.6f,%.6f\n", op, bytes, size, iters, t[iters / 2], t[0]);
            if (f)
                fflush(f); /* a run that dies later keeps its rows */
        }
    }
    if (f)
        fclose(f);
    free(buf);
    free(out);
    MPI_Finalize();
    return 0;
}
