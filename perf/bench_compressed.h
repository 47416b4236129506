/* Hook for compressed allreduce in terse_bench (bench_compressed.c). */
#ifndef TERSE_BENCH_COMPRESSED_H
#define TERSE_BENCH_COMPRESSED_H

#include <terse/terse.h>

/* Runs one compressed allreduce of @n floats with compressor @spec; fills the algorithm name
 * and the wire bytes this rank sent. */
terse_status_t bench_compressed_allreduce(terse_comm_h comm, const char *spec, int double_way,
                                          const float *in, float *out, size_t n, uint64_t step,
                                          char *algo, size_t algo_len, double *wire_bytes);

/* Error feedback of terse_bench --breakdown (bench_breakdown.c). */
typedef enum bench_ef {
    BENCH_EF_INPLACE,  /* the staging buffer is the worker error; it trades places with e */
    BENCH_EF_SEPARATE, /* the worker error has its own buffer */
    BENCH_EF_NONE,
} bench_ef_t;

typedef struct bench_breakdown_opts {
    const char *spec, *spec_csv; /* compressor (spec_csv: ',' written as ';') */
    const char *ef_name;
    bench_ef_t ef;
    int double_way, iters, warmup;
    const char *csv, *json;
} bench_breakdown_opts_t;

/* terse_bench --breakdown on @n floats of @g: per-rank phase table, CSV and JSON. 0 on success. */
int bench_breakdown(terse_comm_h comm, const bench_breakdown_opts_t *o, const float *g, size_t n);

#endif
