#include "reduce.h"

#include "core/half.h"

#include <math.h>
#include <stdint.h>

/* NaN wins, then the usual order; written so float min/max never depend on evaluation order. */
static inline float fmin_t(float a, float b) { return a != a ? a : b != b ? b : (b < a ? b : a); }
static inline float fmax_t(float a, float b) { return a != a ? a : b != b ? b : (b > a ? b : a); }
static inline double dmin_t(double a, double b) { return a != a ? a : b != b ? b : (b < a ? b : a); }
static inline double dmax_t(double a, double b) { return a != a ? a : b != b ? b : (b > a ? b : a); }

/* Plain loops the compiler vectorises; the clone picks AVX2 where the CPU has it. */
#define ELEMENTWISE(T, EXPR)                                                                       \
    do {                                                                                           \
        T *d_ = dst;                                                                               \
        const T *a_ = lo, *b_ = hi;                                                                \
        for (size_t i = 0; i < n; i++) {                                                           \
            T a = a_[i], b = b_[i];                                                                \
            d_[i] = (EXPR);                                                                        \
        }                                                                                          \
    } while (0)

__attribute__((target_clones("avx2", "default"))) static void
reduce_f32(float *dst, const float *lo, const float *hi, size_t n, terse_op_t op)
{
    switch (op) {
    case TERSE_OP_SUM:
    case TERSE_OP_AVG: ELEMENTWISE(float, a + b); break;
    case TERSE_OP_PROD: ELEMENTWISE(float, a * b); break;
    case TERSE_OP_MIN: ELEMENTWISE(float, fmin_t(a, b)); break;
    case TERSE_OP_MAX: ELEMENTWISE(float, fmax_t(a, b)); break;
    default: break;
    }
}

__attribute__((target_clones("avx2", "default"))) static void
reduce_f64(double *dst, const double *lo, const double *hi, size_t n, terse_op_t op)
{
    switch (op) {
    case TERSE_OP_SUM:
    case TERSE_OP_AVG: ELEMENTWISE(double, a + b); break;
    case TERSE_OP_PROD: ELEMENTWISE(double, a * b); break;
    case TERSE_OP_MIN: ELEMENTWISE(double, dmin_t(a, b)); break;
    case TERSE_OP_MAX: ELEMENTWISE(double, dmax_t(a, b)); break;
    default: break;
    }
}

static float apply_f(float a, float b, terse_op_t op)
{
    switch (op) {
    case TERSE_OP_PROD: return a * b;
    case TERSE_OP_MIN: return fmin_t(a, b);
    case TERSE_OP_MAX: return fmax_t(a, b);
    default: return a + b;
    }
}

/* 16-bit floats: widen, combine once, round back (the same single rounding on every rank). */
static void reduce_half(uint16_t *dst, const uint16_t *lo, const uint16_t *hi, size_t n,
                        terse_op_t op, int bf16)
{
    for (size_t i = 0; i < n; i++) {
        float a = bf16 ? terse__bf16_to_float(lo[i]) : terse__half_to_float(lo[i]);
        float b = bf16 ? terse__bf16_to_float(hi[i]) : terse__half_to_float(hi[i]);
        float r = apply_f(a, b, op);
        dst[i] = bf16 ? terse__float_to_bf16(r) : terse__float_to_half(r);
    }
}

/* Integers: sums and products in the unsigned type so overflow wraps instead of being UB. */
#define INT_REDUCE(T, U)                                                                           \
    do {                                                                                           \
        switch (op) {                                                                              \
        case TERSE_OP_SUM:                                                                         \
        case TERSE_OP_AVG: ELEMENTWISE(T, (T)((U)a + (U)b)); break;                                \
        case TERSE_OP_PROD: ELEMENTWISE(T, (T)((U)a * (U)b)); break;                               \
        case TERSE_OP_MIN: ELEMENTWISE(T, b < a ? b : a); break;                                   \
        case TERSE_OP_MAX: ELEMENTWISE(T, b > a ? b : a); break;                                   \
        default: break;                                                                            \
        }                                                                                          \
    } while (0)

__attribute__((target_clones("avx2", "default"))) static void
reduce_int(void *dst, const void *lo, const void *hi, size_t n, terse_dtype_t dtype, terse_op_t op)
{
    switch (dtype) {
    case TERSE_DTYPE_INT8: INT_REDUCE(int8_t, uint8_t); break;
    case TERSE_DTYPE_UINT8: INT_REDUCE(uint8_t, uint8_t); break;
    case TERSE_DTYPE_INT16: INT_REDUCE(int16_t, uint16_t); break;
    case TERSE_DTYPE_INT32: INT_REDUCE(int32_t, uint32_t); break;
    case TERSE_DTYPE_INT64: INT_REDUCE(int64_t, uint64_t); break;
    default: break;
    }
}

void terse__reduce(void *dst, const void *lo, const void *hi, size_t n, terse_dtype_t dtype,
                   terse_op_t op)
{
    switch (dtype) {
    case TERSE_DTYPE_FLOAT32: reduce_f32(dst, lo, hi, n, op); break;
    case TERSE_DTYPE_FLOAT64: reduce_f64(dst, lo, hi, n, op); break;
    case TERSE_DTYPE_FLOAT16: reduce_half(dst, lo, hi, n, op, 0); break;
    case TERSE_DTYPE_BFLOAT16: reduce_half(dst, lo, hi, n, op, 1); break;
    default: reduce_int(dst, lo, hi, n, dtype, op); break;
    }
}

#define DIVIDE(T)                                                                                  \
    do {                                                                                           \
        T *p_ = buf;                                                                               \
        for (size_t i = 0; i < n; i++)                                                             \
            p_[i] = (T)(p_[i] / (T)nranks);                                                        \
    } while (0)

void terse__reduce_avg_finish(void *buf, size_t n, terse_dtype_t dtype, int nranks)
{
    switch (dtype) {
    case TERSE_DTYPE_FLOAT32: DIVIDE(float); break;
    case TERSE_DTYPE_FLOAT64: DIVIDE(double); break;
    case TERSE_DTYPE_INT8: DIVIDE(int8_t); break;
    case TERSE_DTYPE_UINT8: DIVIDE(uint8_t); break;
    case TERSE_DTYPE_INT16: DIVIDE(int16_t); break;
    case TERSE_DTYPE_INT32: DIVIDE(int32_t); break;
    case TERSE_DTYPE_INT64: DIVIDE(int64_t); break;
    case TERSE_DTYPE_FLOAT16:
    case TERSE_DTYPE_BFLOAT16: {
        uint16_t *p = buf;
        int bf = dtype == TERSE_DTYPE_BFLOAT16;
        for (size_t i = 0; i < n; i++) {
            float f = (bf ? terse__bf16_to_float(p[i]) : terse__half_to_float(p[i])) / (float)nranks;
            p[i] = bf ? terse__float_to_bf16(f) : terse__float_to_half(f);
        }
        break;
    }
    default: break;
    }
}
