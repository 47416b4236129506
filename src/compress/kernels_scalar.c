/* Scalar kernels: the reference every vector table must match bit for bit. */
#include "kernels.h"

#include "core/half.h"

#include <string.h>

static inline uint32_t key_of(float f)
{
    return terse__f32_bits(f) & TERSE__ABS_MASK;
}

static inline float signed_zero(float f)
{
    return terse__f32_from_bits(terse__f32_bits(f) & 0x80000000u);
}

static inline void store_f32(uint8_t *p, float f)
{
    memcpy(p, &f, 4); /* x86 is little-endian; the wire is too */
}

static inline float load_f32(const uint8_t *p)
{
    float f;
    memcpy(&f, p, 4);
    return f;
}

static int scalar_any_abs_ge(const float *v, size_t n, uint32_t limit)
{
    /* No early exit: the common case is "none", and a branch-free max vectorizes. */
    uint32_t mx = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = key_of(v[i]);
        mx = k > mx ? k : mx;
    }
    return mx >= limit;
}

static int scalar_l1_lanes(const float *v, size_t n, double lanes[16])
{
    uint32_t mx = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int j = 0; j < 16; j++) {
            uint32_t k = key_of(v[i + j]);
            mx = k > mx ? k : mx;
            lanes[j] += (double)terse__f32_from_bits(k);
        }
    }
    for (int j = 0; i < n; i++, j++) {
        uint32_t k = key_of(v[i]);
        mx = k > mx ? k : mx;
        lanes[j] += (double)terse__f32_from_bits(k);
    }
    return mx >= TERSE__NONFINITE;
}

static void scalar_sign_pack(const float *v, size_t n, float scale, uint8_t *bits, float *dense,
                             float *rem)
{
    for (size_t i = 0; i < n; i += 8) {
        unsigned byte = 0;
        size_t m = n - i < 8 ? n - i : 8;
        for (size_t j = 0; j < m; j++) {
            float x = v[i + j];
            int neg = x < 0.0f; /* -0.0 and NaN count as + */
            byte |= (unsigned)neg << j;
            if (dense || rem) {
                float c = neg ? -scale : scale;
                if (dense)
                    dense[i + j] = c;
                if (rem)
                    rem[i + j] = x - c;
            }
        }
        bits[i / 8] = (uint8_t)byte;
    }
}

static void scalar_sign_add(const uint8_t *bits, size_t n, float scale, float *acc)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += (bits[i / 8] >> (i % 8)) & 1 ? -scale : scale;
}

static int scalar_topk_hist(const float *v, size_t n, uint32_t *hist)
{
    uint32_t mx = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = key_of(v[i]);
        mx = k > mx ? k : mx;
        hist[k >> TERSE__TOPK_SHIFT1]++;
    }
    return mx >= TERSE__NONFINITE;
}

static size_t scalar_topk_collect(const float *v, size_t n, uint32_t lo, uint32_t hi,
                                  uint32_t *keys, uint32_t *idx, size_t cap)
{
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = key_of(v[i]);
        if (k - lo <= hi - lo) {
            if (cnt < cap) {
                keys[cnt] = k;
                if (idx)
                    idx[cnt] = (uint32_t)i;
            }
            cnt++;
        }
    }
    return cnt;
}

static void scalar_topk_hist_range(const float *v, size_t n, uint32_t lo, uint32_t hi,
                                   unsigned shift, uint32_t *hist)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t k = key_of(v[i]);
        if (k - lo <= hi - lo)
            hist[(k - lo) >> shift]++;
    }
}

static size_t scalar_topk_gather(const float *v, size_t n, uint32_t thr, size_t n_eq, uint64_t *idx,
                                 uint8_t *vals, float *dense, float *rem)
{
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        float x = v[i];
        uint32_t k = key_of(x);
        int keep = k > thr || (k == thr && n_eq > 0);
        if (k == thr && n_eq > 0)
            n_eq--;
        if (keep) {
            idx[cnt] = i;
            store_f32(vals + 4 * cnt, x);
            cnt++;
        }
        if (dense)
            dense[i] = keep ? x : signed_zero(x);
        if (rem)
            rem[i] = keep ? signed_zero(x) : x;
    }
    return cnt;
}

static void scalar_to_fp16(const float *v, size_t n, uint8_t *out, float *dense, float *rem)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h = terse__float_to_half(v[i]);
        memcpy(out + 2 * i, &h, 2);
        if (dense || rem) {
            float d = terse__half_to_float(h);
            if (dense)
                dense[i] = d;
            if (rem)
                rem[i] = terse__remainder(v[i], d);
        }
    }
}

static void scalar_to_bf16(const float *v, size_t n, uint8_t *out, float *dense, float *rem)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h = terse__float_to_bf16(v[i]);
        memcpy(out + 2 * i, &h, 2);
        if (dense || rem) {
            float d = terse__bf16_to_float(h);
            if (dense)
                dense[i] = d;
            if (rem)
                rem[i] = terse__remainder(v[i], d);
        }
    }
}

static void scalar_add_fp16(const uint8_t *in, size_t n, float *acc)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, 2);
        acc[i] += terse__half_to_float(h);
    }
}

static void scalar_add_bf16(const uint8_t *in, size_t n, float *acc)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, 2);
        acc[i] += terse__bf16_to_float(h);
    }
}

static void scalar_add_f32(const uint8_t *in, size_t n, float *acc)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += load_f32(in + 4 * i);
}

const terse__ckernels_t terse__ckernels_scalar = {
    .name = "scalar",
    .any_abs_ge = scalar_any_abs_ge,
    .l1_lanes = scalar_l1_lanes,
    .sign_pack = scalar_sign_pack,
    .sign_add = scalar_sign_add,
    .topk_hist = scalar_topk_hist,
    .topk_collect = scalar_topk_collect,
    .topk_hist_range = scalar_topk_hist_range,
    .topk_gather = scalar_topk_gather,
    .to_fp16 = scalar_to_fp16,
    .to_bf16 = scalar_to_bf16,
    .add_fp16 = scalar_add_fp16,
    .add_bf16 = scalar_add_bf16,
    .add_f32 = scalar_add_f32,
};
