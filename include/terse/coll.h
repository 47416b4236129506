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

/** Nonblocking barrier. */
TERSE_API terse_status_t terse_ibarrier(terse_comm_h comm, terse_request_h *req_p);

/**
 * Advance @p req: TERSE_INPROGRESS while running, TERSE_OK when done, an error when failed
 * (the reason in terse_comm_last_error). Cheap; never blocks.
 */
TERSE_API terse_status_t terse_test(terse_request_h req);

/** Block until @p req completes; returns what terse_test would. */
TERSE_API terse_status_t terse_wait(terse_request_h req);

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

#ifdef __cplusplus
}
#endif
#endif
