/* Sparse reduce-scatter + allgather by block ownership. Blocks are split among the ranks by
 * elements (a block belongs to the rank whose share holds its first element). Round 1: every
 * rank sends each owner the compressed blocks it serves; the owner sums them in rank order and
 * plays the server (double-way: compresses e_s + avg and keeps e_s for its blocks only).
 * Round 2: owners send their result to everyone (compressed double-way, dense single-way).
 * Per-rank traffic does not grow with K when blocks balance. */
#include "compressed.h"

#include <string.h>

static size_t own_len(const terse__cplan_t *p, int r)
{
    return p->own_elem[r + 1] - p->own_elem[r];
}

terse_status_t terse__cmp_owner_progress(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int K = p->K, me = p->rank;
    size_t lo = p->own_seg[me], hi = p->own_seg[me + 1], wlen;
    const uint8_t *w;

    switch (req->state[0]) {
    case 0: {
        size_t cap = 0;
        for (int r = 0; r < K; r++)
            cap = p->own_cap[r] > cap ? p->own_cap[r] : cap;
        if (terse__cplan_layout(req, K > 1 ? cap : 0, TERSE_CPLAN_SERVER_MSGS) != TERSE_OK)
            return req->status;
        req->state[0] = 1;
        for (int q = 0; q < K; q++)
            if (q != me)
                terse__cplan_recv_var(req, q, 0, p->rbuf[q], p->own_cap[me]);
        /* each owner's part leaves as soon as it is compressed, starting with the next rank's
         * (so owners are not all sent to at once), and this rank's own part comes last */
        for (int i = 1; i <= K; i++) {
            int q = (me + i) % K;
            if (terse__cplan_compress(req, p->own_seg[q], p->own_seg[q + 1]) != TERSE_OK)
                return req->status;
            if (q != me) {
                w = terse__cplan_wpart(p, p->own_seg[q], p->own_seg[q + 1], &wlen);
                terse__cplan_send(req, q, 0, w, wlen);
            }
        }
        if (K > 1)
            return TERSE_INPROGRESS;
    } /* fall through */
    case 1:
        for (int q = 0; q < K; q++) {
            const uint8_t *buf = q == me ? terse__cplan_wpart(p, lo, hi, &wlen) : p->rbuf[q];
            if (q != me)
                wlen = terse__req_received_len(req, q < me ? q : q - 1);
            if (terse__cplan_split(req, q, buf, wlen, lo, hi) != TERSE_OK)
                return req->status;
        }
        if (terse__cplan_reduce_serve(req, lo, hi) != TERSE_OK)
            return req->status;
        req->state[0] = 2;
        if (K == 1)
            break;
        for (int q = 0; q < K; q++) {
            if (q == me)
                continue;
            if (p->double_way)
                terse__cplan_recv_var(req, q, 1, p->rbuf[q], p->own_cap[q]);
            else
                terse__cplan_recv(req, q, 1, p->out + p->own_elem[q], own_len(p, q) * sizeof(float));
        }
        for (int q = 0; q < K; q++) {
            if (q == me)
                continue;
            if (p->double_way)
                terse__cplan_send(req, q, 1, p->smsg, p->smsg_len);
            else
                terse__cplan_send(req, q, 1, p->out + p->own_elem[me], own_len(p, me) * sizeof(float));
        }
        return TERSE_INPROGRESS;
    case 2:
        for (int q = 0; q < K && p->double_way; q++) {
            if (q == me)
                continue;
            size_t len = terse__req_received_len(req, q < me ? q : q - 1);
            size_t s_lo = p->own_seg[q], s_hi = p->own_seg[q + 1];
            if (p->direct_out) {
                if (terse__cplan_unpack(req, p->rbuf[q], len, s_lo, s_hi, TERSE_CPLAN_CHECK, NULL,
                                        q, 1) != TERSE_OK)
                    return req->status;
                terse__cplan_add_srv(p, p->rbuf[q], len, s_lo, s_hi, q);
                continue;
            }
            memset(p->out + p->own_elem[q], 0, own_len(p, q) * sizeof(float));
            if (terse__cplan_add_packed(req, p->rbuf[q], len, s_lo, s_hi, p->out, q, 1) != TERSE_OK)
                return req->status;
        }
        break;
    default:
        break;
    }
    return terse__cplan_confirm_commit(req, 3, lo, hi);
}

const terse__algo_t terse__cmp_sparse_rs_ag_algo = {
    .name = "sparse_rs_ag",
    .id = TERSE_ALGO_CMP_SPARSE_RS_AG,
    .progress = terse__cmp_owner_progress,
    .cleanup = terse__cplan_cleanup,
};
