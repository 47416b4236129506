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

/* Algorithm ids on the wire (append only). */
enum {
    TERSE_ALGO_ALLREDUCE_RD = 1,
    TERSE_ALGO_ALLREDUCE_RING = 2,
    TERSE_ALGO_ALLGATHER_RING = 3,
    TERSE_ALGO_BCAST_BINOMIAL = 4,
    TERSE_ALGO_ALLTOALL_PAIRWISE = 5,
    TERSE_ALGO_BARRIER_DISSEMINATION = 6,
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

/* Balanced split of @count into @parts: part i starts at terse__part_off(count, parts, i). */
static inline size_t terse__part_off(size_t count, int parts, int i)
{
    return (size_t)(((__uint128_t)count * (unsigned)i) / (unsigned)parts);
}

#endif
