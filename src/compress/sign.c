/*
 * sign: C(v) = (||v||_1 / nb) * sign(v) per block, v >= 0 (including -0.0) counting as +
 * (SAEF paper, Eq. 2).
 *
 * Reproducible scale (sign.h): per chunk of TERSE_SIGN_CHUNK elements, |v[i]| is added, in
 * double, into lane i % 16 in element order and the 16 lanes are combined by a fixed pairwise
 * tree; the chunk partials are added in chunk order in double, divided by nb and rounded to
 * float once. Float -> double is exact and the order is fixed, so the scalar, AVX2 and
 * AVX-512 kernels (and every machine, and every split of the block at chunk boundaries) give
 * the same bits.
 *
 * Block payload: [scale f32][ceil(nb/8) bytes: bit i%8 of byte i/8 set when v[i] < 0, padding
 * bits 0]. remainder = v - C(v), one float rounding from exact.
 * Non-finite input: TERSE_ERR_NONFINITE; with passthrough the block's scale becomes Inf or NaN
 * (NaN elements count as +).
 */
#include "compress.h"
#include "kernels.h"
#include "sign.h"
#include "wire.h"
#include "core/prof.h"

#include <math.h>
#include <string.h>

static double lanes_sum(const double lanes[16])
{
    double s[8];
    for (int i = 0; i < 8; i++)
        s[i] = lanes[i] + lanes[i + 8];
    for (int i = 0; i < 4; i++)
        s[i] += s[i + 4];
    return (s[0] + s[2]) + (s[1] + s[3]);
}

int terse__sign_partials(const float *v, size_t n, double *part)
{
    const terse__ckernels_t *kern = terse__ckernels();
    int bad = 0;
    for (size_t e = 0, c = 0; e < n; e += TERSE_SIGN_CHUNK, c++) {
        double lanes[16] = {0};
        bad |= kern->l1_lanes(v + e, n - e < TERSE_SIGN_CHUNK ? n - e : TERSE_SIGN_CHUNK, lanes);
        part[c] = lanes_sum(lanes);
    }
    return bad;
}

float terse__sign_scale(const double *part, size_t m, size_t nb)
{
    double l1 = 0.0; /* 0 + P_0 = P_0: partials are never -0 */
    for (size_t c = 0; c < m; c++)
        l1 += part[c];
    return (float)(l1 / (double)nb);
}

/* The scale of one block, its partials a piece at a time (no buffer of nb / CHUNK doubles). */
static int block_scale(const float *v, size_t nb, float *scale_p)
{
    enum { PIECE = 64 };
    double part[PIECE], l1 = 0.0;
    int bad = 0;
    for (size_t e = 0; e < nb; e += (size_t)PIECE * TERSE_SIGN_CHUNK) {
        size_t len = nb - e < (size_t)PIECE * TERSE_SIGN_CHUNK ? nb - e
                                                                : (size_t)PIECE * TERSE_SIGN_CHUNK;
        size_t m = (len + TERSE_SIGN_CHUNK - 1) / TERSE_SIGN_CHUNK;
        bad |= terse__sign_partials(v + e, len, part);
        for (size_t c = 0; c < m; c++)
            l1 += part[c]; /* in chunk order, as terse__sign_scale */
    }
    *scale_p = (float)(l1 / (double)nb);
    return bad;
}

static size_t sign_block_max_bytes(const terse__crange_t *r, size_t nb)
{
    return 4 + (nb + 7) / 8;
}

/* One pass over v when only the message is wanted: the sign bits do not depend on the scale,
 * so each chunk is summed and packed while it is in cache, its partial added in chunk order as
 * block_scale does (the same bits). The message waits in scratch until every block proved
 * finite, so a failure writes nothing. */
static terse_status_t sign_encode_fused(const terse__crange_t *r, terse__cview_t *w,
                                        const float *v, uint8_t *out, size_t *out_len_p)
{
    const terse__ckernels_t *kern = terse__ckernels();
    size_t total = 0, pos = 0;
    for (size_t i = 0; i < r->count; i++)
        total += 4 + (terse__crange_block_len(r, r->first + i) + 7) / 8;
    uint8_t *stage = terse__cview_get(&w->stage, total);
    if (!stage)
        return TERSE_ERR_NO_MEMORY;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, start = terse__crange_block_start(r, b);
        size_t nb = terse__crange_block_len(r, b);
        double l1 = 0.0;
        int bad = 0;
        for (size_t e = 0; e < nb; e += TERSE_SIGN_CHUNK) {
            size_t m = nb - e < TERSE_SIGN_CHUNK ? nb - e : TERSE_SIGN_CHUNK;
            double lanes[16] = {0};
            bad |= kern->l1_lanes(v + start + e, m, lanes);
            l1 += lanes_sum(lanes);
            kern->sign_pack(v + start + e, m, 0.0f, stage + pos + 4 + e / 8, NULL, NULL);
        }
        if (bad && !r->c.nonfinite_passthrough)
            return terse__compress_nonfinite_error(r, v, b, TERSE__NONFINITE, "float32");
        terse__put_f32(stage + pos, (float)(l1 / (double)nb));
        terse__prof_io(4 * nb, (nb + 7) / 8);
        pos += 4 + (nb + 7) / 8;
    }
    memcpy(out, stage, pos);
    terse__prof_io(pos, pos);
    *out_len_p = pos;
    return TERSE_OK;
}

static terse_status_t sign_encode(const terse__crange_t *r, terse__cview_t *w, const float *v,
                                  uint8_t *out, size_t *out_len_p, float *dense, float *rem)
{
    if (!dense && !rem)
        return sign_encode_fused(r, w, v, out, out_len_p);
    const terse__ckernels_t *kern = terse__ckernels();
    float *scale = terse__cview_get(&w->scale, r->count * sizeof(float));
    if (!scale)
        return TERSE_ERR_NO_MEMORY;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, start = terse__crange_block_start(r, b);
        size_t nb = terse__crange_block_len(r, b);
        int bad = block_scale(v + start, nb, &scale[i]);
        terse__prof_io(4 * nb, 0);
        if (bad && !r->c.nonfinite_passthrough)
            return terse__compress_nonfinite_error(r, v, b, TERSE__NONFINITE, "float32");
    }
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, start = terse__crange_block_start(r, b);
        size_t nb = terse__crange_block_len(r, b);
        terse__put_f32(out + pos, scale[i]);
        kern->sign_pack(v + start, nb, scale[i], out + pos + 4, dense ? dense + start : NULL,
                        rem ? rem + start : NULL);
        terse__prof_io(4 * nb, (nb + 7) / 8 + (dense ? 4 * nb : 0) + (rem ? 4 * nb : 0));
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
        terse__prof_io(4 * nb, 4 * nb); /* acc read and written (the bits: the message) */
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
        terse__prof_io(0, 4 * nb); /* the zeros are read back from L1, not memory */
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
        terse__prof_io(rem + start != v + start ? 8 * nb : 4 * nb,
                       rem + start != v + start ? 8 * nb : 4 * nb);
        pos += 4 + (nb + 7) / 8;
    }
}

/* For a finite nonzero s, out - (0 + c) is out + (-+s): the kernel's add with the scale
 * negated (as the remainder). For s = 0, 0 + c is +0 and out - (+0) leaves out as it is,
 * which the kernel's add would not (-0 + +0 is +0). A nonfinite scale (passthrough) takes the
 * element-wise form, so NaN payloads and signs are those of a SET followed by out - u. */
void terse__sign_subtract(const uint8_t *bits, size_t n, float s, float *out)
{
    if (isfinite(s) && s != 0.0f) {
        terse__ckernels()->sign_add(bits, n, -s, out);
    } else if (!isfinite(s)) {
        for (size_t e = 0; e < n; e++)
            out[e] = out[e] - (0.0f + ((bits[e / 8] >> (e % 8)) & 1 ? -s : s));
    }
}

static void sign_subtract(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p,
                          size_t len, float *out)
{
    (void)w, (void)len;
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b);
        float s = terse__get_f32(p + pos);
        terse__sign_subtract(p + pos + 4, nb, s, out + terse__crange_block_start(r, b));
        terse__prof_io(s != 0.0f ? 4 * nb : 0, s != 0.0f ? 4 * nb : 0);
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
    .subtract = sign_subtract,
};
