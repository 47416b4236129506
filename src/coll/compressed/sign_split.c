/* The owner schedule (sign_a2a_ag) for sign lists whose whole blocks do not balance over the
 * owners (one big tensor of one block, a bucket of a few layers of one block each),
 * double-way: the blocks' TERSE_SIGN_CHUNK chunks (compress/sign.h), taken in global element
 * order, are split over the owners, so each rank reduces and serves 1/K of the elements with
 * the bits sign_allgather computes. A slice starts at a chunk boundary of some block, so each
 * piece of a block in a slice starts on a bitmap byte.
 *
 * Slice r = global chunks [part_off(C, K, r), part_off(C, K, r + 1)) of the C chunks.
 *   R1 parts:    every rank compresses its blocks (worker sign as usual) and sends owner r,
 *                for each block meeting slice r, [the block's scale f32][the bitmap bytes of
 *                its piece]. The owner adds them in rank order into acc = +0 (sign_add, the
 *                allgather's float adds), then d = e_s + acc / K over its slice.
 *   R2 partials: each owner sends every rank its slice's chunk partials of |d| (doubles). The
 *                scale's definition adds a block's partials in chunk order whoever computed
 *                them, so every rank gets each block's server scale with the allgather's bits.
 *   R3 results:  each owner packs its pieces' signs of d and sends the bitmap bytes (one run
 *                of the fused server bitmap) to every rank; the output is 0 + (+-S_b), e_s of
 *                the slice d + (-+S_b): what the codec's set and remainder give.
 * Then the confirmation round and the commit (worker errors as every schedule, the output from
 * the assembled bitmap, e_s of this rank's slice). Non-finite values are not carried (the plan
 * does not come here under nonfinite passthrough); a non-finite d shows in some partial,
 * which every rank sees, so every rank fails alike. */
#include "compressed.h"

#include "compress/compress.h"
#include "compress/kernels.h"
#include "compress/sign.h"
#include "compress/wire.h"
#include "core/alloc.h"

#include <math.h>
#include <string.h>

typedef enum {
    SSP_START,
    SSP_PARTS,
    SSP_PARTIALS,
    SSP_RESULTS,
    SSP_CONFIRMING,
} ssp_phase_t;

/* One sign block in the fused element space. */
typedef struct ssp_block {
    size_t lo, n;        /* global first element, elements */
    size_t ch, nch;      /* global first chunk, chunks */
    size_t boff;         /* first byte in the fused server bitmap */
    size_t wat;          /* its [scale][bitmap] in this rank's worker message */
    size_t tensor;
    float scale;         /* the server scale (R3 on) */
} ssp_block_t;

typedef struct ssp_state {
    ssp_phase_t phase;
    size_t nblk, nch;    /* blocks and chunks of the list */
    ssp_block_t *blk;
    uint8_t *send;       /* R1: the K parts, one after the other */
    double *part;        /* the nch chunk partials, each owner's at its chunks */
    uint8_t *bits;       /* the fused server bitmap, each owner's bytes at its slice */
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

/* Chunks of every block of the list. */
static size_t list_chunks(const terse__cplan_t *p)
{
    size_t c = 0;
    for (size_t j = 0; j < p->call.ntensors; j++) {
        size_t n = p->call.tensors[j].count, bs = terse__cplan_block_size(&p->call.compressor, n);
        for (size_t start = 0; start < n; start += bs)
            c += nchunks(n - start < bs ? n - start : bs);
    }
    return c;
}

int terse__csign_split_applies(const terse__cplan_t *p)
{
    /* every owner gets a chunk at least */
    return p->geo.nparts > 1 && !p->geo.peer && p->call.double_way && p->geo.nblocks > 0 &&
           p->call.compressor.kind == TERSE_COMPRESSOR_SIGN && !p->call.range.c.nonfinite_passthrough &&
           !terse__cplan_balanced(p) && list_chunks(p) >= (size_t)p->geo.nparts;
}

static size_t ch_lo(const ssp_state_t *s, const terse__cplan_t *p, int r)
{
    return terse__part_off(s->nch, p->geo.nparts, r);
}

/* The block holding global chunk @c (< nch). */
static size_t block_of_chunk(const ssp_state_t *s, size_t c)
{
    size_t lo = 0, hi = s->nblk;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->blk[mid].ch <= c)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* First element of slice r (slice K: N). */
static size_t el_lo(const ssp_state_t *s, const terse__cplan_t *p, int r)
{
    size_t c = ch_lo(s, p, r);
    if (c >= s->nch)
        return p->geo.nelems;
    const ssp_block_t *b = &s->blk[block_of_chunk(s, c)];
    return b->lo + (c - b->ch) * (size_t)TERSE_SIGN_CHUNK;
}

/* First byte of slice r in the fused bitmap (slice K: its size). */
static size_t byte_lo(const ssp_state_t *s, const terse__cplan_t *p, int r)
{
    size_t c = ch_lo(s, p, r);
    if (c >= s->nch)
        return s->blk[s->nblk - 1].boff + (s->blk[s->nblk - 1].n + 7) / 8;
    const ssp_block_t *b = &s->blk[block_of_chunk(s, c)];
    return b->boff + (c - b->ch) * (size_t)(TERSE_SIGN_CHUNK / 8);
}

/* The blocks meeting slice r: [*b0, *b1]. */
static void slice_blocks(const ssp_state_t *s, const terse__cplan_t *p, int r, size_t *b0,
                         size_t *b1)
{
    *b0 = block_of_chunk(s, ch_lo(s, p, r));
    *b1 = block_of_chunk(s, ch_lo(s, p, r + 1) - 1);
}

/* Block @b's piece in slice @r: global elements [*lo, *hi). */
static void piece(const ssp_state_t *s, const terse__cplan_t *p, size_t b, int r, size_t *lo,
                  size_t *hi)
{
    const ssp_block_t *bl = &s->blk[b];
    size_t a = el_lo(s, p, r), z = el_lo(s, p, r + 1);
    *lo = bl->lo > a ? bl->lo : a;
    *hi = bl->lo + bl->n < z ? bl->lo + bl->n : z;
}

/* Bytes of the R1 part for slice @r. */
static size_t part_len(const ssp_state_t *s, const terse__cplan_t *p, int r)
{
    size_t b0, b1, len = 0, lo, hi;
    slice_blocks(s, p, r, &b0, &b1);
    for (size_t b = b0; b <= b1; b++) {
        piece(s, p, b, r, &lo, &hi);
        len += 4 + (hi - lo + 7) / 8;
    }
    return len;
}

/* Padding bits past a piece's last element must be clear (as the codec's validation). */
static int bad_padding(size_t n, const uint8_t *b)
{
    return n % 8 && (b[n / 8] >> (n % 8));
}

/* The block table (the plan owns it) and where each block sits in this rank's worker
 * message (compressed by then). */
static terse_status_t build_blocks(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    ssp_state_t *s = ssp_state(req);
    ssp_block_t *blk = terse__calloc(p->geo.nblocks, sizeof(*blk), "compressed allreduce blocks");
    if (!blk)
        return terse__req_fail(req, TERSE_ERR_NO_MEMORY, "split: no memory for the block table");
    p->sched_mem = blk;
    size_t nb = 0, ch = 0, boff = 0;
    for (size_t j = 0; j < p->call.ntensors; j++) {
        size_t n = p->call.tensors[j].count, bs = terse__cplan_block_size(&p->call.compressor, n);
        for (size_t start = 0; start < n; start += bs) {
            ssp_block_t *b = &blk[nb++];
            b->lo = p->geo.tensor_off[j] + start;
            b->n = n - start < bs ? n - start : bs;
            b->ch = ch;
            b->nch = nchunks(b->n);
            b->boff = boff;
            b->tensor = j;
            ch += b->nch;
            boff += (b->n + 7) / 8;
        }
    }
    s->blk = blk;
    s->nblk = nb;
    s->nch = ch;
    return TERSE_OK;
}

/* Each block's [scale][bitmap] in the worker message: [u64 length][header][blocks] per
 * segment, the segments' blocks in global order. */
static void locate_worker_blocks(terse__cplan_t *p, ssp_state_t *s)
{
    size_t b = 0;
    for (size_t sg = 0; sg < p->geo.nseg; sg++) {
        size_t at = p->buf.worker_seg_off[sg] + 8 + TERSE__WIRE_HEADER_SIZE;
        for (size_t i = 0; i < p->geo.seg[sg].count; i++, b++) {
            s->blk[b].wat = at;
            at += 4 + (s->blk[b].n + 7) / 8;
        }
    }
}

/* R1: compress, send each owner its slice's pieces with this rank's block scales. */
static terse_status_t post_parts(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    ssp_state_t *s = ssp_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    if (build_blocks(req) != TERSE_OK)
        return req->status;
    size_t mine = part_len(s, p, me), sendcap = 0, *off = NULL;
    if (terse__cplan_layout(req, mine, TERSE_CPLAN_SERVER_MSGS) != TERSE_OK)
        return req->status;
    for (int r = 0; r < K; r++)
        sendcap += part_len(s, p, r);
    size_t bytes = byte_lo(s, p, K);
    uint8_t *m = terse__req_scratch2(req, 8 * s->nch + bytes + sendcap + 8 * (size_t)K + 128);
    if (!m)
        return req->status;
    s->part = (double *)(((size_t)m + 63) & ~(size_t)63);
    s->bits = (uint8_t *)(s->part + s->nch);
    off = (size_t *)(((size_t)(s->bits + bytes) + 7) & ~(size_t)7);
    s->send = (uint8_t *)(off + K);
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv(req, q, 0, p->buf.recv[q], mine);
    if (terse__cplan_compress(req, 0, p->geo.nseg) != TERSE_OK)
        return req->status;
    locate_worker_blocks(p, s);
    size_t at = 0;
    for (int r = 0; r < K; r++) {
        off[r] = at;
        at += part_len(s, p, r);
    }
    for (int i = 1; i <= K; i++) { /* own part last, everyone starting with a different owner */
        int r = (me + i) % K;
        uint8_t *o = s->send + off[r];
        size_t b0, b1, lo, hi;
        slice_blocks(s, p, r, &b0, &b1);
        for (size_t b = b0; b <= b1; b++) {
            const ssp_block_t *bl = &s->blk[b];
            const uint8_t *w = p->buf.worker_msg + bl->wat;
            piece(s, p, b, r, &lo, &hi);
            memcpy(o, w, 4);
            memcpy(o + 4, w + 4 + (lo - bl->lo) / 8, (hi - lo + 7) / 8);
            o += 4 + (hi - lo + 7) / 8;
        }
        if (r != me)
            terse__cplan_send(req, r, 0, s->send + off[r], part_len(s, p, r));
        else
            p->buf.recv_at[me] = (int)off[me]; /* own part: offset in the area */
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
    size_t lo = el_lo(s, p, me), hi = el_lo(s, p, me + 1), b0, b1, plo, phi;
    float *a = p->buf.acc;
    slice_blocks(s, p, me, &b0, &b1);
    memset(a + lo, 0, (hi - lo) * sizeof(float));
    for (int q = 0; q < K; q++) {
        const uint8_t *m = q == me ? s->send + p->buf.recv_at[me] : p->buf.recv[q];
        for (size_t b = b0; b <= b1; b++) {
            float sc;
            piece(s, p, b, me, &plo, &phi);
            memcpy(&sc, m, 4);
            if (!(isfinite(sc) && sc >= 0.0f) || bad_padding(phi - plo, m + 4))
                return terse__req_fail(
                    req, TERSE_ERR_CORRUPT, "message from rank %d: %s", terse__cplan_peer(p, q),
                    bad_padding(phi - plo, m + 4) ? "padding bits set" : "invalid scale");
            kern->sign_add(m + 4, phi - plo, sc, a + plo);
            m += 4 + (phi - plo + 7) / 8;
        }
    }
    terse__cplan_server_input(p, lo, hi);
    for (size_t b = b0; b <= b1; b++) { /* non-finite: seen in R2 */
        const ssp_block_t *bl = &s->blk[b];
        piece(s, p, b, me, &plo, &phi);
        (void)terse__sign_partials(a + plo, phi - plo,
                                   s->part + bl->ch + (plo - bl->lo) / TERSE_SIGN_CHUNK);
    }
    size_t c0 = ch_lo(s, p, me), nc = ch_lo(s, p, me + 1) - c0;
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv(req, q, 1, s->part + ch_lo(s, p, q),
                                                  8 * (ch_lo(s, p, q + 1) - ch_lo(s, p, q)));
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 1, s->part + c0, 8 * nc);
    return TERSE_OK;
}

/* The scales from every slice's partials, then R3: this slice's signs of d. */
static terse_status_t pack_and_post_results(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    ssp_state_t *s = ssp_state(req);
    int K = p->geo.nparts, me = p->geo.me;
    for (int q = 0; q < K; q++)
        for (size_t c = ch_lo(s, p, q); c < ch_lo(s, p, q + 1); c++) {
            if (s->part[c] >= 0.0 && s->part[c] < INFINITY)
                continue;
            if (isnan(s->part[c]) || s->part[c] > 0.0) /* overflow in e_s + avg */
                return terse__req_fail(req, TERSE_ERR_NONFINITE,
                                       "server compression: tensor %u: NaN or Inf in e_s + avg "
                                       "(elements of rank %d's slice)",
                                       p->call.tensors[s->blk[block_of_chunk(s, c)].tensor].id,
                                       terse__cplan_peer(p, q));
            return terse__req_fail(req, TERSE_ERR_CORRUPT, "partial sums from rank %d invalid",
                                   terse__cplan_peer(p, q));
        }
    for (size_t b = 0; b < s->nblk; b++)
        s->blk[b].scale = terse__sign_scale(s->part + s->blk[b].ch, s->blk[b].nch, s->blk[b].n);
    size_t b0, b1, plo, phi;
    slice_blocks(s, p, me, &b0, &b1);
    for (size_t b = b0; b <= b1; b++) {
        const ssp_block_t *bl = &s->blk[b];
        piece(s, p, b, me, &plo, &phi);
        terse__ckernels()->sign_pack(p->buf.acc + plo, phi - plo, bl->scale,
                                     s->bits + bl->boff + (plo - bl->lo) / 8, NULL, NULL);
    }
    size_t lo = byte_lo(s, p, me), hi = byte_lo(s, p, me + 1);
    for (int q = 0; q < K; q++)
        if (q != me)
            p->buf.recv_at[q] = terse__cplan_recv(req, q, 2, s->bits + byte_lo(s, p, q),
                                                  byte_lo(s, p, q + 1) - byte_lo(s, p, q));
    for (int q = 0; q < K; q++)
        if (q != me)
            terse__cplan_send(req, q, 2, s->bits + lo, hi - lo);
    return TERSE_OK;
}

static terse_status_t check_results(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    ssp_state_t *s = ssp_state(req);
    for (int q = 0; q < p->geo.nparts; q++) {
        size_t b0, b1, plo, phi;
        if (q == p->geo.me)
            continue;
        slice_blocks(s, p, q, &b0, &b1);
        for (size_t b = b0; b <= b1; b++) {
            const ssp_block_t *bl = &s->blk[b];
            piece(s, p, b, q, &plo, &phi);
            if (bad_padding(phi - plo, s->bits + bl->boff + (plo - bl->lo) / 8))
                return terse__req_fail(req, TERSE_ERR_CORRUPT,
                                       "server message from rank %d: padding bits set",
                                       terse__cplan_peer(p, q));
        }
    }
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
    size_t b0, b1, plo, phi;
    slice_blocks(s, p, p->geo.me, &b0, &b1);
    for (size_t b = b0; b <= b1; b++) { /* d - C(d) as d + (-C(d)), the codec's remainder */
        const ssp_block_t *bl = &s->blk[b];
        float *es = p->call.tensors[bl->tensor].server_error;
        if (!es)
            continue;
        piece(s, p, b, p->geo.me, &plo, &phi);
        es += plo - p->geo.tensor_off[bl->tensor];
        memcpy(es, p->buf.acc + plo, (phi - plo) * sizeof(float));
        kern->sign_add(s->bits + bl->boff + (plo - bl->lo) / 8, phi - plo, -bl->scale, es);
    }
    for (size_t b = 0; b < s->nblk; b++) {
        const ssp_block_t *bl = &s->blk[b];
        const uint8_t *bits = s->bits + bl->boff;
        float *out = p->call.tensors[bl->tensor].out + (bl->lo - p->geo.tensor_off[bl->tensor]);
        if (terse__cplan_subtracts(p, bl->tensor)) {
            terse__sign_subtract(bits, bl->n, bl->scale, out);
            continue;
        }
        for (size_t e = 0; e < bl->n; e += PIECE) {
            size_t m = bl->n - e < PIECE ? bl->n - e : PIECE;
            memset(out + e, 0, m * sizeof(float));
            kern->sign_add(bits + e / 8, m, bl->scale, out + e);
        }
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
