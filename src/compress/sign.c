/*
 * sign: C(v) = (||v||_1 / nb) * sign(v) per block, v >= 0 (including -0.0) counting as +
 * (SAEF paper, Eq. 2).
 *
 * Reproducible scale: |v[i]| is added, in double, into lane i % 16 in element order, and the
 * 16 lanes are combined by a fixed pairwise tree, then divided by nb and rounded to float
 * once. Float -> double is exact and the order is fixed, so the scalar, AVX2 and AVX-512
 * kernels (and every machine) give the same bits.
 *
 * Block payload: [scale f32][ceil(nb/8) bytes: bit i%8 of byte i/8 set when v[i] < 0, padding
 * bits 0]. remainder = v - C(v), one float rounding from exact.
 * Non-finite input: TERSE_ERR_NONFINITE; with passthrough the block's scale becomes Inf or NaN
 * (NaN elements count as +).
 */
#include "compress.h"
#include "kernels.h"
#include "wire.h"

#include <math.h>
#include <string.h>

static float block_scale(const double lanes[16], size_t nb)
{
    double s[8];
    for (int i = 0; i < 8; i++)
        s[i] = lanes[i] + lanes[i + 8];
    for (int i = 0; i < 4; i++)
        s[i] += s[i + 4];
    double l1 = (s[0] + s[2]) + (s[1] + s[3]);
    return (float)(l1 / (double)nb);
}

static size_t sign_block_max_bytes(const terse__crange_t *r, size_t nb)
{
    return 4 + (nb + 7) / 8;
}

static terse_status_t sign_encode(const terse__crange_t *r, terse__cview_t *w, const float *v,
                                  uint8_t *out, size_t *out_len_p, float *dense, float *rem)
{
    const terse__ckernels_t *kern = terse__ckernels();
    float *scale = terse__cview_get(&w->scale, r->count * sizeof(float));
    if (!scale)
        return TERSE_ERR_NO_MEMORY;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, start = terse__crange_block_start(r, b);
        size_t nb = terse__crange_block_len(r, b);
        double lanes[16] = {0};
        int bad = kern->l1_lanes(v + start, nb, lanes);
        if (bad && !r->c.nonfinite_passthrough)
            return terse__compress_nonfinite_error(r, v, b, TERSE__NONFINITE, "float32");
        scale[i] = block_scale(lanes, nb);
    }
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, start = terse__crange_block_start(r, b);
        size_t nb = terse__crange_block_len(r, b);
        terse__put_f32(out + pos, scale[i]);
        kern->sign_pack(v + start, nb, scale[i], out + pos + 4, dense ? dense + start : NULL,
                        rem ? rem + start : NULL);
        pos += 4 + (nb + 7) / 8;
    }
    *out_len_p = pos;
    return TERSE_OK;
}

static terse_status_t sign_validate(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p,
                                    size_t len)
{
    (void)w;
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b);
        size_t bytes = (nb + 7) / 8;
        if (len - pos < 4 || len - pos - 4 < bytes)
            return terse__compress_corrupt(r, b, "truncated: %zu bytes left, need %zu", len - pos,
                                           4 + bytes);
        float s = terse__get_f32(p + pos);
        if (!r->c.nonfinite_passthrough && !(isfinite(s) && s >= 0.0f))
            return terse__compress_corrupt(r, b, "invalid scale %g", (double)s);
        if (nb % 8 && (p[pos + 4 + bytes - 1] >> (nb % 8)))
            return terse__compress_corrupt(r, b, "padding bits set");
        pos += 4 + bytes;
    }
    if (pos != len)
        return terse__compress_corrupt(r, r->first + r->count, "%zu trailing bytes", len - pos);
    return TERSE_OK;
}

static void sign_add(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                     float *acc)
{
    (void)w;
    const terse__ckernels_t *kern = terse__ckernels();
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b);
        kern->sign_add(p + pos + 4, nb, terse__get_f32(p + pos),
                       acc + terse__crange_block_start(r, b));
        pos += 4 + (nb + 7) / 8;
    }
}

/* 0 + c, a cache-sized piece at a time: the zeros are still in L1 when the add reads them,
 * so the output is written to memory once. */
static void sign_set(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                     float *out)
{
    (void)w, (void)len;
    enum { PIECE = 4096 }; /* elements; a multiple of 8 keeps the bitmap bytes aligned */
    const terse__ckernels_t *kern = terse__ckernels();
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b);
        float scale = terse__get_f32(p + pos), *o = out + terse__crange_block_start(r, b);
        for (size_t e = 0; e < nb; e += PIECE) {
            size_t m = nb - e < PIECE ? nb - e : PIECE;
            memset(o + e, 0, m * sizeof(float));
            kern->sign_add(p + pos + 4 + e / 8, m, scale, o + e);
        }
        pos += 4 + (nb + 7) / 8;
    }
}

/* encode's remainder x - c is x + (-c) exactly (IEEE subtraction is addition of the
 * negation), so adding the signs with the scale negated onto a copy of v gives its bits. */
static void sign_remainder(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p,
                           size_t len, const float *v, float *rem)
{
    (void)w, (void)len;
    const terse__ckernels_t *kern = terse__ckernels();
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b);
        size_t start = terse__crange_block_start(r, b);
        if (rem + start != v + start)
            memcpy(rem + start, v + start, nb * sizeof(float));
        kern->sign_add(p + pos + 4, nb, -terse__get_f32(p + pos), rem + start);
        pos += 4 + (nb + 7) / 8;
    }
}

const terse__codec_ops_t terse__codec_sign = {
    .name = "sign",
    .fixed_size = 1,
    .block_max_bytes = sign_block_max_bytes,
    .encode = sign_encode,
    .validate = sign_validate,
    .add = sign_add,
    .set = sign_set,
    .remainder = sign_remainder,
};
