/*
 * induced(topk_ratio, randk_ratio, seed): C(v) = topk(v) + randk(v - topk(v)) per block
 * (induced-compressor paper, Theorem 3 / Section 5.3): unbiased, since randk is unbiased on the
 * Top-K remainder.
 *
 * Block payload: the Top-K part exactly as topk writes it, then k2 values f32 of the Rand-K
 * part at its regenerated indices, in index order. Where a Rand-K index is also a Top-K index
 * the remainder there is 0, its value is sent as +0.0 (checked by the decoder) and the decoder
 * adds only the Top-K value, so each element gets at most one float add.
 * C(v) = v at Top-K entries, fl(s * v) at the other Rand-K entries (s = nb/k2), signed zero
 * elsewhere; the remainder is bit-exact except at those Rand-K entries (one rounding, as randk).
 * Non-finite input: as topk.
 */
#include "kernels.h"
#include "randk.h"
#include "rng.h"
#include "topk.h"
#include "wire.h"

static size_t induced_block_max_bytes(const terse__crange_t *r, size_t nb)
{
    return terse__topk_block_max_bytes(nb, terse__compress_k(r->c.ratio, nb)) +
           4 * terse__compress_k(r->c.randk_ratio, nb);
}

/* Reserves the view for r's largest block (w->idx: Top-K indices, w->rand: Rand-K), so add()
 * after validate cannot run out of memory. */
static int reserve(const terse__crange_t *r, terse__cview_t *w, uint64_t **idx1_p)
{
    size_t k1 = terse__compress_k(r->c.ratio, r->bs),
           k2 = terse__compress_k(r->c.randk_ratio, r->bs);
    *idx1_p = terse__cview_get(&w->idx, k1 * sizeof(uint64_t));
    return *idx1_p && terse__cview_get(&w->rand, terse__randk_scratch_bytes(r->bs, k2));
}

static terse_status_t induced_encode(const terse__crange_t *r, terse__cview_t *w, const float *v,
                                     uint8_t *out, size_t *out_len_p, float *dense, float *rem)
{
    const terse__ckernels_t *kern = terse__ckernels();
    terse__topk_sel_t *sel;
    terse_status_t sst = terse__topk_select_range(r, w, v, &sel);
    if (sst != TERSE_OK)
        return sst;
    uint64_t *idx1;
    if (r->count && !reserve(r, w, &idx1))
        return TERSE_ERR_NO_MEMORY;
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, start = terse__crange_block_start(r, b);
        size_t nb = terse__crange_block_len(r, b);
        size_t k1 = terse__compress_k(r->c.ratio, nb), k2 = terse__compress_k(r->c.randk_ratio, nb);
        const float *x = v + start;
        float *d = dense ? dense + start : NULL, *m = rem ? rem + start : NULL;
        pos += terse__topk_write_block(kern, x, nb, k1, &sel[i], out + pos, idx1, d, m);
        const uint64_t *idx2 = terse__randk_block_indices(r, w, b, nb, k2);
        float s = terse__randk_scale(nb, k2);
        size_t t = 0;
        for (size_t j = 0; j < k2; j++) {
            uint64_t e = idx2[j];
            while (t < k1 && idx1[t] < e)
                t++;
            if (t < k1 && idx1[t] == e) {
                terse__put_f32(out + pos + 4 * j, 0.0f); /* remainder is 0 there */
                continue;
            }
            float y = s * x[e];
            terse__put_f32(out + pos + 4 * j, y);
            if (d)
                d[e] = y;
            if (m)
                m[e] = terse__remainder(x[e], y);
        }
        pos += 4 * k2;
    }
    *out_len_p = pos;
    return TERSE_OK;
}

static terse_status_t induced_validate(const terse__crange_t *r, terse__cview_t *w,
                                       const uint8_t *p, size_t len)
{
    uint64_t *idx1;
    if (r->count && !reserve(r, w, &idx1))
        return TERSE_ERR_NO_MEMORY;
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b), used;
        size_t k1 = terse__compress_k(r->c.ratio, nb), k2 = terse__compress_k(r->c.randk_ratio, nb);
        terse_status_t st = terse__topk_parse_block(r, b, p + pos, len - pos, nb, k1, &used, idx1);
        if (st != TERSE_OK)
            return st;
        pos += used;
        if ((len - pos) / 4 < k2)
            return terse__compress_corrupt(r, b, "truncated rand-k part");
        st = terse__compress_check_values(r, b, p + pos, k2);
        if (st != TERSE_OK)
            return st;
        const uint64_t *idx2 = terse__randk_block_indices(r, w, b, nb, k2);
        size_t t = 0;
        for (size_t j = 0; j < k2; j++) {
            while (t < k1 && idx1[t] < idx2[j])
                t++;
            if (t < k1 && idx1[t] == idx2[j] && terse__get_u32(p + pos + 4 * j) != 0)
                return terse__compress_corrupt(r, b, "non-zero rand-k value at top-k index");
        }
        pos += 4 * k2;
    }
    if (pos != len)
        return terse__compress_corrupt(r, r->first + r->count, "%zu trailing bytes", len - pos);
    return TERSE_OK;
}

static void induced_add(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                        float *acc)
{
    uint64_t *idx1 = w->idx.ptr; /* reserved by validate */
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b), used = 0;
        size_t k1 = terse__compress_k(r->c.ratio, nb), k2 = terse__compress_k(r->c.randk_ratio, nb);
        float *a = acc + terse__crange_block_start(r, b);
        /* validated already: this only decodes the indices again */
        terse__topk_parse_block(r, b, p + pos, len - pos, nb, k1, &used, idx1);
        terse__topk_add_block(p + pos, nb, k1, a);
        pos += used;
        const uint64_t *idx2 = terse__randk_block_indices(r, w, b, nb, k2);
        size_t t = 0;
        for (size_t j = 0; j < k2; j++) {
            while (t < k1 && idx1[t] < idx2[j])
                t++;
            if (t < k1 && idx1[t] == idx2[j])
                continue;
            a[idx2[j]] += terse__get_f32(p + pos + 4 * j);
        }
        pos += 4 * k2;
    }
}

const terse__codec_ops_t terse__codec_induced = {
    .name = "induced",
    .block_max_bytes = induced_block_max_bytes,
    .encode = induced_encode,
    .validate = induced_validate,
    .add = induced_add,
};
