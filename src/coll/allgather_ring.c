/* Ring allgather(v): P-1 steps, each forwarding the block received in the previous step. */
#include "algos.h"

#include <string.h>

static int mod(int a, int p)
{
    return ((a % p) + p) % p;
}

static size_t block_count(terse_request_h req, int i)
{
    return req->counts ? req->counts[i] : req->count;
}

static size_t block_off(terse_request_h req, int i)
{
    return req->displs ? req->displs[i] : req->count * (size_t)i;
}

static terse_status_t ag_progress(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    int p = comm->size, r = comm->rank;
    size_t esize = terse_dtype_size(req->dtype);
    char *rbuf = req->rbuf;
    int st = req->round;

    if (st == 0) {
        size_t n = block_count(req, r) * esize;
        char *dst = rbuf + block_off(req, r) * esize;
        if (n && dst != (const char *)req->sbuf)
            memmove(dst, req->sbuf, n);
    }
    if (st == p - 1)
        return TERSE_OK;
    int cs = mod(r - st, p), cr = mod(r - st - 1, p);
    terse__req_recv(req, mod(r - 1, p), (uint16_t)st, rbuf + block_off(req, cr) * esize,
                    block_count(req, cr) * esize);
    terse__req_send(req, mod(r + 1, p), (uint16_t)st, rbuf + block_off(req, cs) * esize,
                    block_count(req, cs) * esize);
    req->round++;
    return TERSE_INPROGRESS;
}

const terse__algo_t terse__allgather_ring_algo = {
    .name = "ring",
    .id = TERSE_ALGO_ALLGATHER_RING,
    .progress = ag_progress,
};

terse_status_t terse_iallgather(terse_comm_h comm, const void *sbuf, void *rbuf, size_t count,
                                terse_dtype_t dtype, terse_request_h *req_p)
{
    terse_request_h req;
    terse_status_t st = terse__coll_check(comm, TERSE_COLL_ALLGATHER, sbuf, rbuf, count, dtype,
                                          comm ? (size_t)comm->size : 1);
    if (st != TERSE_OK)
        return st;
    if (!req_p)
        return terse__coll_reject(comm, TERSE_COLL_ALLGATHER, TERSE_ERR_INVALID_ARG,
                                  "NULL request pointer");
    pthread_mutex_lock(&comm->lock);
    st = terse__req_create(comm, TERSE_COLL_ALLGATHER, &terse__allgather_ring_algo, &req);
    if (st == TERSE_OK) {
        req->sbuf = sbuf == TERSE_IN_PLACE ? (char *)rbuf + count * terse_dtype_size(dtype) * (size_t)comm->rank : sbuf;
        req->rbuf = rbuf;
        req->count = count;
        req->dtype = dtype;
        req->sig.count = count;
        req->sig.dtype = (uint8_t)dtype;
        terse__req_start(req);
        *req_p = req;
    }
    pthread_mutex_unlock(&comm->lock);
    return st;
}

terse_status_t terse_iallgatherv(terse_comm_h comm, const void *sbuf, void *rbuf,
                                 const size_t *counts, const size_t *displs, terse_dtype_t dtype,
                                 terse_request_h *req_p)
{
    terse_request_h req;
    if (!comm)
        return TERSE_ERR_INVALID_ARG;
    if (!counts || !req_p)
        return terse__coll_reject(comm, TERSE_COLL_ALLGATHERV, TERSE_ERR_INVALID_ARG,
                                  "NULL %s", counts ? "request pointer" : "counts array");
    size_t total = 0;
    for (int i = 0; i < comm->size; i++) {
        if (counts[i] > SIZE_MAX / 8 - total)
            return terse__coll_reject(comm, TERSE_COLL_ALLGATHERV, TERSE_ERR_INVALID_ARG,
                                      "counts overflow at rank %d", i);
        total += counts[i];
    }
    terse_status_t st = terse__coll_check(comm, TERSE_COLL_ALLGATHERV, rbuf, rbuf, total, dtype, 1);
    if (st != TERSE_OK)
        return st;
    if (counts[comm->rank] && !sbuf)
        return terse__coll_reject(comm, TERSE_COLL_ALLGATHERV, TERSE_ERR_INVALID_ARG,
                                  "NULL send buffer");
    pthread_mutex_lock(&comm->lock);
    st = terse__req_create(comm, TERSE_COLL_ALLGATHERV, &terse__allgather_ring_algo, &req);
    if (st == TERSE_OK) {
        size_t n = (size_t)comm->size;
        req->counts = terse__malloc(n * sizeof(size_t), "allgatherv counts");
        req->displs = terse__malloc(n * sizeof(size_t), "allgatherv displacements");
        if (!req->counts || !req->displs) {
            terse__req_destroy(req);
            pthread_mutex_unlock(&comm->lock);
            return TERSE_ERR_NO_MEMORY;
        }
        memcpy(req->counts, counts, n * sizeof(size_t));
        for (size_t i = 0, off = 0; i < n; off += counts[i], i++)
            req->displs[i] = displs ? displs[i] : off;
        size_t esize = terse_dtype_size(dtype);
        req->sbuf = sbuf == TERSE_IN_PLACE ? (char *)rbuf + req->displs[comm->rank] * esize : sbuf;
        req->rbuf = rbuf;
        req->dtype = dtype;
        req->sig.count = total;
        req->sig.dtype = (uint8_t)dtype;
        req->sig.aux = terse__digest(counts, n * sizeof(size_t), 0);
        terse__req_start(req);
        *req_p = req;
    }
    pthread_mutex_unlock(&comm->lock);
    return st;
}

terse_status_t terse_allgather(terse_comm_h comm, const void *sbuf, void *rbuf, size_t count,
                               terse_dtype_t dtype)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_iallgather(comm, sbuf, rbuf, count, dtype, &req);
    return terse__wait_free(req, st);
}

terse_status_t terse_allgatherv(terse_comm_h comm, const void *sbuf, void *rbuf,
                                const size_t *counts, const size_t *displs, terse_dtype_t dtype)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_iallgatherv(comm, sbuf, rbuf, counts, displs, dtype, &req);
    return terse__wait_free(req, st);
}
