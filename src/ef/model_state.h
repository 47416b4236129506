/* The model-level step state (model.c), shared with its checkpoints (model_ckpt.c). */
#ifndef TERSE_EF_MODEL_STATE_H
#define TERSE_EF_MODEL_STATE_H

#include <terse/model.h>

#include "cmp_choice.h"
#include "model_kernels.h"

struct terse_model {
    terse_comm_h comm;
    terse_ef_mode_t mode;
    terse_compressor_t c;
    terse__cmp_choice_t choice;
    char spec[128]; /* canonical compressor spec, for checkpoints */
    uint64_t period;
    int double_way;
    /* nt: float32 tensor j takes its update in place (terse__compressed_commit): where the
     * codec subtracts, the exchange's commit makes x_t x_{t+1} by subtracting u from it
     * (Top-K touches k entries), so u is never in memory and the commit only writes the next
     * point. Else u lands in the parameters. */
    unsigned char *subtract;
    size_t nt;
    terse_model_tensor_t *t; /* nt tensors, in bucket order */
    size_t nb;
    size_t *bucket_end;      /* nb: bucket b holds tensors [bucket_end[b-1], bucket_end[b]) */
    /* layout: nt + 1 offsets each */
    size_t *off;   /* float elements: stage, u, e_s, e_k of float32-computed tensors */
    size_t *xoff;  /* bytes of x_t */
    size_t *off64; /* doubles: e_k of the float64 tensors */
    size_t N, N64, xbytes;
    /* arrays (NUMA-placed scratch) */
    uint8_t *x;       /* x_t, each tensor in its dtype */
    float *ek;        /* e_k (EF, SAEF); float64 tensors' slots unused */
    float *stage;     /* Delta, then Delta - C(Delta): becomes e_k when the step commits */
    float *u;         /* the exchanges' outputs (NULL when every tensor is float32: the
                       * parameters receive them) */
    float *es;        /* e_s (double-way) */
    double *ek64;     /* e_k of the float64 tensors */
    double *avg64;    /* their average (error averaging) */
    /* the step in flight */
    terse_ctensor_t *ct;
    terse_request_h *reqs;    /* nb */
    terse_status_t *post_st;  /* nb */
    size_t posted;            /* buckets posted this step */
    int has_point;            /* x_t is set */
    uint64_t step;
    uint64_t averaged_step;   /* step + 1 of the last error averaging (0 = none) */
    uint64_t bytes_sent;
};

terse__mtensor_t terse__model_view(const terse_model_h m, size_t j);
void terse__model_swap_errors(terse_model_h m);
/* params = x_{t+1/2} for every tensor (no averaging). */
void terse__model_write_points(terse_model_h m, void *const *params);

#endif
