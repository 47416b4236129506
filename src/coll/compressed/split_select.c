/* split.c's selection: each shared block's bound from its owners' keys, its threshold and
 * ties from their keys above it, and the local blocks' exact selection (see split.c's header
 * for the rounds). */
#include "split.h"

#include "compress/compress.h"
#include "compress/kernels.h"
#include "compress/topk.h"

/* The bound of block @b's piece a[0, n): b4 = [has t, t, has u, u]. 1 on a non-finite value,
 * -1 on no memory. */
int terse__spl_piece_bound(const spl_block_t *b, const float *a, size_t n, uint32_t b4[4])
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

terse_status_t terse__spl_select_failed(terse_request_h req, const spl_block_t *b, int bad)
{
    if (bad < 0)
        return terse__req_fail(req, TERSE_ERR_NO_MEMORY, "server selection: no memory");
    return terse__req_fail(req, TERSE_ERR_NONFINITE,
                           "server compression: NaN or Inf in e_s + avg of elements [%zu, %zu) "
                           "of the fused tensors",
                           b->lo, b->lo + b->n);
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
int terse__spl_lower(terse_request_h req, size_t b, uint32_t *L_p)
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
terse_status_t terse__spl_select_local(terse_request_h req)
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
        if (bad)
            return terse__spl_select_failed(req, bl, bad);
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
int terse__spl_threshold(terse_request_h req, int e, size_t *mine_eq_p)
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
size_t terse__spl_keep_edge(const terse__cplan_t *p, const spl_state_t *s, int e, size_t mine_eq,
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
