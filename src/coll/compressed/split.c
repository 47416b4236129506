/* The owner schedule (sparse_rs_ag) for Top-K, double-way, when whole blocks do not balance
 * over the owners (one big tensor of one block, a bucket of a few layers of one block each):
 * the fused element space is split over the owners by elements, blocks and all, so each rank
 * reduces and serves 1/K of it with the bits sparse_allgather computes.
 *
 * Slice r = [part_off(N, K, r), part_off(N, K, r + 1)). A block lies inside one slice (local)
 * or meets several (shared); a slice meets at most two shared blocks, the one at its start and
 * the one at its end ("edges", the same block when one block covers the slice). k_b is block
 * b's k, m_b the number of slices it meets.
 *   R1 parts:   every rank compresses its blocks (worker Top-K as usual) and sends owner r
 *               the (index, value) pairs of its message that lie in slice r. The owner adds them
 *               in rank order into acc = +0 (one float add per element a message touches: the
 *               allgather's sum), then d = e_s + acc / K over its slice.
 *   R2 bounds:  for each shared edge b, each owner whose piece has n >= k_b sends a key t (|d|
 *               bits) with at least k_b keys of its piece at or above it and at most k_b above
 *               it, and each whose piece has n >= k' = ceil(k_b / m_b) a key u with at least k'
 *               at or above it. L_b is the largest of these keys x with sum over b's owners of
 *               (k_b if t >= x, else k' if u >= x) >= k_b, so at least k_b keys are >= L_b and
 *               the block's k-th largest key T_b >= L_b (L_b = 0 when no key qualifies).
 *               L_b >= max t keeps at most k_b keys of a piece above L_b; the u bring L_b near
 *               T_b when the top keys spread over the pieces, so R3 carries about k_b keys in
 *               all instead of about k_b per owner.
 *   R3 keys:    for each shared edge, the keys of this piece above L_b (at most k_b) and how
 *               many equal L_b, to the block's other owners. Each owner then knows the multiset
 *               of b's keys >= L_b, which holds its top k_b: T_b is its k_b-th largest, "above"
 *               counts keys > T_b, and the k_b - above ties at T_b go to the lowest indices,
 *               i.e. piece by piece in slice order. Local blocks are selected by their owner
 *               alone (the codec's own exact selection) while the keys travel.
 *   R4 results: each owner sends its kept pairs (index, d value) in index order; the output is
 *               0 + value there and +0 elsewhere, e_s of the slice = d with a zero of d's sign
 *               at the kept indices: what encode's remainder and the server message decode give.
 * Then the confirmation round and the commit (worker errors as every schedule, the output from
 * the K result lists, e_s of this rank's slice). Non-finite values are not carried (the plan
 * does not come here under nonfinite passthrough). */
#include "split.h"
#include "split_list.h"

#include "compress/compress.h"
#include "compress/kernels.h"
#include "compress/topk.h"
#include "compress/wire.h"
#include "core/alloc.h"

#include <string.h>

int terse__csplit_applies(const terse__cplan_t *p)
{
    return p->geo.nparts > 1 && !p->geo.peer && p->call.double_way && p->geo.nblocks > 0 &&
           p->call.compressor.kind == TERSE_COMPRESSOR_TOPK && !p->call.range.c.nonfinite_passthrough &&
           p->geo.nelems >= (size_t)p->geo.nparts && !terse__cplan_balanced(p);
}

/* The blocks of every tensor in global order, and this slice's edges. */
static size_t build_blocks(terse__cplan_t *p, spl_state_t *s, spl_block_t *blk)
{
    size_t nb = 0, total_k = 0;
    for (size_t j = 0; j < p->call.ntensors; j++) {
        size_t n = p->call.tensors[j].count, bs = terse__cplan_block_size(&p->call.compressor, n);
        for (size_t start = 0; start < n; start += bs) {
            spl_block_t *b = &blk[nb++];
            b->lo = p->geo.tensor_off[j] + start;
            b->n = n - start < bs ? n - start : bs;
            b->k = terse__compress_k(p->call.range.c.ratio, b->n);
            b->o_lo = slice_of(p, b->lo);
            b->o_hi = slice_of(p, b->lo + b->n - 1);
            total_k += b->k;
        }
    }
    s->blk = blk;
    s->nblk = nb;
    for (int e = 0; e < SPL_EDGES; e++)
        s->edge[e] = edge_of(p, s, p->geo.me, e);
    return total_k;
}

/* This rank's worker message as (global index, value) pairs in index order. */
static terse_status_t worker_pairs(terse_request_h req, uint64_t *idx, float *val)
{
    terse__cplan_t *p = terse__cplan(req);
    size_t at = 0;
    char msg[256] = "";
    for (size_t sg = 0; sg < p->geo.nseg; sg++) {
        const terse__cseg_t *g = &p->geo.seg[sg];
        terse__crange_t rg;
        const uint8_t *m = p->buf.worker_msg + p->buf.worker_seg_off[sg] + 8;
        const uint8_t *end = p->buf.worker_msg + p->buf.worker_seg_end[sg];
        if (terse__cplan_range(p, g->tensor, g->first, g->count, msg, sizeof(msg), &rg) !=
                TERSE_OK ||
            end - m < TERSE__WIRE_HEADER_SIZE)
            return terse__req_fail(req, TERSE_ERR_INTERNAL, "own message: %s", msg);
        m += TERSE__WIRE_HEADER_SIZE;
        for (size_t b = g->first; b < g->first + g->count; b++) {
            size_t start = terse__crange_block_start(&rg, b), nb = terse__crange_block_len(&rg, b);
            size_t k = terse__compress_k(p->call.range.c.ratio, nb), used = 0;
            if (terse__topk_parse_block(&rg, b, m, (size_t)(end - m), nb, k, &used, idx + at) !=
                TERSE_OK)
                return terse__req_fail(req, TERSE_ERR_INTERNAL, "own message: %s", msg);
            size_t off = p->geo.tensor_off[g->tensor] + start;
            for (size_t j = 0; j < k; j++) {
                idx[at + j] += off;
                memcpy(&val[at + j], m + 1 + 4 * j, 4);
            }
            at += k;
            m += used;
        }
    }
    return TERSE_OK;
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* R1: compress, send each owner its slice's pairs (this rank's own part stays in the area). */
static terse_status_t post_parts(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    /* the table sizes the scratch below, so it lives with the plan (freed with it) */
    spl_block_t *blk = terse__calloc(p->geo.nblocks, sizeof(*blk), "compressed allreduce blocks");
    if (!blk)
        return terse__req_fail(req, TERSE_ERR_NO_MEMORY, "split: no memory for the block table");
    p->sched_mem = blk;
    size_t total_k = build_blocks(p, s, blk);
    size_t cap_me = slice_cap(p, s, me), rcap = list_cap(cap_me), keys_sz = 8 * cap_me;
    size_t send_sz = LIST_HDR * (size_t)K + list_cap(total_k);
    send_sz = max_sz(send_sz, list_cap(cap_me));
    size_t own_keys = 0, local_k = 0;
    for (int e = 0; e < SPL_EDGES; e++) {
        const spl_block_t *b = &s->blk[s->edge[e]];
        own_keys += shared(b) ? b->k : 0;
        keys_sz = max_sz(keys_sz, 4 * b->k * (size_t)(b->o_hi - b->o_lo + 1));
    }
    send_sz = max_sz(send_sz, 2 * SPL_BOUND + 4 * own_keys);
    for (int q = 0; q < K; q++) {
        size_t ek = 0;
        for (int e = 0; e < SPL_EDGES; e++)
            ek += s->blk[edge_of(p, s, q, e)].k;
        rcap = max_sz(rcap, max_sz(list_cap(slice_cap(p, s, q)), 2 * SPL_BOUND + 4 * ek));
    }
    for (size_t b = s->edge[0]; b <= s->edge[1]; b++)
        local_k += shared(&s->blk[b]) ? 0 : s->blk[b].k;
    if (terse__cplan_layout(req, rcap, TERSE_CPLAN_SERVER_MSGS) != TERSE_OK)
        return req->status;
    size_t sz[6] = {terse__align64(send_sz), terse__align64(keys_sz), terse__align64(SPL_EDGES * SPL_BOUND * (size_t)K),
                    terse__align64(8 * local_k), terse__align64(8 * total_k), terse__align64(4 * total_k)};
    size_t total = 64 + sizeof(size_t) * s->nblk;
    for (int i = 0; i < 6; i++)
        total += sz[i];
    uint8_t *m = terse__req_scratch2(req, total);
    if (!m)
        return req->status;
    m = (uint8_t *)terse__align64((size_t)m);
    s->send = m, m += sz[0];
    s->keys = m, m += sz[1];
    s->bound = m, m += sz[2];
    s->local = (uint64_t *)m, m += sz[3];
    uint64_t *widx = (uint64_t *)m;
    m += sz[4];
    float *wval = (float *)m;
    m += sz[5];
    s->count = (size_t *)m;
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] =
                terse__cplan_recv_var(req, q, 0, p->buf.recv[q], list_cap(cap_me));
    if (terse__cplan_compress(req, 0, p->geo.nseg) != TERSE_OK ||
        worker_pairs(req, widx, wval) != TERSE_OK)
        return req->status;
    uint8_t *w = s->send;
    size_t j = 0;
    for (int r = 0; r < K; r++) {
        size_t hi = sl_lo(p, r + 1), j0 = j;
        while (j < total_k && widx[j] < hi)
            j++;
        size_t len = terse__spl_list_put_pairs(w, sl_lo(p, r), widx + j0, wval + j0, j - j0);
        if (r == me)
            p->buf.recv_at[me] = (int)(w - s->send); /* own part: offset in the area */
        else
            terse__cplan_send(req, r, 0, w, len);
        w += len;
    }
    return TERSE_OK;
}

/* Sum the parts in rank order, d = e_s + acc / K, then R2. */
static terse_status_t reduce_and_post_bound(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t lo = sl_lo(p, me), hi = sl_lo(p, me + 1), cap = slice_cap(p, s, me);
    float *a = p->buf.acc;
    memset(a + lo, 0, (hi - lo) * sizeof(float));
    for (int q = 0; q < K; q++) {
        const uint8_t *m;
        size_t len, cnt;
        if (q == me) {
            m = s->send + p->buf.recv_at[me];
            len = list_len(m);
        } else {
            m = p->buf.recv[q];
            len = terse__req_received_len(req, p->buf.recv_at[q]);
        }
        if (!terse__spl_list_check(req, m, len, lo, hi, cap, &cnt, q, "message"))
            return req->status;
        list_cur_t c = list_begin(m, lo);
        for (size_t j = 0; j < cnt; j++)
            a[list_next(&c)] += list_val(m, j);
    }
    terse__cplan_server_input(p, lo, hi);
    uint8_t *mine = s->bound + SPL_EDGES * SPL_BOUND * (size_t)me;
    memset(mine, 0, SPL_EDGES * SPL_BOUND);
    for (int e = 0; e < SPL_EDGES; e++) {
        const spl_block_t *b = &s->blk[s->edge[e]];
        if (!shared(b) || (e == 1 && s->edge[1] == s->edge[0]))
            continue;
        size_t a0 = b->lo > lo ? b->lo : lo;
        uint32_t b4[4];
        int bad = terse__spl_piece_bound(b, a + a0, piece(p, b, me), b4);
        if (bad)
            return terse__spl_select_failed(req, b, bad);
        memcpy(mine + SPL_BOUND * (size_t)e, b4, 16);
    }
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv(req, q, 1, s->bound + SPL_EDGES * SPL_BOUND * (size_t)q,
                                                  SPL_EDGES * SPL_BOUND);
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 1, mine, SPL_EDGES * SPL_BOUND);
    return TERSE_OK;
}

/* Whether participant @q owns a piece of one of this slice's shared edges. */
static int co_owner(const spl_state_t *s, int q)
{
    for (int e = 0; e < SPL_EDGES; e++) {
        const spl_block_t *b = &s->blk[s->edge[e]];
        if (shared(b) && q >= b->o_lo && q <= b->o_hi)
            return 1;
    }
    return 0;
}

/* L of each shared edge from the bounds, then R3: per edge, this piece's keys above L and its
 * count of keys equal to L ([u64 above][u64 equal][above u32 keys], edge 0 then edge 1; the
 * block's other owners get it all, everyone else two empty sections). */
static terse_status_t post_keys(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t lo = sl_lo(p, me), hi = sl_lo(p, me + 1);
    const float *a = p->buf.acc;
    uint8_t *w = s->send;
    for (int e = 0; e < SPL_EDGES; e++) {
        const spl_block_t *b = &s->blk[s->edge[e]];
        uint64_t gt = 0, eq = 0;
        uint32_t *kw = (uint32_t *)(w + 16);
        s->L[e] = 0;
        if (shared(b) && !(e == 1 && s->edge[1] == s->edge[0])) {
            if (terse__spl_lower(req, s->edge[e], &s->L[e]) < 0)
                return req->status;
            uint32_t L = s->L[e];
            size_t i0 = b->lo > lo ? b->lo : lo, i1 = b->lo + b->n < hi ? b->lo + b->n : hi;
            for (size_t i = i0; i < i1; i++) {
                uint32_t x = key_of(a[i]);
                if (x > L) {
                    if (gt == b->k) /* cannot happen: at most k keys exceed a valid bound */
                        return terse__req_fail(req, TERSE_ERR_INTERNAL,
                                               "server selection: bound");
                    kw[gt++] = x;
                }
                eq += x == L;
            }
        }
        memcpy(w, &gt, 8);
        memcpy(w + 8, &eq, 8);
        w += 16 + 4 * gt;
    }
    static const uint8_t empty[2 * SPL_BOUND];
    for (int q = 0; q < K; q++) {
        if (q == me)
            continue;
        size_t ek = 0;
        for (int e = 0; e < SPL_EDGES; e++)
            ek += s->blk[edge_of(p, s, q, e)].k;
        p->buf.recv_at[q] = terse__cplan_recv_var(req, q, 2, p->buf.recv[q], 2 * SPL_BOUND + 4 * ek);
    }
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 2, co_owner(s, q) ? s->send : empty,
                              co_owner(s, q) ? (size_t)(w - s->send) : sizeof(empty));
    /* the local blocks while the keys travel */
    return terse__spl_select_local(req);
}

/* T of the shared edges, then R4: this slice's kept pairs in index order. */
static terse_status_t select_and_post_results(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t lo = sl_lo(p, me), mine_eq[SPL_EDGES] = {0, 0};
    int sh[SPL_EDGES];
    for (int e = 0; e < SPL_EDGES; e++) {
        sh[e] = shared(&s->blk[s->edge[e]]) && !(e == 1 && s->edge[1] == s->edge[0]);
        if (sh[e] && terse__spl_threshold(req, e, &mine_eq[e]) < 0)
            return req->status;
    }
    if (s->edge[1] == s->edge[0])
        s->T[1] = s->T[0]; /* check_results compares either edge's entries with its T */
    /* [edge 0 if shared][local blocks][edge 1 if shared and not edge 0]: index order */
    uint64_t *ip = (uint64_t *)s->keys; /* the keys are done with */
    size_t cnt = 0;
    if (sh[0])
        cnt += terse__spl_keep_edge(p, s, 0, mine_eq[0], ip + cnt);
    memcpy(ip + cnt, s->local, s->nlocal * sizeof(uint64_t));
    cnt += s->nlocal;
    if (sh[1])
        cnt += terse__spl_keep_edge(p, s, 1, mine_eq[1], ip + cnt);
    size_t wlen = list_put(s->send, lo, NULL, ip, cnt, p->buf.acc);
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv_var(req, q, 3, p->buf.recv[q],
                                                      list_cap(slice_cap(p, s, q)));
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 3, s->send, wlen);
    return TERSE_OK;
}

/* Every result list well formed, each block holding its k entries over its owners' lists, and
 * the entries of this slice's shared edges at or above their T. */
static terse_status_t check_results(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    memset(s->count, 0, s->nblk * sizeof(size_t));
    for (int q = 0; q < p->geo.nparts; q++) {
        const uint8_t *m = q == p->geo.me ? s->send : p->buf.recv[q];
        size_t len = q == p->geo.me ? list_len(m) : terse__req_received_len(req, p->buf.recv_at[q]);
        size_t cnt, lo = sl_lo(p, q);
        if (!terse__spl_list_check(req, m, len, lo, sl_lo(p, q + 1), slice_cap(p, s, q), &cnt, q,
                        "server message"))
            return req->status;
        list_cur_t cur = list_begin(m, lo);
        size_t b = edge_of(p, s, q, 0);
        for (size_t j = 0; j < cnt; j++) {
            uint64_t x = list_next(&cur);
            while (s->blk[b].lo + s->blk[b].n <= x)
                b++;
            s->count[b]++;
            for (int e = 0; e < SPL_EDGES; e++)
                if (b == s->edge[e] && shared(&s->blk[b]) && key_of(list_val(m, j)) < s->T[e])
                    return terse__req_fail(req, TERSE_ERR_CORRUPT,
                                           "server message from rank %d: value below the "
                                           "threshold", terse__cplan_peer(p, q));
        }
    }
    for (size_t b = 0; b < s->nblk; b++)
        if (s->count[b] != s->blk[b].k)
            return terse__req_fail(req, TERSE_ERR_CORRUPT,
                                   "server messages hold %zu entries of block [%zu, %zu), k = %zu",
                                   s->count[b], s->blk[b].lo, s->blk[b].lo + s->blk[b].n,
                                   s->blk[b].k);
    return TERSE_OK;
}

/* The tensor holding global element @x, from tensor @j on. */
static size_t tensor_at(const terse__cplan_t *p, size_t j, uint64_t x)
{
    while (p->geo.tensor_off[j + 1] <= x)
        j++;
    return j;
}

/* terse__ccommit_fn_t: the schedule knows its own server-error range */
static terse_status_t commit(terse_request_h req, size_t serr_lo, size_t serr_hi)
{
    (void)serr_lo;
    (void)serr_hi;
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    p->buf.nserver_msgs = 0;
    /* worker errors (they read the inputs, which an in-place output overwrites) */
    if (terse__cplan_commit(req, 0, 0) != TERSE_OK)
        return req->status;
    int me = p->geo.me;
    size_t lo = sl_lo(p, me), hi = sl_lo(p, me + 1);
    const float *a = p->buf.acc;
    for (size_t t = 0; t < p->call.ntensors; t++) { /* e_s of this slice = d */
        size_t t_lo = p->geo.tensor_off[t], t_hi = p->geo.tensor_off[t + 1];
        size_t i0 = t_lo > lo ? t_lo : lo, i1 = t_hi < hi ? t_hi : hi;
        float *es = p->call.tensors[t].server_error;
        if (es && i0 < i1)
            memcpy(es + (i0 - t_lo), a + i0, (i1 - i0) * sizeof(float));
    }
    uint64_t c;
    memcpy(&c, s->send, 8);
    list_cur_t cur = list_begin(s->send, lo);
    for (size_t j = 0, t = 0; j < c; j++) { /* a zero with d's sign, as encode's remainder */
        uint64_t x = list_next(&cur);
        t = tensor_at(p, t, x);
        float *es = p->call.tensors[t].server_error;
        if (!es)
            continue;
        uint32_t b;
        memcpy(&b, &a[x], 4);
        b &= 0x80000000u;
        memcpy(&es[x - p->geo.tensor_off[t]], &b, 4);
    }
    for (size_t t = 0; t < p->call.ntensors; t++) /* out - (+0) is out: only kept entries change */
        if (!terse__cplan_subtracts(p, t) && p->call.tensors[t].count)
            memset(p->call.tensors[t].out, 0, p->call.tensors[t].count * sizeof(float));
    for (int q = 0; q < p->geo.nparts; q++) {
        const uint8_t *m = q == me ? s->send : p->buf.recv[q];
        uint64_t cnt;
        memcpy(&cnt, m, 8);
        list_cur_t lc = list_begin(m, sl_lo(p, q));
        for (size_t j = 0, t = 0; j < cnt; j++) {
            uint64_t x = list_next(&lc);
            t = tensor_at(p, t, x);
            float *o = p->call.tensors[t].out + (x - p->geo.tensor_off[t]);
            float u = 0.0f + list_val(m, j);
            *o = terse__cplan_subtracts(p, t) ? *o - u : u;
        }
    }
    return TERSE_OK;
}

terse_status_t terse__csplit_progress(terse_request_h req)
{
    spl_state_t *s = spl_state(req);
    terse_status_t st;
    switch (s->phase) {
    case SPL_START:
        s->phase = SPL_PARTS;
        if (post_parts(req) != TERSE_OK)
            return req->status;
        return TERSE_INPROGRESS;
    case SPL_PARTS:
        s->phase = SPL_BOUNDS;
        if (reduce_and_post_bound(req) != TERSE_OK)
            return req->status;
        return TERSE_INPROGRESS;
    case SPL_BOUNDS:
        s->phase = SPL_KEYS;
        if (post_keys(req) != TERSE_OK)
            return req->status;
        return TERSE_INPROGRESS;
    case SPL_KEYS:
        s->phase = SPL_RESULTS;
        if (select_and_post_results(req) != TERSE_OK)
            return req->status;
        return TERSE_INPROGRESS;
    case SPL_RESULTS:
        if (check_results(req) != TERSE_OK)
            return req->status;
        s->phase = SPL_CONFIRMING;
        st = terse__cplan_confirm(req);
        if (st != TERSE_OK)
            return st;
        /* fall through */
    case SPL_CONFIRMING:
    default:
        return terse__cplan_finish(req, commit, 0, 0);
    }
}
