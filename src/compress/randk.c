/*
 * randk(ratio, seed): per block, k = max(1, floor(ratio * nb)) distinct indices drawn from a
 * counter-based stream keyed by (seed, step, tensor id, block) (see rng.h), values scaled by
 * nb/k so E[C(v)] = v. Only the values travel: the receiver regenerates the indices.
 *
 * Block payload: k values f32 (already scaled), in increasing index order.
 * C(v) = fl(s * v) at the drawn indices, a zero carrying v's sign elsewhere; the remainder is
 * v elsewhere (so C + remainder == v bit for bit there) and fl(v - C) at the drawn indices
 * (one rounding: with s != 1 no float remainder can make the sum exact in general).
 * Non-finite input anywhere in the block: TERSE_ERR_NONFINITE; with passthrough they are
 * carried if drawn.
 */
#include "randk.h"

#include "core/half.h"
#include "kernels.h"
#include "rng.h"
#include "wire.h"

size_t terse__randk_scratch_bytes(size_t nb, size_t k)
{
    return k * sizeof(uint64_t) + (nb + 63) / 64 * sizeof(uint64_t);
}

uint64_t *terse__randk_block_indices(const terse__crange_t *r, terse__cview_t *w, size_t block,
                                     size_t nb, size_t k)
{
    uint64_t *idx = terse__cview_get(&w->rand, terse__randk_scratch_bytes(r->bs, k));
    if (!idx)
        return NULL;
    uint64_t key = terse__rng_key(r->c.seed, r->step, r->tensor_id, block);
    terse__randk_indices(key, nb, k, idx, idx + k);
    return idx;
}

static size_t randk_block_max_bytes(const terse__crange_t *r, size_t nb)
{
    return 4 * terse__compress_k(r->c.ratio, nb);
}

static terse_status_t randk_encode(const terse__crange_t *r, terse__cview_t *w, const float *v,
                                   uint8_t *out, size_t *out_len_p, float *dense, float *rem)
{
    const terse__ckernels_t *kern = terse__ckernels();
    for (size_t i = 0; i < r->count && !r->c.nonfinite_passthrough; i++) {
        size_t b = r->first + i;
        if (kern->any_abs_ge(v + terse__crange_block_start(r, b), terse__crange_block_len(r, b),
                             TERSE__NONFINITE))
            return terse__compress_nonfinite_error(r, v, b, TERSE__NONFINITE, "float32");
    }
    /* reserve the largest block's scratch before writing anything */
    if (r->count && !terse__cview_get(&w->rand, terse__randk_scratch_bytes(
                                                    r->bs, terse__compress_k(r->c.ratio, r->bs))))
        return TERSE_ERR_NO_MEMORY;
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, start = terse__crange_block_start(r, b);
        size_t nb = terse__crange_block_len(r, b), k = terse__compress_k(r->c.ratio, nb);
        const float *x = v + start;
        uint64_t *idx = terse__randk_block_indices(r, w, b, nb, k);
        float s = terse__randk_scale(nb, k);
        if (dense)
            for (size_t e = 0; e < nb; e++)
                dense[start + e] = terse__f32_from_bits(terse__f32_bits(x[e]) & 0x80000000u);
        if (rem)
            memcpy(rem + start, x, nb * sizeof(float));
        for (size_t j = 0; j < k; j++) {
            float y = s * x[idx[j]];
            terse__put_f32(out + pos + 4 * j, y);
            if (dense)
                dense[start + idx[j]] = y;
            if (rem)
                rem[start + idx[j]] = terse__remainder(x[idx[j]], y);
        }
        pos += 4 * k;
    }
    *out_len_p = pos;
    return TERSE_OK;
}

static terse_status_t randk_validate(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p,
                                     size_t len)
{
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b);
        size_t k = terse__compress_k(r->c.ratio, nb);
        if ((len - pos) / 4 < k)
            return terse__compress_corrupt(r, b, "truncated: %zu bytes for %zu values", len - pos,
                                           k);
        terse_status_t st = terse__compress_check_values(r, b, p + pos, k);
        if (st != TERSE_OK)
            return st;
        pos += 4 * k;
    }
    if (pos != len)
        return terse__compress_corrupt(r, r->first + r->count, "%zu trailing bytes", len - pos);
    /* add() regenerates indices into this scratch and cannot fail, so reserve it now */
    if (r->count && !terse__cview_get(&w->rand, terse__randk_scratch_bytes(
                                                    r->bs, terse__compress_k(r->c.ratio, r->bs))))
        return TERSE_ERR_NO_MEMORY;
    return TERSE_OK;
}

static void randk_add(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                      float *acc)
{
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b);
        size_t k = terse__compress_k(r->c.ratio, nb);
        float *a = acc + terse__crange_block_start(r, b);
        const uint64_t *idx = terse__randk_block_indices(r, w, b, nb, k);
        for (size_t j = 0; j < k; j++)
            a[idx[j]] += terse__get_f32(p + pos + 4 * j);
        pos += 4 * k;
    }
}

const terse__codec_ops_t terse__codec_randk = {
    .name = "randk",
    .fixed_size = 1,
    .block_max_bytes = randk_block_max_bytes,
    .encode = randk_encode,
    .validate = randk_validate,
    .add = randk_add,
};
