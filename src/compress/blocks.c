/* The positional entry points (tests, fuzzers, the public terse_compress / terse_decompress):
 * each builds its range and uses the calling thread's own view. The collectives build their
 * ranges once and call terse__cblocks_encode / terse__cblocks_decode themselves. */
#include "compress.h"

#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>

static terse_status_t null_buffer(const terse__crange_t *r)
{
    if (r->msg && r->msglen)
        snprintf(r->msg, r->msglen, "tensor %" PRIu32 ": NULL buffer", r->tensor_id);
    return TERSE_ERR_INVALID_ARG;
}

/* Both steps, with the invalid-compressor message naming the tensor as it always did. */
static terse_status_t make_range(const terse_compressor_t *c, size_t n, size_t first, size_t count,
                                 uint32_t tensor_id, uint64_t step, char *msg, size_t msglen,
                                 terse__crange_t *r)
{
    if (terse__crange_init(r, c, NULL, 0) != TERSE_OK) {
        r->msg = msg;
        r->msglen = msglen;
        if (msg && msglen)
            snprintf(msg, msglen, "tensor %" PRIu32 ": invalid compressor", tensor_id);
        return TERSE_ERR_INVALID_ARG;
    }
    r->msg = msg;
    r->msglen = msglen;
    return terse__crange_at(r, n, tensor_id, step, first, count);
}

size_t terse__compress_blocks_max_bytes(const terse_compressor_t *c, size_t n, size_t first,
                                        size_t count)
{
    terse__crange_t r;
    if (make_range(c, n, first, count, 0, 0, NULL, 0, &r) != TERSE_OK)
        return 0;
    return terse__crange_max_bytes(&r);
}

terse_status_t terse__compress_blocks(const terse_compressor_t *c, const float *v, size_t n,
                                      uint32_t tensor_id, uint64_t step, size_t first, size_t count,
                                      void *wire, size_t wire_cap, size_t *wire_len_p,
                                      float *dense_out, float *remainder_out, char *msg,
                                      size_t msglen)
{
    terse__crange_t r;
    terse_status_t st = make_range(c, n, first, count, tensor_id, step, msg, msglen, &r);
    if (st != TERSE_OK)
        return st;
    terse__cenc_args_t a = {.v = v, .wire = wire, .wire_cap = wire_cap, .dense_out = dense_out,
                            .remainder_out = remainder_out};
    return terse__cblocks_encode(&r, terse__cview_local(), &a, wire_len_p);
}

/* The positional entry points: a range built per call, the thread's own view. */
static terse_status_t decode_legacy(const terse_compressor_t *c, size_t n, uint32_t tensor_id,
                                    uint64_t step, size_t first, size_t count, char *msg,
                                    size_t msglen, const terse__cdec_args_t *a)
{
    terse__crange_t r = {.tensor_id = tensor_id, .msg = msg, .msglen = msglen};
    if (count && a->op != TERSE__CDEC_CHECK &&
        (!a->out || (a->op == TERSE__CDEC_REMAINDER && !a->v)))
        return null_buffer(&r);
    terse_status_t st = make_range(c, n, first, count, tensor_id, step, msg, msglen, &r);
    if (st != TERSE_OK)
        return st;
    return terse__cblocks_decode(&r, terse__cview_local(), a);
}

terse_status_t terse__decompress_blocks_add(const terse_compressor_t *c, const void *wire,
                                            size_t wire_len, size_t n, uint32_t tensor_id,
                                            uint64_t step, size_t first, size_t count, float *acc,
                                            char *msg, size_t msglen)
{
    terse__cdec_args_t a = {.wire = wire, .wire_len = wire_len, .op = TERSE__CDEC_ADD, .out = acc};
    return decode_legacy(c, n, tensor_id, step, first, count, msg, msglen, &a);
}

terse_status_t terse__decompress_blocks_set(const terse_compressor_t *c, const void *wire,
                                            size_t wire_len, size_t n, uint32_t tensor_id,
                                            uint64_t step, size_t first, size_t count, float *out,
                                            char *msg, size_t msglen)
{
    terse__cdec_args_t a = {.wire = wire, .wire_len = wire_len, .op = TERSE__CDEC_SET, .out = out};
    return decode_legacy(c, n, tensor_id, step, first, count, msg, msglen, &a);
}

terse_status_t terse__decompress_blocks_check(const terse_compressor_t *c, const void *wire,
                                              size_t wire_len, size_t n, uint32_t tensor_id,
                                              uint64_t step, size_t first, size_t count,
                                              char *msg, size_t msglen)
{
    terse__cdec_args_t a = {.wire = wire, .wire_len = wire_len, .op = TERSE__CDEC_CHECK};
    return decode_legacy(c, n, tensor_id, step, first, count, msg, msglen, &a);
}

terse_status_t terse__decompress_remainder(const terse_compressor_t *c, const void *wire,
                                           size_t wire_len, size_t n, uint32_t tensor_id,
                                           uint64_t step, size_t first, size_t count,
                                           const float *v, float *rem, char *msg, size_t msglen)
{
    if (!terse__compress_has_remainder(c)) {
        if (msg && msglen)
            snprintf(msg, msglen, "tensor %" PRIu32 ": codec rebuilds no remainder", tensor_id);
        return TERSE_ERR_INVALID_ARG;
    }
    terse__cdec_args_t a = {.wire = wire, .wire_len = wire_len, .op = TERSE__CDEC_REMAINDER,
                            .out = rem, .v = v};
    return decode_legacy(c, n, tensor_id, step, first, count, msg, msglen, &a);
}

size_t terse_compress_max_bytes(const terse_compressor_t *c, size_t n)
{
    return terse__compress_blocks_max_bytes(c, n, 0, terse__compress_nblocks(c, n));
}

terse_status_t terse_compress(const terse_compressor_t *c, const float *v, size_t n,
                              uint32_t tensor_id, uint64_t step, void *wire, size_t wire_cap,
                              size_t *wire_len_p, float *dense_out, float *remainder_out)
{
    char msg[256] = "";
    terse_status_t st =
        terse__compress_blocks(c, v, n, tensor_id, step, 0, terse__compress_nblocks(c, n), wire,
                               wire_cap, wire_len_p, dense_out, remainder_out, msg, sizeof(msg));
    if (st != TERSE_OK)
        terse_log_error("compress: %s", msg[0] ? msg : terse_status_string(st));
    return st;
}

terse_status_t terse_decompress(const terse_compressor_t *c, const void *wire, size_t wire_len,
                                size_t n, uint32_t tensor_id, uint64_t step, float *acc)
{
    char msg[256] = "";
    if (n && !acc) {
        terse_log_error("decompress: NULL accumulator");
        return TERSE_ERR_INVALID_ARG;
    }
    terse_status_t st =
        terse__decompress_blocks_add(c, wire, wire_len, n, tensor_id, step, 0,
                                     terse__compress_nblocks(c, n), acc, msg, sizeof(msg));
    if (st != TERSE_OK)
        terse_log_error("decompress: %s", msg[0] ? msg : terse_status_string(st));
    return st;
}

