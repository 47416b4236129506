/* Compression kernels, one table per instruction set, chosen once at run time.
 *
 * Every kernel of every table produces the same bits as the scalar one for the same input:
 * the tables differ in speed only. Wire bytes are little-endian and possibly unaligned. */
#ifndef TERSE_COMPRESS_KERNELS_H
#define TERSE_COMPRESS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* |v| as an ordered integer: the float's bits without the sign (NaN > Inf > finite). */
#define TERSE__ABS_MASK    0x7fffffffu
#define TERSE__NONFINITE   0x7f800000u /* |bits| >= this: Inf or NaN */
#define TERSE__TOPK_SHIFT1 20          /* first histogram level: key >> 20, 2048 bins */
#define TERSE__TOPK_BINS1  2048

/* v - c, except that an exact zero takes v's sign: -(c - v) is v - c rounded the same way, but
 * v == c gives -(+0) = -0, so c + remainder == v bit for bit even for v = -0.0. */
static inline float terse__remainder(float v, float c)
{
    return -(c - v);
}

typedef struct terse__ckernels {
    const char *name;
    /* 1 if any element's |bits| >= limit. */
    int (*any_abs_ge)(const float *v, size_t n, uint32_t limit);
    /* lanes[i % 16] += |v[i]| in double, i in element order (so every table gives the same
     * sums); returns 1 if any element is NaN or Inf. */
    int (*l1_lanes)(const float *v, size_t n, double lanes[16]);
    /* Sign bits (bit i%8 of byte i/8 set when v[i] < 0; padding bits 0) and, where not NULL,
     * dense[i] = +-scale and rem[i] = v[i] - dense[i]. */
    void (*sign_pack)(const float *v, size_t n, float scale, uint8_t *bits, float *dense,
                      float *rem);
    /* acc[i] += bit ? -scale : scale. */
    void (*sign_add)(const uint8_t *bits, size_t n, float scale, float *acc);
    /* hist[key >> 20]++ for every element; returns 1 if any element is NaN or Inf. */
    int (*topk_hist)(const float *v, size_t n, uint32_t *hist);
    /* Stores the keys in [lo, hi] in element order, at most cap of them, and their element
     * indices in idx (may be NULL); returns how many there are (may exceed cap). */
    size_t (*topk_collect)(const float *v, size_t n, uint32_t lo, uint32_t hi, uint32_t *keys,
                           uint32_t *idx, size_t cap);
    /* hist[(key - lo) >> shift]++ for keys in [lo, hi]. */
    void (*topk_hist_range)(const float *v, size_t n, uint32_t lo, uint32_t hi, unsigned shift,
                            uint32_t *hist);
    /* Keeps every element with key > thr and the first n_eq with key == thr, in element
     * order: idx[j] (block-relative), vals (4 bytes each, LE) get them; where not NULL,
     * dense = v at kept / signed zero elsewhere, rem = signed zero at kept / v elsewhere (the
     * zero carries v's sign so dense + rem == v bit for bit). Returns how many were kept. */
    size_t (*topk_gather)(const float *v, size_t n, uint32_t thr, size_t n_eq, uint64_t *idx,
                          uint8_t *vals, float *dense, float *rem);
    /* Round to nearest even into 2-byte LE codes; dense/rem (may be NULL) get the decoded
     * value and v - decoded (exact). */
    void (*to_fp16)(const float *v, size_t n, uint8_t *out, float *dense, float *rem);
    void (*to_bf16)(const float *v, size_t n, uint8_t *out, float *dense, float *rem);
    /* acc[i] += decoded value. */
    void (*add_fp16)(const uint8_t *in, size_t n, float *acc);
    void (*add_bf16)(const uint8_t *in, size_t n, float *acc);
    void (*add_f32)(const uint8_t *in, size_t n, float *acc);
} terse__ckernels_t;

extern const terse__ckernels_t terse__ckernels_scalar;
extern const terse__ckernels_t terse__ckernels_avx2;
extern const terse__ckernels_t terse__ckernels_avx512;

/* The AVX2 kernels, which the AVX-512 table reuses where 512-bit vectors do not pay. */
int terse__avx2_any_abs_ge(const float *v, size_t n, uint32_t limit);
int terse__avx2_l1_lanes(const float *v, size_t n, double lanes[16]);
void terse__avx2_sign_pack(const float *v, size_t n, float scale, uint8_t *bits, float *dense,
                           float *rem);
void terse__avx2_sign_add(const uint8_t *bits, size_t n, float scale, float *acc);
int terse__avx2_topk_hist(const float *v, size_t n, uint32_t *hist);
size_t terse__avx2_topk_collect(const float *v, size_t n, uint32_t lo, uint32_t hi, uint32_t *keys,
                                uint32_t *idx, size_t cap);
void terse__avx2_topk_hist_range(const float *v, size_t n, uint32_t lo, uint32_t hi, unsigned shift,
                                 uint32_t *hist);
size_t terse__avx2_topk_gather(const float *v, size_t n, uint32_t thr, size_t n_eq, uint64_t *idx,
                               uint8_t *vals, float *dense, float *rem);
void terse__avx2_to_fp16(const float *v, size_t n, uint8_t *out, float *dense, float *rem);
void terse__avx2_to_bf16(const float *v, size_t n, uint8_t *out, float *dense, float *rem);
void terse__avx2_add_fp16(const uint8_t *in, size_t n, float *acc);
void terse__avx2_add_bf16(const uint8_t *in, size_t n, float *acc);
void terse__avx2_add_f32(const uint8_t *in, size_t n, float *acc);

/* The table in use: TERSE_SIMD (auto|avx512|avx2|scalar) or the best the CPU supports. */
const terse__ckernels_t *terse__ckernels(void);

/* Tests and benchmarks: force a table ("auto", "avx512", "avx2", "scalar"). Returns 0, or -1
 * if the name is unknown or the CPU lacks the instructions (the table in use is unchanged). */
int terse__ckernels_set(const char *name);

/* 1 if this CPU can run the named table. */
int terse__ckernels_supported(const char *name);

#endif
