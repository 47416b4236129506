/* Allreduce entry points, argument checks and algorithm selection. */
#include "algos.h"
#include "reduce.h"

#include "core/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static terse_status_t rejected_progress(terse_request_h req)
{
    return req->status;
}

static const terse__algo_t rejected_algo = {
    .name = "rejected",
    .id = TERSE_ALGO_REJECTED,
    .progress = rejected_progress,
};

terse_status_t terse__coll_reject(terse_comm_h comm, terse__coll_kind_t kind, terse_status_t st,
                                  const char *fmt, ...)
{
    char why[300];
    terse_request_h req;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (!comm)
        return st;
    pthread_mutex_lock(&comm->lock);
    if (terse__req_create(comm, kind, &rejected_algo, &req) == TERSE_OK) {
        req->sig.seq = comm->next_seq++;
        req->start = terse__now();
        req->done = 1;
        terse__req_fail(req, st, "%s: %s", terse_status_string(st), why);
        terse__req_destroy(req);
    }
    pthread_mutex_unlock(&comm->lock);
    return st;
}

terse_status_t terse__coll_check(terse_comm_h comm, terse__coll_kind_t kind, const void *sbuf,
                                 const void *rbuf, size_t count, terse_dtype_t dtype,
                                 size_t multiple)
{
    if (!comm)
        return TERSE_ERR_INVALID_ARG;
    size_t esize = terse_dtype_size(dtype);
    if (!esize)
        return terse__coll_reject(comm, kind, TERSE_ERR_INVALID_ARG, "invalid dtype %d",
                                  (int)dtype);
    if (count > (SIZE_MAX / 4) / esize / (multiple ? multiple : 1))
        return terse__coll_reject(comm, kind, TERSE_ERR_INVALID_ARG,
                                  "count %zu of %s overflows the buffer size", count,
                                  terse_dtype_name(dtype));
    if (count && (!sbuf || !rbuf))
        return terse__coll_reject(comm, kind, TERSE_ERR_INVALID_ARG, "NULL %s buffer",
                                  !sbuf ? "send" : "receive");
    return TERSE_OK;
}

const terse__algo_t *terse__allreduce_select(terse_comm_h comm, size_t count, size_t bytes)
{
    const terse__comm_settings_t *set = &comm->settings;
    if (set->allreduce_algo == TERSE__ALLREDUCE_ALGO_RECURSIVE_DOUBLING)
        return &terse__allreduce_rd_algo;
    if (set->allreduce_algo == TERSE__ALLREDUCE_ALGO_RING)
        return &terse__allreduce_ring_algo;
    /* Ring moves 2(P-1)/P of the data per rank, recursive doubling log2(P) times the data
     * but in fewer steps: ring wins once bandwidth dominates. */
    if (bytes < set->small_msg_bytes || count < (size_t)comm->size)
        return &terse__allreduce_rd_algo;
    return &terse__allreduce_ring_algo;
}

terse_status_t terse_iallreduce(terse_comm_h comm, const void *sbuf, void *rbuf, size_t count,
                                terse_dtype_t dtype, terse_op_t op, terse_request_h *req_p)
{
    terse_request_h req;
    terse_status_t st;
    if (!req_p)
        return comm ? terse__coll_reject(comm, TERSE_COLL_ALLREDUCE, TERSE_ERR_INVALID_ARG,
                                         "NULL request pointer")
                    : TERSE_ERR_INVALID_ARG;
    st = terse__coll_check(comm, TERSE_COLL_ALLREDUCE, sbuf, rbuf, count, dtype, 1);
    if (st != TERSE_OK)
        return st;
    if ((unsigned)op >= TERSE_OP_LAST)
        return terse__coll_reject(comm, TERSE_COLL_ALLREDUCE, TERSE_ERR_INVALID_ARG,
                                  "invalid op %d", (int)op);
    pthread_mutex_lock(&comm->lock);
    st = terse__req_create(comm, TERSE_COLL_ALLREDUCE,
                           terse__allreduce_select(comm, count, count * terse_dtype_size(dtype)), &req);
    if (st == TERSE_OK) {
        req->sbuf = sbuf == TERSE_IN_PLACE ? rbuf : sbuf;
        req->rbuf = rbuf;
        req->count = count;
        req->dtype = dtype;
        req->op = op;
        req->sig.count = count;
        req->sig.dtype = (uint8_t)dtype;
        req->sig.op = (uint8_t)op;
        terse__req_start(req);
        *req_p = req;
    }
    pthread_mutex_unlock(&comm->lock);
    return st;
}

terse_status_t terse_allreduce(terse_comm_h comm, const void *sbuf, void *rbuf, size_t count,
                               terse_dtype_t dtype, terse_op_t op)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_iallreduce(comm, sbuf, rbuf, count, dtype, op, &req);
    return terse__wait_free(req, st);
}
