/* The fused passes of the model-level step (model.c), per parameter dtype. */
#ifndef TERSE_EF_MODEL_KERNELS_H
#define TERSE_EF_MODEL_KERNELS_H

#include <terse/types.h>

#include <stddef.h>

/* One tensor's view of the state's arrays. */
typedef struct terse__mtensor {
    terse_dtype_t dtype;
    size_t count;
    void *x;      /* x_t, count elements of dtype */
    void *ek;     /* e_k: float (float64: double), NULL in mode none */
    float *stage; /* float32 Delta for the exchange, then its remainder Delta - C(Delta) */
    float *u;     /* the exchange's output avg_k C(Delta_k) (double-way: C(e_s + avg)); NULL
                   * for float32 tensors, whose parameters receive it */
} terse__mtensor_t;

/* stage = float32(e_k + (x_half - params)), x_half recomputed from x_t and e_k. */
void terse__model_stage(const terse__mtensor_t *t, const void *params, int saef);
/* x_t -= u; float64: e_k = Delta - C(Delta) in float64; params = next point if asked. Runs
 * before the state swaps stage (the new float32 e_k) with e_k. */
void terse__model_commit(const terse__mtensor_t *t, void *params, int saef, int write_params);
/* params = x_t - e_k (SAEF) or x_t. */
void terse__model_point(const terse__mtensor_t *t, void *params, int saef);
/* Bytes per element of a parameter dtype the state accepts, 0 for the others. */
size_t terse__model_dtype_size(terse_dtype_t dtype);

#endif
