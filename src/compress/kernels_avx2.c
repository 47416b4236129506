/* AVX2 (+F16C, BMI2) kernels. Each mirrors its scalar twin in kernels_scalar.c bit for bit;
 * tails shorter than a vector run the same scalar logic. */
#include "kernels.h"

#include "core/half.h"

#include <immintrin.h>
#include <string.h>

#define TARGET_AVX2 __attribute__((target("avx2,bmi,bmi2,popcnt,f16c")))

static inline uint32_t key_of(float f)
{
    return terse__f32_bits(f) & TERSE__ABS_MASK;
}

static inline float signed_zero(float f)
{
    return terse__f32_from_bits(terse__f32_bits(f) & 0x80000000u);
}

TARGET_AVX2 static inline uint32_t hmax_epu32(__m256i m)
{
    __m128i x = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
    x = _mm_max_epu32(x, _mm_shuffle_epi32(x, 0x4e));
    x = _mm_max_epu32(x, _mm_shuffle_epi32(x, 0xb1));
    return (uint32_t)_mm_cvtsi128_si32(x);
}

/* Lane j of the result is all ones when bit j of m is set. */
TARGET_AVX2 static inline __m256i expand_bits(unsigned m)
{
    const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)m), sel), sel);
}

TARGET_AVX2 int terse__avx2_any_abs_ge(const float *v, size_t n, uint32_t limit)
{
    const __m256i mask = _mm256_set1_epi32((int)TERSE__ABS_MASK);
    __m256i mx0 = _mm256_setzero_si256(), mx1 = mx0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(v + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(v + i + 8));
        mx0 = _mm256_max_epu32(mx0, _mm256_and_si256(a, mask));
        mx1 = _mm256_max_epu32(mx1, _mm256_and_si256(b, mask));
    }
    uint32_t mx = hmax_epu32(_mm256_max_epu32(mx0, mx1));
    for (; i < n; i++) {
        uint32_t k = key_of(v[i]);
        mx = k > mx ? k : mx;
    }
    return mx >= limit;
}

TARGET_AVX2 int terse__avx2_l1_lanes(const float *v, size_t n, double lanes[16])
{
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32((int)TERSE__ABS_MASK));
    __m256d a0 = _mm256_loadu_pd(lanes), a1 = _mm256_loadu_pd(lanes + 4);
    __m256d a2 = _mm256_loadu_pd(lanes + 8), a3 = _mm256_loadu_pd(lanes + 12);
    __m256i mx = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 x0 = _mm256_and_ps(_mm256_loadu_ps(v + i), absm);
        __m256 x1 = _mm256_and_ps(_mm256_loadu_ps(v + i + 8), absm);
        mx = _mm256_max_epu32(mx, _mm256_castps_si256(x0));
        mx = _mm256_max_epu32(mx, _mm256_castps_si256(x1));
        /* float -> double is exact, so these are the scalar lanes' adds in the same order */
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(x0)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(x0, 1)));
        a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(x1)));
        a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(x1, 1)));
    }
    _mm256_storeu_pd(lanes, a0);
    _mm256_storeu_pd(lanes + 4, a1);
    _mm256_storeu_pd(lanes + 8, a2);
    _mm256_storeu_pd(lanes + 12, a3);
    uint32_t m = hmax_epu32(mx);
    for (int j = 0; i < n; i++, j++) {
        uint32_t k = key_of(v[i]);
        m = k > m ? k : m;
        lanes[j] += (double)terse__f32_from_bits(k);
    }
    return m >= TERSE__NONFINITE;
}

/* The scalar sign logic for a tail of m < 8 elements starting at a multiple of 8. */
static void sign_tail(const float *v, size_t m, float scale, uint8_t *byte, float *dense,
                      float *rem)
{
    unsigned b = 0;
    for (size_t j = 0; j < m; j++) {
        int neg = v[j] < 0.0f;
        b |= (unsigned)neg << j;
        float c = neg ? -scale : scale;
        if (dense)
            dense[j] = c;
        if (rem)
            rem[j] = v[j] - c;
    }
    *byte = (uint8_t)b;
}

TARGET_AVX2 void terse__avx2_sign_pack(const float *v, size_t n, float scale, uint8_t *bits,
                                       float *dense, float *rem)
{
    const __m256 zero = _mm256_setzero_ps(), pos = _mm256_set1_ps(scale),
                 neg = _mm256_set1_ps(-scale);
    size_t i = 0;
    if (!dense && !rem) {
        for (; i + 32 <= n; i += 32) {
            uint32_t w = 0;
            for (int q = 0; q < 4; q++) {
                __m256 x = _mm256_loadu_ps(v + i + 8 * q);
                w |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(x, zero, _CMP_LT_OQ)) << (8 * q);
            }
            memcpy(bits + i / 8, &w, 4);
        }
    }
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(v + i);
        __m256 lt = _mm256_cmp_ps(x, zero, _CMP_LT_OQ); /* -0.0 and NaN: not < 0 */
        bits[i / 8] = (uint8_t)_mm256_movemask_ps(lt);
        __m256 c = _mm256_blendv_ps(pos, neg, lt);
        if (dense)
            _mm256_storeu_ps(dense + i, c);
        if (rem)
            _mm256_storeu_ps(rem + i, _mm256_sub_ps(x, c));
    }
    if (i < n)
        sign_tail(v + i, n - i, scale, bits + i / 8, dense ? dense + i : NULL,
                  rem ? rem + i : NULL);
}

TARGET_AVX2 void terse__avx2_sign_add(const uint8_t *bits, size_t n, float scale, float *acc)
{
    const __m256 pos = _mm256_set1_ps(scale), neg = _mm256_set1_ps(-scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 m = _mm256_castsi256_ps(expand_bits(bits[i / 8]));
        __m256 c = _mm256_blendv_ps(pos, neg, m);
        _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), c));
    }
    for (; i < n; i++)
        acc[i] += (bits[i / 8] >> (i % 8)) & 1 ? -scale : scale;
}

TARGET_AVX2 int terse__avx2_topk_hist(const float *v, size_t n, uint32_t *hist)
{
    const __m256i mask = _mm256_set1_epi32((int)TERSE__ABS_MASK);
    __m256i mx = _mm256_setzero_si256();
    size_t i = 0;
    /* Two interleaved histograms halve the store-to-load chains on repeated bins. */
    static _Thread_local uint32_t h2[TERSE__TOPK_BINS1];
    int split = n >= 8 * TERSE__TOPK_BINS1;
    uint32_t *hb = split ? h2 : hist;
    if (split)
        memset(h2, 0, sizeof(h2));
    for (; i + 8 <= n; i += 8) {
        __m256i k = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(v + i)), mask);
        mx = _mm256_max_epu32(mx, k);
        uint32_t b[8];
        _mm256_storeu_si256((__m256i *)b, _mm256_srli_epi32(k, TERSE__TOPK_SHIFT1));
        hist[b[0]]++;
        hb[b[1]]++;
        hist[b[2]]++;
        hb[b[3]]++;
        hist[b[4]]++;
        hb[b[5]]++;
        hist[b[6]]++;
        hb[b[7]]++;
    }
    if (split)
        for (int j = 0; j < TERSE__TOPK_BINS1; j++)
            hist[j] += h2[j];
    uint32_t m = hmax_epu32(mx);
    for (; i < n; i++) {
        uint32_t k = key_of(v[i]);
        m = k > m ? k : m;
        hist[k >> TERSE__TOPK_SHIFT1]++;
    }
    return m >= TERSE__NONFINITE;
}

/* Bit j set when lo <= key(v[j]) <= hi, for 8 elements. */
TARGET_AVX2 static inline unsigned in_range8(const float *v, __m256i mask, __m256i lov,
                                             __m256i span, __m256i *keys)
{
    __m256i k = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)v), mask);
    __m256i d = _mm256_sub_epi32(k, lov);
    __m256i in = _mm256_cmpeq_epi32(_mm256_min_epu32(d, span), d);
    *keys = k;
    return (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(in));
}

TARGET_AVX2 size_t terse__avx2_topk_collect(const float *v, size_t n, uint32_t lo, uint32_t hi,
                                            uint32_t *keys, uint32_t *idx, size_t cap)
{
    const __m256i mask = _mm256_set1_epi32((int)TERSE__ABS_MASK);
    const __m256i lov = _mm256_set1_epi32((int)lo), span = _mm256_set1_epi32((int)(hi - lo));
    size_t cnt = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i k;
        unsigned m = in_range8(v + i, mask, lov, span, &k);
        if (!m)
            continue;
        uint32_t kk[8];
        _mm256_storeu_si256((__m256i *)kk, k);
        for (; m; m &= m - 1) {
            if (cnt < cap) {
                keys[cnt] = kk[__builtin_ctz(m)];
                if (idx)
                    idx[cnt] = (uint32_t)(i + (unsigned)__builtin_ctz(m));
            }
            cnt++;
        }
    }
    for (; i < n; i++) {
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

TARGET_AVX2 void terse__avx2_topk_hist_range(const float *v, size_t n, uint32_t lo, uint32_t hi,
                                             unsigned shift, uint32_t *hist)
{
    const __m256i mask = _mm256_set1_epi32((int)TERSE__ABS_MASK);
    const __m256i lov = _mm256_set1_epi32((int)lo), span = _mm256_set1_epi32((int)(hi - lo));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i k;
        unsigned m = in_range8(v + i, mask, lov, span, &k);
        if (!m)
            continue;
        uint32_t kk[8];
        _mm256_storeu_si256((__m256i *)kk, k);
        for (; m; m &= m - 1)
            hist[(kk[__builtin_ctz(m)] - lo) >> shift]++;
    }
    for (; i < n; i++) {
        uint32_t k = key_of(v[i]);
        if (k - lo <= hi - lo)
            hist[(k - lo) >> shift]++;
    }
}

TARGET_AVX2 size_t terse__avx2_topk_gather(const float *v, size_t n, uint32_t thr, size_t n_eq,
                                           uint64_t *idx, uint8_t *vals, float *dense, float *rem)
{
    const __m256i mask = _mm256_set1_epi32((int)TERSE__ABS_MASK);
    const __m256i sbit = _mm256_set1_epi32((int)0x80000000u);
    /* keys are <= 0x7fffffff, so signed compares order them correctly */
    const __m256i thrv = _mm256_set1_epi32((int)thr);
    size_t cnt = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(v + i));
        __m256i k = _mm256_and_si256(x, mask);
        unsigned m = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(k, thrv)));
        if (n_eq) {
            unsigned me =
                (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, thrv)));
            /* ties: the lowest indices win, so take equal keys in element order */
            for (; me && n_eq; me &= me - 1, n_eq--)
                m |= me & -me;
        }
        if (m) {
            for (unsigned t = m; t; t &= t - 1) {
                unsigned j = (unsigned)__builtin_ctz(t);
                idx[cnt] = i + j;
                memcpy(vals + 4 * cnt, v + i + j, 4);
                cnt++;
            }
        }
        if (dense || rem) {
            __m256i km = expand_bits(m);
            __m256i sz = _mm256_and_si256(x, sbit);
            if (dense)
                _mm256_storeu_si256((__m256i *)(dense + i), _mm256_blendv_epi8(sz, x, km));
            if (rem)
                _mm256_storeu_si256((__m256i *)(rem + i), _mm256_blendv_epi8(x, sz, km));
        }
    }
    for (; i < n; i++) {
        float x = v[i];
        uint32_t k = key_of(x);
        int keep = k > thr || (k == thr && n_eq > 0);
        if (k == thr && n_eq > 0)
            n_eq--;
        if (keep) {
            idx[cnt] = i;
            memcpy(vals + 4 * cnt, &x, 4);
            cnt++;
        }
        if (dense)
            dense[i] = keep ? x : signed_zero(x);
        if (rem)
            rem[i] = keep ? signed_zero(x) : x;
    }
    return cnt;
}

TARGET_AVX2 void terse__avx2_to_fp16(const float *v, size_t n, uint8_t *out, float *dense,
                                     float *rem)
{
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(v + i);
        __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(out + 2 * i), h);
        if (dense || rem) {
            __m256 d = _mm256_cvtph_ps(h);
            if (dense)
                _mm256_storeu_ps(dense + i, d);
            if (rem)
                _mm256_storeu_ps(rem + i, _mm256_xor_ps(_mm256_sub_ps(d, x), sgn));
        }
    }
    for (; i < n; i++) {
        uint16_t h = terse__float_to_half(v[i]);
        memcpy(out + 2 * i, &h, 2);
        float d = terse__half_to_float(h);
        if (dense)
            dense[i] = d;
        if (rem)
            rem[i] = terse__remainder(v[i], d);
    }
}

TARGET_AVX2 void terse__avx2_to_bf16(const float *v, size_t n, uint8_t *out, float *dense,
                                     float *rem)
{
    const __m256i absm = _mm256_set1_epi32((int)TERSE__ABS_MASK);
    const __m256i inf = _mm256_set1_epi32((int)TERSE__NONFINITE);
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    const __m256i quiet = _mm256_set1_epi32(0x40);
    const __m256 sgn = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(v + i));
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);
        __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, odd)), 16);
        __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
        r = _mm256_blendv_epi8(r, q, nan);
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
        _mm_storeu_si128((__m128i *)(out + 2 * i), _mm256_castsi256_si128(p));
        if (dense || rem) {
            __m256 d = _mm256_castsi256_ps(_mm256_slli_epi32(r, 16));
            if (dense)
                _mm256_storeu_ps(dense + i, d);
            if (rem)
                _mm256_storeu_ps(rem + i,
                                 _mm256_xor_ps(_mm256_sub_ps(d, _mm256_castsi256_ps(u)), sgn));
        }
    }
    for (; i < n; i++) {
        uint16_t h = terse__float_to_bf16(v[i]);
        memcpy(out + 2 * i, &h, 2);
        float d = terse__bf16_to_float(h);
        if (dense)
            dense[i] = d;
        if (rem)
            rem[i] = terse__remainder(v[i], d);
    }
}

TARGET_AVX2 void terse__avx2_add_fp16(const uint8_t *in, size_t n, float *acc)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + 2 * i)));
        _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), d));
    }
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, 2);
        acc[i] += terse__half_to_float(h);
    }
}

TARGET_AVX2 void terse__avx2_add_bf16(const uint8_t *in, size_t n, float *acc)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(in + 2 * i)));
        __m256 d = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
        _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), d));
    }
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, 2);
        acc[i] += terse__bf16_to_float(h);
    }
}

TARGET_AVX2 void terse__avx2_add_f32(const uint8_t *in, size_t n, float *acc)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_loadu_ps((const float *)(const void *)(in + 4 * i));
        _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), d));
    }
    for (; i < n; i++) {
        float f;
        memcpy(&f, in + 4 * i, 4);
        acc[i] += f;
    }
}

const terse__ckernels_t terse__ckernels_avx2 = {
    .name = "avx2",
    .any_abs_ge = terse__avx2_any_abs_ge,
    .l1_lanes = terse__avx2_l1_lanes,
    .sign_pack = terse__avx2_sign_pack,
    .sign_add = terse__avx2_sign_add,
    .topk_hist = terse__avx2_topk_hist,
    .topk_collect = terse__avx2_topk_collect,
    .topk_hist_range = terse__avx2_topk_hist_range,
    .topk_gather = terse__avx2_topk_gather,
    .to_fp16 = terse__avx2_to_fp16,
    .to_bf16 = terse__avx2_to_bf16,
    .add_fp16 = terse__avx2_add_fp16,
    .add_bf16 = terse__avx2_add_bf16,
    .add_f32 = terse__avx2_add_f32,
};
