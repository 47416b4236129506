/* reduce_scatter, reduce_scatter_v and reduce: entry points, argument checks, algorithm
 * selection, and what their algorithms share (where they reduce, how results get home).
 *
 * Their results are the bits terse_allreduce gives for the same input on the same ranks.
 * Floating-point reductions depend on the order of operands, and the allreduce's order
 * depends on its algorithm (recursive doubling: a tree over rank pairs; ring: chunk c summed
 * from rank c around the ring). So these collectives do not choose an order of their own:
 * they pick the algorithm the allreduce would pick for the whole vector and run that
 * algorithm's own code (terse__allreduce_ring_run, terse__allreduce_rd_run) up to the point
 * where the result exists somewhere, then carry each piece to the rank whose output it is.
 * The ring stops after its reduce-scatter half, so reduce_scatter costs half a ring allreduce
 * plus one round that moves each rank's block (by one rank for equal blocks); recursive
 * doubling, chosen only for small vectors, runs whole and each rank copies its part. */
#include "algos.h"

#include <string.h>

/* Rank @j's output: elements [*lo, *lo + *n) of the whole vector. */
static void out_range(terse_request_h req, int j, size_t *lo, size_t *n)
{
    if (req->sig.coll == TERSE_COLL_REDUCE) {
        *lo = 0;
        *n = j == req->root ? req->count : 0;
    } else if (req->counts) {
        *lo = req->displs[j];
        *n = req->counts[j];
    } else {
        size_t c = req->count / (size_t)req->comm->size;
        *lo = c * (size_t)j;
        *n = c;
    }
}

/* Does the caller's receive buffer hold the whole vector (and so serve as the work buffer)? */
static int rbuf_is_whole(terse_request_h req)
{
    return req->sbuf == req->rbuf ||
           (req->sig.coll == TERSE_COLL_REDUCE && req->root == req->comm->rank);
}

void *terse__rs_work(terse_request_h req)
{
    if (rbuf_is_whole(req))
        return req->rbuf;
    return terse__req_scratch2(req, req->count * terse_dtype_size(req->dtype));
}

/* [lo, lo + n) intersected with [a, a + b): returns the length, *out_lo its start. */
static size_t overlap(size_t lo, size_t n, size_t a, size_t b, size_t *out_lo)
{
    size_t s = lo > a ? lo : a, e = lo + n < a + b ? lo + n : a + b;
    *out_lo = s;
    return e > s ? e - s : 0;
}

/* The ring's chunk rank @q holds finished: (q + 1) % P. */
static void owned_chunk(terse_request_h req, int q, size_t *lo, size_t *n)
{
    int p = req->comm->size, c = (q + 1) % p;
    *lo = terse__part_off(req->count, p, c);
    *n = terse__part_off(req->count, p, c + 1) - *lo;
}

terse_status_t terse__rs_deliver(terse_request_h req, const void *work, int ring)
{
    terse_comm_h comm = req->comm;
    int p = comm->size, r = comm->rank, posted = 0;
    size_t es = terse_dtype_size(req->dtype), olo, on, lo, n, clo, cn;
    const char *w = work;
    out_range(req, r, &olo, &on);
    /* In place (or at a reduce's root) the output sits at its own offset of the vector. */
    char *out = on ? (char *)req->rbuf + (rbuf_is_whole(req) ? olo * es : 0) : NULL;
    if (!ring || p == 1) {
        if (on && out != w + olo * es)
            memmove(out, w + olo * es, on * es);
        return TERSE_OK;
    }
    /* Receives land straight in the output; the parts of the work buffer they overwrite in
     * place are other ranks' chunks, whose partial sums this rank already passed on. */
    for (int q = 0; q < p; q++) {
        owned_chunk(req, q, &clo, &cn);
        if (q != r && (n = overlap(olo, on, clo, cn, &lo)) != 0) {
            terse__req_recv(req, q, TERSE_STEP_DELIVER, out + (lo - olo) * es, n * es);
            posted++;
        }
    }
    owned_chunk(req, r, &clo, &cn);
    for (int j = 0; j < p; j++) {
        size_t jlo, jn;
        out_range(req, j, &jlo, &jn);
        if (j != r && (n = overlap(jlo, jn, clo, cn, &lo)) != 0) {
            terse__req_send(req, j, TERSE_STEP_DELIVER, w + lo * es, n * es);
            posted++;
        }
    }
    if ((n = overlap(olo, on, clo, cn, &lo)) != 0 && out + (lo - olo) * es != w + lo * es)
        memmove(out + (lo - olo) * es, w + lo * es, n * es);
    return posted ? TERSE_INPROGRESS : TERSE_OK;
}

static const terse__algo_t *select_algo(terse_comm_h comm, size_t total, terse_dtype_t dtype)
{
    const terse__algo_t *a = terse__allreduce_select(comm, total, total * terse_dtype_size(dtype));
    return a == &terse__allreduce_ring_algo ? &terse__rs_ring_algo : &terse__rs_rd_algo;
}

/* Creates and starts the request once the entry point checked its arguments; caller holds
 * nothing. @counts: reduce_scatter_v's array (copied), else NULL. */
static terse_status_t post(terse_comm_h comm, terse__coll_kind_t kind, const void *sbuf,
                           void *rbuf, size_t total, const size_t *counts, terse_dtype_t dtype,
                           terse_op_t op, int root, terse_request_h *req_p)
{
    terse_request_h req;
    size_t n = (size_t)comm->size;
    pthread_mutex_lock(&comm->lock);
    terse_status_t st = terse__req_create(comm, kind, select_algo(comm, total, dtype), &req);
    if (st != TERSE_OK)
        goto out;
    if (counts) {
        req->counts = terse__malloc(n * sizeof(size_t), "reduce_scatter_v counts");
        req->displs = terse__malloc(n * sizeof(size_t), "reduce_scatter_v displacements");
        if (!req->counts || !req->displs) {
            terse__req_destroy(req);
            st = TERSE_ERR_NO_MEMORY;
            goto out;
        }
        memcpy(req->counts, counts, n * sizeof(size_t));
        for (size_t i = 0, off = 0; i < n; off += counts[i], i++)
            req->displs[i] = off;
        req->sig.aux = terse__digest(counts, n * sizeof(size_t), 0);
    }
    req->sbuf = sbuf == TERSE_IN_PLACE ? rbuf : sbuf;
    req->rbuf = rbuf;
    req->count = total;
    req->dtype = dtype;
    req->op = op;
    req->root = root;
    /* What the caller passed: equal blocks report their block's count in mismatches. */
    req->sig.count = kind == TERSE_COLL_REDUCE_SCATTER ? total / n : total;
    req->sig.dtype = (uint8_t)dtype;
    req->sig.op = (uint8_t)op;
    req->sig.root = root;
    terse__req_start(req);
    *req_p = req;
out:
    pthread_mutex_unlock(&comm->lock);
    return st;
}

/* Checks every entry point shares; on failure the call is rejected (and announced). */
static terse_status_t check_common(terse_comm_h comm, terse__coll_kind_t kind, terse_op_t op,
                                   terse_request_h *req_p)
{
    if (!comm)
        return TERSE_ERR_INVALID_ARG;
    if (!req_p)
        return terse__coll_reject(comm, kind, TERSE_ERR_INVALID_ARG, "NULL request pointer");
    if ((unsigned)op >= TERSE_OP_LAST)
        return terse__coll_reject(comm, kind, TERSE_ERR_INVALID_ARG, "invalid op %d", (int)op);
    return TERSE_OK;
}

terse_status_t terse_ireduce_scatter(terse_comm_h comm, const void *sbuf, void *rbuf,
                                     size_t count, terse_dtype_t dtype, terse_op_t op,
                                     terse_request_h *req_p)
{
    const terse__coll_kind_t kind = TERSE_COLL_REDUCE_SCATTER;
    terse_status_t st = check_common(comm, kind, op, req_p);
    if (st == TERSE_OK)
        st = terse__coll_check(comm, kind, sbuf, rbuf, count, dtype, (size_t)comm->size);
    if (st != TERSE_OK)
        return st;
    return post(comm, kind, sbuf, rbuf, count * (size_t)comm->size, NULL, dtype, op, -1, req_p);
}

terse_status_t terse_ireduce_scatter_v(terse_comm_h comm, const void *sbuf, void *rbuf,
                                       const size_t *counts, terse_dtype_t dtype, terse_op_t op,
                                       terse_request_h *req_p)
{
    const terse__coll_kind_t kind = TERSE_COLL_REDUCE_SCATTER_V;
    terse_status_t st = check_common(comm, kind, op, req_p);
    if (st != TERSE_OK)
        return st;
    if (!counts)
        return terse__coll_reject(comm, kind, TERSE_ERR_INVALID_ARG, "NULL counts array");
    size_t total = 0;
    for (int i = 0; i < comm->size; i++) {
        if (counts[i] > SIZE_MAX / 8 - total)
            return terse__coll_reject(comm, kind, TERSE_ERR_INVALID_ARG,
                                      "counts overflow at rank %d", i);
        total += counts[i];
    }
    /* The receive buffer must hold this rank's block, or the whole input in place. */
    int in_place = sbuf == TERSE_IN_PLACE;
    size_t mine = in_place ? total : counts[comm->rank];
    st = terse__coll_check(comm, kind, sbuf, mine ? rbuf : sbuf, total, dtype, 1);
    if (st != TERSE_OK)
        return st;
    return post(comm, kind, sbuf, rbuf, total, counts, dtype, op, -1, req_p);
}

terse_status_t terse_ireduce(terse_comm_h comm, const void *sbuf, void *rbuf, size_t count,
                             terse_dtype_t dtype, terse_op_t op, int root, terse_request_h *req_p)
{
    const terse__coll_kind_t kind = TERSE_COLL_REDUCE;
    terse_status_t st = check_common(comm, kind, op, req_p);
    if (st != TERSE_OK)
        return st;
    if (root < 0 || root >= comm->size)
        return terse__coll_reject(comm, kind, TERSE_ERR_INVALID_ARG,
                                  "root %d out of range (%d ranks)", root, comm->size);
    int needs_rbuf = root == comm->rank || sbuf == TERSE_IN_PLACE;
    st = terse__coll_check(comm, kind, sbuf, needs_rbuf ? rbuf : sbuf, count, dtype, 1);
    if (st != TERSE_OK)
        return st;
    return post(comm, kind, sbuf, needs_rbuf ? rbuf : NULL, count, NULL, dtype, op, root, req_p);
}

terse_status_t terse_reduce_scatter(terse_comm_h comm, const void *sbuf, void *rbuf, size_t count,
                                    terse_dtype_t dtype, terse_op_t op)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_ireduce_scatter(comm, sbuf, rbuf, count, dtype, op, &req);
    return terse__wait_free(req, st);
}

terse_status_t terse_reduce_scatter_v(terse_comm_h comm, const void *sbuf, void *rbuf,
                                      const size_t *counts, terse_dtype_t dtype, terse_op_t op)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_ireduce_scatter_v(comm, sbuf, rbuf, counts, dtype, op, &req);
    return terse__wait_free(req, st);
}

terse_status_t terse_reduce(terse_comm_h comm, const void *sbuf, void *rbuf, size_t count,
                            terse_dtype_t dtype, terse_op_t op, int root)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_ireduce(comm, sbuf, rbuf, count, dtype, op, root, &req);
    return terse__wait_free(req, st);
}
