/* The owner schedule (sparse_rs_ag) for a single tensor of one Top-K block, double-way: the
 * block is split over the owners by elements, so each rank reduces and serves 1/K of it, with
 * the bits sparse_allgather computes.
 *
 * Slice r = [part_off(n, K, r), part_off(n, K, r + 1)); k = the block's k.
 *   R1 parts:   every rank compresses its whole block (worker Top-K as usual) and sends owner r
 *               the (index, value) pairs of its message that lie in slice r. The owner adds them
 *               in rank order into acc = +0 (one float add per element a message touches: the
 *               allgather's sum), then d = e_s + acc / K over its slice.
 *   R2 bounds:  each owner whose slice has n_r >= k sends a key t_r (|d| bits) with at least k
 *               keys of its slice at or above it and at most k above it, and each whose slice
 *               has n_r >= k' = ceil(k / K) a key u_r with at least k' at or above it. L is
 *               the largest of these keys x with sum_r (k if t_r >= x, else k' if u_r >= x)
 *               >= k, so at least k keys are >= L and the block's k-th largest key T >= L
 *               (L = 0 when no key qualifies). L >= max t_r keeps at most k keys of a slice
 *               above L; the u_r bring L near T when the top keys spread over the slices, so
 *               R3 carries about k keys in all instead of about k per owner.
 *   R3 keys:    each owner sends the keys of its slice above L (at most k) and how many equal
 *               L. Every owner then knows the multiset of keys >= L, which holds the top k: T is
 *               its k-th largest, "above" counts keys > T, and the n_eq = k - above ties at T go
 *               to the lowest indices, i.e. slice by slice in order.
 *   R4 results: each owner sends its kept pairs (index, d value) in index order; the output is
 *               0 + value there and +0 elsewhere, e_s of the slice = d with a zero of d's sign
 *               at the kept indices: what encode's rem and the server message decode give.
 * Then the confirmation round and the commit (worker errors as every schedule, the output from
 * the K result lists, e_s of this rank's slice). Non-finite values are not carried (the plan
 * does not come here under nonfinite passthrough). */
#include "compressed.h"
#include "split_list.h"

#include "compress/compress.h"
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

typedef struct spl_state {
    spl_phase_t phase;
    size_t k;
    uint32_t L, T;
    uint8_t *send;   /* send area: R1 parts, then R3 keys, then R4 this owner's results */
    uint32_t *keys;  /* union of the explicit keys (R3) */
    uint8_t *bound;  /* R2: 16 bytes per participant: [has t, t, has u, u] */
    size_t sendcap;
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
    return p->geo.nparts > 1 && !p->geo.peer && p->call.double_way && p->call.ntensors == 1 &&
           p->geo.nblocks == 1 && p->call.compressor.kind == TERSE_COMPRESSOR_TOPK &&
           !passthrough(p) && p->geo.nelems >= (size_t)p->geo.nparts;
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

/* R1: compress, send each owner its slice's pairs (this rank's own part stays in the area). */
static terse_status_t post_parts(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t n = p->geo.nelems, k = terse__compress_k(p->call.compressor.ratio, n);
    s->k = k;
    size_t rcap = list_cap(k);
    if (terse__cplan_layout(req, rcap, TERSE_CPLAN_SERVER_MSGS) != TERSE_OK)
        return req->status;
    s->sendcap = LIST_HDR * (size_t)K + list_cap(k) + 64;
    size_t total = s->sendcap + 4 * (size_t)K * k + 16 * (size_t)K + 64;
    uint8_t *m = terse__req_scratch2(req, total);
    if (!m)
        return req->status;
    s->send = m;
    s->keys = (uint32_t *)(m + ((s->sendcap + 63) & ~(size_t)63));
    s->bound = (uint8_t *)(s->keys + (size_t)K * k);
    size_t lo_me = sl_lo(p, me), hi_me = sl_lo(p, me + 1);
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv_var(req, q, 0, p->buf.recv[q],
                                                  list_cap(hi_me - lo_me < k ? hi_me - lo_me : k));
    if (terse__cplan_compress(req, 0, 1) != TERSE_OK)
        return req->status;
    uint64_t wl;
    memcpy(&wl, p->buf.worker_msg, 8);
    const uint64_t *idx;
    char msg[256] = "";
    terse__crange_t rg;
    if (terse__cplan_range(p, 0, 0, 1, msg, sizeof(msg), &rg) != TERSE_OK ||
        terse__topk_single_indices(&rg, terse__cview_local(), p->buf.worker_msg + 8, (size_t)wl,
                                   &idx) != TERSE_OK)
        return terse__req_fail(req, TERSE_ERR_INTERNAL, "own message: %s", msg);
    const float *in = terse__cplan_in(p, 0);
    uint8_t *w = s->send;
    size_t j = 0;
    for (int r = 0; r < K; r++) {
        size_t hi = sl_lo(p, r + 1), j0 = j;
        while (j < k && idx[j] < hi)
            j++;
        size_t len = list_put(w, sl_lo(p, r), NULL, idx + j0, j - j0, in);
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
    size_t lo = sl_lo(p, me), hi = sl_lo(p, me + 1), k = s->k;
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
        if (!list_check(req, m, len, lo, hi, k, &cnt, q, "message"))
            return req->status;
        list_cur_t c = list_begin(m, lo);
        for (size_t j = 0; j < cnt; j++)
            a[list_next(&c)] += list_val(m, j);
    }
    const float kf = (float)K, *es = p->call.tensors[0].server_error;
    int bad = 0;
    if (es)
        for (size_t i = lo; i < hi; i++)
            a[i] = es[i] + a[i] / kf;
    else
        for (size_t i = lo; i < hi; i++)
            a[i] = 0.0f + a[i] / kf;
    uint32_t b[4] = {0, 0, 0, 0}; /* [has t, t, has u, u] */
    size_t k2 = (k + (size_t)K - 1) / (size_t)K;
    if (hi - lo >= k) {
        bad = terse__topk_lower_key(a + lo, hi - lo, k, &b[1]);
        if (bad >= 0 && k2 < k)
            bad |= terse__topk_lower_key(a + lo, hi - lo, k2, &b[3]);
        else if (bad >= 0)
            b[3] = b[1];
        if (bad < 0)
            return terse__req_fail(req, TERSE_ERR_NO_MEMORY, "server selection: no memory");
        b[0] = b[2] = 1;
    } else if (hi - lo >= k2) {
        bad = terse__topk_lower_key(a + lo, hi - lo, k2, &b[3]);
        if (bad < 0)
            return terse__req_fail(req, TERSE_ERR_NO_MEMORY, "server selection: no memory");
        b[2] = 1;
    } else {
        for (size_t i = lo; i < hi; i++)
            bad |= key_of(a[i]) >= 0x7f800000u;
    }
    if (bad)
        return terse__req_fail(req, TERSE_ERR_NONFINITE,
                               "server compression: tensor %u: NaN or Inf in e_s + avg",
                               p->call.tensors[0].id);
    memcpy(s->bound + 16 * (size_t)me, b, 16);
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv(req, q, 1, s->bound + 16 * (size_t)q, 16);
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 1, s->bound + 16 * (size_t)me, 16);
    return TERSE_OK;
}

/* L from the bounds, then R3: this slice's keys above L and its count of keys equal to L. */
static terse_status_t post_keys(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t lo = sl_lo(p, me), hi = sl_lo(p, me + 1), k = s->k;
    uint32_t L = 0;
    size_t k2 = (k + (size_t)K - 1) / (size_t)K;
    for (int q = 0; q < K; q++) {
        uint32_t b[4];
        memcpy(b, s->bound + 16 * (size_t)q, 16);
        size_t nq = sl_lo(p, q + 1) - sl_lo(p, q);
        if (b[0] != (nq >= k) || b[2] != (nq >= k2) || (b[0] && b[1] >= 0x7f800000u) ||
            (b[2] && (b[3] >= 0x7f800000u || (b[0] && b[3] < b[1]))))
            return terse__req_fail(req, TERSE_ERR_CORRUPT, "bound from rank %d invalid",
                                   terse__cplan_peer(p, q));
    }
    for (int q = 0; q < K; q++) /* candidates: every t_r and u_r */
        for (int h = 0; h < 2; h++) {
            uint32_t x, b[4];
            memcpy(b, s->bound + 16 * (size_t)q, 16);
            if (!b[2 * h] || (x = b[2 * h + 1]) <= L)
                continue;
            size_t sure = 0;
            for (int r = 0; r < K; r++) {
                memcpy(b, s->bound + 16 * (size_t)r, 16);
                sure += b[0] && b[1] >= x ? k : b[2] && b[3] >= x ? k2 : 0;
            }
            if (sure >= k)
                L = x;
        }
    s->L = L;
    /* [u64 above][u64 equal][above u32 keys] */
    uint8_t *w = s->send;
    uint32_t *kw = (uint32_t *)(w + 16);
    uint64_t gt = 0, eq = 0;
    const float *a = p->buf.acc;
    for (size_t i = lo; i < hi; i++) {
        uint32_t x = key_of(a[i]);
        if (x > L) {
            if (gt == k) /* cannot happen: at most k keys exceed a valid bound */
                return terse__req_fail(req, TERSE_ERR_INTERNAL, "server selection: bound");
            kw[gt++] = x;
        }
        eq += x == L;
    }
    memcpy(w, &gt, 8);
    memcpy(w + 8, &eq, 8);
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv_var(req, q, 2, p->buf.recv[q], 16 + 4 * k);
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 2, w, 16 + 4 * gt);
    return TERSE_OK;
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

/* T and this owner's ties from every slice's keys, then R4: the kept pairs. */
/* R3's messages checked, and the keys above L of every slice gathered into s->keys. */
static terse_status_t gather_keys(terse_request_h req, size_t *total_p, size_t *eqL_p)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t k = s->k, total = 0, eqL_total = 0;
    uint32_t L = s->L;
    for (int q = 0; q < K; q++) {
        const uint8_t *m = q == me ? s->send : p->buf.recv[q];
        size_t len = q == me ? 0 : terse__req_received_len(req, p->buf.recv_at[q]);
        uint64_t g, e;
        if (q != me && len < 16)
            return terse__req_fail(req, TERSE_ERR_CORRUPT, "keys from rank %d truncated",
                                   terse__cplan_peer(p, q));
        memcpy(&g, m, 8);
        memcpy(&e, m + 8, 8);
        size_t nq = sl_lo(p, q + 1) - sl_lo(p, q);
        if (q != me && (g > k || g > nq || e > nq - g || len != 16 + 4 * g))
            return terse__req_fail(req, TERSE_ERR_CORRUPT,
                                   "keys from rank %d invalid (%llu above, %llu equal, %zu bytes)",
                                   terse__cplan_peer(p, q), (unsigned long long)g,
                                   (unsigned long long)e, len);
        for (size_t j = 0; j < g; j++) {
            uint32_t x;
            memcpy(&x, m + 16 + 4 * j, 4);
            if (x <= L || x >= 0x7f800000u)
                return terse__req_fail(req, TERSE_ERR_CORRUPT, "keys from rank %d invalid",
                                       terse__cplan_peer(p, q));
            s->keys[total++] = x;
        }
        eqL_total += e;
    }
    *total_p = total;
    *eqL_p = eqL_total;
    return TERSE_OK;
}

/* How many keys equal to T the slices below this rank's hold (they keep their ties first). */
static size_t ties_below(const terse__cplan_t *p, uint32_t T, uint32_t L)
{
    size_t before = 0;
    for (int q = 0; q < p->geo.me; q++) {
        const uint8_t *m = p->buf.recv[q];
        size_t c = 0;
        if (T == L) {
            uint64_t e;
            memcpy(&e, m + 8, 8);
            c = (size_t)e;
        } else {
            uint64_t g;
            memcpy(&g, m, 8);
            for (size_t j = 0; j < g; j++) {
                uint32_t x;
                memcpy(&x, m + 16 + 4 * j, 4);
                c += x == T;
            }
        }
        before += c;
    }
    return before;
}

static terse_status_t select_and_post_results(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t lo = sl_lo(p, me), hi = sl_lo(p, me + 1), k = s->k, total = 0, eqL_total = 0;
    uint32_t L = s->L;
    terse_status_t st = gather_keys(req, &total, &eqL_total);
    if (st != TERSE_OK)
        return st;
    /* T: the k-th largest of the keys >= L */
    uint32_t T;
    if (total >= k)
        T = kth_largest(s->keys, total, k - 1);
    else if (total + eqL_total >= k)
        T = L;
    else
        return terse__req_fail(req, TERSE_ERR_CORRUPT, "server selection: %zu keys for k = %zu",
                               total + eqL_total, k);
    s->T = T;
    size_t above = 0;
    for (size_t j = 0; j < total; j++)
        above += s->keys[j] > T;
    /* ties at T: slice by slice, so ones below this slice come first */
    size_t need = k - above, before = ties_below(p, T, L);
    size_t mine_eq = need > before ? need - before : 0;
    /* this owner's kept pairs, in index order */
    const float *a = p->buf.acc;
    uint32_t *ip = s->keys; /* the keys are done with */
    size_t cnt = 0;
    for (size_t i = lo; i < hi; i++) {
        uint32_t x = key_of(a[i]);
        if (x > T || (x == T && mine_eq && mine_eq--))
            ip[cnt++] = (uint32_t)i;
    }
    uint8_t *w = s->send;
    size_t wlen = list_put(w, lo, ip, NULL, cnt, a);
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv_var(req, q, 3, p->buf.recv[q], list_cap(k));
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 3, w, wlen);
    return TERSE_OK;
}

static terse_status_t check_results(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    spl_state_t *s = spl_state(req);
    size_t total = 0, cnt;
    for (int q = 0; q < p->geo.nparts; q++) {
        const uint8_t *m = q == p->geo.me ? s->send : p->buf.recv[q];
        size_t len;
        if (q == p->geo.me) {
            len = list_len(m);
        } else {
            len = terse__req_received_len(req, p->buf.recv_at[q]);
        }
        if (!list_check(req, m, len, sl_lo(p, q), sl_lo(p, q + 1), s->k, &cnt, q,
                        "server message"))
            return req->status;
        for (size_t j = 0; j < cnt; j++)
            if (key_of(list_val(m, j)) < s->T)
                return terse__req_fail(req, TERSE_ERR_CORRUPT,
                                       "server message from rank %d: value below the threshold",
                                       terse__cplan_peer(p, q));
        total += cnt;
    }
    if (total != s->k)
        return terse__req_fail(req, TERSE_ERR_CORRUPT, "server messages hold %zu entries, k = %zu",
                               total, s->k);
    return TERSE_OK;
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
    const terse_ctensor_t *t = &p->call.tensors[0];
    int me = p->geo.me;
    size_t lo = sl_lo(p, me), hi = sl_lo(p, me + 1);
    const float *a = p->buf.acc;
    uint64_t c;
    memcpy(&c, s->send, 8);
    if (t->server_error) {
        memcpy(t->server_error + lo, a + lo, (hi - lo) * sizeof(float));
        list_cur_t cur = list_begin(s->send, lo);
        for (size_t j = 0; j < c; j++) { /* a zero with d's sign, as encode's remainder */
            uint64_t x = list_next(&cur);
            uint32_t b;
            memcpy(&b, &a[x], 4);
            b &= 0x80000000u;
            memcpy(&t->server_error[x], &b, 4);
        }
    }
    int sub = terse__cplan_subtracts(p, 0); /* out - (+0) is out: only the k entries change */
    if (!sub)
        memset(t->out, 0, p->geo.nelems * sizeof(float));
    for (int q = 0; q < p->geo.nparts; q++) {
        const uint8_t *m = q == me ? s->send : p->buf.recv[q];
        uint64_t cnt;
        memcpy(&cnt, m, 8);
        list_cur_t cur = list_begin(m, sl_lo(p, q));
        for (size_t j = 0; j < cnt; j++) {
            size_t x = list_next(&cur);
            float u = 0.0f + list_val(m, j);
            t->out[x] = sub ? t->out[x] - u : u;
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
