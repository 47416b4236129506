/* terse_bench: terse collectives against Open MPI's MPI_Allreduce in the same run,
 * nccl-tests style. mpirun -np 4 ./terse_bench [--min-bytes N] [--max-bytes N] [--iters N]
 *   [--warmup N] [--compressor none] [--csv FILE] [--json FILE]
 *   [--breakdown [--ef inplace|separate|none]]  (phases per rank at --max-bytes; bench_breakdown.c)
 * Medians over iterations; speedup_vs_mpi = mpi_s / terse_s. */
#include <terse/mpi.h>
#include <terse/terse.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_compressed.h"

typedef struct bench_opts {
    size_t min_bytes, max_bytes;
    int iters, warmup;
    const char *compressor;
    const char *csv, *json;
    int double_way;
    int breakdown;
    const char *ef;
} bench_opts_t;

static int rank, size;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median across iterations of the slowest rank's time (what a training step waits for). */
static double median_max(double *t, int n)
{
    MPI_Allreduce(MPI_IN_PLACE, t, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    return t[n / 2];
}

static size_t parse_bytes(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'k': case 'K': v *= 1024; break;
    case 'm': case 'M': v *= 1024 * 1024; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
    default: break;
    }
    return (size_t)v;
}

static void usage(void);

static int run_breakdown(terse_comm_h comm, const bench_opts_t *o, const float *in, size_t n)
{
    char spec_csv[128];
    snprintf(spec_csv, sizeof(spec_csv), "%s", o->compressor);
    for (char *c = spec_csv; *c; c++)
        *c = *c == ',' ? ';' : *c;
    bench_breakdown_opts_t b = {.spec = o->compressor, .spec_csv = spec_csv, .ef_name = o->ef,
                                .double_way = o->double_way, .iters = o->iters,
                                .warmup = o->warmup, .csv = o->csv, .json = o->json};
    if (!strcmp(o->ef, "inplace"))
        b.ef = BENCH_EF_INPLACE;
    else if (!strcmp(o->ef, "separate"))
        b.ef = BENCH_EF_SEPARATE;
    else if (!strcmp(o->ef, "none"))
        b.ef = BENCH_EF_NONE;
    else {
        usage();
        return 2;
    }
    return bench_breakdown(comm, &b, in, n);
}

static void usage(void)
{
    if (rank == 0)
        fprintf(stderr, "usage: terse_bench [--min-bytes N] [--max-bytes N] [--iters N] [--warmup N]\n"
                        "                   [--compressor none|topk:R|sign|...] [--double-way]\n"
                        "                   [--csv FILE] [--json FILE]\n"
                        "                   [--breakdown [--ef inplace|separate|none]]\n");
}

int main(int argc, char **argv)
{
    bench_opts_t o = {4096, 256u << 20, 20, 3, "none", NULL, NULL, 0, 0, "inplace"};
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--double-way")) { o.double_way = 1; continue; }
        if (!strcmp(a, "--breakdown")) { o.breakdown = 1; continue; }
        if (!v) { usage(); MPI_Finalize(); return 2; }
        if (!strcmp(a, "--min-bytes")) o.min_bytes = parse_bytes(v);
        else if (!strcmp(a, "--max-bytes")) o.max_bytes = parse_bytes(v);
        else if (!strcmp(a, "--iters")) o.iters = atoi(v);
        else if (!strcmp(a, "--warmup")) o.warmup = atoi(v);
        else if (!strcmp(a, "--compressor")) o.compressor = v;
        else if (!strcmp(a, "--csv")) o.csv = v;
        else if (!strcmp(a, "--json")) o.json = v;
        else if (!strcmp(a, "--ef")) o.ef = v;
        else { usage(); MPI_Finalize(); return 2; }
        i++;
    }
    if (o.iters < 1 || o.min_bytes < 4 || o.max_bytes < o.min_bytes) {
        usage();
        MPI_Finalize();
        return 2;
    }
    terse_comm_h comm;
    terse_status_t st = terse_comm_create_mpi(MPI_COMM_WORLD, NULL, &comm);
    if (st != TERSE_OK) {
        fprintf(stderr, "rank %d: terse_comm_create_mpi: %s\n", rank, terse_status_string(st));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* Buffers allocated and touched once: first-touch page faults are not what we measure. */
    size_t maxn = o.max_bytes / 4;
    float *in = malloc(maxn * 4), *out = malloc(maxn * 4), *ref = malloc(maxn * 4);
    double *tt = malloc(sizeof(double) * (size_t)o.iters), *tm = malloc(sizeof(double) * (size_t)o.iters);
    if (!in || !out || !ref || !tt || !tm) {
        fprintf(stderr, "rank %d: out of memory\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (size_t i = 0; i < maxn; i++) {
        uint32_t h = (uint32_t)((i * 2654435761u) ^ (uint32_t)rank * 40503u);
        in[i] = (float)(h % 20001) / 10000.0f - 1.0f;
    }
    memset(out, 0, maxn * 4);
    memset(ref, 0, maxn * 4);
    /* The same for UCX's shared-memory FIFO: its 64 descriptors of a receiving process are
     * first touched by the first ~32 small allreduces of a communicator (about 5 page faults
     * a call, 15-25 us each on these VMs: 400-500 us calls), so settle before the first row
     * is timed (perf/results/lat4k_np4.md). */
    for (int i = 0; i < 64; i++) {
        size_t n = maxn < 1024 ? maxn : 1024;
        if (terse_allreduce(comm, in, out, n, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM) != TERSE_OK ||
            MPI_Allreduce(in, ref, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            break;
    }
    if (o.breakdown) {
        int rc = run_breakdown(comm, &o, in, maxn);
        free(in), free(out), free(ref), free(tt), free(tm);
        terse_comm_destroy(comm);
        MPI_Finalize();
        return rc;
    }

    FILE *csv = NULL, *json = NULL;
    if (rank == 0 && o.csv) {
        csv = fopen(o.csv, "w");
        if (csv)
            fprintf(csv, "op,compressor,algorithm,ranks,bytes,terse_s,mpi_s,speedup_vs_mpi,"
                         "wire_bytes_per_rank,algbw_gbps,busbw_gbps\n");
    }
    if (rank == 0 && o.json) {
        json = fopen(o.json, "w");
        if (json)
            fprintf(json, "[\n");
    }
    int compressed = strcmp(o.compressor, "none") != 0;
    if (rank == 0) {
        printf("# terse_bench: %d ranks, compressor %s%s, %d iterations (median of the slowest rank)\n",
               size, o.compressor, o.double_way ? " double-way" : "", o.iters);
        printf("%12s %-20s %12s %12s %9s %14s %10s %10s\n", "bytes", "algorithm", "terse_us",
               "mpi_us", "speedup", "wire_B/rank", "algbw_GB/s", "busbw_GB/s");
    }
    int first_row = 1;
    for (size_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= 4) {
        size_t n = bytes / 4;
        char algo[64] = "";
        double wire = 0;
        for (int it = -o.warmup; it < o.iters; it++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            if (compressed) {
                st = bench_compressed_allreduce(comm, o.compressor, o.double_way, in, out, n,
                                                (uint64_t)(it + o.warmup), algo, sizeof(algo), &wire);
            } else {
                terse_request_h req;
                st = terse_iallreduce(comm, in, out, n, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM, &req);
                if (st == TERSE_OK) {
                    snprintf(algo, sizeof(algo), "%s", terse_request_algorithm(req));
                    st = terse_wait(req);
                    terse_request_free(req);
                }
                /* ring/RD: each rank sends 2(P-1)/P of the data (RD: log2 P times) */
                wire = (double)bytes * 2.0 * (size - 1) / size;
            }
            double t1 = MPI_Wtime();
            if (st != TERSE_OK) {
                fprintf(stderr, "rank %d: terse failed at %zu bytes: %s: %s\n", rank, bytes,
                        terse_status_string(st), terse_comm_last_error(comm));
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
            MPI_Barrier(MPI_COMM_WORLD);
            double t2 = MPI_Wtime();
            MPI_Allreduce(in, ref, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double t3 = MPI_Wtime();
            if (it >= 0) {
                tt[it] = t1 - t0;
                tm[it] = t3 - t2;
            }
        }
        double ts = median_max(tt, o.iters), ms = median_max(tm, o.iters);
        double algbw = bytes / ts / 1e9, busbw = algbw * 2.0 * (size - 1) / size;
        if (rank == 0) {
            printf("%12zu %-20s %12.1f %12.1f %9.2f %14.0f %10.3f %10.3f\n", bytes, algo, ts * 1e6,
                   ms * 1e6, ms / ts, wire, algbw, busbw);
            fflush(stdout);
            if (csv) {
                /* the spec's commas ("topk:0.01,block=262144") become ';' so fields stay split */
                char spec[128];
                snprintf(spec, sizeof(spec), "%s", o.compressor);
                for (char *c = spec; *c; c++)
                    *c = *c == ',' ? ';' : *c;
                fprintf(csv, "allreduce,%s%s,%s,%d,%zu,%.9f,%.9f,%.4f,%.0f,%.4f,%.4f\n", spec,
                        o.double_way ? "+double" : "", algo, size, bytes, ts, ms, ms / ts, wire,
                        algbw, busbw);
            }
            if (json)
                fprintf(json,
                        "%s  {\"op\": \"allreduce\", \"compressor\": \"%s\", \"double_way\": %d, "
                        "\"algorithm\": \"%s\", \"ranks\": %d, \"bytes\": %zu, \"terse_s\": %.9f, "
                        "\"mpi_s\": %.9f, \"speedup_vs_mpi\": %.4f, \"wire_bytes_per_rank\": %.0f, "
                        "\"algbw_gbps\": %.4f, \"busbw_gbps\": %.4f}",
                        first_row ? "" : ",\n", o.compressor, o.double_way, algo, size, bytes, ts,
                        ms, ms / ts, wire, algbw, busbw);
        }
        first_row = 0;
        if (bytes > o.max_bytes / 4)
            break;
    }
    if (csv)
        fclose(csv);
    if (json) {
        fprintf(json, "\n]\n");
        fclose(json);
    }
    free(in);
    free(out);
    free(ref);
    free(tt);
    free(tm);
    terse_comm_destroy(comm);
    MPI_Finalize();
    return 0;
}
