/* Dense fallback, for when compression would not pay (density after aggregation near 1, or
 * codecs that are dense anyway): every rank decodes its own compressed message into a dense
 * C(Delta_k), sends each owner its element range (alltoall), the owner adds the K ranges in
 * rank order and plays the server, and the results are allgathered densely. The values that
 * move are the compressed ones and they are added in the same order, so the bits equal the
 * sparse algorithms' (adding the +-0 a sparse message does not carry never changes a sum that
 * starts at +0). */
#include "compressed.h"

#include <string.h>

static size_t own_len(const terse__cplan_t *p, int r)
{
    return p->own_elem[r + 1] - p->own_elem[r];
}

static terse_status_t dense_progress(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int K = p->K, me = p->rank;
    size_t lo = p->own_seg[me], hi = p->own_seg[me + 1], wlen, e0 = p->own_elem[me];
    const uint8_t *w;

    switch (req->state[0]) {
    case 0:
        if (terse__cplan_layout(req, own_len(p, me) * sizeof(float), TERSE_CPLAN_DENSE) !=
                TERSE_OK ||
            terse__cplan_compress(req, 0, p->nseg) != TERSE_OK)
            return req->status;
        memset(p->cdense, 0, p->N * sizeof(float));
        w = terse__cplan_wpart(p, 0, p->nseg, &wlen);
        if (terse__cplan_add_packed(req, w, wlen, 0, p->nseg, p->cdense, me, 0) != TERSE_OK)
            return req->status;
        req->state[0] = 1;
        if (K > 1) {
            for (int q = 0; q < K; q++)
                if (q != me)
                    terse__cplan_recv(req, q, 0, p->rbuf[q], own_len(p, me) * sizeof(float));
            for (int q = 0; q < K; q++)
                if (q != me)
                    terse__cplan_send(req, q, 0, p->cdense + p->own_elem[q],
                                      own_len(p, q) * sizeof(float));
            return TERSE_INPROGRESS;
        }
        /* fall through */
    case 1: {
        float *acc = p->acc + e0;
        size_t n = own_len(p, me);
        memset(acc, 0, n * sizeof(float));
        for (int q = 0; q < K; q++) {
            const float *src = q == me ? p->cdense + e0 : (const float *)p->rbuf[q];
            for (size_t i = 0; i < n; i++)
                acc[i] += src[i];
        }
        if (terse__cplan_serve(req, lo, hi) != TERSE_OK)
            return req->status;
        req->state[0] = 2;
        if (K == 1)
            break;
        for (int q = 0; q < K; q++)
            if (q != me)
                terse__cplan_recv(req, q, 1, p->out + p->own_elem[q], own_len(p, q) * sizeof(float));
        for (int q = 0; q < K; q++)
            if (q != me)
                terse__cplan_send(req, q, 1, p->out + e0, n * sizeof(float));
        return TERSE_INPROGRESS;
    }
    default:
        break;
    }
    return terse__cplan_confirm_commit(req, 3, lo, hi);
}

const terse__algo_t terse__cmp_dense_algo = {
    .name = "dense",
    .id = TERSE_ALGO_CMP_DENSE,
    .progress = dense_progress,
    .cleanup = terse__cplan_cleanup,
};
