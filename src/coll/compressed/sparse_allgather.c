/* Sparse allgather: every rank sends its whole compressed message (all blocks, all tensors)
 * to every other rank in one round, then sums the K messages in rank order and, double-way,
 * plays the server for every block redundantly. Best for few ranks or small messages: one
 * round of latency, K-1 messages in and out per rank. */
#include "compressed.h"

#include <string.h>

terse_status_t terse__cmp_allgather_progress(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int K = p->K, me = p->rank;
    size_t wlen;
    const uint8_t *w;

    if (req->state[0] == 2)
        return terse__cplan_confirm_commit(req, 2, 0, p->nseg);
    if (req->state[0] == 0) {
        size_t cap = 0;
        for (int r = 0; r < K; r++)
            cap += p->own_cap[r];
        if (terse__cplan_layout(req, K > 1 ? cap : 0, 0) != TERSE_OK ||
            terse__cplan_compress_worker(req) != TERSE_OK)
            return req->status;
        req->state[0] = 1;
        if (K > 1) {
            w = terse__cplan_wpart(p, 0, p->nseg, &wlen);
            for (int q = 0; q < K; q++)
                if (q != me)
                    terse__cplan_recv_var(req, q, 0, p->rbuf[q], cap);
            for (int q = 0; q < K; q++)
                if (q != me)
                    terse__cplan_send(req, q, 0, w, wlen);
            return TERSE_INPROGRESS;
        }
    }
    /* every message arrived: sum in rank order 0..K-1 */
    memset(p->acc, 0, p->N * sizeof(float));
    for (int q = 0; q < K; q++) {
        const uint8_t *buf = q == me ? terse__cplan_wpart(p, 0, p->nseg, &wlen) : p->rbuf[q];
        if (q != me)
            wlen = terse__req_received_len(req, q < me ? q : q - 1);
        if (terse__cplan_add_packed(req, buf, wlen, 0, p->nseg, p->acc, q, 0) != TERSE_OK)
            return req->status;
    }
    if (terse__cplan_serve(req, 0, p->nseg) != TERSE_OK)
        return req->status;
    return terse__cplan_confirm_commit(req, 2, 0, p->nseg);
}

const terse__algo_t terse__cmp_sparse_allgather_algo = {
    .name = "sparse_allgather",
    .id = TERSE_ALGO_CMP_SPARSE_ALLGATHER,
    .progress = terse__cmp_allgather_progress,
    .cleanup = terse__cplan_cleanup,
};
