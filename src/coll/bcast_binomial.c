/* Binomial-tree broadcast: log2(P) rounds; a rank forwards to its whole subtree at once. */
#include "algos.h"

/* Rounds: receive from the parent; send to the children and collect their acks; ack the
 * parent and wait for its "done"; pass "done" on. The acks let a rank that believes it is
 * the root learn that a child disagrees (the child's own data message lands in the ack
 * receive and fails the header check), and "done" only starts once every rank acked, so a
 * disagreement fails the call on every rank rather than on some. Costs two extra latencies
 * of empty messages, acceptable for the broadcasts training does (parameters, state). */
static void post_children(terse_request_h req, int vr, int lowbit, uint16_t step, int acks)
{
    int p = req->comm->size;
    size_t bytes = step == 0 ? req->count * terse_dtype_size(req->dtype) : 0;
    for (int m = 1; m < lowbit && vr + m < p; m <<= 1) {
        int child = (vr + m + req->root) % p;
        terse__req_send(req, child, step, step == 0 ? req->rbuf : NULL, bytes);
        if (acks)
            terse__req_recv_any_step(req, child, 1, NULL, 0);
    }
}

static terse_status_t bcast_progress(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    int p = comm->size;
    int vr = (comm->rank - req->root + p) % p; /* rank relative to the root */
    int lowbit = 1;

    while (lowbit < p && !(vr & lowbit))
        lowbit <<= 1;
    int parent = ((vr - lowbit) + req->root) % p;
    if (req->round == 0) {
        req->round = 1;
        if (vr != 0) {
            terse__req_recv(req, parent, 0, req->rbuf, req->count * terse_dtype_size(req->dtype));
            return TERSE_INPROGRESS;
        }
    }
    if (req->round == 1) {
        req->round = 2;
        post_children(req, vr, lowbit, 0, 1);
        if (req->nx)
            return TERSE_INPROGRESS;
    }
    if (req->round == 2) {
        req->round = 3;
        if (vr != 0) {
            terse__req_send(req, parent, 1, NULL, 0);
            terse__req_recv(req, parent, 2, NULL, 0);
            return TERSE_INPROGRESS;
        }
    }
    if (req->round == 3) {
        req->round = 4;
        post_children(req, vr, lowbit, 2, 0);
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
