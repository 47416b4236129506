/*
 * topk(ratio): per block of nb elements keep the k = max(1, floor(ratio * nb)) entries of
 * largest |v|, ties to the lower index; the rest are 0.
 *
 * Selection: |v| as its bit pattern (sign cleared) is an integer with the same order, so a
 * histogram of its top 11 bits finds the bin holding the k-th largest; the keys of that one
 * bin are collected (or, if it is huge, histogrammed again over the data) and two more 10-bit
 * levels give the exact threshold key and how many entries equal to it are kept. Then one
 * gather pass takes keys above it plus the first n_eq equal ones, in index order, which makes
 * indices strictly increasing and ties go to the lower index for free.
 *
 * Block payload: [index encoding u8][k values f32][indices], the encoding being whichever of
 * absolute uint32 / delta varint / bitmap is smallest for this block (ties: lower code).
 * Non-finite input: TERSE_ERR_NONFINITE; with passthrough NaN ranks above +-Inf above any
 * finite value and is carried as is.
 */
#include "topk.h"

#include "wire.h"

#include "core/half.h"
#include "core/prof.h"

#include <stddef.h>
#include <string.h>

static int forced_enc = -1;

void terse__topk_force_encoding(int enc)
{
    forced_enc = enc;
}

/* Highest bin where the running count from the top reaches *need; *need becomes how many
 * are still needed from that bin. */
static uint32_t find_bin(const uint32_t *hist, uint32_t nbins, size_t *need)
{
    for (uint32_t b = nbins; b-- > 0;) {
        if (hist[b] >= *need)
            return b;
        *need -= hist[b];
    }
    return 0; /* unreachable: the histogram holds at least k keys */
}

static void hist_keys(const uint32_t *keys, size_t cnt, uint32_t lo, uint32_t hi, unsigned shift,
                      uint32_t *hist)
{
    for (size_t i = 0; i < cnt; i++)
        if (keys[i] - lo <= hi - lo)
            hist[(keys[i] - lo) >> shift]++;
}

/* The @r-th largest (0-based) of a[0..n), r < n; reorders a. Quickselect: the value it
 * returns does not depend on the pivots, only the time does. */
static uint32_t nth_largest(uint32_t *a, size_t n, size_t r)
{
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, want = (ptrdiff_t)r;
    while (lo < hi) {
        uint32_t x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];
        uint32_t piv = x > y ? (y > z ? y : (x > z ? z : x)) : (x > z ? x : (y > z ? z : y));
        ptrdiff_t i = lo, j = hi;
        while (i <= j) { /* Hoare, descending: [lo, j] >= piv >= [i, hi] */
            while (a[i] > piv)
                i++;
            while (a[j] < piv)
                j--;
            if (i <= j) {
                uint32_t t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            return a[want]; /* between the halves: equal to the pivot */
    }
    return a[want];
}

enum { SAMPLES = 1024, SAMPLE_MIN_BLOCK = 32768 };

/* Fast path for small k/nb: a threshold from a fixed sample of the block that very likely has
 * a little more than k keys at or above it, one pass collecting those keys, the exact k-th
 * largest among them. 1 when it found the selection (and *bad: a non-finite value), 0 when
 * the sample misled it (the histogram path then runs), -1 on no memory. */
static int select_sampled(const terse__ckernels_t *kern, terse__cview_t *w, const float *v,
                          size_t nb, size_t k, terse__topk_sel_t *sel, uint32_t *kept, int *bad)
{
    uint32_t smp[SAMPLES];
    for (size_t i = 0; i < SAMPLES; i++)
        smp[i] = terse__f32_bits(v[i * nb / SAMPLES]) & TERSE__ABS_MASK;
    /* about 1.5x the expected sample count above the true threshold, plus slack */
    size_t r = (size_t)(1.5 * (double)k * SAMPLES / (double)nb) + 8;
    /* mostly zeros (a sparse sum, say): collect the nonzeros, they may be few enough */
    uint32_t t = nth_largest(smp, SAMPLES, r);
    t = t ? t : 1;
    size_t cap = 4 * k + 4096;
    /* keys and candidates share one buffer; idx is free while a selection runs */
    uint32_t *keys = terse__cview_get(&w->idx, (kept ? 2 : 1) * cap * sizeof(uint32_t));
    uint32_t *cand = kept && keys ? keys + cap : NULL;
    if (!keys || (kept && !cand))
        return -1;
    size_t cnt = kern->topk_collect(v, nb, t, UINT32_MAX, keys, cand, cap);
    terse__prof_io(4 * nb, (cand ? 8 : 4) * (cnt < cap ? cnt : cap));
    if (cnt < k || cnt > cap)
        return 0;
    uint32_t thr = nth_largest(keys, cnt, k - 1), mx = 0;
    size_t above = 0;
    for (size_t i = 0; i < cnt; i++) {
        above += keys[i] > thr;
        mx = keys[i] > mx ? keys[i] : mx;
    }
    sel->thr = thr;
    sel->n_eq = k - above;
    sel->kept = NULL;
    if (kept) { /* the candidates hold every kept element, in order: no second pass needed */
        size_t j = 0, eq = sel->n_eq;
        for (size_t i = 0; i < cnt; i++) {
            uint32_t key = terse__f32_bits(v[cand[i]]) & TERSE__ABS_MASK;
            if (key > thr || (key == thr && eq && eq--))
                kept[j++] = cand[i];
        }
        sel->kept = kept;
    }
    /* every key >= t was collected: a non-finite one among them, or t itself non-finite */
    *bad = mx >= TERSE__NONFINITE || t >= TERSE__NONFINITE;
    return 1;
}

int terse__topk_select(const terse__ckernels_t *kern, terse__cview_t *w, const float *v, size_t nb,
                       size_t k, terse__topk_sel_t *sel, uint32_t *kept)
{
    sel->kept = NULL;
    if (nb >= SAMPLE_MIN_BLOCK && k <= nb / 32) {
        int bad = 0, found = select_sampled(kern, w, v, nb, k, sel, kept, &bad);
        if (found != 0)
            return found < 0 ? -1 : bad;
    }
    uint32_t hist[TERSE__TOPK_BINS1] = {0};
    int bad = kern->topk_hist(v, nb, hist);
    terse__prof_io(4 * nb, 0);
    size_t need = k;
    uint32_t b1 = find_bin(hist, TERSE__TOPK_BINS1, &need);
    uint32_t lo = b1 << TERSE__TOPK_SHIFT1, hi = lo | ((1u << TERSE__TOPK_SHIFT1) - 1);
    if (need == hist[b1]) { /* the whole bin is kept: no need to look inside */
        sel->thr = lo;
        sel->n_eq = SIZE_MAX;
        return bad;
    }
    /* Collect the bin's keys if they are few enough to be cheap; else histogram the data. */
    size_t cnt = hist[b1];
    uint32_t *keys = NULL;
    if (cnt <= nb / 4 + 4096) {
        keys = terse__cview_get(&w->idx, cnt * sizeof(uint32_t));
        if (!keys)
            return -1;
        kern->topk_collect(v, nb, lo, hi, keys, NULL, cnt);
        terse__prof_io(4 * nb, 4 * cnt);
    }
    uint32_t h[1024];
    for (int level = 0; level < 2; level++) {
        unsigned shift = level == 0 ? 10 : 0;
        memset(h, 0, sizeof(h));
        if (keys)
            hist_keys(keys, cnt, lo, hi, shift, h);
        else
            kern->topk_hist_range(v, nb, lo, hi, shift, h);
        terse__prof_io(keys ? 4 * cnt : 4 * nb, 0);
        uint32_t b = find_bin(h, 1024, &need);
        lo += b << shift;
        hi = lo + ((1u << shift) - 1);
        if (level == 0 && need == h[b]) {
            sel->thr = lo;
            sel->n_eq = SIZE_MAX;
            return bad;
        }
    }
    sel->thr = lo;
    sel->n_eq = need;
    return bad;
}

static size_t abs32_bytes(size_t nb, size_t k)
{
    return nb <= ((size_t)1 << 32) ? 4 * k : SIZE_MAX;
}

size_t terse__topk_block_max_bytes(size_t nb, size_t k)
{
    size_t bitmap = (nb + 7) / 8, varint = TERSE__VARINT_MAX * k, idx;
    if (forced_enc == TERSE__TOPK_ENC_ABS32)
        idx = 4 * k;
    else if (forced_enc == TERSE__TOPK_ENC_VARINT)
        idx = varint;
    else if (forced_enc == TERSE__TOPK_ENC_BITMAP)
        idx = bitmap;
    else {
        idx = abs32_bytes(nb, k) < varint ? abs32_bytes(nb, k) : varint;
        idx = bitmap < idx ? bitmap : idx;
    }
    return 1 + 4 * k + idx;
}

/* Size of the varint encoding, or SIZE_MAX as soon as it exceeds stop (it cannot win). */
static size_t varint_bytes(const uint64_t *idx, size_t k, size_t stop)
{
    size_t total = terse__varint_len(idx[0]);
    for (size_t j = 1; j < k && total <= stop; j++)
        total += terse__varint_len(idx[j] - idx[j - 1] - 1);
    return total <= stop ? total : SIZE_MAX;
}

size_t terse__topk_write_block(const terse__ckernels_t *kern, const float *v, size_t nb, size_t k,
                               const terse__topk_sel_t *sel, uint8_t *out, uint64_t *idx,
                               float *dense, float *rem)
{
    if (sel->kept && !dense && !rem) {
        for (size_t j = 0; j < k; j++) {
            idx[j] = sel->kept[j];
            terse__put_f32(out + 1 + 4 * j, v[idx[j]]);
        }
        terse__prof_io(8 * k, 8 * k); /* kept indices and values in, indices and values out */
    } else {
        kern->topk_gather(v, nb, sel->thr, sel->n_eq, idx, out + 1, dense, rem);
        terse__prof_io(4 * nb, 12 * k + (dense ? 4 * nb : 0) + (rem ? 4 * nb : 0));
    }
    uint8_t *p = out + 1 + 4 * k;
    size_t abs_sz = abs32_bytes(nb, k), bm_sz = (nb + 7) / 8;
    int enc = forced_enc;
    if (enc < 0) {
        size_t best = abs_sz < bm_sz ? abs_sz : bm_sz;
        size_t var_sz = varint_bytes(idx, k, best);
        enc = abs_sz <= var_sz && abs_sz <= bm_sz ? TERSE__TOPK_ENC_ABS32
              : var_sz <= bm_sz                   ? TERSE__TOPK_ENC_VARINT
                                                  : TERSE__TOPK_ENC_BITMAP;
    }
    out[0] = (uint8_t)enc;
    if (enc == TERSE__TOPK_ENC_ABS32) {
        for (size_t j = 0; j < k; j++)
            terse__put_u32(p + 4 * j, (uint32_t)idx[j]);
        return 1 + 4 * k + 4 * k;
    }
    if (enc == TERSE__TOPK_ENC_VARINT) {
        size_t pos = terse__varint_put(p, idx[0]);
        for (size_t j = 1; j < k; j++)
            pos += terse__varint_put(p + pos, idx[j] - idx[j - 1] - 1);
        return 1 + 4 * k + pos;
    }
    memset(p, 0, bm_sz);
    for (size_t j = 0; j < k; j++)
        p[idx[j] / 8] |= (uint8_t)(1u << (idx[j] % 8));
    return 1 + 4 * k + bm_sz;
}

terse_status_t terse__topk_parse_block(const terse__crange_t *r, size_t block, const uint8_t *p,
                                       size_t avail, size_t nb, size_t k, size_t *used_p,
                                       uint64_t *idx)
{
    if (avail < 1 || (avail - 1) / 4 < k)
        return terse__compress_corrupt(r, block, "truncated: %zu bytes for %zu values", avail, k);
    unsigned enc = p[0];
    const uint8_t *ip = p + 1 + 4 * k, *end = p + avail;
    size_t left = avail - 1 - 4 * k;
    terse_status_t st = terse__compress_check_values(r, block, p + 1, k);
    if (st != TERSE_OK)
        return st;
    if (enc == TERSE__TOPK_ENC_ABS32) {
        if (nb > ((size_t)1 << 32) || left / 4 < k)
            return terse__compress_corrupt(r, block, "truncated or invalid uint32 indices");
        uint64_t prev = 0;
        for (size_t j = 0; j < k; j++) {
            uint64_t x = terse__get_u32(ip + 4 * j);
            if (x >= nb || (j > 0 && x <= prev))
                return terse__compress_corrupt(r, block, "index %zu (%llu) %s", j,
                                               (unsigned long long)x,
                                               x >= nb ? "out of range" : "not increasing");
            if (idx)
                idx[j] = x;
            prev = x;
        }
        *used_p = 1 + 4 * k + 4 * k;
        return TERSE_OK;
    }
    if (enc == TERSE__TOPK_ENC_VARINT) {
        /* x + 1 + gap must stay below nb; x starts at "-1" so the first value is the index */
        uint64_t x = UINT64_MAX, g;
        const uint8_t *q = ip;
        for (size_t j = 0; j < k; j++) {
            if (q < end && *q < 0x80) { /* one-byte gaps are the common case */
                g = *q++;
            } else {
                size_t used = terse__varint_get(q, end, &g);
                if (!used)
                    return terse__compress_corrupt(r, block, "bad varint for index %zu", j);
                q += used;
            }
            if (g >= nb - (x + 1))
                return terse__compress_corrupt(r, block, "index %zu out of range", j);
            x += 1 + g;
            if (idx)
                idx[j] = x;
        }
        *used_p = (size_t)(q - p);
        return TERSE_OK;
    }
    if (enc == TERSE__TOPK_ENC_BITMAP) {
        size_t bytes = (nb + 7) / 8, cnt = 0;
        if (left < bytes)
            return terse__compress_corrupt(r, block, "truncated bitmap");
        if (nb % 8 && (ip[bytes - 1] >> (nb % 8)))
            return terse__compress_corrupt(r, block, "bitmap padding bits set");
        for (size_t i = 0; i < bytes; i++)
            cnt += (size_t)__builtin_popcount(ip[i]);
        if (cnt != k)
            return terse__compress_corrupt(r, block, "bitmap holds %zu indices, expected %zu", cnt,
                                           k);
        if (idx) {
            size_t j = 0;
            for (size_t i = 0; i < bytes; i++)
                for (unsigned b = ip[i]; b; b &= b - 1)
                    idx[j++] = i * 8 + (unsigned)__builtin_ctz(b);
        }
        *used_p = 1 + 4 * k + bytes;
        return TERSE_OK;
    }
    return terse__compress_corrupt(r, block, "unknown index encoding %u", enc);
}

size_t terse__topk_add_block(const uint8_t *p, size_t nb, size_t k, float *acc)
{
    const uint8_t *vals = p + 1, *ip = p + 1 + 4 * k;
    if (p[0] == TERSE__TOPK_ENC_ABS32) {
        for (size_t j = 0; j < k; j++)
            acc[terse__get_u32(ip + 4 * j)] += terse__get_f32(vals + 4 * j);
        return 1 + 8 * k;
    }
    if (p[0] == TERSE__TOPK_ENC_VARINT) {
        const uint8_t *q = ip;
        uint64_t x = 0;
        for (size_t j = 0; j < k; j++) {
            uint64_t g = 0;
            unsigned s = 0;
            while (*q & 0x80) {
                g |= (uint64_t)(*q++ & 0x7f) << s;
                s += 7;
            }
            g |= (uint64_t)*q++ << s;
            x = j == 0 ? g : x + 1 + g;
            acc[x] += terse__get_f32(vals + 4 * j);
        }
        return (size_t)(q - p);
    }
    size_t bytes = (nb + 7) / 8, j = 0;
    for (size_t i = 0; i < bytes; i++)
        for (unsigned b = ip[i]; b; b &= b - 1)
            acc[i * 8 + (unsigned)__builtin_ctz(b)] += terse__get_f32(vals + 4 * j++);
    return 1 + 4 * k + bytes;
}

/* ---- the codec ---- */

/* Sum of k over the range (what validate decodes into scratch). */
static size_t range_k(const terse__crange_t *r)
{
    size_t total = 0;
    for (size_t i = 0; i < r->count; i++)
        total += terse__compress_k(r->c.ratio, terse__crange_block_len(r, r->first + i));
    return total;
}

terse_status_t terse__topk_select_range(const terse__crange_t *r, terse__cview_t *w, const float *v,
                                        terse__topk_sel_t **sel_p)
{
    const terse__ckernels_t *kern = terse__ckernels();
    terse__topk_sel_t *sel = terse__cview_get(&w->sel, r->count * sizeof(*sel));
    uint32_t *kept = terse__cview_get(&w->kept, range_k(r) * sizeof(uint32_t));
    if (!sel || !kept)
        return TERSE_ERR_NO_MEMORY;
    /* Reads only, so a non-finite value in any block leaves every output as it was. */
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, start = terse__crange_block_start(r, b);
        size_t nb = terse__crange_block_len(r, b), k = terse__compress_k(r->c.ratio, nb);
        int bad = terse__topk_select(kern, w, v + start, nb, k, &sel[i], kept);
        kept += k;
        if (bad < 0)
            return TERSE_ERR_NO_MEMORY;
        if (bad && !r->c.nonfinite_passthrough)
            return terse__compress_nonfinite_error(r, v, b, TERSE__NONFINITE, "float32");
    }
    *sel_p = sel;
    return TERSE_OK;
}


static size_t topk_block_max_bytes(const terse__crange_t *r, size_t nb)
{
    return terse__topk_block_max_bytes(nb, terse__compress_k(r->c.ratio, nb));
}

static terse_status_t topk_encode(const terse__crange_t *r, terse__cview_t *w, const float *v,
                                  uint8_t *out, size_t *out_len_p, float *dense, float *rem)
{
    const terse__ckernels_t *kern = terse__ckernels();
    terse__topk_sel_t *sel;
    terse_status_t sst = terse__topk_select_range(r, w, v, &sel);
    if (sst != TERSE_OK)
        return sst;
    uint64_t *idx =
        r->count
            ? terse__cview_get(&w->idx, terse__compress_k(r->c.ratio, r->bs) * sizeof(uint64_t))
            : NULL;
    if (r->count && !idx)
        return TERSE_ERR_NO_MEMORY;
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, start = terse__crange_block_start(r, b);
        size_t nb = terse__crange_block_len(r, b);
        pos += terse__topk_write_block(kern, v + start, nb, terse__compress_k(r->c.ratio, nb),
                                       &sel[i], out + pos, idx, dense ? dense + start : NULL,
                                       rem ? rem + start : NULL);
    }
    *out_len_p = pos;
    return TERSE_OK;
}

/* Validation decodes every block's indices once into the view (w->idx, all blocks back to
 * back) with their part sizes (w->used), so add() is a plain scatter-add with no parsing. */
static terse_status_t topk_validate(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p,
                                    size_t len)
{
    size_t *used = terse__cview_get(&w->used, r->count * sizeof(size_t));
    uint64_t *idx = terse__cview_get(&w->idx, range_k(r) * sizeof(uint64_t));
    if (!used || !idx)
        return TERSE_ERR_NO_MEMORY;
    size_t pos = 0;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b);
        size_t k = terse__compress_k(r->c.ratio, nb);
        terse_status_t st = terse__topk_parse_block(r, b, p + pos, len - pos, nb, k, &used[i], idx);
        if (st != TERSE_OK)
            return st;
        pos += used[i];
        idx += k;
        terse__prof_io(0, 8 * k);
    }
    if (pos != len)
        return terse__compress_corrupt(r, r->first + r->count, "%zu trailing bytes", len - pos);
    return TERSE_OK;
}

/* The kept values of every block applied at their indices of @out: out += c (add) or
 * out = out - (0 + c) (subtract; elsewhere c is +0 and out - (+0) is out itself, -0 too, so
 * nothing else is touched). Inlined into both with @subtract constant. */
static inline void apply_kept(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p,
                              float *out, int subtract)
{
    const size_t *used = w->used.ptr; /* the view validate left */
    const uint64_t *idx = w->idx.ptr;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b);
        size_t k = terse__compress_k(r->c.ratio, nb);
        float *o = out + terse__crange_block_start(r, b);
        const uint8_t *vals = p + 1;
        for (size_t j = 0; j < k; j++) {
            /* the indices are known ahead: fetch the output lines early */
            if (j + 16 < k)
                __builtin_prefetch(&o[idx[j + 16]], 1);
            float c = terse__get_f32(vals + 4 * j);
            o[idx[j]] = subtract ? o[idx[j]] - (0.0f + c) : o[idx[j]] + c;
        }
        terse__prof_io(12 * k, 4 * k); /* indices, and out read and written at k places */
        p += used[i];
        idx += k;
    }
}

static void topk_add(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                     float *acc)
{
    (void)len;
    apply_kept(r, w, p, acc, 0);
}

/* encode's remainder: v elsewhere, a zero with v's sign at the kept indices (from validate). */
static void topk_remainder(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p,
                           size_t len, const float *v, float *rem)
{
    (void)p, (void)len;
    const uint64_t *idx = w->idx.ptr;
    for (size_t i = 0; i < r->count; i++) {
        size_t b = r->first + i, nb = terse__crange_block_len(r, b);
        size_t k = terse__compress_k(r->c.ratio, nb), start = terse__crange_block_start(r, b);
        const float *x = v + start;
        float *e = rem + start;
        if (e != x)
            memcpy(e, x, nb * sizeof(float));
        for (size_t j = 0; j < k; j++)
            e[idx[j]] = terse__f32_from_bits(terse__f32_bits(x[idx[j]]) & 0x80000000u);
        terse__prof_io((e != x ? 4 * nb : 0) + 12 * k, (e != x ? 4 * nb : 0) + 4 * k);
        idx += k;
    }
}

/* O(k), not a pass (see apply_kept). */
static void topk_subtract(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p,
                          size_t len, float *out)
{
    (void)len;
    apply_kept(r, w, p, out, 1);
}

const terse__codec_ops_t terse__codec_topk = {
    .name = "topk",
    .block_max_bytes = topk_block_max_bytes,
    .encode = topk_encode,
    .validate = topk_validate,
    .add = topk_add,
    .remainder = topk_remainder,
    .subtract = topk_subtract,
};

/* ---- pieces for a block split over owners (coll/compressed/split.c) ---- */

terse_status_t terse__topk_single_indices(const terse__crange_t *r, terse__cview_t *w,
                                          const void *wire, size_t wire_len,
                                          const uint64_t **idx_p)
{
    /* topk_validate leaves the block's indices in the view */
    terse__cdec_args_t a = {.wire = wire, .wire_len = wire_len, .op = TERSE__CDEC_CHECK};
    terse_status_t st = terse__cblocks_decode(r, w, &a);
    if (st != TERSE_OK)
        return st;
    *idx_p = w->idx.ptr;
    return TERSE_OK;
}

int terse__topk_lower_key(const float *v, size_t n, size_t k, uint32_t *key_p)
{
    terse__topk_sel_t sel;
    int bad = terse__topk_select(terse__ckernels(), terse__cview_local(), v, n, k, &sel, NULL);
    *key_p = sel.thr;
    return bad;
}
