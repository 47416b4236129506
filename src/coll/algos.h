/* The dense algorithms (one file each) and helpers shared by the collective entry points. */
#ifndef TERSE_COLL_ALGOS_H
#define TERSE_COLL_ALGOS_H

#include "comm.h"

extern const terse__algo_t terse__allreduce_rd_algo;
extern const terse__algo_t terse__allreduce_ring_algo;
extern const terse__algo_t terse__allgather_ring_algo;
extern const terse__algo_t terse__bcast_binomial_algo;
extern const terse__algo_t terse__alltoall_pairwise_algo;
extern const terse__algo_t terse__barrier_dissemination_algo;
extern const terse__algo_t terse__rs_ring_algo;
extern const terse__algo_t terse__rs_rd_algo;
extern const terse__algo_t terse__split_ring_algo;

/* Algorithm ids on the wire (append only). */
enum {
    TERSE_ALGO_ALLREDUCE_RD = 1,
    TERSE_ALGO_ALLREDUCE_RING = 2,
    TERSE_ALGO_ALLGATHER_RING = 3,
    TERSE_ALGO_BCAST_BINOMIAL = 4,
    TERSE_ALGO_ALLTOALL_PAIRWISE = 5,
    TERSE_ALGO_BARRIER_DISSEMINATION = 6,
    TERSE_ALGO_RS_RING = 7,  /* reduce_scatter(_v), reduce: the ring allreduce's first half */
    TERSE_ALGO_RS_RD = 8,    /* the same, small: the recursive doubling allreduce, then a copy */
    TERSE_ALGO_SPLIT_RING = 9, /* terse_comm_split: the child's setup exchanges */
    TERSE_ALGO_P2P = 10,       /* terse_isend / terse_irecv */
    TERSE_ALGO_REJECTED = 63,
};

/*
 * A call with invalid arguments still takes its sequence number and tells every peer, so
 * they fail with the reason at once instead of waiting for a timeout. Returns @st.
 */
terse_status_t terse__coll_reject(terse_comm_h comm, terse__coll_kind_t kind, terse_status_t st,
                                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Checks shared by every collective; on failure rejects the call and returns the error. */
terse_status_t terse__coll_check(terse_comm_h comm, terse__coll_kind_t kind, const void *sbuf,
                                 const void *rbuf, size_t count, terse_dtype_t dtype,
                                 size_t multiple);

/* The dense allreduce algorithm for @count elements of @bytes in all (TERSE_ALLREDUCE_ALGO,
 * else by size). reduce_scatter and reduce choose by the same rule so that their results are
 * the allreduce's bits. */
const terse__algo_t *terse__allreduce_select(terse_comm_h comm, size_t count, size_t bytes);

/* The ring allreduce of req->count elements from req->sbuf into @work (req->count elements,
 * may be req->sbuf). @rs_only: stop after the reduce-scatter half, when rank r holds chunk
 * (r + 1) % P (terse__part_off) of the final result in @work; the rest of @work is scratch.
 * Uses its typed state in req->state, req->round and req->scratch (not req->phase). */
terse_status_t terse__allreduce_ring_run(terse_request_h req, void *work, int rs_only);

/* The recursive doubling allreduce of req->count elements from req->sbuf into @work. Uses
 * its typed state in req->state, req->phase, req->round and req->scratch. */
terse_status_t terse__allreduce_rd_run(terse_request_h req, void *work);

/* ---- reduce_scatter(_v) and reduce (reduce_scatter.c) ---- */
/* Step of the round that carries finished pieces to their destination ranks. */
#define TERSE_STEP_DELIVER 0x3fe
/* Where the algorithm reduces: the caller's receive buffer when it holds the whole vector
 * (in place, or a reduce's root), else req->scratch2. NULL on failure (req->status). */
void *terse__rs_work(terse_request_h req);
/* The finished result is in @work: this rank's part of it (ring: chunk (rank + 1) % P; not
 * ring: all of it) goes to the ranks whose output it is. Returns TERSE_INPROGRESS when it
 * posted transfers, TERSE_OK when everything was local. */
terse_status_t terse__rs_deliver(terse_request_h req, const void *work, int ring);

/* Balanced split of @count into @parts: part i starts at terse__part_off(count, parts, i). */
static inline size_t terse__part_off(size_t count, int parts, int i)
{
    return (size_t)(((__uint128_t)count * (unsigned)i) / (unsigned)parts);
}

#endif
