/* coll's internal API for the layers above it (src/ef): what they may ask of a communicator
 * without seeing its internals (comm.h is the engine's and the algorithms' alone). */
#ifndef TERSE_COLL_COLL_H
#define TERSE_COLL_COLL_H

#include <terse/coll.h>

#include "core/alloc.h"

/* Record a failure of a call on @comm as its last error (terse_comm_last_error). */
void terse__comm_set_error(terse_comm_h comm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Where state that lives beside @comm's traffic belongs (error-feedback buffers): the NUMA
 * node of the rank's NIC when the communicator was placed, NULL (plain scratch) otherwise. */
const terse__allocator_t *terse__comm_allocator(terse_comm_h comm);

#endif
