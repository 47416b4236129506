/*
 * none, fp16, bf16: the Horovod-compatible element-wise baselines. They share this file
 * because they differ only in the element kernel; blocks do not change their result, and the
 * payload is simply the elements of blocks [first, first+count), 4 or 2 bytes each.
 *
 * fp16/bf16 round to nearest even; the remainder v - C(v) is exact. none: C(v) = v and the
 * remainder is a zero carrying v's sign (so C + remainder == v bit for bit, even for -0.0).
 * Non-finite input, and for fp16/bf16 finite values that would round to +-Inf (|v| >= 65520
 * for fp16), fail with TERSE_ERR_NONFINITE; with passthrough they are cast like any value
 * (Horovod's behaviour: overflow becomes Inf).
 */
#include "compress.h"
#include "core/half.h"
#include "kernels.h"
#include "wire.h"

#include <string.h>

#define FP16_OVERFLOW 0x477ff000u /* |v| bits from which float -> half rounds to Inf */
#define BF16_OVERFLOW 0x7f7f8000u /* |v| bits from which float -> bf16 rounds to Inf */

/* First element and element count of the range. */
static void span(const terse__crange_t *r, size_t *start, size_t *len)
{
    if (!r->count) {
        *start = *len = 0;
        return;
    }
    size_t last = r->first + r->count - 1;
    *start = terse__crange_block_start(r, r->first);
    *len = terse__crange_block_start(r, last) + terse__crange_block_len(r, last) - *start;
}

/* TERSE_OK, or TERSE_ERR_NONFINITE naming the first block holding a value >= limit. */
static terse_status_t check_input(const terse__crange_t *r, const float *v, uint32_t limit,
                                  const char *what)
{
    const terse__ckernels_t *kern = terse__ckernels();
    if (r->c.nonfinite_passthrough)
        return TERSE_OK;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i;
        if (kern->any_abs_ge(v + terse__crange_block_start(r, b), terse__crange_block_len(r, b),
                             limit))
            return terse__compress_nonfinite_error(r, v, b, limit, what);
    }
    return TERSE_OK;
}

static size_t f32_block_max_bytes(const terse__crange_t *r, size_t nb)
{
    return 4 * nb;
}

static size_t f16_block_max_bytes(const terse__crange_t *r, size_t nb)
{
    return 2 * nb;
}

static terse_status_t none_encode(const terse__crange_t *r, terse__cview_t *w, const float *v,
                                  uint8_t *out, size_t *out_len_p, float *dense, float *rem)
{
    (void)w;
    terse_status_t st = check_input(r, v, TERSE__NONFINITE, "float32");
    if (st != TERSE_OK)
        return st;
    size_t s, len;
    span(r, &s, &len);
    memcpy(out, v + s, 4 * len);
    if (dense)
        memcpy(dense + s, v + s, 4 * len);
    if (rem) {
        const uint32_t *u = (const uint32_t *)(const void *)(v + s);
        uint32_t *o = (uint32_t *)(void *)(rem + s);
        for (size_t i = 0; i < len; i++)
            o[i] = u[i] & 0x80000000u;
    }
    *out_len_p = 4 * len;
    return TERSE_OK;
}

static terse_status_t fp16_encode(const terse__crange_t *r, terse__cview_t *w, const float *v,
                                  uint8_t *out, size_t *out_len_p, float *dense, float *rem)
{
    (void)w;
    terse_status_t st = check_input(r, v, FP16_OVERFLOW, "fp16");
    if (st != TERSE_OK)
        return st;
    size_t s, len;
    span(r, &s, &len);
    terse__ckernels()->to_fp16(v + s, len, out, dense ? dense + s : NULL, rem ? rem + s : NULL);
    *out_len_p = 2 * len;
    return TERSE_OK;
}

static terse_status_t bf16_encode(const terse__crange_t *r, terse__cview_t *w, const float *v,
                                  uint8_t *out, size_t *out_len_p, float *dense, float *rem)
{
    (void)w;
    terse_status_t st = check_input(r, v, BF16_OVERFLOW, "bf16");
    if (st != TERSE_OK)
        return st;
    size_t s, len;
    span(r, &s, &len);
    terse__ckernels()->to_bf16(v + s, len, out, dense ? dense + s : NULL, rem ? rem + s : NULL);
    *out_len_p = 2 * len;
    return TERSE_OK;
}

static terse_status_t check_len(const terse__crange_t *r, size_t len, size_t elem)
{
    size_t s, n;
    span(r, &s, &n);
    if (len / elem != n || len % elem)
        return terse__compress_corrupt(r, r->first, "payload of %zu bytes, expected %zu", len,
                                       n * elem);
    return TERSE_OK;
}

static terse_status_t none_validate(const terse__crange_t *r, terse__cview_t *w,
                                    const uint8_t *p, size_t len)
{
    (void)w;
    terse_status_t st = check_len(r, len, 4);
    if (st != TERSE_OK)
        return st;
    return terse__compress_check_values(r, r->first, p, len / 4);
}

/* Halves whose exponent bits are all ones (mask) are Inf or NaN. */
static terse_status_t check_halves(const terse__crange_t *r, const uint8_t *p, size_t len,
                                   uint16_t mask)
{
    terse_status_t st = check_len(r, len, 2);
    if (st != TERSE_OK || r->c.nonfinite_passthrough)
        return st;
    unsigned bad = 0;
    for (size_t i = 0; i < len / 2; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        bad |= (h & mask) == mask;
    }
    if (bad)
        return terse__compress_corrupt(r, r->first, "non-finite value");
    return TERSE_OK;
}

static terse_status_t fp16_validate(const terse__crange_t *r, terse__cview_t *w,
                                    const uint8_t *p, size_t len)
{
    (void)w;
    return check_halves(r, p, len, 0x7c00);
}

static terse_status_t bf16_validate(const terse__crange_t *r, terse__cview_t *w,
                                    const uint8_t *p, size_t len)
{
    (void)w;
    return check_halves(r, p, len, 0x7f80);
}

static void none_add(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                     float *acc)
{
    (void)w;
    size_t s, n;
    span(r, &s, &n);
    terse__ckernels()->add_f32(p, n, acc + s);
}

static void fp16_add(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                     float *acc)
{
    (void)w;
    size_t s, n;
    span(r, &s, &n);
    terse__ckernels()->add_fp16(p, n, acc + s);
}

static void bf16_add(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                     float *acc)
{
    (void)w;
    size_t s, n;
    span(r, &s, &n);
    terse__ckernels()->add_bf16(p, n, acc + s);
}

const terse__codec_ops_t terse__codec_none = {
    .name = "none",
    .block_max_bytes = f32_block_max_bytes,
    .encode = none_encode,
    .validate = none_validate,
    .add = none_add,
};

const terse__codec_ops_t terse__codec_fp16 = {
    .name = "fp16",
    .block_max_bytes = f16_block_max_bytes,
    .encode = fp16_encode,
    .validate = fp16_validate,
    .add = fp16_add,
};

const terse__codec_ops_t terse__codec_bf16 = {
    .name = "bf16",
    .block_max_bytes = f16_block_max_bytes,
    .encode = bf16_encode,
    .validate = bf16_validate,
    .add = bf16_add,
};
