/* What the compressed-allreduce tests under mpirun share: four tensors of awkward sizes (one
 * element, a prime, not multiples of any block), their buffers, and one call on a range of them. */
#ifndef TERSE_TEST_COMPRESSED_CBUFS_H
#define TERSE_TEST_COMPRESSED_CBUFS_H

#include <terse/terse.h>

#include <stdint.h>
#include <stdlib.h>

#define NT 4
static const size_t sizes[NT] = {1000, 37, 1, 513};
static const uint32_t ids[NT] = {11, 2, 5, 9};

typedef struct bufs {
    float *in[NT], *out[NT], *werr[NT], *serr[NT];
} bufs_t;

static inline uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static inline void alloc_bufs(bufs_t *b)
{
    for (int j = 0; j < NT; j++) {
        b->in[j] = calloc(sizes[j], 4);
        b->out[j] = calloc(sizes[j], 4);
        b->werr[j] = calloc(sizes[j], 4);
        b->serr[j] = calloc(sizes[j], 4);
    }
}

static inline void free_bufs(bufs_t *b)
{
    for (int j = 0; j < NT; j++) {
        free(b->in[j]);
        free(b->out[j]);
        free(b->werr[j]);
        free(b->serr[j]);
    }
}

/* Calls on tensors [lo, hi) of @b at @step; *algo_p (may be NULL) gets the algorithm run. */
static inline terse_status_t run(terse_comm_h comm, const char *spec, int dw, bufs_t *b, int lo,
                                 int hi, uint64_t step, const char **algo_p)
{
    terse_ctensor_t t[NT];
    terse_callreduce_params_t p = {.field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY |
                                                 TERSE_CALLREDUCE_FIELD_STEP,
                                   .tensors = t, .ntensors = (size_t)(hi - lo), .double_way = dw,
                                   .step = step};
    terse_compressor_t c;
    p.compressor = &c;
    if (terse_compressor_parse(spec, &c) != TERSE_OK)
        return TERSE_ERR_INVALID_ARG;
    for (int j = lo; j < hi; j++)
        t[j - lo] = (terse_ctensor_t){.id = ids[j], .count = sizes[j], .in = b->in[j],
                                      .out = b->out[j], .worker_error = b->werr[j],
                                      .server_error = dw ? b->serr[j] : NULL};
    terse_request_h req = NULL;
    terse_status_t st = terse_icompressed_allreduce(comm, &p, &req);
    if (st != TERSE_OK)
        return st;
    st = terse_wait(req);
    if (algo_p)
        *algo_p = terse_request_algorithm(req);
    terse_request_free(req);
    return st;
}

#endif
