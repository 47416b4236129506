/* terse: error-feedback state (none | EF | SAEF) around the compressed allreduce, following
 * Algorithm 1 of "Step-Ahead Error Feedback for Distributed Training with Compressed Gradient"
 * (Xu, Huo, Huang, AAAI 2021) in model-difference form, for any local optimizer.
 *
 * One training step on every rank (all calls are collective unless said otherwise):
 *   terse_ef_prepare(ef, x, xh)      averages the worker errors when the period says so, and
 *                                    writes the point to evaluate the gradient at:
 *                                    xh = x - e_k (SAEF), xh = x (EF, none)
 *   ... local optimizer step from xh to x'; d = xh - x' (e.g. lr * momentum) ...
 *   terse_ef_exchange(ef, d, u)      Delta_k = e_k + d; u = compressed allreduce of C(Delta_k)
 *                                    (double-way: C(e_s + avg), e_s kept); e_k = Delta_k - C(Delta_k)
 *   x = x - u                        (x stays identical on every rank)
 *
 * Memory per parameter (float32 parameters), owned by the state:
 *   none, single-way: 4 bytes (Delta staging)    none, double-way: 8 bytes (+ e_s)
 *   EF/SAEF, single-way: 8 bytes (e_k + staging) EF/SAEF, double-way: 12 bytes (+ e_s)
 * plus, during exchange, the communicator's pooled collective scratch (about 16-20 bytes per
 * parameter, reused across calls) and, on averaging steps, the staging reused for the average.
 * Every rank keeps e_s for all parameters; with owner algorithms (sparse_rs_ag, sign_a2a_ag,
 * dense: params->algo, the communicator's or TERSE_COMPRESSED_ALGO) only the entries of the blocks a rank serves are current,
 * which is all that algorithm reads: keep one algorithm for a run.
 *
 * Hierarchical mode (params->hierarchy, the communicator's, or TERSE_HIERARCHY=node): the hosts are Algorithm 1's workers. The exchange
 * compresses the mean of a host's Delta_k and every rank of the host gets the host's error, so
 * all ranks of a host hold the same e_k (and SAEF's step-ahead point); e_s lives on the host's
 * leader (local rank 0).
 */
#ifndef TERSE_EF_H
#define TERSE_EF_H

#include <terse/compressed.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct terse_ef *terse_ef_h;

/* Values are saved in checkpoints: append only. */
typedef enum terse_ef_mode {
    TERSE_EF_MODE_NONE = 0, /* plain compression (unbiased compressors: randk, induced) */
    TERSE_EF_MODE_EF = 1,   /* local error feedback */
    TERSE_EF_MODE_SAEF = 2, /* step-ahead error feedback */
} terse_ef_mode_t;

#define TERSE_EF_FIELD_PERIOD     (1ull << 0)
#define TERSE_EF_FIELD_DOUBLE_WAY (1ull << 1)
#define TERSE_EF_FIELD_ALGO       (1ull << 2)
#define TERSE_EF_FIELD_HIERARCHY  (1ull << 3)

/* New optional fields are appended with a bit of their own (read only when it is set), so a
 * struct of an older, shorter layout stays valid. */
typedef struct terse_ef_params {
    uint64_t field_mask;                  /* TERSE_EF_FIELD_* for the optional fields */
    terse_ef_mode_t mode;
    const terse_compressor_t *compressor; /* [in] copied */
    size_t ntensors;
    const uint32_t *ids;                  /* [in] ntensors tensor ids (copied) */
    const size_t *counts;                 /* [in] ntensors element counts (copied) */
    uint64_t period;                      /* error averaging every p steps at steps t with
                                           * (t + 1) % p == 0; 0 (default) = never */
    int double_way;                       /* default 0 */
    terse_compressed_algo_t algo;         /* every exchange's; default: the communicator's */
    terse_hierarchy_t hierarchy;          /* default: the communicator's */
} terse_ef_params_t;

/**
 * Creates an error-feedback state with zero errors at step 0. Local (no communication); every
 * rank must create it with the same parameters (checked at each exchange).
 * @param [in]  comm   The communicator the exchanges run on (borrowed for the state's life).
 * @param [out] ef_p   The new state; release with terse_ef_destroy.
 */
TERSE_API terse_status_t terse_ef_create(terse_comm_h comm, const terse_ef_params_t *params,
                                         terse_ef_h *ef_p);

TERSE_API void terse_ef_destroy(terse_ef_h ef);

/**
 * Start of a step (collective on averaging steps): averages e_k across ranks (dense
 * terse_allreduce, average) when the period says so, at most once per step, then writes
 * xh[j] = x[j] - e_k (SAEF) or x[j] (EF, none). xh may alias x; xh NULL skips the view.
 * On failure the errors are unchanged.
 * @param [in]  x   ntensors arrays: the consensus model x_t.
 * @param [out] xh  ntensors arrays, or NULL.
 */
TERSE_API terse_status_t terse_ef_prepare(terse_ef_h ef, const float *const *x, float *const *xh);

/**
 * The compressed exchange (collective): Delta_k = e_k + d (d alone in mode none), compressed
 * allreduce, e_k = Delta_k - C(Delta_k), e_s kept double-way, step + 1. On any error (mismatched
 * states across ranks, NaN/Inf in some rank's Delta, a corrupt message, a dead peer) every rank
 * fails and the state and @p update are unchanged.
 * @param [in]  d       ntensors arrays: the local optimizer's step xh - x'.
 * @param [out] update  ntensors arrays receiving the update to subtract from x (may alias d).
 */
TERSE_API terse_status_t terse_ef_exchange(terse_ef_h ef, const float *const *d,
                                           float *const *update);

/** Completed exchanges (the t of Algorithm 1). */
TERSE_API uint64_t terse_ef_step(terse_ef_h ef);

/** 1 if the next terse_ef_prepare averages the errors across ranks (and is then collective):
 *  mode EF or SAEF, a period p with (step + 1) % p == 0, and no averaging done yet at this
 *  step; 0 otherwise (also for NULL). Local. */
TERSE_API int terse_ef_averaging_due(terse_ef_h ef);

/** Bytes this rank sent in the successful exchanges of this state (the compressed messages as
 *  terse_request_bytes_sent counts them; error averaging excluded). Not saved in checkpoints. */
TERSE_API uint64_t terse_ef_bytes_sent(terse_ef_h ef);

/** This rank's worker error e_k of tensor @p j (NULL in mode none), server error e_s (NULL
 *  single-way). Borrowed, valid until the next call on @p ef. */
TERSE_API const float *terse_ef_worker_error(terse_ef_h ef, size_t j);
TERSE_API const float *terse_ef_server_error(terse_ef_h ef, size_t j);

/** Bytes terse_ef_save writes. */
TERSE_API size_t terse_ef_save_size(terse_ef_h ef);

/**
 * Writes the whole state (versioned, with its parameters and a checksum) to @p buf.
 * @param [out] buf        At least terse_ef_save_size bytes (owned by the caller).
 * @param [out] written_p  Bytes written.
 */
TERSE_API terse_status_t terse_ef_save(terse_ef_h ef, void *buf, size_t len, size_t *written_p);

/**
 * Restores a state saved by terse_ef_save into @p ef, which must have been created with the
 * same parameters: TERSE_ERR_INVALID_ARG if they differ, TERSE_ERR_CORRUPT for a damaged
 * buffer or unknown version; @p ef is unchanged on any error.
 */
TERSE_API terse_status_t terse_ef_restore(terse_ef_h ef, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
