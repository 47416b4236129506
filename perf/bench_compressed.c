/* Compressed allreduce for terse_bench: one tensor of n floats, the compressor from the
 * command line (add ",block=N" so owner algorithms can balance), double-way with a server
 * error kept across iterations like in training. wire_bytes: payload this rank sent. */
#include "bench_compressed.h"

#include <stdio.h>
#include <stdlib.h>

static float *server_error;
static size_t server_error_n;

terse_status_t bench_compressed_allreduce(terse_comm_h comm, const char *spec, int double_way,
                                          const float *in, float *out, size_t n, uint64_t step,
                                          char *algo, size_t algo_len, double *wire_bytes)
{
    terse_callreduce_params_t p = {.field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY |
                                                 TERSE_CALLREDUCE_FIELD_STEP,
                                   .ntensors = 1, .double_way = double_way, .step = step};
    static terse_compressor_t c; /* the spec's, for this call */
    p.compressor = &c;
    terse_status_t st = terse_compressor_parse(spec, &c);
    if (st != TERSE_OK)
        return st;
    if (double_way && server_error_n < n) {
        free(server_error);
        server_error = calloc(n, sizeof(float));
        server_error_n = server_error ? n : 0;
        if (!server_error)
            return TERSE_ERR_NO_MEMORY;
    }
    terse_ctensor_t t = {.id = 0, .count = n, .in = in, .out = out,
                         .server_error = double_way ? server_error : NULL};
    p.tensors = &t;
    terse_request_h req = NULL;
    st = terse_icompressed_allreduce(comm, &p, &req);
    if (st != TERSE_OK)
        return st;
    st = terse_wait(req);
    snprintf(algo, algo_len, "%s", terse_request_algorithm(req));
    *wire_bytes = (double)terse_request_bytes_sent(req);
    terse_request_free(req);
    return st;
}
