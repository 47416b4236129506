/* terse: error feedback on gradients, for a framework's fused gradient buckets (a DDP comm
 * hook): per-parameter errors kept in the library, one pass over the bucket, one compressed
 * allreduce per bucket. */
#ifndef TERSE_GRAD_EF_H
#define TERSE_GRAD_EF_H

#include <terse/compressed.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct terse_grad_ef *terse_grad_ef_h;

#define TERSE_GRAD_EF_FIELD_DOUBLE_WAY (1ull << 0)
#define TERSE_GRAD_EF_FIELD_ALGO       (1ull << 1)
#define TERSE_GRAD_EF_FIELD_HIERARCHY  (1ull << 2)

/* New optional fields are appended with a bit of their own (read only when it is set), so a
 * struct of an older, shorter layout stays valid. */
typedef struct terse_grad_ef_params {
    uint64_t field_mask;                  /* TERSE_GRAD_EF_FIELD_* for the optional fields */
    const terse_compressor_t *compressor; /* [in] copied; the same on every rank */
    int error_feedback;                   /* 1: EF (e <- Delta - C(Delta)); 0: plain compression */
    int double_way;                       /* default 0: server error e_s kept per parameter */
    terse_compressed_algo_t algo;         /* every bucket's; default: the communicator's */
    terse_hierarchy_t hierarchy;          /* default: the communicator's */
} terse_grad_ef_params_t;

/**
 * A state with no parameters yet; a parameter's errors start at zero when it is first seen.
 * Local. @p comm is borrowed for the state's life.
 */
TERSE_API terse_status_t terse_grad_ef_create(terse_comm_h comm,
                                              const terse_grad_ef_params_t *params,
                                              terse_grad_ef_h *ef_p);

/** Frees the state; no request of it may be in flight. */
TERSE_API void terse_grad_ef_destroy(terse_grad_ef_h ef);

/**
 * Nonblocking exchange of one bucket: @p buf holds the gradients of @p nparams parameters back
 * to back (parameter j: @p counts[j] floats, identified by @p ids[j] on every rank). One pass
 * forms Delta = e + g in @p buf (EF; Delta = g without it); then the compressed allreduce
 * (every parameter a tensor of its own, so results do not depend on how parameters are
 * bucketed) writes the average of the C(Delta_k) over the ranks into @p buf and, on success
 * only, e = Delta - C(Delta) into the parameter's error. On failure @p buf holds Delta and the
 * errors are unchanged. A parameter seen again must have the same count. Buckets must be
 * exchanged in the same order on every rank (the call count keys randk). @p ids and @p counts
 * are copied; @p buf and the errors of these parameters are borrowed until completion.
 * @param [out] req_p  the request (terse_test / terse_wait / terse_request_free)
 */
TERSE_API terse_status_t terse_grad_ef_ireduce(terse_grad_ef_h ef, size_t nparams,
                                               const uint32_t *ids, const size_t *counts,
                                               float *buf, terse_request_h *req_p);

/** This rank's error e of parameter @p id (NULL if unknown or without EF), its count in
 *  @p count_p; borrowed until the next call on @p ef. The server error likewise. */
TERSE_API const float *terse_grad_ef_worker_error(terse_grad_ef_h ef, uint32_t id,
                                                  size_t *count_p);
TERSE_API const float *terse_grad_ef_server_error(terse_grad_ef_h ef, uint32_t id,
                                                  size_t *count_p);

/** Buckets exchanged so far (successful or not). */
TERSE_API uint64_t terse_grad_ef_calls(terse_grad_ef_h ef);

/**
 * Restores parameter @p id's errors from a checkpoint (the entry is made if new): copies
 * @p count floats from @p e into the worker error (ignored without EF) and from @p es into the
 * server error (ignored single-way); NULL sets that error to zero. A known parameter must have
 * the same count (TERSE_ERR_INVALID_ARG, errors unchanged). Local; no request of @p ef may be
 * in flight. With terse_grad_ef_set_calls (randk keys on the bucket count), a resumed run
 * continues with the bits of an uninterrupted one.
 */
TERSE_API terse_status_t terse_grad_ef_load(terse_grad_ef_h ef, uint32_t id, size_t count,
                                            const float *e, const float *es);
/** Sets the bucket count (terse_grad_ef_calls) when resuming from a checkpoint. */
TERSE_API void terse_grad_ef_set_calls(terse_grad_ef_h ef, uint64_t calls);

#ifdef __cplusplus
}
#endif
#endif
