/* The transfers of a request's current round and the storage they live in.
 *
 * UCX writes into a transfer (its terse__tp_op_t) until it completes, so a transfer must not
 * move while the round runs. They live in fixed-size chunks that are allocated as a round
 * grows and never reallocated: a round may post any number of transfers (an owner schedule
 * at K ranks posts 2(K-1) of them, a pipelined allgather 2(K-1) per chunk). */
#ifndef TERSE_COLL_XFER_H
#define TERSE_COLL_XFER_H

#include "transport/ucx.h"
#include "wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct terse__xfer {
    terse__tp_op_t op;     /* the payload (or header+payload when not split) */
    terse__tp_op_t hdr_op; /* the header, when it travels on its own */
    terse__msg_hdr_t hdr;
    void *buf;
    size_t len; /* receives: capacity; sends: length */
    int split;
    int is_recv;
    int var_len; /* receive: any length up to len (split is known once the header arrived) */
    int hdr_checked; /* split receive: header already validated */
    int payload_checked; /* receive: lengths and payload checksum validated (once) */
    int any_step; /* receive: match this peer's message of any step (see bcast acks) */
    int peer;
    uint16_t step;
} terse__xfer_t;

/* Transfers per chunk: a power of two, so indexing is a shift and a mask. */
#define TERSE_XFER_CHUNK_SHIFT 6
#define TERSE_XFER_CHUNK       (1 << TERSE_XFER_CHUNK_SHIFT)

typedef struct terse__xfer_list {
    terse__xfer_t **chunk; /* chunk[c] holds transfers [c * TERSE_XFER_CHUNK, ...) */
    int nchunk;            /* chunks allocated (kept for later rounds) */
    int capchunk;          /* entries of @chunk (the pointer array may move; chunks never do) */
} terse__xfer_list_t;

static inline terse__xfer_t *terse__xfer_at(const terse__xfer_list_t *l, int i)
{
    return &l->chunk[i >> TERSE_XFER_CHUNK_SHIFT][i & (TERSE_XFER_CHUNK - 1)];
}

/* Transfer @i, allocating its chunk when @i is the first index past the allocated ones; the
 * transfer is zeroed. NULL on no memory. */
terse__xfer_t *terse__xfer_list_slot(terse__xfer_list_t *l, int i);
void terse__xfer_list_free(terse__xfer_list_t *l);

#endif
