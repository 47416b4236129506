/* The owner schedule (sparse_rs_ag, sign_a2a_ag): reduce-scatter to block owners, then
 * allgather. Blocks are split among the ranks by elements (a block belongs to the rank whose
 * share holds its first element). Round 1: every rank sends each owner the compressed blocks
 * it serves; the owner sums them in rank order and plays the server (double-way: compresses
 * e_s + avg and keeps e_s for its blocks only). Round 2: owners send their result to everyone
 * (compressed double-way, dense single-way). Per-rank traffic does not grow with K when
 * blocks balance.
 *
 * With the sign codec this is the alltoall + allgather of 1-bit Adam's compressed allreduce:
 * ~n/8 bytes per rank each way whatever K. The two are separate algorithms for selection and
 * reporting. */
#include "compressed.h"

#include <string.h>

typedef enum {
    OWN_START,      /* nothing posted yet */
    OWN_PARTS,      /* round 1 posted: this rank's parts to their owners, its own part in */
    OWN_RESULTS,    /* round 2 posted: this rank's results out, the other owners' in */
    OWN_CONFIRMING, /* everything validated; the confirmation round is posted */
} own_phase_t;

typedef struct own_state {
    own_phase_t phase;
} own_state_t;

static own_state_t *own_state(terse_request_h req)
{
    _Static_assert(sizeof(own_state_t) <= sizeof(req->state), "state fits");
    return (own_state_t *)req->state;
}

static size_t own_len(const terse__cplan_t *p, int r)
{
    return p->geo.own_elem[r + 1] - p->geo.own_elem[r];
}

/* Round 1: each owner's part leaves as soon as it is compressed, starting with the next
 * rank's (so owners are not all sent to at once), and this rank's own part comes last. */
static terse_status_t post_parts(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t cap = 0, wlen;
    for (int r = 0; r < K; r++)
        cap = p->geo.own_cap[r] > cap ? p->geo.own_cap[r] : cap;
    if (terse__cplan_layout(req, K > 1 ? cap : 0, TERSE_CPLAN_SERVER_MSGS) != TERSE_OK)
        return req->status;
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] =
                terse__cplan_recv_var(req, q, 0, p->buf.recv[q], p->geo.own_cap[me]);
    for (int i = 1; i <= K; i++) {
        int q = (me + i) % K;
        if (terse__cplan_compress(req, p->geo.own_seg[q], p->geo.own_seg[q + 1]) != TERSE_OK)
            return req->status;
        if (q != me) {
            const uint8_t *w =
                terse__cplan_wpart(p, p->geo.own_seg[q], p->geo.own_seg[q + 1], &wlen);
            terse__cplan_send(req, q, 0, w, wlen);
        }
    }
    return TERSE_OK;
}

/* Every part of this rank's blocks arrived: sum in rank order, serve, then round 2. */
static terse_status_t serve_and_post_results(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t lo = p->geo.own_seg[me], hi = p->geo.own_seg[me + 1], wlen;
    for (int q = 0; q < K; q++) {
        const uint8_t *buf = q == me ? terse__cplan_wpart(p, lo, hi, &wlen) : p->buf.recv[q];
        if (q != me)
            wlen = terse__req_received_len(req, p->buf.recv_at[q]);
        if (terse__cplan_split(req, q, buf, wlen, lo, hi) != TERSE_OK)
            return req->status;
    }
    if (terse__cplan_reduce_serve(req, lo, hi) != TERSE_OK)
        return req->status;
    for (int q = 0; q < K; q++) {
        if (q == me)
            continue;
        if (p->call.double_way)
            p->buf.recv_at[q] = terse__cplan_recv_var(req, q, 1, p->buf.recv[q], p->geo.own_cap[q]);
        else
            p->buf.recv_at[q] = terse__cplan_recv(req, q, 1, p->buf.out + p->geo.own_elem[q],
                                              own_len(p, q) * sizeof(float));
    }
    for (int q = 0; q < K; q++) {
        if (q == me)
            continue;
        if (p->call.double_way)
            terse__cplan_send(req, q, 1, p->buf.server_msg, p->buf.server_len);
        else
            terse__cplan_send(req, q, 1, p->buf.out + p->geo.own_elem[me],
                              own_len(p, me) * sizeof(float));
    }
    return TERSE_OK;
}

/* The other owners' server messages arrived (double-way): validate them, and decode them now
 * when staged or keep them for the direct commit. Single-way results landed in place. */
static terse_status_t take_results(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    for (int q = 0; q < p->geo.nparts && p->call.double_way; q++) {
        if (q == p->geo.me)
            continue;
        size_t len = terse__req_received_len(req, p->buf.recv_at[q]);
        size_t s_lo = p->geo.own_seg[q], s_hi = p->geo.own_seg[q + 1];
        if (p->buf.direct_out) {
            if (terse__cplan_unpack(req, p->buf.recv[q], len, s_lo, s_hi, TERSE_CPLAN_CHECK, NULL,
                                    q, 1) != TERSE_OK)
                return req->status;
            terse__cplan_add_srv(p, p->buf.recv[q], len, s_lo, s_hi, q);
            continue;
        }
        memset(p->buf.out + p->geo.own_elem[q], 0, own_len(p, q) * sizeof(float));
        if (terse__cplan_add_packed(req, p->buf.recv[q], len, s_lo, s_hi, p->buf.out, q, 1) !=
            TERSE_OK)
            return req->status;
    }
    return TERSE_OK;
}

static terse_status_t owner_progress(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    own_state_t *s = own_state(req);
    size_t lo = p->geo.own_seg[p->geo.me], hi = p->geo.own_seg[p->geo.me + 1];
    terse_status_t st;

    if (terse__csplit_applies(p)) /* a single block: split it, not one owner for it all */
        return terse__csplit_progress(req);
    if (terse__csign_split_applies(p))
        return terse__csign_split_progress(req);
    switch (s->phase) {
    case OWN_START:
        s->phase = OWN_PARTS;
        if (post_parts(req) != TERSE_OK)
            return req->status;
        if (p->geo.nparts > 1)
            return TERSE_INPROGRESS;
        /* fall through */
    case OWN_PARTS:
        s->phase = OWN_RESULTS;
        if (serve_and_post_results(req) != TERSE_OK)
            return req->status;
        if (p->geo.nparts > 1)
            return TERSE_INPROGRESS;
        /* fall through */
    case OWN_RESULTS:
        if (take_results(req) != TERSE_OK)
            return req->status;
        s->phase = OWN_CONFIRMING;
        st = terse__cplan_confirm(req);
        if (st != TERSE_OK)
            return st;
        /* fall through */
    case OWN_CONFIRMING:
    default:
        return terse__cplan_finish(req, terse__cplan_commit, lo, hi);
    }
}

const terse__algo_t terse__cmp_sparse_rs_ag_algo = {
    .name = "sparse_rs_ag",
    .id = TERSE_ALGO_CMP_SPARSE_RS_AG,
    .progress = owner_progress,
    .cleanup = terse__cplan_cleanup,
};

const terse__algo_t terse__cmp_sign_a2a_ag_algo = {
    .name = "sign_a2a_ag",
    .id = TERSE_ALGO_CMP_SIGN_A2A_AG,
    .progress = owner_progress,
    .cleanup = terse__cplan_cleanup,
};
