/* terse_bench --breakdown: where one compressed allreduce spends its time and memory traffic,
 * per rank and phase (include/terse/prof.h), against memcpy of the input measured in the same
 * run. Error feedback as the library's EF state keeps it (src/ef/ef.c): Delta = e + g into a
 * staging buffer that is also the worker error (the remainder is written in place, O(k) for
 * Top-K), the two trading places when the call succeeded; --ef separate gives the worker error
 * its own buffer (as the gradient hook does), --ef none drops it.
 * "passes" = (bytes read + written) / (2 x input bytes), what one memcpy of the input moves;
 * "t_passes" = the phase's time / the memcpy's time. */
#include "bench_compressed.h"

#include <terse/mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows: the bench's own Delta = e + g, the library's phases, the rest of the call, the total. */
enum { ROW_DELTA, ROW_PHASE0, ROW_OTHER = ROW_PHASE0 + TERSE_PHASE_LAST, ROW_TOTAL, NROWS };
/* Per row: seconds, bytes read, bytes written. */
enum { COL_S, COL_RD, COL_WR, NCOLS };

static const char *row_name(int r)
{
    if (r == ROW_DELTA)
        return "ef_delta (e + g)";
    if (r == ROW_OTHER)
        return "other (wire, waits)";
    if (r == ROW_TOTAL)
        return "total";
    return terse_phase_name((terse_phase_t)(r - ROW_PHASE0));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}

typedef struct bd_run {
    const bench_breakdown_opts_t *o;
    float *e, *stage, *es, *out, *copy;
    const float *g;
    size_t n;
} bd_run_t;

/* One step: memcpy timed, Delta, the allreduce; fills row values of iteration @it. */
static terse_status_t bd_step(terse_comm_h comm, bd_run_t *b, uint64_t step, double *row,
                              double *memcpy_s)
{
    const bench_breakdown_opts_t *o = b->o;
    size_t n = b->n;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    memcpy(b->copy, b->g, n * sizeof(float));
    *memcpy_s = MPI_Wtime() - t0;
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    int ef = o->ef != BENCH_EF_NONE;
    if (ef)
        for (size_t i = 0; i < n; i++)
            b->stage[i] = b->e[i] + b->g[i];
    double t1 = MPI_Wtime();
    terse_callreduce_params_t p = {.field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY |
                                                 TERSE_CALLREDUCE_FIELD_STEP,
                                   .ntensors = 1, .double_way = o->double_way, .step = step};
    terse_compressor_t c;
    p.compressor = &c;
    terse_status_t st = terse_compressor_parse(o->spec, &c);
    if (st != TERSE_OK)
        return st;
    float *werr = !ef ? NULL : o->ef == BENCH_EF_SEPARATE ? b->e : b->stage;
    terse_ctensor_t t = {.id = 0, .count = n, .in = ef ? b->stage : b->g, .out = b->out,
                         .worker_error = werr, .server_error = o->double_way ? b->es : NULL};
    p.tensors = &t;
    terse_request_h req = NULL;
    st = terse_icompressed_allreduce(comm, &p, &req);
    if (st == TERSE_OK)
        st = terse_wait(req);
    double t2 = MPI_Wtime();
    terse_phase_stats_t ph[TERSE_PHASE_LAST];
    if (req && terse_request_phases(req, ph, TERSE_PHASE_LAST) == TERSE_OK) {
        double in_phases = 0;
        for (int k = 0; k < TERSE_PHASE_LAST; k++) {
            double *r = row + (ROW_PHASE0 + k) * NCOLS;
            r[COL_S] = ph[k].seconds;
            r[COL_RD] = (double)ph[k].bytes_read;
            r[COL_WR] = (double)ph[k].bytes_written;
            in_phases += ph[k].seconds;
        }
        row[ROW_OTHER * NCOLS + COL_S] = (t2 - t1) - in_phases;
    }
    terse_request_free(req);
    row[ROW_DELTA * NCOLS + COL_S] = t1 - t0;
    row[ROW_DELTA * NCOLS + COL_RD] = ef ? 8.0 * (double)n : 0;
    row[ROW_DELTA * NCOLS + COL_WR] = ef ? 4.0 * (double)n : 0;
    if (st == TERSE_OK && o->ef == BENCH_EF_INPLACE) { /* e_k' is in stage: trade places */
        float *x = b->e;
        b->e = b->stage;
        b->stage = x;
    }
    return st;
}

static void print_rank(FILE *csv, FILE *json, const bench_breakdown_opts_t *o, int r,
                       const double *med, double mcp_s, size_t n, int *first)
{
    double in_b = 4.0 * (double)n, tot_rd = 0, tot_wr = 0, tot_s = 0;
    printf("\n# rank %d: memcpy of the input (%.1f MiB) %.2f ms = %.2f GB/s\n", r, in_b / 1048576,
           mcp_s * 1e3, 2 * in_b / mcp_s / 1e9);
    printf("%-22s %9s %11s %11s %8s %8s %8s\n", "phase", "ms", "MB_read", "MB_written",
           "passes", "t_passes", "GB/s");
    for (int k = 0; k < NROWS; k++) {
        const double *v = med + k * NCOLS;
        double s = v[COL_S], rd = v[COL_RD], wr = v[COL_WR];
        if (k == ROW_TOTAL)
            s = tot_s, rd = tot_rd, wr = tot_wr;
        else if (k != ROW_OTHER)
            tot_rd += rd, tot_wr += wr;
        if (k != ROW_TOTAL)
            tot_s += s;
        double passes = (rd + wr) / (2 * in_b), tp = s / mcp_s, bw = s > 0 ? (rd + wr) / s / 1e9 : 0;
        printf("%-22s %9.2f %11.2f %11.2f %8.3f %8.3f %8.2f\n", row_name(k), s * 1e3, rd / 1e6,
               wr / 1e6, passes, tp, bw);
        if (csv)
            fprintf(csv, "%s,%s,%d,%zu,%d,%s,%.6f,%.0f,%.0f,%.4f,%.4f,%.3f,%.3f\n", o->spec_csv,
                    o->ef_name, o->double_way, 4 * n, r, row_name(k), s * 1e3, rd, wr, passes, tp,
                    bw, 2 * in_b / mcp_s / 1e9);
        if (json)
            fprintf(json,
                    "%s  {\"compressor\": \"%s\", \"ef\": \"%s\", \"double_way\": %d, \"bytes\": "
                    "%zu, \"rank\": %d, \"phase\": \"%s\", \"ms\": %.6f, \"bytes_read\": %.0f, "
                    "\"bytes_written\": %.0f, \"passes\": %.4f, \"time_passes\": %.4f, "
                    "\"gbps\": %.3f, \"memcpy_gbps\": %.3f}",
                    *first ? "" : ",\n", o->spec, o->ef_name, o->double_way, 4 * n, r,
                    row_name(k), s * 1e3, rd, wr, passes, tp, bw, 2 * in_b / mcp_s / 1e9);
        *first = 0;
    }
}

int bench_breakdown(terse_comm_h comm, const bench_breakdown_opts_t *o, const float *g, size_t n)
{
    int rank, size, iters = o->iters, first = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    bd_run_t b = {.o = o, .g = g, .n = n};
    b.e = calloc(n, 4), b.stage = calloc(n, 4), b.es = calloc(n, 4);
    b.out = calloc(n, 4), b.copy = calloc(n, 4);
    double *rows = calloc((size_t)iters * NROWS * NCOLS, sizeof(double));
    double *mcp = calloc((size_t)iters, sizeof(double)), med[NROWS * NCOLS];
    double *all = calloc((size_t)size * (NROWS * NCOLS + 1), sizeof(double));
    if (!b.e || !b.stage || !b.es || !b.out || !b.copy || !rows || !mcp || !all)
        return 1;
    terse_phase_accounting(1);
    for (int it = -o->warmup; it < iters; it++) {
        double row[NROWS * NCOLS] = {0}, m = 0;
        terse_status_t st = bd_step(comm, &b, (uint64_t)(it + o->warmup), row, &m);
        if (st != TERSE_OK) {
            fprintf(stderr, "rank %d: breakdown step failed: %s: %s\n", rank,
                    terse_status_string(st), terse_comm_last_error(comm));
            return 1;
        }
        if (it >= 0) {
            memcpy(rows + (size_t)it * NROWS * NCOLS, row, sizeof(row));
            mcp[it] = m;
        }
    }
    terse_phase_accounting(0);
    double *col = calloc((size_t)iters, sizeof(double));
    for (int k = 0; k < NROWS * NCOLS && col; k++) {
        for (int it = 0; it < iters; it++)
            col[it] = rows[(size_t)it * NROWS * NCOLS + k];
        med[k] = median(col, iters);
    }
    double mine[NROWS * NCOLS + 1];
    memcpy(mine, med, sizeof(med));
    mine[NROWS * NCOLS] = median(mcp, iters);
    MPI_Gather(mine, NROWS * NCOLS + 1, MPI_DOUBLE, all, NROWS * NCOLS + 1, MPI_DOUBLE, 0,
               MPI_COMM_WORLD);
    if (rank == 0) {
        FILE *csv = o->csv ? fopen(o->csv, "w") : NULL, *json = o->json ? fopen(o->json, "w") : NULL;
        if (csv)
            fprintf(csv, "compressor,ef,double_way,bytes,rank,phase,ms,bytes_read,bytes_written,"
                         "passes,time_passes,gbps,memcpy_gbps\n");
        if (json)
            fprintf(json, "[\n");
        printf("# terse_bench --breakdown: %d ranks, %s%s, ef %s, %zu bytes, %d iterations "
               "(medians per rank)\n", size, o->spec, o->double_way ? " double-way" : "",
               o->ef_name, 4 * n, iters);
        for (int r = 0; r < size; r++) {
            const double *v = all + (size_t)r * (NROWS * NCOLS + 1);
            print_rank(csv, json, o, r, v, v[NROWS * NCOLS], n, &first);
        }
        if (csv)
            fclose(csv);
        if (json) {
            fprintf(json, "\n]\n");
            fclose(json);
        }
    }
    free(col), free(rows), free(mcp), free(all);
    free(b.e), free(b.stage), free(b.es), free(b.out), free(b.copy);
    return 0;
}
