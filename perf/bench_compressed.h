/* Hook for compressed allreduce in terse_bench (bench_compressed.c). */
#ifndef TERSE_BENCH_COMPRESSED_H
#define TERSE_BENCH_COMPRESSED_H

#include <terse/terse.h>

/* Runs one compressed allreduce of @n floats with compressor @spec; fills the algorithm name
 * and the wire bytes this rank sent. */
terse_status_t bench_compressed_allreduce(terse_comm_h comm, const char *spec, int double_way,
                                          const float *in, float *out, size_t n, uint64_t step,
                                          char *algo, size_t algo_len, double *wire_bytes);

#endif
