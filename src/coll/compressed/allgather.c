/* The allgather schedule (sparse_allgather, sign_allgather): every rank sends its whole
 * compressed message (all blocks, all tensors) to every other rank, then sums the K messages
 * in rank order and, double-way, plays the server for every block redundantly. Best for few
 * ranks or small messages: one round of latency, K-1 messages in and out per rank. The
 * message goes out in chunks of segments (TERSE_PIPELINE_BYTES of input each), each sent as
 * soon as it is compressed, so the next chunk compresses while the earlier ones travel; the
 * sum is still in rank order per element.
 *
 * Top-K pairs or bit-packed signs with per-block scales (n/8 bytes per rank per peer): the
 * schedule is the same, the two are separate algorithms so they can be selected, reported and
 * matched across ranks by name. */
#include "compressed.h"

typedef enum {
    AG_START,      /* nothing posted yet */
    AG_GATHERING,  /* every chunk posted to and from every peer */
    AG_CONFIRMING, /* everything validated and served; the confirmation round is posted */
} ag_phase_t;

typedef struct ag_state {
    ag_phase_t phase;
} ag_state_t;

static ag_state_t *ag_state(terse_request_h req)
{
    _Static_assert(sizeof(ag_state_t) <= sizeof(req->state), "state fits");
    return (ag_state_t *)req->state;
}

/* Receives first (so nothing waits unexpected), then each chunk leaves as it is compressed. */
static terse_status_t post_chunks(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int K = p->geo.nparts, me = p->geo.me;
    for (size_t c = 0; c < p->geo.nchunk && K > 1; c++)
        for (int q = 0; q < K; q++)
            if (q != me)
                p->buf.recv_at[c * (size_t)K + (size_t)q] =
                    terse__cplan_recv_var(req, q, (uint16_t)c, p->buf.recv[q] + p->geo.chunk_cap[c],
                                          p->geo.chunk_cap[c + 1] - p->geo.chunk_cap[c]);
    for (size_t c = 0; c < p->geo.nchunk; c++) {
        size_t lo = p->geo.chunk_seg[c], hi = p->geo.chunk_seg[c + 1], wlen;
        if (terse__cplan_compress(req, lo, hi) != TERSE_OK)
            return req->status;
        const uint8_t *w = terse__cplan_wpart(p, lo, hi, &wlen);
        for (int i = 1; i < K; i++) /* everyone starts with a different peer */
            terse__cplan_send(req, (me + i) % K, (uint16_t)c, w, wlen);
    }
    return TERSE_OK;
}

/* Every message arrived: index them in rank order 0..K-1, then sum and serve. */
static terse_status_t reduce_all(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int K = p->geo.nparts, me = p->geo.me;
    for (int q = 0; q < K; q++) {
        for (size_t c = 0; c < p->geo.nchunk; c++) {
            size_t lo = p->geo.chunk_seg[c], hi = p->geo.chunk_seg[c + 1], wlen;
            const uint8_t *buf = p->buf.recv[q] + p->geo.chunk_cap[c];
            if (q == me)
                buf = terse__cplan_wpart(p, lo, hi, &wlen);
            else
                wlen = terse__req_received_len(req, p->buf.recv_at[c * (size_t)K + (size_t)q]);
            if (terse__cplan_split(req, q, buf, wlen, lo, hi) != TERSE_OK)
                return req->status;
        }
    }
    return terse__cplan_reduce_serve(req, 0, p->geo.nseg);
}

static terse_status_t allgather_progress(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    ag_state_t *s = ag_state(req);
    terse_status_t st;

    switch (s->phase) {
    case AG_START:
        if (terse__cplan_layout(req, p->geo.nparts > 1 ? p->geo.chunk_cap[p->geo.nchunk] : 0,
                                TERSE_CPLAN_SERVER_MSGS) != TERSE_OK)
            return req->status;
        s->phase = AG_GATHERING;
        if (post_chunks(req) != TERSE_OK)
            return req->status;
        if (p->geo.nparts > 1)
            return TERSE_INPROGRESS;
        /* fall through */
    case AG_GATHERING:
        if (reduce_all(req) != TERSE_OK)
            return req->status;
        s->phase = AG_CONFIRMING;
        st = terse__cplan_confirm(req);
        if (st != TERSE_OK)
            return st;
        /* fall through */
    case AG_CONFIRMING:
    default:
        return terse__cplan_finish(req, terse__cplan_commit, 0, p->geo.nseg);
    }
}

const terse__algo_t terse__cmp_sparse_allgather_algo = {
    .name = "sparse_allgather",
    .id = TERSE_ALGO_CMP_SPARSE_ALLGATHER,
    .progress = allgather_progress,
    .cleanup = terse__cplan_cleanup,
};

const terse__algo_t terse__cmp_sign_allgather_algo = {
    .name = "sign_allgather",
    .id = TERSE_ALGO_CMP_SIGN_ALLGATHER,
    .progress = allgather_progress,
    .cleanup = terse__cplan_cleanup,
};
