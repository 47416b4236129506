/* The owner schedule (sign_a2a_ag) for a single tensor of one sign block, double-way: the
 * block is split over the owners at TERSE_SIGN_CHUNK boundaries (compress/sign.h), so each
 * rank reduces and serves 1/K of it, with the bits sign_allgather computes.
 *
 * Slice r = chunks [part_off(nch, K, r), part_off(nch, K, r + 1)) of the nch chunks.
 *   R1 parts:    every rank compresses its whole block (worker sign as usual) and sends owner
 *                r [its scale f32][the bitmap bytes of slice r]. The owner adds them in rank
 *                order into acc = +0 (sign_add, the allgather's float adds), then
 *                d = e_s + acc / K over its slice.
 *   R2 partials: each owner sends every rank its slice's chunk partials of |d| (doubles). The
 *                scale's definition adds the partials in chunk order whoever computed them,
 *                so every rank gets the block's server scale S with the allgather's bits.
 *   R3 results:  each owner packs its slice's signs of d and sends the bitmap bytes to every
 *                rank; the output is 0 + (+-S), e_s of the slice d + (-+S): what the codec's
 *                set and remainder give.
 * Then the confirmation round and the commit (worker errors as every schedule, the output from
 * the assembled bitmap, e_s of this rank's slice). Non-finite values are not carried (the plan
 * does not come here under nonfinite passthrough); a non-finite d shows in some partial,
 * which every rank sees, so every rank fails alike. */
#include "compressed.h"

#include "compress/compress.h"
#include "compress/kernels.h"
#include "compress/sign.h"
#include "compress/wire.h"
#include "core/config.h"

#include <math.h>
#include <string.h>

typedef enum {
    SSP_START,
    SSP_PARTS,
    SSP_PARTIALS,
    SSP_RESULTS,
    SSP_CONFIRMING,
} ssp_phase_t;

typedef struct ssp_state {
    ssp_phase_t phase;
    size_t nch;     /* chunks of the block */
    float scale;    /* the server scale S (R2 on) */
    uint8_t *send;  /* R1: K parts of [scale][slice bytes] */
    double *part;   /* the nch chunk partials, each owner's at its chunks */
    uint8_t *bits;  /* the server bitmap, each owner's bytes at its slice */
} ssp_state_t;

static ssp_state_t *ssp_state(terse_request_h req)
{
    _Static_assert(sizeof(ssp_state_t) <= sizeof(req->state), "state fits");
    return (ssp_state_t *)req->state;
}

static size_t nchunks(size_t n)
{
    return (n + TERSE_SIGN_CHUNK - 1) / TERSE_SIGN_CHUNK;
}

static size_t ch_lo(const terse__cplan_t *p, int r)
{
    return terse__part_off(nchunks(p->geo.nelems), p->geo.nparts, r);
}

/* First element of slice r (slice K ends at N). */
static size_t el_lo(const terse__cplan_t *p, int r)
{
    size_t e = ch_lo(p, r) * (size_t)TERSE_SIGN_CHUNK;
    return e < p->geo.nelems ? e : p->geo.nelems;
}

static size_t sl_bytes(const terse__cplan_t *p, int r)
{
    return (el_lo(p, r + 1) - el_lo(p, r) + 7) / 8;
}

int terse__csign_split_applies(const terse__cplan_t *p)
{
    int pass = (p->call.compressor.field_mask & TERSE_COMPRESSOR_FIELD_NONFINITE_PASSTHROUGH)
                   ? p->call.compressor.nonfinite_passthrough
                   : terse__config()->nonfinite_passthrough;
    /* every owner gets a chunk at least */
    return p->geo.nparts > 1 && !p->geo.peer && p->call.double_way && p->call.ntensors == 1 &&
           p->geo.nblocks == 1 && p->call.compressor.kind == TERSE_COMPRESSOR_SIGN && !pass &&
           nchunks(p->geo.nelems) >= (size_t)p->geo.nparts;
}

/* Padding bits past the block's end must be clear (as the codec's validation). */
static int bad_padding(const terse__cplan_t *p, int r, const uint8_t *b)
{
    size_t n = el_lo(p, r + 1) - el_lo(p, r);
    return n % 8 && (b[n / 8] >> (n % 8));
}

/* R1: compress, send each owner its slice's bytes with this rank's scale. */
static terse_status_t post_parts(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    ssp_state_t *s = ssp_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    size_t n = p->geo.nelems, maxb = 0;
    s->nch = nchunks(n);
    for (int r = 0; r < K; r++)
        maxb = sl_bytes(p, r) > maxb ? sl_bytes(p, r) : maxb;
    if (terse__cplan_layout(req, 4 + maxb, TERSE_CPLAN_SERVER_MSGS) != TERSE_OK)
        return req->status;
    size_t sendcap = (size_t)K * (4 + maxb), bytes = (n + 7) / 8;
    uint8_t *m = terse__req_scratch2(req, sendcap + 8 * s->nch + bytes + 128);
    if (!m)
        return req->status;
    s->part = (double *)(((size_t)m + 63) & ~(size_t)63);
    s->bits = (uint8_t *)(s->part + s->nch);
    s->send = s->bits + bytes;
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv(req, q, 0, p->buf.recv[q], 4 + sl_bytes(p, me));
    if (terse__cplan_compress(req, 0, 1) != TERSE_OK)
        return req->status;
    /* this rank's message: [u64 length][header][scale f32][bitmap] */
    const uint8_t *w = p->buf.worker_msg + 8 + TERSE__WIRE_HEADER_SIZE;
    for (int i = 1; i <= K; i++) { /* own part last, everyone starting with a different owner */
        int r = (me + i) % K;
        uint8_t *o = s->send + (size_t)r * (4 + maxb);
        memcpy(o, w, 4);
        memcpy(o + 4, w + 4 + el_lo(p, r) / 8, sl_bytes(p, r));
        if (r != me)
            terse__cplan_send(req, r, 0, o, 4 + sl_bytes(p, r));
        else
            p->buf.recv_at[me] = (int)((size_t)r * (4 + maxb)); /* own part: offset in the area */
    }
    return TERSE_OK;
}

/* Sum the parts in rank order, d = e_s + acc / K, then R2: this slice's partials. */
static terse_status_t reduce_and_post_partials(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    ssp_state_t *s = ssp_state(req);
    const terse__ckernels_t *kern = terse__ckernels();
    int K = p->geo.nparts, me = p->geo.me;
    size_t lo = el_lo(p, me), hi = el_lo(p, me + 1);
    float *a = p->buf.acc;
    memset(a + lo, 0, (hi - lo) * sizeof(float));
    for (int q = 0; q < K; q++) {
        const uint8_t *m = q == me ? s->send + p->buf.recv_at[me] : p->buf.recv[q];
        float sc;
        memcpy(&sc, m, 4);
        if (!(isfinite(sc) && sc >= 0.0f) || bad_padding(p, me, m + 4))
            return terse__req_fail(
                req, TERSE_ERR_CORRUPT, "message from rank %d: %s", terse__cplan_peer(p, q),
                bad_padding(p, me, m + 4) ? "padding bits set" : "invalid scale");
        kern->sign_add(m + 4, hi - lo, sc, a + lo);
    }
    const float kf = (float)K, *es = p->call.tensors[0].server_error;
    if (es)
        for (size_t i = lo; i < hi; i++)
            a[i] = es[i] + a[i] / kf;
    else
        for (size_t i = lo; i < hi; i++)
            a[i] = 0.0f + a[i] / kf;
    size_t c0 = ch_lo(p, me), nc = ch_lo(p, me + 1) - c0;
    (void)terse__sign_partials(a + lo, hi - lo, s->part + c0); /* non-finite: seen in R2 */
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv(req, q, 1, s->part + ch_lo(p, q),
                                              8 * (ch_lo(p, q + 1) - ch_lo(p, q)));
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 1, s->part + c0, 8 * nc);
    return TERSE_OK;
}

/* The scale from every slice's partials, then R3: this slice's signs of d. */
static terse_status_t pack_and_post_results(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    ssp_state_t *s = ssp_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    for (int q = 0; q < K; q++)
        for (size_t c = ch_lo(p, q); c < ch_lo(p, q + 1); c++) {
            if (s->part[c] >= 0.0 && s->part[c] < INFINITY)
                continue;
            if (isnan(s->part[c]) || s->part[c] > 0.0) /* overflow in e_s + avg */
                return terse__req_fail(req, TERSE_ERR_NONFINITE,
                                       "server compression: tensor %u: NaN or Inf in e_s + avg "
                                       "(elements of rank %d's slice)",
                                       p->call.tensors[0].id, terse__cplan_peer(p, q));
            return terse__req_fail(req, TERSE_ERR_CORRUPT, "partial sums from rank %d invalid",
                                   terse__cplan_peer(p, q));
        }
    s->scale = terse__sign_scale(s->part, s->nch, p->geo.nelems);
    size_t lo = el_lo(p, me), hi = el_lo(p, me + 1);
    terse__ckernels()->sign_pack(p->buf.acc + lo, hi - lo, s->scale, s->bits + lo / 8, NULL, NULL);
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv(req, q, 2, s->bits + el_lo(p, q) / 8,
                                              sl_bytes(p, q));
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 2, s->bits + lo / 8, sl_bytes(p, me));
    return TERSE_OK;
}

static terse_status_t check_results(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    ssp_state_t *s = ssp_state(req);
    for (int q = 0; q < p->geo.nparts; q++)
        if (q != p->geo.me && bad_padding(p, q, s->bits + el_lo(p, q) / 8))
            return terse__req_fail(req, TERSE_ERR_CORRUPT,
                                   "server message from rank %d: padding bits set",
                                   terse__cplan_peer(p, q));
    return TERSE_OK;
}

/* terse__ccommit_fn_t: the schedule knows its own server-error range */
static terse_status_t commit(terse_request_h req, size_t serr_lo, size_t serr_hi)
{
    (void)serr_lo;
    (void)serr_hi;
    enum { PIECE = 4096 }; /* as the codec's set: zeros still in cache when added to */
    terse__cplan_t *p = terse__cplan(req);
    ssp_state_t *s = ssp_state(req);
    const terse__ckernels_t *kern = terse__ckernels();
    p->buf.nserver_msgs = 0;
    /* worker errors (they read the inputs, which an in-place output overwrites) */
    if (terse__cplan_commit(req, 0, 0) != TERSE_OK)
        return req->status;
    const terse_ctensor_t *t = &p->call.tensors[0];
    size_t lo = el_lo(p, p->geo.me), hi = el_lo(p, p->geo.me + 1);
    if (t->server_error) { /* d - C(d) as d + (-C(d)), the codec's remainder */
        memcpy(t->server_error + lo, p->buf.acc + lo, (hi - lo) * sizeof(float));
        kern->sign_add(s->bits + lo / 8, hi - lo, -s->scale, t->server_error + lo);
    }
    if (terse__cplan_subtracts(p, 0)) {
        terse__sign_subtract(s->bits, p->geo.nelems, s->scale, t->out);
        return TERSE_OK;
    }
    for (size_t e = 0; e < p->geo.nelems; e += PIECE) {
        size_t m = p->geo.nelems - e < PIECE ? p->geo.nelems - e : PIECE;
        memset(t->out + e, 0, m * sizeof(float));
        kern->sign_add(s->bits + e / 8, m, s->scale, t->out + e);
    }
    return TERSE_OK;
}

terse_status_t terse__csign_split_progress(terse_request_h req)
{
    ssp_state_t *s = ssp_state(req);
    terse_status_t st;
    switch (s->phase) {
    case SSP_START:
        s->phase = SSP_PARTS;
        if (post_parts(req) != TERSE_OK)
            return req->status;
        return TERSE_INPROGRESS;
    case SSP_PARTS:
        s->phase = SSP_PARTIALS;
        if (reduce_and_post_partials(req) != TERSE_OK)
            return req->status;
        return TERSE_INPROGRESS;
    case SSP_PARTIALS:
        s->phase = SSP_RESULTS;
        if (pack_and_post_results(req) != TERSE_OK)
            return req->status;
        return TERSE_INPROGRESS;
    case SSP_RESULTS:
        if (check_results(req) != TERSE_OK)
            return req->status;
        s->phase = SSP_CONFIRMING;
        st = terse__cplan_confirm(req);
        if (st != TERSE_OK)
            return st;
        /* fall through */
    case SSP_CONFIRMING:
    default:
        return terse__cplan_finish(req, commit, 0, 0);
    }
}
