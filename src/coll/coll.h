/* coll's internal API for the layers above it (src/ef): what they may ask of a communicator
 * without seeing its internals (comm.h is the engine's and the algorithms' alone). */
#ifndef TERSE_COLL_COLL_H
#define TERSE_COLL_COLL_H

#include <terse/coll.h>
#include <terse/compressed.h>

#include "core/alloc.h"

/* Record a failure of a call on @comm as its last error (terse_comm_last_error). */
void terse__comm_set_error(terse_comm_h comm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Where state that lives beside @comm's traffic belongs (error-feedback buffers): the NUMA
 * node of the rank's NIC when the communicator was placed, NULL (plain scratch) otherwise. */
const terse__allocator_t *terse__comm_allocator(terse_comm_h comm);

/* terse_icompressed_allreduce whose request, once complete, has validated and agreed on
 * everything with every rank but written none of the caller's buffers (outputs, worker and
 * server errors). terse__compressed_commit then writes them; terse_request_free without it
 * drops the result. A caller with several requests can so write all of them or none. */
terse_status_t terse__icompressed_allreduce_held(terse_comm_h comm,
                                                 const terse_callreduce_params_t *params,
                                                 terse_request_h *req_p);
/* Writes a completed held request's buffers, once. @subtract (the request's ntensors flags,
 * or NULL for none): tensor j's out becomes out - result, bit for bit what computing the
 * result into a buffer u and then out - u gives, but touching out only where the result is
 * not zero (Top-K: k entries; a training step's x -= u in place). Its status, or
 * TERSE_ERR_INVALID_ARG when the request is not a completed held one. */
terse_status_t terse__compressed_commit(terse_request_h req, const unsigned char *subtract);

#endif
