/* terse: the model-level training step of Algorithm 1 (SAEF paper), fused in C over the
 * framework's own parameter storage, with one nonblocking compressed exchange per bucket so
 * that the exchanges overlap backward.
 *
 * The state owns, per parameter: the consensus model x_t (in the parameter's dtype), the worker
 * error e_k (float32, or float64 for float64 parameters), the server error e_s (double-way) and
 * the step count. The parameters themselves stay the framework's: every call borrows them by
 * pointer for its duration.
 *
 * One training step on every rank:
 *   (the parameters hold the point x_{t+1/2}: x_t - e_k for SAEF, x_t for EF and none)
 *   forward, backward; for each bucket b, in bucket order, as its gradients are ready:
 *       the framework's local optimizer moves b's parameters from x_{t+1/2} to x'
 *       terse_model_post(m, b, params)   Delta_k = e_k + x_{t+1/2} - x' (x_{t+1/2} recomputed
 *                                        from x_t and e_k, not kept), exchange posted
 *   terse_model_finish(m, params)        waits for every bucket; then in one pass per tensor:
 *                                        x_{t+1} = x_t - avg_k C(Delta_k) (double-way:
 *                                        C(e_s + avg)), e_k = Delta_k - C(Delta_k), and the
 *                                        parameters' next point; errors averaged across ranks
 *                                        every `period` steps (Algorithm 1 line 7).
 *
 * Precision: x_{t+1/2} - x' is formed in the parameter's own dtype widened (float32 for
 * float32/float16/bfloat16, float64 for float64), so float64 models keep float64 differences;
 * what travels is float32 (the compressors' type) and e_k keeps the rounding remainder, so
 * C(Delta_k) + e_k == Delta_k holds exactly in float32 and to float64 rounding for float64.
 *
 * Results do not depend on the buckets, on overlap or on the rank count: every tensor (and
 * block) is compressed on its own, keyed by its id and the step. Keep the buckets fixed for a
 * run: with owner algorithms (TERSE_COMPRESSED_ALGO sparse_rs_ag, sign_a2a_ag, dense) a rank
 * keeps e_s current only for the blocks it serves within each bucket's exchange.
 *
 * Failure: if any bucket's exchange fails on any rank (NaN/Inf in some rank's Delta_k, a
 * mismatch, a corrupt message, a dead peer), terse_model_finish fails on every rank, writes
 * the parameters back to x_{t+1/2} and leaves x_t, e_k, e_s and the step as they were.
 *
 * The state's exchanges are collectives on @p comm: give the state a communicator of its own
 * (terse_comm_dup) when other threads issue collectives too, and a progress thread
 * (TERSE_PROGRESS_THREAD) so exchanges advance while the caller computes.
 */
#ifndef TERSE_MODEL_H
#define TERSE_MODEL_H

#include <terse/compressed.h>
#include <terse/ef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct terse_model *terse_model_h;

/** One parameter tensor: contiguous storage of @p count elements of @p dtype. */
typedef struct terse_model_tensor {
    uint32_t id;         /* identifies the tensor on every rank (keys randk, checked on the wire) */
    size_t count;        /* elements */
    terse_dtype_t dtype; /* TERSE_DTYPE_FLOAT32, _FLOAT64, _FLOAT16 or _BFLOAT16 */
} terse_model_tensor_t;

#define TERSE_MODEL_FIELD_PERIOD     (1ull << 0)
#define TERSE_MODEL_FIELD_DOUBLE_WAY (1ull << 1)
#define TERSE_MODEL_FIELD_BUCKETS    (1ull << 2)
#define TERSE_MODEL_FIELD_ALGO       (1ull << 3)
#define TERSE_MODEL_FIELD_HIERARCHY  (1ull << 4)

typedef struct terse_model_params {
    uint64_t field_mask;                 /* TERSE_MODEL_FIELD_* for the optional fields */
    terse_ef_mode_t mode;                /* none | EF | SAEF */
    const terse_compressor_t *compressor; /* [in] copied */
    size_t ntensors;
    const terse_model_tensor_t *tensors; /* [in] ntensors tensors, in bucket order (copied) */
    uint64_t period;                     /* error averaging at steps t with (t + 1) % p == 0;
                                          * 0 (default) = never */
    int double_way;                      /* default 0 */
    size_t nbuckets;                     /* default 1 (every tensor in one bucket) */
    const size_t *bucket_end;            /* [in] nbuckets increasing tensor indices, the last
                                          * = ntensors: bucket b is [bucket_end[b-1],
                                          * bucket_end[b]) (copied) */
    /* Appended later, read only when their bit is set (an older, shorter struct stays valid). */
    terse_compressed_algo_t algo;        /* every exchange's; default: the communicator's */
    terse_hierarchy_t hierarchy;         /* default: the communicator's */
} terse_model_params_t;

/**
 * Creates a training-step state with zero errors at step 0 and no consensus model yet (set it
 * with terse_model_set_point). Local; every rank must create it with the same parameters
 * (checked at every exchange).
 * @param [in]  comm     Communicator of the exchanges (borrowed for the state's life).
 * @param [out] model_p  The new state; release with terse_model_destroy.
 */
TERSE_API terse_status_t terse_model_create(terse_comm_h comm, const terse_model_params_t *params,
                                            terse_model_h *model_p);

/** Releases the state; waits for exchanges still in flight (their failure is ignored). */
TERSE_API void terse_model_destroy(terse_model_h model);

/**
 * Takes the parameters as the consensus model (collective): x_t = params + e_k for SAEF
 * (params hold x_t - e_k; e_k is zero on a fresh state) and x_t = params otherwise. The
 * parameters must be identical on every rank (e.g. broadcast first): a digest is compared and
 * ranks that differ get TERSE_ERR_MISMATCH on every rank, the state unchanged.
 * @param [in] params  ntensors pointers to the parameters' storage (borrowed for the call).
 */
TERSE_API terse_status_t terse_model_set_point(terse_model_h model, const void *const *params);

/** 1 once the state has a consensus model (set_point or restore), else 0. */
TERSE_API int terse_model_has_point(terse_model_h model);

/**
 * Posts bucket @p bucket's exchange (nonblocking; buckets in increasing order, each once a
 * step). Its parameters must hold x' (the local optimizer's result); they stay borrowed, and
 * must not change, until terse_model_finish returns. Errors of the exchange itself are
 * reported by terse_model_finish.
 * @param [in] params  ntensors pointers (only this bucket's are read).
 */
TERSE_API terse_status_t terse_model_post(terse_model_h model, size_t bucket,
                                          void *const *params);

/** Buckets posted in the current step (the next bucket to post). */
TERSE_API size_t terse_model_posted(terse_model_h model);

/**
 * Ends the step (collective): posts the buckets not posted yet, waits for every exchange,
 * then commits (x_{t+1}, e_k, e_s, step + 1) and writes the parameters' next point, averaging
 * the errors first when the period says so. On any failure every rank fails, the parameters
 * hold x_{t+1/2} again and the state is as before the step.
 * @param [in,out] params  ntensors pointers.
 */
TERSE_API terse_status_t terse_model_finish(terse_model_h model, void *const *params);

/** Completed steps (the t of Algorithm 1). */
TERSE_API uint64_t terse_model_step(terse_model_h model);

/** Bytes this rank sent in the successful exchanges (compressed messages only). */
TERSE_API uint64_t terse_model_bytes_sent(terse_model_h model);

/** The number of buckets. */
TERSE_API size_t terse_model_nbuckets(terse_model_h model);

/**
 * Copies tensor @p j's consensus x_t (its dtype), worker error e_k (float32, float64 for
 * float64 tensors; zeros in mode none) or server error e_s (float32; zeros single-way) into
 * @p out. TERSE_ERR_INVALID_ARG for a bad index, or x_t before set_point.
 * @param [out] out  count elements of the type named above.
 */
TERSE_API terse_status_t terse_model_consensus(terse_model_h model, size_t j, void *out);
TERSE_API terse_status_t terse_model_worker_error(terse_model_h model, size_t j, void *out);
TERSE_API terse_status_t terse_model_server_error(terse_model_h model, size_t j, float *out);

/** Bytes terse_model_save writes. */
TERSE_API size_t terse_model_save_size(terse_model_h model);

/**
 * Writes the whole state (versioned, with its parameters, x_t, e_k, e_s and a checksum).
 * @param [out] buf        At least terse_model_save_size bytes (owned by the caller).
 * @param [out] written_p  Bytes written.
 */
TERSE_API terse_status_t terse_model_save(terse_model_h model, void *buf, size_t len,
                                          size_t *written_p);

/**
 * Restores a state saved by terse_model_save into @p model (created with the same parameters:
 * else TERSE_ERR_INVALID_ARG; TERSE_ERR_CORRUPT for a damaged buffer), then writes the
 * parameters' point x_{t+1/2} when @p params is not NULL. @p model is unchanged on error.
 */
TERSE_API terse_status_t terse_model_restore(terse_model_h model, const void *buf, size_t len,
                                             void *const *params);

/** Writes the parameters' point x_{t+1/2} from the state (e.g. after evaluating at x_t). */
TERSE_API terse_status_t terse_model_write_point(terse_model_h model, void *const *params);

#ifdef __cplusplus
}
#endif
#endif
