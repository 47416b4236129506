/* The communicator's pool of collective scratch buffers. A request borrows at most two
 * (terse__req_scratch, terse__req_scratch2) from its first use until it completes, or until
 * its last transfer ended when it failed with receives under way (they still write there).
 * Buffers keep their memory between calls, so steady-state collectives allocate nothing. */
#ifndef TERSE_COLL_SCRATCH_H
#define TERSE_COLL_SCRATCH_H

#include "core/alloc.h"

#define TERSE_POOL_MAX 64

struct terse_comm;
struct terse_request;

/* Every pooled buffer allocates from @a (NUMA-local placement), NULL: plain allocation. */
void terse__scratch_pool_set_allocator(struct terse_comm *comm, const terse__allocator_t *a);
/* Frees the pool's memory (communicator teardown; no request holds a buffer). */
void terse__scratch_pool_fini(struct terse_comm *comm);
/* Gives the request's buffers back to the pool. */
void terse__scratch_release(struct terse_request *req);

#endif
