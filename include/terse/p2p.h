/* terse: nonblocking tagged point-to-point send and receive. */
#ifndef TERSE_P2P_H
#define TERSE_P2P_H

#include <terse/coll.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Largest tag terse_isend / terse_irecv accept (tags are 0..TERSE_TAG_MAX). */
#define TERSE_TAG_MAX 0xffff

/*
 * Point-to-point messages run on a communicator of their own: collectives number their calls
 * on every rank alike, which a message between two ranks cannot do, so a communicator that
 * carries point-to-point traffic carries no collective (make one with terse_comm_dup; a
 * collective on it, or a send on a communicator that ran collectives, gives
 * TERSE_ERR_INVALID_ARG).
 *
 * Matching: the n-th send from rank a to rank b with tag t matches the n-th receive posted on
 * b from a with tag t (MPI's non-overtaking order per (source, tag)); messages of different
 * tags or peers are independent. The receive checks count and dtype against the sender's
 * (TERSE_ERR_MISMATCH on the receiver; the sender of a large message then fails with
 * TERSE_ERR_TIMEOUT, since it is not told). A dead peer gives TERSE_ERR_PEER_FAILED, a
 * silent one TERSE_ERR_TIMEOUT after the communicator's timeout. No wildcard source or tag.
 * Buffers are borrowed until the request completes (terse_test/terse_wait).
 */

/** Nonblocking send of @p count elements to rank @p dst with @p tag (0..TERSE_TAG_MAX). */
TERSE_API terse_status_t terse_isend(terse_comm_h comm, const void *buf, size_t count,
                                     terse_dtype_t dtype, int dst, int tag,
                                     terse_request_h *req_p);

/** Nonblocking receive of @p count elements from rank @p src with @p tag. */
TERSE_API terse_status_t terse_irecv(terse_comm_h comm, void *buf, size_t count,
                                     terse_dtype_t dtype, int src, int tag,
                                     terse_request_h *req_p);

/* Blocking wrappers. */
TERSE_API terse_status_t terse_send(terse_comm_h comm, const void *buf, size_t count,
                                    terse_dtype_t dtype, int dst, int tag);
TERSE_API terse_status_t terse_recv(terse_comm_h comm, void *buf, size_t count,
                                    terse_dtype_t dtype, int src, int tag);

#ifdef __cplusplus
}
#endif
#endif
