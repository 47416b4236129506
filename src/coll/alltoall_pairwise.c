/* Alltoall(v): every pair exchanges directly; all transfers posted in one round so UCX
 * overlaps them. The own block is copied locally. */
#include "algos.h"

#include <string.h>

static terse_status_t a2a_progress(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    int p = comm->size, r = comm->rank;
    size_t esize = terse_dtype_size(req->dtype);
    const char *sbuf = req->sbuf;
    char *rbuf = req->rbuf;
    size_t *sc = req->counts, *sd = req->displs, *rc = req->rcounts, *rd = req->rdispls;

    if (req->round > 0)
        return TERSE_OK;
    req->round = 1;
    if (sc[r])
        memmove(rbuf + rd[r] * esize, sbuf + sd[r] * esize, sc[r] * esize);
    /* Staggered order so ranks do not all hit rank 0 first. */
    for (int k = 1; k < p; k++) {
        int to = (r + k) % p, from = (r - k + p) % p;
        terse__req_recv(req, from, 0, rbuf + rd[from] * esize, rc[from] * esize);
        terse__req_send(req, to, 0, sbuf + sd[to] * esize, sc[to] * esize);
    }
    return p > 1 ? TERSE_INPROGRESS : TERSE_OK;
}

const terse__algo_t terse__alltoall_pairwise_algo = {
    .name = "pairwise",
    .id = TERSE_ALGO_ALLTOALL_PAIRWISE,
    .progress = a2a_progress,
};

static size_t *copy_or_pack(const size_t *v, const size_t *counts, int n, const char *what)
{
    size_t *out = terse__malloc((size_t)n * sizeof(size_t), what);
    if (!out)
        return NULL;
    for (int i = 0, off = 0; i < n; off += (int)counts[i], i++)
        out[i] = v ? v[i] : (size_t)off;
    return out;
}

static terse_status_t post(terse_comm_h comm, terse__coll_kind_t kind, const void *sbuf,
                           const size_t *scounts, const size_t *sdispls, void *rbuf,
                           const size_t *rcounts, const size_t *rdispls, terse_dtype_t dtype,
                           size_t sig_count, uint64_t aux, terse_request_h *req_p)
{
    terse_request_h req;
    int n = comm->size;
    pthread_mutex_lock(&comm->lock);
    terse_status_t st = terse__req_create(comm, kind, &terse__alltoall_pairwise_algo, &req);
    if (st == TERSE_OK) {
        req->counts = copy_or_pack(scounts, scounts, n, "alltoall send counts");
        req->displs = copy_or_pack(sdispls, scounts, n, "alltoall send displacements");
        req->rcounts = copy_or_pack(rcounts, rcounts, n, "alltoall receive counts");
        req->rdispls = copy_or_pack(rdispls, rcounts, n, "alltoall receive displacements");
        if (!req->counts || !req->displs || !req->rcounts || !req->rdispls) {
            terse__req_destroy(req);
            pthread_mutex_unlock(&comm->lock);
            return TERSE_ERR_NO_MEMORY;
        }
        req->sbuf = sbuf;
        req->rbuf = rbuf;
        req->dtype = dtype;
        req->sig.count = sig_count;
        req->sig.dtype = (uint8_t)dtype;
        req->sig.aux = aux;
        terse__req_start(req);
        *req_p = req;
    }
    pthread_mutex_unlock(&comm->lock);
    return st;
}

terse_status_t terse_ialltoall(terse_comm_h comm, const void *sbuf, void *rbuf, size_t count,
                               terse_dtype_t dtype, terse_request_h *req_p)
{
    terse_status_t st = terse__coll_check(comm, TERSE_COLL_ALLTOALL, sbuf, rbuf, count, dtype,
                                          comm ? (size_t)comm->size : 1);
    if (st != TERSE_OK)
        return st;
    if (!req_p || sbuf == rbuf)
        return terse__coll_reject(comm, TERSE_COLL_ALLTOALL, TERSE_ERR_INVALID_ARG, "%s",
                                  req_p ? "send and receive buffers must differ"
                                        : "NULL request pointer");
    size_t *counts = terse__malloc((size_t)comm->size * sizeof(size_t), "alltoall counts");
    if (!counts)
        return TERSE_ERR_NO_MEMORY;
    for (int i = 0; i < comm->size; i++)
        counts[i] = count;
    st = post(comm, TERSE_COLL_ALLTOALL, sbuf, counts, NULL, rbuf, counts, NULL, dtype, count, 0,
              req_p);
    terse__free(counts);
    return st;
}

terse_status_t terse_ialltoallv(terse_comm_h comm, const void *sbuf, const size_t *scounts,
                                const size_t *sdispls, void *rbuf, const size_t *rcounts,
                                const size_t *rdispls, terse_dtype_t dtype, terse_request_h *req_p)
{
    if (!comm)
        return TERSE_ERR_INVALID_ARG;
    if (!scounts || !rcounts || !req_p)
        return terse__coll_reject(comm, TERSE_COLL_ALLTOALLV, TERSE_ERR_INVALID_ARG,
                                  "NULL counts array or request pointer");
    size_t stot = 0, rtot = 0;
    for (int i = 0; i < comm->size; i++) {
        if (scounts[i] > SIZE_MAX / 16 - stot || rcounts[i] > SIZE_MAX / 16 - rtot)
            return terse__coll_reject(comm, TERSE_COLL_ALLTOALLV, TERSE_ERR_INVALID_ARG,
                                      "counts overflow at rank %d", i);
        stot += scounts[i];
        rtot += rcounts[i];
    }
    terse_status_t st = terse__coll_check(comm, TERSE_COLL_ALLTOALLV, stot ? sbuf : rbuf,
                                          rtot ? rbuf : sbuf, stot > rtot ? stot : rtot, dtype, 1);
    if (st != TERSE_OK)
        return st;
    if ((stot && !sbuf) || (rtot && !rbuf))
        return terse__coll_reject(comm, TERSE_COLL_ALLTOALLV, TERSE_ERR_INVALID_ARG, "NULL buffer");
    /* Counts legitimately differ across ranks, so the header's count is not compared;
     * a size disagreement between a pair shows up as a length mismatch. */
    return post(comm, TERSE_COLL_ALLTOALLV, sbuf, scounts, sdispls, rbuf, rcounts, rdispls, dtype,
                0, 0, req_p);
}

terse_status_t terse_alltoall(terse_comm_h comm, const void *sbuf, void *rbuf, size_t count,
                              terse_dtype_t dtype)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_ialltoall(comm, sbuf, rbuf, count, dtype, &req);
    return terse__wait_free(req, st);
}

terse_status_t terse_alltoallv(terse_comm_h comm, const void *sbuf, const size_t *scounts,
                               const size_t *sdispls, void *rbuf, const size_t *rcounts,
                               const size_t *rdispls, terse_dtype_t dtype)
{
    terse_request_h req = NULL;
    terse_status_t st =
        terse_ialltoallv(comm, sbuf, scounts, sdispls, rbuf, rcounts, rdispls, dtype, &req);
    return terse__wait_free(req, st);
}
