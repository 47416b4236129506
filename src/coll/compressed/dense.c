/* Dense fallback, for when compression would not pay (density after aggregation near 1, or
 * codecs that are dense anyway): every rank decodes its own compressed message into a dense
 * C(Delta_k), sends each owner its element range (alltoall), the owner adds the K ranges in
 * rank order and plays the server, and the results are allgathered densely. The values that
 * move are the compressed ones and they are added in the same order, so the bits equal the
 * sparse algorithms' (adding the +-0 a sparse message does not carry never changes a sum that
 * starts at +0). */
#include "compressed.h"

#include <string.h>

typedef enum {
    DENSE_START,      /* nothing posted yet */
    DENSE_RANGES,     /* alltoall posted: each owner's element range of C(Delta_k) */
    DENSE_RESULTS,    /* allgather posted: the owners' results */
    DENSE_CONFIRMING, /* the confirmation round is posted */
} dense_phase_t;

typedef struct dense_state {
    dense_phase_t phase;
} dense_state_t;

static dense_state_t *dense_state(terse_request_h req)
{
    _Static_assert(sizeof(dense_state_t) <= sizeof(req->state), "state fits");
    return (dense_state_t *)req->state;
}

static size_t own_len(const terse__cplan_t *p, int r)
{
    return p->geo.own_elem[r + 1] - p->geo.own_elem[r];
}

/* C(Delta_k) decoded densely, then each owner's range to its owner. */
static terse_status_t post_ranges(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t wlen;
    if (terse__cplan_layout(req, own_len(p, me) * sizeof(float), TERSE_CPLAN_DENSE) != TERSE_OK ||
        terse__cplan_compress(req, 0, p->geo.nseg) != TERSE_OK)
        return req->status;
    memset(p->buf.cdense, 0, p->geo.nelems * sizeof(float));
    const uint8_t *w = terse__cplan_wpart(p, 0, p->geo.nseg, &wlen);
    if (terse__cplan_add_packed(req, w, wlen, 0, p->geo.nseg, p->buf.cdense, me, 0) != TERSE_OK)
        return req->status;
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_recv(req, q, 0, p->buf.recv[q], own_len(p, me) * sizeof(float));
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 0, p->buf.cdense + p->geo.own_elem[q],
                              own_len(p, q) * sizeof(float));
    return TERSE_OK;
}

/* This rank's range from everyone: add in rank order, serve, send the result to everyone. */
static terse_status_t serve_and_post_results(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t e0 = p->geo.own_elem[me], n = own_len(p, me);
    float *acc = p->buf.acc + e0;
    memset(acc, 0, n * sizeof(float));
    for (int q = 0; q < K; q++) {
        const float *src = q == me ? p->buf.cdense + e0 : (const float *)p->buf.recv[q];
        for (size_t i = 0; i < n; i++)
            acc[i] += src[i];
    }
    if (terse__cplan_serve(req, p->geo.own_seg[me], p->geo.own_seg[me + 1]) != TERSE_OK)
        return req->status;
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_recv(req, q, 1, p->buf.out + p->geo.own_elem[q],
                              own_len(p, q) * sizeof(float));
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 1, p->buf.out + e0, n * sizeof(float));
    return TERSE_OK;
}

static terse_status_t dense_progress(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    dense_state_t *s = dense_state(req);
    terse_status_t st;

    switch (s->phase) {
    case DENSE_START:
        s->phase = DENSE_RANGES;
        if (post_ranges(req) != TERSE_OK)
            return req->status;
        if (p->geo.nparts > 1)
            return TERSE_INPROGRESS;
        /* fall through */
    case DENSE_RANGES:
        s->phase = DENSE_RESULTS;
        if (serve_and_post_results(req) != TERSE_OK)
            return req->status;
        if (p->geo.nparts > 1)
            return TERSE_INPROGRESS;
        /* fall through */
    case DENSE_RESULTS:
        s->phase = DENSE_CONFIRMING;
        st = terse__cplan_confirm(req);
        if (st != TERSE_OK)
            return st;
        /* fall through */
    case DENSE_CONFIRMING:
    default:
        return terse__cplan_finish(req, terse__cplan_commit, p->geo.own_seg[p->geo.me],
                                   p->geo.own_seg[p->geo.me + 1]);
    }
}

const terse__algo_t terse__cmp_dense_algo = {
    .name = "dense",
    .id = TERSE_ALGO_CMP_DENSE,
    .progress = dense_progress,
    .cleanup = terse__cplan_cleanup,
};
