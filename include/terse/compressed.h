/* terse: compressed allreduce of a list of float32 tensors (Top-K, sign, Rand-K, ...), single- or
 * double-way (Algorithm 1 of the SAEF paper, lines 19-23). */
#ifndef TERSE_COMPRESSED_H
#define TERSE_COMPRESSED_H

#include <terse/coll.h>
#include <terse/compress.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One tensor (model layer) of a compressed allreduce. Every pointer is borrowed from the post
 *  until the request completes. */
typedef struct terse_ctensor {
    uint32_t id;          /* identifies the tensor on every rank (keys randk, checked on the wire) */
    size_t count;         /* float32 elements */
    const float *in;      /* [in]  Delta_k: this rank's input */
    float *out;           /* [out] the reduced update; may alias @in */
    float *worker_error;  /* [out] NULL, or receives Delta_k - C(Delta_k) (error feedback) */
    float *server_error;  /* [in,out] double-way: e_s of this tensor, NULL = zero and not kept */
} terse_ctensor_t;

#define TERSE_CALLREDUCE_FIELD_DOUBLE_WAY (1ull << 0)
#define TERSE_CALLREDUCE_FIELD_STEP       (1ull << 1)
#define TERSE_CALLREDUCE_FIELD_ALGO       (1ull << 2)
#define TERSE_CALLREDUCE_FIELD_HIERARCHY  (1ull << 3)

/* New optional fields are appended with a bit of their own: the library reads a field only
 * when its bit is set, so a struct of an older layout (shorter, without them) stays valid. */
typedef struct terse_callreduce_params {
    uint64_t field_mask;                  /* TERSE_CALLREDUCE_FIELD_* for the optional fields */
    const terse_ctensor_t *tensors;       /* [in] @ntensors tensors (the array is copied) */
    size_t ntensors;
    const terse_compressor_t *compressor; /* [in] copied; the same on every rank; blocks split
                                           * each tensor */
    int double_way;                       /* default 0 */
    uint64_t step;                        /* training step: keys randk; default 0 */
    terse_compressed_algo_t algo;         /* default: the communicator's (see terse_comm_params_t) */
    terse_hierarchy_t hierarchy;          /* default: the communicator's */
} terse_callreduce_params_t;

/**
 * Nonblocking compressed allreduce. On every rank, bit-identically:
 *   single-way:  out = (sum_{k=0..K-1} C(in_k)) / K, the sum taken in rank order starting from 0;
 *   double-way:  out = C(e_s + that average), with server_error updated to the remainder.
 * Tensors are fused into the same messages, but every tensor and block is compressed on its
 * own, so results do not depend on fusion, on the rank count's way of splitting the work or on
 * the algorithm (params->algo, else the communicator's, else TERSE_COMPRESSED_ALGO=
 * auto|sparse_allgather|sparse_rs_ag|sign_allgather|sign_a2a_ag|dense). The algorithm and the
 * hierarchy are part of the call's signature: ranks that choose differently all fail with
 * TERSE_ERR_MISMATCH. Outputs (out, worker_error, server_error) are written only when the whole
 * collective succeeded; on any error (TERSE_ERR_MISMATCH for different tensor lists or
 * compressors across ranks, TERSE_ERR_NONFINITE for NaN/Inf in some rank's input,
 * TERSE_ERR_CORRUPT, TERSE_ERR_PEER_FAILED, ...) every rank fails and nothing is written.
 * With server_error owned per block (algorithms sparse_rs_ag, sign_a2a_ag, dense) a rank keeps
 * only the entries of the blocks it serves current; use one algorithm for a whole run.
 * Hierarchy TERSE_HIERARCHY_NODE (params->hierarchy, else the communicator's, else
 * TERSE_HIERARCHY=node; same number of ranks on every host): the ranks of each host are
 * averaged first and the hosts are the participants: out = (sum_h C(Delta_h)) / H with
 * Delta_h the mean of host h's inputs (local-rank order), worker_error = Delta_h - C(Delta_h)
 * on every rank of the host, server_error kept on the host leaders only.
 * @param [in]  comm    Communicator.
 * @param [in]  params  Copied; the tensors' buffers stay borrowed until completion.
 * @param [out] req_p   The request; free with terse_request_free.
 */
TERSE_API terse_status_t terse_icompressed_allreduce(terse_comm_h comm,
                                                     const terse_callreduce_params_t *params,
                                                     terse_request_h *req_p);

/** Blocking terse_icompressed_allreduce. */
TERSE_API terse_status_t terse_compressed_allreduce(terse_comm_h comm,
                                                    const terse_callreduce_params_t *params);

/** Bytes this rank sent in @p req so far (payload and headers of its messages excluded). */
TERSE_API uint64_t terse_request_bytes_sent(terse_request_h req);

#ifdef __cplusplus
}
#endif
#endif
