/* Compressed allreduce for terse_bench. Until the compressed collectives land, this reports
 * NOT_SUPPORTED so the benchmark says so instead of timing something else. */
#include "bench_compressed.h"

#include <stdio.h>

terse_status_t bench_compressed_allreduce(terse_comm_h comm, const char *spec, int double_way,
                                          const float *in, float *out, size_t n, uint64_t step,
                                          char *algo, size_t algo_len, double *wire_bytes)
{
    snprintf(algo, algo_len, "none");
    *wire_bytes = 0;
    return TERSE_ERR_NOT_SUPPORTED;
}
