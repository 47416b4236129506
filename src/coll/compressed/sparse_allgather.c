/* Sparse allgather: every rank sends its whole compressed message (all blocks, all tensors)
 * to every other rank, then sums the K messages in rank order and, double-way, plays the
 * server for every block redundantly. Best for few ranks or small messages: one round of
 * latency, K-1 messages in and out per rank. The message goes out in chunks of segments
 * (TERSE_PIPELINE_BYTES of input each), each sent as soon as it is compressed, so the next
 * chunk compresses while the earlier ones travel; the sum is still in rank order per element. */
#include "compressed.h"

#include <string.h>

/* Index of the receive of chunk @c from participant @q among the round's transfers. */
static int recv_index(const terse__cplan_t *p, size_t c, int q)
{
    return (int)c * (p->K - 1) + (q < p->rank ? q : q - 1);
}

terse_status_t terse__cmp_allgather_progress(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int K = p->K, me = p->rank;
    size_t wlen;
    const uint8_t *w;

    if (req->state[0] == 2)
        return terse__cplan_confirm_commit(req, 2, 0, p->nseg);
    if (req->state[0] == 0) {
        size_t cap = p->chunk_cap[p->nchunk];
        if (terse__cplan_layout(req, K > 1 ? cap : 0, TERSE_CPLAN_SERVER_MSGS) != TERSE_OK)
            return req->status;
        req->state[0] = 1;
        for (size_t c = 0; c < p->nchunk && K > 1; c++)
            for (int q = 0; q < K; q++)
                if (q != me)
                    terse__cplan_recv_var(req, q, (uint16_t)c, p->rbuf[q] + p->chunk_cap[c],
                                          p->chunk_cap[c + 1] - p->chunk_cap[c]);
        for (size_t c = 0; c < p->nchunk; c++) {
            size_t lo = p->chunk_seg[c], hi = p->chunk_seg[c + 1];
            if (terse__cplan_compress(req, lo, hi) != TERSE_OK)
                return req->status;
            w = terse__cplan_wpart(p, lo, hi, &wlen);
            for (int i = 1; i < K; i++) /* everyone starts with a different peer */
                terse__cplan_send(req, (me + i) % K, (uint16_t)c, w, wlen);
        }
        if (K > 1)
            return TERSE_INPROGRESS;
    }
    /* every message arrived: sum in rank order 0..K-1, segment by segment */
    for (int q = 0; q < K; q++) {
        for (size_t c = 0; c < p->nchunk; c++) {
            size_t lo = p->chunk_seg[c], hi = p->chunk_seg[c + 1];
            const uint8_t *buf = p->rbuf[q] + p->chunk_cap[c];
            if (q == me)
                buf = terse__cplan_wpart(p, lo, hi, &wlen);
            else
                wlen = terse__req_received_len(req, recv_index(p, c, q));
            if (terse__cplan_split(req, q, buf, wlen, lo, hi) != TERSE_OK)
                return req->status;
        }
    }
    if (terse__cplan_reduce_serve(req, 0, p->nseg) != TERSE_OK)
        return req->status;
    return terse__cplan_confirm_commit(req, 2, 0, p->nseg);
}

const terse__algo_t terse__cmp_sparse_allgather_algo = {
    .name = "sparse_allgather",
    .id = TERSE_ALGO_CMP_SPARSE_ALLGATHER,
    .progress = terse__cmp_allgather_progress,
    .cleanup = terse__cplan_cleanup,
};
