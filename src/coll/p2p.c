/* Tagged point-to-point send and receive (terse_isend / terse_irecv).
 *
 * A message is a one-round request of the engine (request.c), so it gets the header checks,
 * the eager/rendezvous split, peer-failure detection and the timeout of the collectives. What
 * differs is the sequence number: collectives take the communicator's next one, which every
 * rank counts alike; a message takes (tag << 16) | n, with n counting the messages of that
 * (peer, tag) in that direction on each side (the n-th send matches the n-th receive). The two
 * numberings would collide on one communicator, so point-to-point gets one of its own (see
 * terse/p2p.h). Failures are local (req->quiet): an abort notice carries only a sequence number,
 * which other pairs of ranks may be using too. */
#include "algos.h"

#include <terse/p2p.h>

/* Message counts of one (peer, tag), both directions. */
typedef struct terse__p2p_chan {
    int peer, tag;
    uint32_t sent, received;
    struct terse__p2p_chan *next;
} terse__p2p_chan_t;

static terse__p2p_chan_t *chan_of(terse_comm_h comm, int peer, int tag)
{
    for (terse__p2p_chan_t *c = comm->p2p_chans; c; c = c->next) {
        if (c->peer == peer && c->tag == tag)
            return c;
    }
    terse__p2p_chan_t *c = terse__calloc(1, sizeof(*c), "point-to-point channel");
    if (!c)
        return NULL;
    c->peer = peer;
    c->tag = tag;
    c->next = comm->p2p_chans;
    comm->p2p_chans = c;
    return c;
}

void terse__p2p_fini(terse_comm_h comm)
{
    while (comm->p2p_chans) {
        terse__p2p_chan_t *c = comm->p2p_chans;
        comm->p2p_chans = c->next;
        terse__free(c);
    }
}

typedef struct p2p_state {
    int is_recv; /* 0 send, 1 receive */
} p2p_state_t;

static p2p_state_t *p2p_state(terse_request_h req)
{
    _Static_assert(sizeof(p2p_state_t) <= sizeof(req->state), "state fits");
    return (p2p_state_t *)req->state;
}

/* round 0 posts the one transfer; round 1 is done */
static terse_status_t p2p_progress(terse_request_h req)
{
    if (req->round++ > 0)
        return TERSE_OK;
    size_t bytes = req->count * terse_dtype_size(req->dtype);
    if (p2p_state(req)->is_recv)
        terse__req_recv(req, req->root, 0, req->rbuf, bytes);
    else
        terse__req_send(req, req->root, 0, req->sbuf, bytes);
    return TERSE_INPROGRESS;
}

static const terse__algo_t p2p_algo = {
    .name = "p2p",
    .id = TERSE_ALGO_P2P,
    .progress = p2p_progress,
};

static terse_status_t post(terse_comm_h comm, int is_recv, void *buf, size_t count,
                           terse_dtype_t dtype, int peer, int tag, terse_request_h *req_p)
{
    const char *what = is_recv ? "receive" : "send";
    if (!comm || !req_p)
        return TERSE_ERR_INVALID_ARG;
    size_t esize = terse_dtype_size(dtype);
    terse_status_t st = TERSE_OK;
    /* local argument errors: the peer is not waiting in a collective, so nothing to announce */
    if (!esize)
        st = TERSE_ERR_INVALID_ARG, terse__comm_set_error(comm, "%s: invalid dtype %d", what, (int)dtype);
    else if (peer < 0 || peer >= comm->size || peer == comm->rank)
        st = TERSE_ERR_INVALID_ARG,
        terse__comm_set_error(comm, "%s on rank %d: peer %d is not another rank of 0..%d", what,
                              comm->rank, peer, comm->size - 1);
    else if (tag < 0 || tag > TERSE_TAG_MAX)
        st = TERSE_ERR_INVALID_ARG,
        terse__comm_set_error(comm, "%s: tag %d is outside 0..%d", what, tag, TERSE_TAG_MAX);
    else if (count && !buf)
        st = TERSE_ERR_INVALID_ARG, terse__comm_set_error(comm, "%s: NULL buffer", what);
    else if (count > (SIZE_MAX / 4) / esize)
        st = TERSE_ERR_INVALID_ARG, terse__comm_set_error(comm, "%s: count %zu overflows", what, count);
    if (st != TERSE_OK)
        return st;
    pthread_mutex_lock(&comm->lock);
    if (comm->next_seq != 0) {
        terse__comm_set_error(comm, "%s on rank %d: this communicator ran collectives; "
                                    "point-to-point needs one of its own (terse_comm_dup)",
                              what, comm->rank);
        pthread_mutex_unlock(&comm->lock);
        return TERSE_ERR_INVALID_ARG;
    }
    terse__p2p_chan_t *c = chan_of(comm, peer, tag);
    terse_request_h req = NULL;
    st = c ? terse__req_create(comm, TERSE_COLL_P2P, &p2p_algo, &req) : TERSE_ERR_NO_MEMORY;
    if (st == TERSE_OK) {
        comm->p2p_used = 1;
        uint32_t n = is_recv ? c->received++ : c->sent++;
        req->quiet = 1;
        req->sbuf = buf;
        req->rbuf = buf;
        req->count = count;
        req->dtype = dtype;
        p2p_state(req)->is_recv = is_recv != 0;
        req->root = peer;
        req->sig.count = count;
        req->sig.dtype = (uint8_t)dtype;
        req->sig.aux = (uint64_t)tag;
        terse__req_start_at(req, ((uint32_t)tag << 16) | (n & 0xffffu));
        *req_p = req;
    }
    pthread_mutex_unlock(&comm->lock);
    return st;
}

terse_status_t terse_isend(terse_comm_h comm, const void *buf, size_t count, terse_dtype_t dtype,
                           int dst, int tag, terse_request_h *req_p)
{
    return post(comm, 0, (void *)buf, count, dtype, dst, tag, req_p);
}

terse_status_t terse_irecv(terse_comm_h comm, void *buf, size_t count, terse_dtype_t dtype,
                           int src, int tag, terse_request_h *req_p)
{
    return post(comm, 1, buf, count, dtype, src, tag, req_p);
}

terse_status_t terse_send(terse_comm_h comm, const void *buf, size_t count, terse_dtype_t dtype,
                          int dst, int tag)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_isend(comm, buf, count, dtype, dst, tag, &req);
    return terse__wait_free(req, st);
}

terse_status_t terse_recv(terse_comm_h comm, void *buf, size_t count, terse_dtype_t dtype,
                          int src, int tag)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_irecv(comm, buf, count, dtype, src, tag, &req);
    return terse__wait_free(req, st);
}
