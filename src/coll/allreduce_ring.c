/* Ring allreduce for large messages: reduce-scatter then allgather over P balanced chunks.
 * Each chunk is reduced along the ring exactly once and its final owner's result is copied
 * everywhere, so every rank holds the same bits. Received partial sums land in scratch and
 * are combined straight from the send buffer into the receive buffer, so no extra copy.
 * reduce_scatter and reduce run this same code (terse__allreduce_ring_run, stopping after the
 * first half, rs_ring.c) so that their results are the allreduce's bits: an order of operands
 * changed here changes theirs with it, as it must. */
#include "algos.h"
#include "reduce.h"

typedef struct ring_state {
    int step; /* 0 .. 2P-3 */
} ring_state_t;

static int mod(int a, int p)
{
    return ((a % p) + p) % p;
}

terse_status_t terse__allreduce_ring_run(terse_request_h req, void *work, int rs_only)
{
    terse_comm_h comm = req->comm;
    ring_state_t *s = (ring_state_t *)req->state;
    int p = comm->size, r = comm->rank;
    int left = mod(r - 1, p), right = mod(r + 1, p);
    size_t esize = terse_dtype_size(req->dtype);
    char *rbuf = work;
    const char *sbuf = req->sbuf;

    if (p == 1) {
        if (rbuf != sbuf && req->count)
            __builtin_memcpy(rbuf, sbuf, req->count * esize);
        return TERSE_OK;
    }
    size_t max_chunk = (terse__part_off(req->count, p, 1) + 1) * esize;
    char *tmp = terse__req_scratch(req, max_chunk);
    if (!tmp)
        return req->status;

    if (req->round > 0) {
        int done = s->step - 1; /* the step whose transfers just completed */
        if (done < p - 1) {
            int c = mod(r - done - 1, p);
            size_t off = terse__part_off(req->count, p, c), n = terse__part_off(req->count, p, c + 1) - off;
            terse__reduce(rbuf + off * esize, tmp, sbuf + off * esize, n, req->dtype, req->op);
            if (done == p - 2 && req->op == TERSE_OP_AVG)
                terse__reduce_avg_finish(rbuf + off * esize, n, req->dtype, p);
        }
    }
    if (s->step == 2 * p - 2 || (rs_only && s->step == p - 1))
        return TERSE_OK;

    int st = s->step++;
    req->round++;
    if (st < p - 1) {
        /* reduce-scatter: pass on what we reduced last step (our own data at step 0) */
        int cs = mod(r - st, p), cr = mod(r - st - 1, p);
        size_t so = terse__part_off(req->count, p, cs), sn = terse__part_off(req->count, p, cs + 1) - so;
        size_t rn = terse__part_off(req->count, p, cr + 1) - terse__part_off(req->count, p, cr);
        const char *src = st == 0 ? sbuf : rbuf;
        terse__req_recv(req, left, (uint16_t)st, tmp, rn * esize);
        terse__req_send(req, right, (uint16_t)st, src + so * esize, sn * esize);
    } else {
        /* allgather: forward finished chunks, receive straight into place */
        int k = st - (p - 1);
        int cs = mod(r + 1 - k, p), cr = mod(r - k, p);
        size_t so = terse__part_off(req->count, p, cs), sn = terse__part_off(req->count, p, cs + 1) - so;
        size_t ro = terse__part_off(req->count, p, cr), rn = terse__part_off(req->count, p, cr + 1) - ro;
        terse__req_recv(req, left, (uint16_t)st, rbuf + ro * esize, rn * esize);
        terse__req_send(req, right, (uint16_t)st, rbuf + so * esize, sn * esize);
    }
    return TERSE_INPROGRESS;
}

static terse_status_t ring_progress(terse_request_h req)
{
    return terse__allreduce_ring_run(req, req->rbuf, 0);
}

const terse__algo_t terse__allreduce_ring_algo = {
    .name = "ring",
    .id = TERSE_ALGO_ALLREDUCE_RING,
    .progress = ring_progress,
};
