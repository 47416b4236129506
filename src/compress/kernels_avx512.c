/* AVX-512 kernels for the bandwidth-bound sign and scan paths; the rest reuse AVX2. Kept
 * deliberately simple: the machines we develop on lack AVX-512, so these run only where CI
 * or users have it, and the dispatch test compares them bit for bit with the scalar table. */
#include "kernels.h"

#include "core/half.h"

#include <immintrin.h>
#include <string.h>

#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,bmi2")))

TARGET_AVX512 static int avx512_any_abs_ge(const float *v, size_t n, uint32_t limit)
{
    const __m512i mask = _mm512_set1_epi32((int)TERSE__ABS_MASK);
    __m512i mx = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        mx = _mm512_max_epu32(mx, _mm512_and_si512(_mm512_loadu_si512(v + i), mask));
    uint32_t m = _mm512_reduce_max_epu32(mx);
    for (; i < n; i++) {
        uint32_t k = terse__f32_bits(v[i]) & TERSE__ABS_MASK;
        m = k > m ? k : m;
    }
    return m >= limit;
}

TARGET_AVX512 static int avx512_l1_lanes(const float *v, size_t n, double lanes[16])
{
    const __m512i mask = _mm512_set1_epi32((int)TERSE__ABS_MASK);
    __m512d a0 = _mm512_loadu_pd(lanes), a1 = _mm512_loadu_pd(lanes + 8);
    __m512i mx = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i k = _mm512_and_si512(_mm512_loadu_si512(v + i), mask);
        mx = _mm512_max_epu32(mx, k);
        __m512 x = _mm512_castsi512_ps(k);
        /* lanes 0-7 and 8-15, exactly as the scalar kernel assigns them */
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(x)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1)));
    }
    _mm512_storeu_pd(lanes, a0);
    _mm512_storeu_pd(lanes + 8, a1);
    uint32_t m = _mm512_reduce_max_epu32(mx);
    for (int j = 0; i < n; i++, j++) {
        uint32_t k = terse__f32_bits(v[i]) & TERSE__ABS_MASK;
        m = k > m ? k : m;
        lanes[j] += (double)terse__f32_from_bits(k);
    }
    return m >= TERSE__NONFINITE;
}

TARGET_AVX512 static void avx512_sign_pack(const float *v, size_t n, float scale, uint8_t *bits,
                                           float *dense, float *rem)
{
    const __m512 zero = _mm512_setzero_ps(), pos = _mm512_set1_ps(scale),
                 neg = _mm512_set1_ps(-scale);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(v + i);
        __mmask16 lt = _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ); /* -0.0, NaN: not < 0 */
        uint16_t w = (uint16_t)lt;
        memcpy(bits + i / 8, &w, 2);
        __m512 c = _mm512_mask_blend_ps(lt, pos, neg);
        if (dense)
            _mm512_storeu_ps(dense + i, c);
        if (rem)
            _mm512_storeu_ps(rem + i, _mm512_sub_ps(x, c));
    }
    if (i < n) /* i is a multiple of 8: the AVX2 kernel finishes the same way scalar does */
        terse__avx2_sign_pack(v + i, n - i, scale, bits + i / 8, dense ? dense + i : NULL,
                              rem ? rem + i : NULL);
}

const terse__ckernels_t terse__ckernels_avx512 = {
    .name = "avx512",
    .any_abs_ge = avx512_any_abs_ge,
    .l1_lanes = avx512_l1_lanes,
    .sign_pack = avx512_sign_pack,
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
