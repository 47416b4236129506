/* Dissemination barrier: ceil(log2 P) rounds of empty messages, any rank count. */
#include "algos.h"

static terse_status_t barrier_progress(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    int p = comm->size, r = comm->rank;
    int dist = 1 << req->round;
    if (dist >= p)
        return TERSE_OK;
    terse__req_send(req, (r + dist) % p, (uint16_t)req->round, NULL, 0);
    terse__req_recv(req, (r - dist + p) % p, (uint16_t)req->round, NULL, 0);
    req->round++;
    return TERSE_INPROGRESS;
}

const terse__algo_t terse__barrier_dissemination_algo = {
    .name = "dissemination",
    .id = TERSE_ALGO_BARRIER_DISSEMINATION,
    .progress = barrier_progress,
};

terse_status_t terse_ibarrier(terse_comm_h comm, terse_request_h *req_p)
{
    terse_request_h req;
    if (!comm)
        return TERSE_ERR_INVALID_ARG;
    if (!req_p)
        return terse__coll_reject(comm, TERSE_COLL_BARRIER, TERSE_ERR_INVALID_ARG,
                                  "NULL request pointer");
    pthread_mutex_lock(&comm->lock);
    terse_status_t st = terse__req_create(comm, TERSE_COLL_BARRIER,
                                          &terse__barrier_dissemination_algo, &req);
    if (st == TERSE_OK) {
        terse__req_start(req);
        *req_p = req;
    }
    pthread_mutex_unlock(&comm->lock);
    return st;
}

terse_status_t terse_barrier(terse_comm_h comm)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_ibarrier(comm, &req);
    return terse__wait_free(req, st);
}
