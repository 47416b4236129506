/* The fused passes of the model-level step (model.h), one loop per parameter dtype.
 *
 * A parameter of dtype P is computed in its widened type A (float32 for float32, float16 and
 * bfloat16, float64 for float64). Each pass reads and writes every array once, so a step costs
 * two passes over the model beside the exchange itself:
 *   stage:   Delta = e_k + (x_half - x'), x_half = P(x_t - e_k) recomputed (SAEF) or x_t;
 *            stage = float32(Delta)
 *   commit:  x_{t+1} = P(x_t - u); e_k' from the exchange's remainder; params = next point
 *            (float32 parameters receive u from the exchange itself: no update buffer)
 * The loops are written out per dtype (no dispatch per element) so the compiler vectorises
 * the float32 and float64 ones; the clones pick AVX2 where the CPU has it. */
#include "model_kernels.h"

#include "core/half.h"

/* ---- float32 (the common case): A = P = float, e_k' is the exchange's remainder as is ---- */

__attribute__((target_clones("avx2", "default"))) static void
stage_f32(const float *restrict x, const float *restrict ek, const float *restrict prm,
          float *restrict stage, size_t n, int saef)
{
    if (!ek) {
        for (size_t i = 0; i < n; i++)
            stage[i] = x[i] - prm[i];
    } else if (saef) {
        for (size_t i = 0; i < n; i++) {
            float xh = x[i] - ek[i];
            stage[i] = ek[i] + (xh - prm[i]);
        }
    } else {
        for (size_t i = 0; i < n; i++)
            stage[i] = ek[i] + (x[i] - prm[i]);
    }
}

/* The exchange wrote u into the parameters themselves (float32 only: x' is not needed here),
 * so @p up holds u on entry and the next point on exit. */
__attribute__((target_clones("avx2", "default"))) static void
commit_f32(float *restrict x, float *restrict up, const float *restrict werr, size_t n, int saef,
           int write_params)
{
    if (saef && write_params) {
        for (size_t i = 0; i < n; i++) {
            float xn = x[i] - up[i];
            x[i] = xn;
            up[i] = xn - werr[i];
        }
    } else if (write_params) {
        for (size_t i = 0; i < n; i++) {
            float xn = x[i] - up[i];
            x[i] = xn;
            up[i] = xn;
        }
    } else {
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] - up[i];
    }
}

/* ---- float64: A = P = double; what travels is float32, e_k keeps the rounding remainder ---- */

__attribute__((target_clones("avx2", "default"))) static void
stage_f64(const double *restrict x, const double *restrict ek, const double *restrict prm,
          float *restrict stage, size_t n, int saef)
{
    for (size_t i = 0; i < n; i++) {
        double e = ek ? ek[i] : 0.0;
        double xh = saef ? x[i] - e : x[i];
        stage[i] = (float)(ek ? e + (xh - prm[i]) : xh - prm[i]);
    }
}

/* Delta is recomputed from the old x_t, e_k and x' (still in the parameters) bit for bit as
 * the stage pass formed it; the new error is Delta - C(Delta) = (Delta - float32(Delta)) +
 * (float32(Delta) - C(Delta)), the second term being the exchange's float32 remainder. */
__attribute__((target_clones("avx2", "default"))) static void
commit_f64(double *restrict x, double *restrict ek, const float *restrict u,
           const float *restrict werr, double *restrict prm, size_t n, int saef, int write_params)
{
    for (size_t i = 0; i < n; i++) {
        double xn = x[i] - (double)u[i];
        double e = 0.0;
        if (ek) {
            double xh = saef ? x[i] - ek[i] : x[i];
            double delta = ek[i] + (xh - prm[i]);
            e = (delta - (double)(float)delta) + (double)werr[i];
            ek[i] = e;
        }
        x[i] = xn;
        if (write_params)
            prm[i] = saef ? xn - e : xn;
    }
}

/* ---- float16 / bfloat16: stored in P, computed in float32 ---- */

typedef float (*load16_func_t)(uint16_t);
typedef uint16_t (*store16_func_t)(float);

static inline void stage_16(const uint16_t *restrict x, const float *restrict ek,
                            const uint16_t *restrict prm, float *restrict stage, size_t n,
                            int saef, load16_func_t ld, store16_func_t st)
{
    for (size_t i = 0; i < n; i++) {
        float e = ek ? ek[i] : 0.0f;
        float xh = saef ? ld(st(ld(x[i]) - e)) : ld(x[i]); /* what the parameters held */
        float d = xh - ld(prm[i]);
        stage[i] = ek ? e + d : d;
    }
}

static inline void commit_16(uint16_t *restrict x, const float *restrict u,
                             const float *restrict werr, uint16_t *restrict prm, size_t n,
                             int saef, int write_params, load16_func_t ld, store16_func_t st)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t xn = st(ld(x[i]) - u[i]);
        x[i] = xn;
        if (write_params)
            prm[i] = saef ? st(ld(xn) - werr[i]) : xn;
    }
}

static inline void point_16(const uint16_t *restrict x, const float *restrict ek,
                            uint16_t *restrict prm, size_t n, int saef, load16_func_t ld,
                            store16_func_t st)
{
    for (size_t i = 0; i < n; i++)
        prm[i] = saef && ek ? st(ld(x[i]) - ek[i]) : x[i];
}

/* ---- dispatch ---- */

void terse__model_stage(const terse__mtensor_t *t, const void *params, int saef)
{
    switch (t->dtype) {
    case TERSE_DTYPE_FLOAT32:
        stage_f32(t->x, t->ek, params, t->stage, t->count, saef);
        break;
    case TERSE_DTYPE_FLOAT64:
        stage_f64(t->x, t->ek, params, t->stage, t->count, saef);
        break;
    case TERSE_DTYPE_FLOAT16:
        stage_16(t->x, t->ek, params, t->stage, t->count, saef, terse__half_to_float,
                 terse__float_to_half);
        break;
    default: /* bfloat16: create accepts these four only */
        stage_16(t->x, t->ek, params, t->stage, t->count, saef, terse__bf16_to_float,
                 terse__float_to_bf16);
        break;
    }
}

void terse__model_commit(const terse__mtensor_t *t, void *params, int saef, int write_params)
{
    /* float32-computed tensors: the remainder the exchange wrote into stage is the new e_k
     * (the state swaps the two arrays afterwards), so it is only read here */
    const float *werr = t->stage;
    switch (t->dtype) {
    case TERSE_DTYPE_FLOAT32:
        commit_f32(t->x, params, werr, t->count, saef && t->ek, write_params);
        break;
    case TERSE_DTYPE_FLOAT64:
        commit_f64(t->x, t->ek, t->u, werr, params, t->count, saef, write_params);
        break;
    case TERSE_DTYPE_FLOAT16:
        commit_16(t->x, t->u, werr, params, t->count, saef && t->ek, write_params,
                  terse__half_to_float, terse__float_to_half);
        break;
    default:
        commit_16(t->x, t->u, werr, params, t->count, saef && t->ek, write_params,
                  terse__bf16_to_float, terse__float_to_bf16);
        break;
    }
}

void terse__model_point(const terse__mtensor_t *t, void *params, int saef)
{
    size_t n = t->count;
    switch (t->dtype) {
    case TERSE_DTYPE_FLOAT32: {
        const float *x = t->x, *ek = t->ek;
        float *p = params;
        for (size_t i = 0; i < n; i++)
            p[i] = saef && ek ? x[i] - ek[i] : x[i];
        break;
    }
    case TERSE_DTYPE_FLOAT64: {
        const double *x = t->x, *ek = t->ek;
        double *p = params;
        for (size_t i = 0; i < n; i++)
            p[i] = saef && ek ? x[i] - ek[i] : x[i];
        break;
    }
    case TERSE_DTYPE_FLOAT16:
        point_16(t->x, t->ek, params, n, saef, terse__half_to_float, terse__float_to_half);
        break;
    default:
        point_16(t->x, t->ek, params, n, saef, terse__bf16_to_float, terse__float_to_bf16);
        break;
    }
}

size_t terse__model_dtype_size(terse_dtype_t dtype)
{
    switch (dtype) {
    case TERSE_DTYPE_FLOAT32: return 4;
    case TERSE_DTYPE_FLOAT64: return 8;
    case TERSE_DTYPE_FLOAT16:
    case TERSE_DTYPE_BFLOAT16: return 2;
    default: return 0;
    }
}
