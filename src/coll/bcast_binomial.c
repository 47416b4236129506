/* Binomial-tree broadcast: log2(P) rounds; a rank forwards to its whole subtree at once. */
#include "algos.h"

static terse_status_t bcast_progress(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    int p = comm->size;
    int vr = (comm->rank - req->root + p) % p; /* rank relative to the root */
    size_t bytes = req->count * terse_dtype_size(req->dtype);
    int lowbit = 1;

    while (lowbit < p && !(vr & lowbit))
        lowbit <<= 1;
    if (req->round == 0 && vr != 0) {
        int parent = ((vr - lowbit) + req->root) % p;
        terse__req_recv(req, parent, 0, req->rbuf, bytes);
        req->round = 1;
        return TERSE_INPROGRESS;
    }
    if (req->round <= 1) {
        req->round = 2;
        /* Children are vr + m for every m below our lowest set bit (root: below P). */
        for (int m = (vr == 0 ? 1 : 1); m < lowbit && vr + m < p; m <<= 1)
            terse__req_send(req, (vr + m + req->root) % p, 0, req->rbuf, bytes);
        if (req->nx)
            return TERSE_INPROGRESS;
    }
    return TERSE_OK;
}

const terse__algo_t terse__bcast_binomial_algo = {
    .name = "binomial",
    .id = TERSE_ALGO_BCAST_BINOMIAL,
    .progress = bcast_progress,
};

terse_status_t terse_ibcast(terse_comm_h comm, void *buf, size_t count, terse_dtype_t dtype,
                            int root, terse_request_h *req_p)
{
    terse_request_h req;
    terse_status_t st = terse__coll_check(comm, TERSE_COLL_BCAST, buf, buf, count, dtype, 1);
    if (st != TERSE_OK)
        return st;
    if (root < 0 || root >= comm->size)
        return terse__coll_reject(comm, TERSE_COLL_BCAST, TERSE_ERR_INVALID_ARG,
                                  "root %d outside 0..%d", root, comm->size - 1);
    if (!req_p)
        return terse__coll_reject(comm, TERSE_COLL_BCAST, TERSE_ERR_INVALID_ARG,
                                  "NULL request pointer");
    pthread_mutex_lock(&comm->lock);
    st = terse__req_create(comm, TERSE_COLL_BCAST, &terse__bcast_binomial_algo, &req);
    if (st == TERSE_OK) {
        req->sbuf = buf;
        req->rbuf = buf;
        req->count = count;
        req->dtype = dtype;
        req->root = root;
        req->sig.count = count;
        req->sig.dtype = (uint8_t)dtype;
        req->sig.root = root;
        terse__req_start(req);
        *req_p = req;
    }
    pthread_mutex_unlock(&comm->lock);
    return st;
}

terse_status_t terse_bcast(terse_comm_h comm, void *buf, size_t count, terse_dtype_t dtype,
                           int root)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_ibcast(comm, buf, count, dtype, root, &req);
    return terse__wait_free(req, st);
}
