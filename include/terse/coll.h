/* terse: dense collectives, nonblocking with blocking wrappers. */
#ifndef TERSE_COLL_H
#define TERSE_COLL_H

#include <terse/comm.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct terse_request *terse_request_h;

/** Pass as the send buffer to reduce in place in the receive buffer. */
#define TERSE_IN_PLACE ((const void *)1)

/*
 * Buffers are borrowed from the call that posts a request until that request completes
 * (terse_test returns something other than TERSE_INPROGRESS, or terse_wait returns).
 * Every rank must post the same collectives in the same order; ranks that disagree
 * (count, dtype, op, root) get TERSE_ERR_MISMATCH on every rank, never a mis-sum.
 * Results of reductions are bit-identical on all ranks.
 */

/** Nonblocking allreduce of @p count elements. @p sbuf may be TERSE_IN_PLACE. */
TERSE_API terse_status_t terse_iallreduce(terse_comm_h comm, const void *sbuf, void *rbuf,
                                          size_t count, terse_dtype_t dtype, terse_op_t op,
                                          terse_request_h *req_p);

/** Nonblocking allgather: @p count elements per rank, @p rbuf holds size * count. */
TERSE_API terse_status_t terse_iallgather(terse_comm_h comm, const void *sbuf, void *rbuf,
                                          size_t count, terse_dtype_t dtype,
                                          terse_request_h *req_p);

/**
 * Nonblocking allgatherv: rank i contributes @p counts[i] elements, placed at
 * @p displs[i] elements into @p rbuf (displs NULL: packed in rank order).
 * @p counts and @p displs are copied.
 */
TERSE_API terse_status_t terse_iallgatherv(terse_comm_h comm, const void *sbuf, void *rbuf,
                                           const size_t *counts, const size_t *displs,
                                           terse_dtype_t dtype, terse_request_h *req_p);

/** Nonblocking broadcast of @p count elements from @p root. */
TERSE_API terse_status_t terse_ibcast(terse_comm_h comm, void *buf, size_t count,
                                      terse_dtype_t dtype, int root, terse_request_h *req_p);

/** Nonblocking alltoall: @p count elements to and from every rank. */
TERSE_API terse_status_t terse_ialltoall(terse_comm_h comm, const void *sbuf, void *rbuf,
                                         size_t count, terse_dtype_t dtype,
                                         terse_request_h *req_p);

/**
 * Nonblocking alltoallv (element counts and displacements per rank; NULL displs: packed).
 * Arrays are copied. Rank i's scounts[j] must equal rank j's rcounts[i].
 */
TERSE_API terse_status_t terse_ialltoallv(terse_comm_h comm, const void *sbuf,
                                          const size_t *scounts, const size_t *sdispls,
                                          void *rbuf, const size_t *rcounts,
                                          const size_t *rdispls, terse_dtype_t dtype,
                                          terse_request_h *req_p);

/**
 * Nonblocking reduce-scatter with equal blocks: the elementwise reduction over all ranks of
 * the @p size * @p count elements of @p sbuf; rank i gets elements [i * count, (i + 1) * count)
 * of it in @p rbuf (@p count elements). Every dtype and op of terse_iallreduce. The block is
 * bit-identical to that slice of terse_allreduce(sbuf, size * count) on the same ranks.
 * @param [in]  sbuf   size * count elements, or TERSE_IN_PLACE: then @p rbuf holds the
 *                     size * count input elements, and on completion this rank's block sits
 *                     at its own place, rbuf + rank * count (like terse_iallgather's in-place
 *                     convention, so an in-place reduce_scatter followed by an in-place
 *                     allgather is an allreduce); the other blocks of @p rbuf are overwritten
 *                     with intermediate values.
 * @param [out] rbuf   @p count elements (size * count in place); borrowed until completion.
 * @param [out] req_p  the request, set only on success.
 */
TERSE_API terse_status_t terse_ireduce_scatter(terse_comm_h comm, const void *sbuf, void *rbuf,
                                               size_t count, terse_dtype_t dtype, terse_op_t op,
                                               terse_request_h *req_p);

/**
 * Nonblocking reduce-scatter with any block sizes: the input is counts[0] + ... +
 * counts[size-1] elements, rank i gets @p counts[i] of them, those starting at
 * counts[0] + ... + counts[i-1] (zero counts allowed). @p counts is copied and must be the
 * same on every rank (a digest travels with every message: TERSE_ERR_MISMATCH otherwise).
 * Bit-identical to that slice of terse_allreduce over the whole input.
 * @param [in]  sbuf   the whole input, or TERSE_IN_PLACE: @p rbuf holds the whole input and
 *                     gets this rank's block at its own offset (the rest is overwritten).
 * @param [out] rbuf   counts[rank] elements (the whole input in place); may be NULL when
 *                     that is 0. Borrowed until completion.
 */
TERSE_API terse_status_t terse_ireduce_scatter_v(terse_comm_h comm, const void *sbuf,
                                                 void *rbuf, const size_t *counts,
                                                 terse_dtype_t dtype, terse_op_t op,
                                                 terse_request_h *req_p);

/**
 * Nonblocking reduce of @p count elements to @p root: on completion the root's @p rbuf holds
 * exactly what terse_allreduce would have given every rank (the same bits).
 * @param [in]  sbuf   @p count elements, or TERSE_IN_PLACE: the input is read from @p rbuf
 *                     (on any rank; a non-root's @p rbuf is then overwritten with
 *                     intermediate values).
 * @param [out] rbuf   @p count elements at the root; ignored elsewhere (may be NULL) unless
 *                     in place. Borrowed until completion.
 * @param [in]  root   0 <= root < size, the same on every rank.
 */
TERSE_API terse_status_t terse_ireduce(terse_comm_h comm, const void *sbuf, void *rbuf,
                                       size_t count, terse_dtype_t dtype, terse_op_t op, int root,
                                       terse_request_h *req_p);

/** Nonblocking barrier. */
TERSE_API terse_status_t terse_ibarrier(terse_comm_h comm, terse_request_h *req_p);

/**
 * Advance @p req: TERSE_INPROGRESS while running, TERSE_OK when done, an error when failed
 * (the reason in terse_comm_last_error). Cheap; never blocks.
 */
TERSE_API terse_status_t terse_test(terse_request_h req);

/**
 * Block until @p req completes; returns what terse_test would. An idle wait polls the network
 * for TERSE_SPIN_US, then sleeps until the next network event, so ranks sharing cores leave
 * them to the ones with work.
 */
TERSE_API terse_status_t terse_wait(terse_request_h req);

/**
 * terse_wait for at most @p timeout_s seconds: TERSE_INPROGRESS if @p req is still running
 * then (a framework's progress thread waits so, between checks of its other work).
 */
TERSE_API terse_status_t terse_wait_for(terse_request_h req, double timeout_s);

/** Release a completed request. Freeing one in flight cancels it (its buffers stay borrowed
 * until terse_comm_destroy). */
TERSE_API void terse_request_free(terse_request_h req);

/** Name of the algorithm @p req runs ("ring", "recursive_doubling", ...). */
TERSE_API const char *terse_request_algorithm(terse_request_h req);

/* Blocking wrappers. */
TERSE_API terse_status_t terse_allreduce(terse_comm_h comm, const void *sbuf, void *rbuf,
                                         size_t count, terse_dtype_t dtype, terse_op_t op);
TERSE_API terse_status_t terse_allgather(terse_comm_h comm, const void *sbuf, void *rbuf,
                                         size_t count, terse_dtype_t dtype);
TERSE_API terse_status_t terse_allgatherv(terse_comm_h comm, const void *sbuf, void *rbuf,
                                          const size_t *counts, const size_t *displs,
                                          terse_dtype_t dtype);
TERSE_API terse_status_t terse_bcast(terse_comm_h comm, void *buf, size_t count,
                                     terse_dtype_t dtype, int root);
TERSE_API terse_status_t terse_alltoall(terse_comm_h comm, const void *sbuf, void *rbuf,
                                        size_t count, terse_dtype_t dtype);
TERSE_API terse_status_t terse_alltoallv(terse_comm_h comm, const void *sbuf,
                                         const size_t *scounts, const size_t *sdispls, void *rbuf,
                                         const size_t *rcounts, const size_t *rdispls,
                                         terse_dtype_t dtype);
TERSE_API terse_status_t terse_reduce_scatter(terse_comm_h comm, const void *sbuf, void *rbuf,
                                              size_t count, terse_dtype_t dtype, terse_op_t op);
TERSE_API terse_status_t terse_reduce_scatter_v(terse_comm_h comm, const void *sbuf, void *rbuf,
                                                const size_t *counts, terse_dtype_t dtype,
                                                terse_op_t op);
TERSE_API terse_status_t terse_reduce(terse_comm_h comm, const void *sbuf, void *rbuf,
                                      size_t count, terse_dtype_t dtype, terse_op_t op, int root);

#ifdef __cplusplus
}
#endif
#endif
