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
#include "compressed.h"
#include "split_list.h"

#include "compress/compress.h"
#include "compress/kernels.h"
#include "compress/topk.h"
#include "compress/wire.h"
#include "core/alloc.h"
#include "core/config.h"

#include <string.h>

typedef enum {
    SPL_START,
    SPL_PARTS,
    SPL_BOUNDS,
    SPL_KEYS,
    SPL_RESULTS,
    SPL_CONFIRMING,
} spl_phase_t;

/* One Top-K block in the fused element space. */
typedef struct spl_block {
    size_t lo, n, k;  /* global first element, elements, kept */
    int o_lo, o_hi;   /* the slices it meets: [o_lo, o_hi] */
} spl_block_t;

enum { SPL_EDGES = 2, SPL_BOUND = 16 /* [has t, t, has u, u] */ };

typedef struct spl_state {
    spl_phase_t phase;
    size_t nblk;
    spl_block_t *blk;
    size_t edge[SPL_EDGES];  /* this slice's first and last block */
    uint32_t L[SPL_EDGES], T[SPL_EDGES];
    uint8_t *send;     /* send area: R1 parts, then R3 keys, then R4 this owner's results */
    uint8_t *keys;     /* R3: a shared edge's keys >= L gathered; R4: the kept indices */
    uint8_t *bound;    /* R2: SPL_EDGES bounds per participant */
    uint64_t *local;   /* the local blocks' kept indices (global, in order), selected in R3 */
    size_t nlocal;
    size_t *count;     /* per block: entries of the result lists (check_results) */
} spl_state_t;

static spl_state_t *spl_state(terse_request_h req)
{
    _Static_assert(sizeof(spl_state_t) <= sizeof(req->state), "state fits");
    return (spl_state_t *)req->state;
}

static size_t sl_lo(const terse__cplan_t *p, int r)
{
    return terse__part_off(p->geo.nelems, p->geo.nparts, r);
}

/* The slice holding global element @g. */
static int slice_of(const terse__cplan_t *p, size_t g)
{
    size_t N = p->geo.nelems;
    int K = p->geo.nparts;
    int r = (int)(((__uint128_t)g * (unsigned)K) / (N ? N : 1));
    while (r + 1 < K && sl_lo(p, r + 1) <= g)
        r++;
    while (r > 0 && sl_lo(p, r) > g)
        r--;
    return r;
}

/* The block holding global element @g. */
static size_t block_at(const spl_state_t *s, size_t g)
{
    size_t lo = 0, hi = s->nblk;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->blk[mid].lo <= g)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static size_t edge_of(const terse__cplan_t *p, const spl_state_t *s, int q, int e)
{
    return block_at(s, e == 0 ? sl_lo(p, q) : sl_lo(p, q + 1) - 1);
}

static int shared(const spl_block_t *b)
{
    return b->o_lo != b->o_hi;
}

/* Elements of block @b in slice @q. */
static size_t piece(const terse__cplan_t *p, const spl_block_t *b, int q)
{
    size_t lo = sl_lo(p, q), hi = sl_lo(p, q + 1);
    size_t a = b->lo > lo ? b->lo : lo, z = b->lo + b->n < hi ? b->lo + b->n : hi;
    return z > a ? z - a : 0;
}

/* Which of participant @q's edges block @b is (@b meets slice @q and is shared). */
static int edge_index(const terse__cplan_t *p, const spl_state_t *s, size_t b, int q)
{
    return edge_of(p, s, q, 0) == b ? 0 : 1;
}

/* ceil(k / m): the u bound's count. */
static size_t k_share(const spl_block_t *b)
{
    size_t m = (size_t)(b->o_hi - b->o_lo + 1);
    return (b->k + m - 1) / m;
}

/* Most entries a list of slice @q holds: per block, its k or its piece, whichever is less. */
static size_t slice_cap(const terse__cplan_t *p, const spl_state_t *s, int q)
{
    size_t cap = 0;
    for (size_t b = edge_of(p, s, q, 0), z = edge_of(p, s, q, 1); b <= z; b++) {
        size_t n = piece(p, &s->blk[b], q);
        cap += s->blk[b].k < n ? s->blk[b].k : n;
    }
    return cap;
}

static uint32_t key_of(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    return b & 0x7fffffffu;
}

static int passthrough(const terse__cplan_t *p)
{
    return (p->call.compressor.field_mask & TERSE_COMPRESSOR_FIELD_NONFINITE_PASSTHROUGH)
               ? p->call.compressor.nonfinite_passthrough
               : terse__config()->nonfinite_passthrough;
}

int terse__csplit_applies(const terse__cplan_t *p)
{
    return p->geo.nparts > 1 && !p->geo.peer && p->call.double_way && p->geo.nblocks > 0 &&
           p->call.compressor.kind == TERSE_COMPRESSOR_TOPK && !passthrough(p) &&
           p->geo.nelems >= (size_t)p->geo.nparts && !terse__cplan_balanced(p);
}

/* A received list: well formed, indices in [lo, hi), values finite. NULL on a malformed one. */
static const uint8_t *list_check(terse_request_h req, const uint8_t *m, size_t len, size_t lo,
                                 size_t hi, size_t maxcnt, size_t *cnt_p, int from,
                                 const char *what)
{
    terse__cplan_t *p = terse__cplan(req);
    uint64_t cnt, gb;
    int peer = terse__cplan_peer(p, from);
    if (len < LIST_HDR) {
        terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d truncated", what, peer);
        return NULL;
    }
    memcpy(&cnt, m, 8);
    memcpy(&gb, m + 8, 8);
    if (cnt > maxcnt || gb > LIST_MAX_GAP * cnt || gb < cnt || len != LIST_HDR + 4 * cnt + gb) {
        terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d: %llu entries in %zu bytes",
                        what, peer, (unsigned long long)cnt, len);
        return NULL;
    }
    const uint8_t *g = m + LIST_HDR + 4 * cnt, *end = g + gb;
    uint64_t next = lo;
    for (size_t j = 0; j < cnt; j++) {
        uint64_t gap = 0;
        unsigned sh = 0;
        int more = 1;
        while (more && g < end && sh < 35) {
            gap |= (uint64_t)(*g & 0x7f) << sh;
            more = *g++ & 0x80;
            sh += 7;
        }
        uint64_t x = next + gap;
        float v = list_val(m, j);
        if (more || x >= hi || key_of(v) >= 0x7f800000u) {
            terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d: entry %zu %s", what, peer,
                            j, key_of(v) >= 0x7f800000u ? "not finite" : "out of range");
            return NULL;
        }
        next = x + 1;
    }
    if (g != end) {
        terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d: trailing gap bytes", what, peer);
        return NULL;
    }
    *cnt_p = (size_t)cnt;
    return m;
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

/* Writes a list of @cnt (index, value) pairs. */
static size_t list_put_pairs(uint8_t *w, size_t lo, const uint64_t *idx, const float *val,
                             size_t cnt)
{
    uint8_t *g = w + LIST_HDR + 4 * cnt, *o = g;
    uint64_t next = lo;
    if (cnt)
        memcpy(w + LIST_HDR, val, 4 * cnt);
    for (size_t j = 0; j < cnt; j++) {
        o = put_gap(o, (uint32_t)(idx[j] - next));
        next = idx[j] + 1;
    }
    uint64_t c = cnt, gb = (uint64_t)(o - g);
    memcpy(w, &c, 8);
    memcpy(w + 8, &gb, 8);
    return LIST_HDR + 4 * cnt + (size_t)gb;
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

static size_t align64(size_t x)
{
    return (x + 63) & ~(size_t)63;
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
    size_t sz[6] = {align64(send_sz), align64(keys_sz), align64(SPL_EDGES * SPL_BOUND * (size_t)K),
                    align64(8 * local_k), align64(8 * total_k), align64(4 * total_k)};
    size_t total = 64 + sizeof(size_t) * s->nblk;
    for (int i = 0; i < 6; i++)
        total += sz[i];
    uint8_t *m = terse__req_scratch2(req, total);
    if (!m)
        return req->status;
    m = (uint8_t *)align64((size_t)m);
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
        size_t len = list_put_pairs(w, sl_lo(p, r), widx + j0, wval + j0, j - j0);
        if (r == me)
            p->buf.recv_at[me] = (int)(w - s->send); /* own part: offset in the area */
        else
            terse__cplan_send(req, r, 0, w, len);
        w += len;
    }
    return TERSE_OK;
}

/* The bound of block @b's piece a[0, n): b4 = [has t, t, has u, u]. 1 on a non-finite value,
 * -1 on no memory. */
static int piece_bound(const spl_block_t *b, const float *a, size_t n, uint32_t b4[4])
{
    size_t k = b->k, k2 = k_share(b);
    int bad = 0;
    memset(b4, 0, 16);
    if (n >= k) {
        bad = terse__topk_lower_key(a, n, k, &b4[1]);
        if (bad >= 0 && k2 < k)
            bad |= terse__topk_lower_key(a, n, k2, &b4[3]);
        else if (bad >= 0)
            b4[3] = b4[1];
        b4[0] = b4[2] = 1;
    } else if (n >= k2) {
        bad = terse__topk_lower_key(a, n, k2, &b4[3]);
        b4[2] = 1;
    } else {
        for (size_t i = 0; i < n; i++)
            bad |= key_of(a[i]) >= 0x7f800000u;
    }
    return bad;
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
        if (!list_check(req, m, len, lo, hi, cap, &cnt, q, "message"))
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
        int bad = piece_bound(b, a + a0, piece(p, b, me), b4);
        if (bad < 0)
            return terse__req_fail(req, TERSE_ERR_NO_MEMORY, "server selection: no memory");
        if (bad)
            return terse__req_fail(req, TERSE_ERR_NONFINITE,
                                   "server compression: NaN or Inf in e_s + avg of elements "
                                   "[%zu, %zu) of the fused tensors",
                                   b->lo, b->lo + b->n);
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

/* Participant @q's bound for block @b (which meets its slice), checked against its piece. */
static int bound_of(terse_request_h req, size_t b, int q, uint32_t b4[4])
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    const spl_block_t *bl = &s->blk[b];
    memcpy(b4, s->bound + SPL_EDGES * SPL_BOUND * (size_t)q + SPL_BOUND * edge_index(p, s, b, q),
           16);
    size_t nq = piece(p, bl, q), k2 = k_share(bl);
    if (b4[0] != (nq >= bl->k) || b4[2] != (nq >= k2) || (b4[0] && b4[1] >= 0x7f800000u) ||
        (b4[2] && (b4[3] >= 0x7f800000u || (b4[0] && b4[3] < b4[1])))) {
        terse__req_fail(req, TERSE_ERR_CORRUPT, "bound from rank %d invalid",
                        terse__cplan_peer(p, q));
        return -1;
    }
    return 0;
}

/* L of shared block @b from its owners' bounds. */
static int lower_of(terse_request_h req, size_t b, uint32_t *L_p)
{
    spl_state_t *s = spl_state(req);
    const spl_block_t *bl = &s->blk[b];
    size_t k = bl->k, k2 = k_share(bl);
    uint32_t L = 0, b4[4], c4[4];
    for (int q = bl->o_lo; q <= bl->o_hi; q++)
        if (bound_of(req, b, q, b4) < 0)
            return -1;
    for (int q = bl->o_lo; q <= bl->o_hi; q++) /* candidates: every t and u */
        for (int h = 0; h < 2; h++) {
            uint32_t x;
            bound_of(req, b, q, b4);
            if (!b4[2 * h] || (x = b4[2 * h + 1]) <= L)
                continue;
            size_t sure = 0;
            for (int r = bl->o_lo; r <= bl->o_hi; r++) {
                bound_of(req, b, r, c4);
                sure += c4[0] && c4[1] >= x ? k : c4[2] && c4[3] >= x ? k2 : 0;
            }
            if (sure >= k)
                L = x;
        }
    *L_p = L;
    return 0;
}

/* The local blocks of this slice, selected exactly as the codec's server encode does. */
static terse_status_t select_local(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    const terse__ckernels_t *kern = terse__ckernels();
    const float *a = p->buf.acc;
    s->nlocal = 0;
    for (size_t b = s->edge[0]; b <= s->edge[1]; b++) {
        const spl_block_t *bl = &s->blk[b];
        if (shared(bl))
            continue;
        terse__topk_sel_t sel;
        uint32_t *kept = (uint32_t *)(s->local + s->nlocal); /* widened in place below */
        int bad = terse__topk_select(kern, terse__cview_local(), a + bl->lo, bl->n, bl->k, &sel,
                                     kept);
        if (bad < 0)
            return terse__req_fail(req, TERSE_ERR_NO_MEMORY, "server selection: no memory");
        if (bad)
            return terse__req_fail(req, TERSE_ERR_NONFINITE,
                                   "server compression: NaN or Inf in e_s + avg of elements "
                                   "[%zu, %zu) of the fused tensors",
                                   bl->lo, bl->lo + bl->n);
        uint64_t *out = s->local + s->nlocal;
        if (sel.kept) { /* k uint32 at the start of k uint64: widen from the back */
            for (size_t j = bl->k; j-- > 0;)
                out[j] = bl->lo + (uint64_t)kept[j];
        } else {
            size_t j = 0, eq = sel.n_eq;
            for (size_t i = 0; i < bl->n && j < bl->k; i++) {
                uint32_t x = key_of(a[bl->lo + i]);
                if (x > sel.thr || (x == sel.thr && eq && eq--))
                    out[j++] = bl->lo + i;
            }
        }
        s->nlocal += bl->k;
    }
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
            if (lower_of(req, s->edge[e], &s->L[e]) < 0)
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
    return select_local(req);
}

/* The @r-th largest (0-based) of a[0, n), r < n; reorders a. */
static uint32_t kth_largest(uint32_t *a, size_t n, size_t r)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t piv = a[lo + (hi - lo) / 2];
        /* three-way partition of [lo, hi]: > piv, == piv, < piv */
        size_t lt = lo, i = lo, gt = hi + 1;
        while (i < gt) {
            if (a[i] > piv) {
                uint32_t t = a[lt]; a[lt++] = a[i]; a[i++] = t;
            } else if (a[i] < piv) {
                uint32_t t = a[--gt]; a[gt] = a[i]; a[i] = t;
            } else {
                i++;
            }
        }
        if (r < lt)
            hi = lt - 1;
        else if (r >= gt)
            lo = gt;
        else
            return piv;
    }
    return a[r];
}

/* Participant @q's R3 section for block @b: *g_p keys above L, *e_p equal to L, keys at
 * *keys_p. Checked against the piece when it comes from another rank. */
static int keys_section(terse_request_h req, size_t b, int q, uint64_t *g_p, uint64_t *e_p,
                        const uint8_t **keys_p)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    const spl_block_t *bl = &s->blk[b];
    int me = p->geo.me;
    const uint8_t *m = q == me ? s->send : p->buf.recv[q];
    size_t len = q == me ? SIZE_MAX : terse__req_received_len(req, p->buf.recv_at[q]), off = 0;
    int want = edge_index(p, s, b, q);
    uint64_t g = 0, e = 0;
    for (int i = 0; i <= want; i++) {
        if (len < off + 16) {
            terse__req_fail(req, TERSE_ERR_CORRUPT, "keys from rank %d truncated",
                            terse__cplan_peer(p, q));
            return -1;
        }
        memcpy(&g, m + off, 8);
        memcpy(&e, m + off + 8, 8);
        if (g > (len - off - 16) / 4) {
            terse__req_fail(req, TERSE_ERR_CORRUPT, "keys from rank %d truncated",
                            terse__cplan_peer(p, q));
            return -1;
        }
        if (i < want)
            off += 16 + 4 * (size_t)g;
    }
    size_t nq = piece(p, bl, q);
    if (q != me && (g > bl->k || g > nq || e > nq - g)) {
        terse__req_fail(req, TERSE_ERR_CORRUPT,
                        "keys from rank %d invalid (%llu above, %llu equal)",
                        terse__cplan_peer(p, q), (unsigned long long)g, (unsigned long long)e);
        return -1;
    }
    *g_p = g;
    *e_p = e;
    *keys_p = m + off + 16;
    return 0;
}

/* T of shared edge @e and how many of its ties this piece keeps. */
static int threshold_of(terse_request_h req, int e, size_t *mine_eq_p)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    size_t b = s->edge[e];
    const spl_block_t *bl = &s->blk[b];
    uint32_t L = s->L[e], *keys = (uint32_t *)s->keys;
    size_t total = 0, eqL = 0;
    for (int q = bl->o_lo; q <= bl->o_hi; q++) {
        uint64_t g, eq;
        const uint8_t *kp;
        if (keys_section(req, b, q, &g, &eq, &kp) < 0)
            return -1;
        for (size_t j = 0; j < g; j++) {
            uint32_t x;
            memcpy(&x, kp + 4 * j, 4);
            if (x <= L || x >= 0x7f800000u) {
                terse__req_fail(req, TERSE_ERR_CORRUPT, "keys from rank %d invalid",
                                terse__cplan_peer(p, q));
                return -1;
            }
            keys[total++] = x;
        }
        eqL += eq;
    }
    uint32_t T;
    if (total >= bl->k)
        T = kth_largest(keys, total, bl->k - 1);
    else if (total + eqL >= bl->k)
        T = L;
    else {
        terse__req_fail(req, TERSE_ERR_CORRUPT, "server selection: %zu keys for k = %zu",
                        total + eqL, bl->k);
        return -1;
    }
    s->T[e] = T;
    size_t above = 0, before = 0;
    for (size_t j = 0; j < total; j++)
        above += keys[j] > T;
    /* ties at T: piece by piece, so ones in the slices below this one come first */
    for (int q = bl->o_lo; q < p->geo.me; q++) {
        uint64_t g, eq;
        const uint8_t *kp;
        keys_section(req, b, q, &g, &eq, &kp);
        if (T == L) {
            before += (size_t)eq;
        } else {
            for (size_t j = 0; j < g; j++) {
                uint32_t x;
                memcpy(&x, kp + 4 * j, 4);
                before += x == T;
            }
        }
    }
    size_t need = bl->k - above;
    *mine_eq_p = need > before ? need - before : 0;
    return 0;
}

/* This slice's kept indices of shared edge @e (T known), appended at @ip. */
static size_t keep_edge(const terse__cplan_t *p, const spl_state_t *s, int e, size_t mine_eq,
                        uint64_t *ip)
{
    const spl_block_t *b = &s->blk[s->edge[e]];
    size_t lo = sl_lo(p, p->geo.me), hi = sl_lo(p, p->geo.me + 1), cnt = 0;
    size_t i0 = b->lo > lo ? b->lo : lo, i1 = b->lo + b->n < hi ? b->lo + b->n : hi;
    uint32_t T = s->T[e];
    const float *a = p->buf.acc;
    for (size_t i = i0; i < i1; i++) {
        uint32_t x = key_of(a[i]);
        if (x > T || (x == T && mine_eq && mine_eq--))
            ip[cnt++] = i;
    }
    return cnt;
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
        if (sh[e] && threshold_of(req, e, &mine_eq[e]) < 0)
            return req->status;
    }
    if (s->edge[1] == s->edge[0])
        s->T[1] = s->T[0]; /* check_results compares either edge's entries with its T */
    /* [edge 0 if shared][local blocks][edge 1 if shared and not edge 0]: index order */
    uint64_t *ip = (uint64_t *)s->keys; /* the keys are done with */
    size_t cnt = 0;
    if (sh[0])
        cnt += keep_edge(p, s, 0, mine_eq[0], ip + cnt);
    memcpy(ip + cnt, s->local, s->nlocal * sizeof(uint64_t));
    cnt += s->nlocal;
    if (sh[1])
        cnt += keep_edge(p, s, 1, mine_eq[1], ip + cnt);
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
        if (!list_check(req, m, len, lo, sl_lo(p, q + 1), slice_cap(p, s, q), &cnt, q,
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
