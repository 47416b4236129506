/* The shared plan of the compressed allreduce: segments by owner, buffer layout, worker
 * compression, validated aggregation in rank order, the server step and the final commit. */
#include "compressed.h"

#include "compress/compress.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/prof.h"

#include <stdio.h>
#include <string.h>

enum { TERSE_CPLAN_MAX_CHUNKS = 64 };

static size_t block_size_of(const terse_compressor_t *c, size_t n)
{
    size_t bs = (c->field_mask & TERSE_COMPRESSOR_FIELD_BLOCK_SIZE) ? c->block_size : 0;
    return bs == 0 || bs > n ? n : bs;
}

/* Owner of the block starting at global element @g: owners split the elements evenly and a
 * block goes to the rank whose share holds its first element (blocks are never split). */
static int owner_of(size_t g, size_t N, int K)
{
    int r = (int)(((__uint128_t)g * (unsigned)K) / (N ? N : 1));
    while (r + 1 < K && terse__part_off(N, K, r + 1) <= g)
        r++;
    while (r > 0 && terse__part_off(N, K, r) > g)
        r--;
    return r;
}

void terse__cplan_free(terse__cplan_t *p)
{
    if (!p)
        return;
    terse__free(p->t);
    terse__free(p->toff);
    terse__free(p->seg);
    terse__free(p->own_seg);
    terse__free(p->own_elem);
    terse__free(p->own_cap);
    terse__free(p->wseg_off);
    terse__free(p->wseg_end);
    terse__free(p->chunk_seg);
    terse__free(p->chunk_cap);
    terse__free(p->srv);
    terse__free(p->parts);
    terse__free(p->rbuf);
    terse__free(p->recv_at);
    terse__free((void *)p->peer);
    terse__free(p);
}

void terse__cplan_cleanup(terse_request_h req)
{
    terse__cplan_free(terse__cplan(req));
    req->algo_data = NULL;
}

/* Global element where segment @s starts (N past the last). */
static size_t seg_elem(const terse__cplan_t *p, size_t s)
{
    return s < p->nseg ? p->toff[p->seg[s].tensor] + p->seg[s].elem_off : p->N;
}

/* For error texts. */
static const char *msg_kind(int server)
{
    return server ? "server message" : "message";
}

static size_t seg_cap_bytes(const terse__cplan_t *p, size_t s)
{
    const terse__cseg_t *g = &p->seg[s];
    terse__crange_t r;
    if (terse__cplan_range(p, g->tensor, g->first, g->count, NULL, 0, &r) != TERSE_OK)
        return 8;
    return 8 + terse__crange_max_bytes(&r);
}

/* The allgather's pipeline: chunks of whole segments of about seg_cap elements each, at most
 * TERSE_CPLAN_MAX_CHUNKS (each chunk is a step of the round's tags, and more pieces than this
 * only add messages). A lone participant sends nothing, so it keeps one chunk. */
static terse_status_t plan_chunks(terse__cplan_t *p)
{
    size_t limit = p->K > 1 ? TERSE_CPLAN_MAX_CHUNKS : 1;
    size_t target = p->N;
    if (p->seg_cap && limit > 1) {
        size_t even = (p->N + limit - 2) / (limit - 1);
        target = p->seg_cap > even ? p->seg_cap : even;
    }
    p->chunk_seg = terse__calloc(limit + 2, sizeof(size_t), "compressed allreduce chunks");
    p->chunk_cap = terse__calloc(limit + 2, sizeof(size_t), "compressed allreduce chunks");
    if (!p->chunk_seg || !p->chunk_cap)
        return TERSE_ERR_NO_MEMORY;
    size_t c = 0, elems = 0, cap = 0;
    for (size_t s = 0; s < p->nseg; s++) {
        if (elems >= target && c + 1 < limit) {
            p->chunk_seg[++c] = s;
            p->chunk_cap[c] = cap;
            elems = 0;
        }
        elems += p->seg[s].elem_len;
        cap += seg_cap_bytes(p, s);
    }
    p->nchunk = c + 1;
    p->chunk_seg[p->nchunk] = p->nseg;
    p->chunk_cap[p->nchunk] = cap;
    return TERSE_OK;
}

static terse_status_t plan_build(terse__cplan_t *p, const terse_callreduce_params_t *params,
                                 int K_, int rank)
{
    p->c = *params->compressor;
    if (terse__crange_init(&p->range, &p->c, NULL, 0) != TERSE_OK)
        return TERSE_ERR_INVALID_ARG;
    p->double_way = (params->field_mask & TERSE_CALLREDUCE_FIELD_DOUBLE_WAY) && params->double_way;
    p->step = (params->field_mask & TERSE_CALLREDUCE_FIELD_STEP) ? params->step : 0;
    p->K = K_;
    p->rank = rank;
    p->nt = params->ntensors;
    size_t K = (size_t)p->K;
    p->t = terse__calloc(p->nt ? p->nt : 1, sizeof(*p->t), "compressed allreduce tensors");
    p->toff = terse__calloc(p->nt + 1, sizeof(size_t), "compressed allreduce offsets");
    p->own_seg = terse__calloc(K + 1, sizeof(size_t), "compressed allreduce owners");
    p->own_elem = terse__calloc(K + 1, sizeof(size_t), "compressed allreduce owners");
    p->own_cap = terse__calloc(K, sizeof(size_t), "compressed allreduce owners");
    p->rbuf = terse__calloc(K, sizeof(uint8_t *), "compressed allreduce receive buffers");
    p->srv = terse__calloc(K, sizeof(*p->srv), "compressed allreduce server messages");
    if (!p->t || !p->toff || !p->own_seg || !p->own_elem || !p->own_cap || !p->rbuf || !p->srv)
        return TERSE_ERR_NO_MEMORY;
    p->seg_cap = terse__config()->pipeline_bytes / sizeof(float);
    if (p->nt)
        memcpy(p->t, params->tensors, p->nt * sizeof(*p->t));
    size_t nblk = 0;
    for (size_t j = 0; j < p->nt; j++) {
        p->toff[j + 1] = p->toff[j] + p->t[j].count;
        nblk += terse__compress_nblocks(&p->c, p->t[j].count);
        p->any_werr |= p->t[j].worker_error != NULL;
        p->any_serr |= p->t[j].server_error != NULL;
    }
    p->N = p->toff[p->nt];
    p->nblocks = nblk;
    /* at most one segment per block, plus one split per owner boundary per tensor */
    p->seg = terse__calloc(nblk + 1, sizeof(*p->seg), "compressed allreduce segments");
    p->wseg_off = terse__calloc(nblk + 1, sizeof(size_t), "compressed allreduce segments");
    p->wseg_end = terse__calloc(nblk + 1, sizeof(size_t), "compressed allreduce segments");
    if (!p->seg || !p->wseg_off || !p->wseg_end)
        return TERSE_ERR_NO_MEMORY;
    for (size_t j = 0; j < p->nt; j++) {
        size_t n = p->t[j].count, nb = terse__compress_nblocks(&p->c, n), bs = block_size_of(&p->c, n);
        for (size_t b = 0; b < nb; b++) {
            size_t start = b * bs, len = n - start < bs ? n - start : bs;
            int o = owner_of(p->toff[j] + start, p->N, p->K);
            terse__cseg_t *last = p->nseg ? &p->seg[p->nseg - 1] : NULL;
            if (last && last->tensor == j && last->owner == o &&
                (!p->seg_cap || last->elem_len + len <= p->seg_cap)) {
                last->count++;
                last->elem_len += len;
                continue;
            }
            p->seg[p->nseg++] = (terse__cseg_t){.tensor = j, .first = b, .count = 1,
                                                .elem_off = start, .elem_len = len, .owner = o};
        }
    }
    /* owners are monotone along the segments: owner r's segments and elements are contiguous */
    size_t s = 0;
    for (int r = 0; r < p->K; r++) {
        p->own_seg[r] = s;
        p->own_elem[r] = seg_elem(p, s);
        size_t cap = 0;
        for (; s < p->nseg && p->seg[s].owner == r; s++)
            cap += seg_cap_bytes(p, s);
        p->own_cap[r] = cap;
    }
    p->own_seg[K] = p->nseg;
    p->own_elem[K] = p->N;
    p->parts = terse__calloc(K * (p->nseg ? p->nseg : 1), sizeof(*p->parts),
                             "compressed allreduce message index");
    if (!p->parts || plan_chunks(p) != TERSE_OK)
        return TERSE_ERR_NO_MEMORY;
    p->recv_at = terse__calloc(K * p->nchunk, sizeof(int), "compressed allreduce receives");
    return p->recv_at ? TERSE_OK : TERSE_ERR_NO_MEMORY;
}

terse_status_t terse__cplan_create(const terse_callreduce_params_t *params, int K, int rank,
                                   terse__cplan_t **plan_p)
{
    terse__cplan_t *p = terse__calloc(1, sizeof(*p), "compressed allreduce plan");
    if (!p)
        return TERSE_ERR_NO_MEMORY;
    terse_status_t st = plan_build(p, params, K, rank);
    if (st != TERSE_OK) {
        terse__cplan_free(p);
        return st;
    }
    *plan_p = p;
    return TERSE_OK;
}

static size_t align64(size_t x)
{
    return (x + 63) & ~(size_t)63;
}

terse_status_t terse__cplan_layout(terse_request_h req, size_t rcap, int flags)
{
    terse__cplan_t *p = terse__cplan(req);
    int remainders = !p->peer && terse__compress_has_remainder(&p->c);
    p->direct_werr = p->any_werr && remainders;
    p->direct_serr = p->double_way && remainders;
    p->direct_out = !p->peer && p->double_way && (flags & TERSE_CPLAN_SERVER_MSGS);
    p->nsrv = 0;
    p->wfill = 0;
    size_t wcap = 0, fl = align64(p->N * sizeof(float));
    for (int r = 0; r < p->K; r++)
        wcap += p->own_cap[r];
    wcap = align64(wcap);
    int werr = p->any_werr && !p->direct_werr, serr = p->double_way && !p->direct_serr;
    int dense = (flags & TERSE_CPLAN_DENSE) != 0;
    size_t total = 2 * wcap + (size_t)p->K * align64(rcap) + fl;
    total += (p->direct_out ? 0 : fl) + (werr ? fl : 0) + (serr ? fl : 0) + (dense ? fl : 0);
    uint8_t *m = terse__req_scratch(req, total + 64);
    if (!m)
        return req->status;
    m = (uint8_t *)align64((size_t)m);
    p->wmsg = m, m += wcap;
    p->smsg = m, m += wcap;
    for (int r = 0; r < p->K; r++)
        p->rbuf[r] = m, m += align64(rcap);
    p->acc = (float *)m, m += fl;
    p->out = p->direct_out ? NULL : (float *)m, m += p->direct_out ? 0 : fl;
    p->werr = werr ? (float *)m : NULL, m += werr ? fl : 0;
    p->serr = serr ? (float *)m : NULL, m += serr ? fl : 0;
    p->cdense = dense ? (float *)m : NULL;
    return TERSE_OK;
}

terse_status_t terse__cplan_compress(terse_request_h req, size_t lo, size_t hi)
{
    terse__cplan_t *p = terse__cplan(req);
    char msg[256] = "";
    for (size_t s = lo; s < hi; s++) {
        if (p->wfill > 0 && p->K > 1) { /* something may be on its way */
            terse__req_poll(req);
            if (req->status != TERSE_INPROGRESS)
                return req->status;
        }
        const terse__cseg_t *g = &p->seg[s];
        terse__crange_t r;
        terse_status_t st = terse__cplan_range(p, g->tensor, g->first, g->count, msg, sizeof(msg), &r);
        size_t len = 0;
        uint8_t *w = p->wmsg + p->wfill;
        terse__cenc_args_t a = {.v = terse__cplan_in(p, g->tensor), .wire = w + 8,
                                .wire_cap = terse__crange_max_bytes(&r),
                                .remainder_out = p->werr ? p->werr + p->toff[g->tensor] : NULL};
        double t0 = terse__prof_begin(&req->prof);
        if (st == TERSE_OK)
            st = terse__cblocks_encode_par(&r, &a, &len);
        terse__prof_end(&req->prof, TERSE_PHASE_WORKER_COMPRESS, t0, 0, 8 + len);
        if (st != TERSE_OK)
            return terse__req_fail(req, st, "compressing %s: %s",
                                   p->peer ? "this host's average of its ranks' inputs"
                                           : "this rank's input", msg);
        uint64_t l = len;
        memcpy(w, &l, 8);
        p->wseg_off[s] = p->wfill;
        p->wfill += 8 + len;
        p->wseg_end[s] = p->wfill;
    }
    return TERSE_OK;
}

/* One segment's message under @op; see terse__cplan_op_t. */
static terse_status_t unpack_one(terse__cplan_t *p, const terse__cseg_t *g, const uint8_t *m,
                                 size_t l, terse__cplan_op_t op, float *acc, char *msg, size_t ml)
{
    const terse_ctensor_t *t = &p->t[g->tensor];
    size_t off = p->toff[g->tensor];
    terse__crange_t r;
    terse_status_t st = terse__cplan_range(p, g->tensor, g->first, g->count, msg, ml, &r);
    if (st != TERSE_OK)
        return st;
    terse__cdec_args_t a = {.wire = m, .wire_len = l, .op = TERSE__CDEC_CHECK};
    switch (op) {
    case TERSE_CPLAN_ADD:
        a.op = TERSE__CDEC_ADD, a.out = acc + off;
        break;
    case TERSE_CPLAN_OUT:
        a.op = terse__cplan_subtracts(p, g->tensor) ? TERSE__CDEC_SUBTRACT : TERSE__CDEC_SET;
        a.out = t->out;
        break;
    case TERSE_CPLAN_WERR:
        if (t->worker_error)
            a.op = TERSE__CDEC_REMAINDER, a.out = t->worker_error,
            a.v = terse__cplan_in(p, g->tensor);
        break;
    case TERSE_CPLAN_SERR:
        if (t->server_error)
            a.op = TERSE__CDEC_REMAINDER, a.out = t->server_error, a.v = acc + off;
        break;
    case TERSE_CPLAN_CHECK:
        break;
    }
    return terse__cblocks_decode_par(&r, &a);
}

/* The message of the next segment of a packed message at *off (its length prefix checked). */
static terse_status_t next_seg(terse_request_h req, const uint8_t *buf, size_t len, size_t *off,
                               terse__cpart_t *m, int from, int server)
{
    const char *what = msg_kind(server);
    int peer = terse__cplan_peer(terse__cplan(req), from);
    uint64_t l;
    if (len - *off < 8)
        return terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d truncated at %zu bytes",
                               what, peer, len);
    memcpy(&l, buf + *off, 8);
    *off += 8;
    if (l > len - *off)
        return terse__req_fail(req, TERSE_ERR_CORRUPT,
                               "%s from rank %d: segment of %llu bytes overruns %zu", what, peer,
                               (unsigned long long)l, len);
    m->p = buf + *off;
    m->len = (size_t)l;
    *off += (size_t)l;
    return TERSE_OK;
}

static terse_status_t end_packed(terse_request_h req, size_t len, size_t off, int from, int server)
{
    if (off == len)
        return TERSE_OK;
    return terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d has %zu trailing bytes",
                           msg_kind(server),
                           terse__cplan_peer(terse__cplan(req), from), len - off);
}

/* The phase an unpack belongs to (terse_phase_t). */
static terse_phase_t unpack_phase(terse__cplan_op_t op, int server)
{
    switch (op) {
    case TERSE_CPLAN_WERR:
        return TERSE_PHASE_WORKER_ERROR;
    case TERSE_CPLAN_SERR:
        return TERSE_PHASE_SERVER_ERROR;
    case TERSE_CPLAN_OUT:
        return TERSE_PHASE_OUTPUT;
    default:
        return server ? TERSE_PHASE_OUTPUT : TERSE_PHASE_REDUCE;
    }
}

static terse_status_t unpack_seg(terse_request_h req, size_t s, const terse__cpart_t *m,
                                 terse__cplan_op_t op, float *acc, int from, int server)
{
    terse__cplan_t *p = terse__cplan(req);
    char msg[256] = "";
    double t0 = terse__prof_begin(&req->prof);
    terse_status_t st = unpack_one(p, &p->seg[s], m->p, m->len, op, acc, msg, sizeof(msg));
    terse__prof_end(&req->prof, unpack_phase(op, server), t0, m->len, 0);
    if (st == TERSE_OK)
        return TERSE_OK;
    return terse__req_fail(req, st == TERSE_ERR_INVALID_ARG ? TERSE_ERR_CORRUPT : st,
                           "%s from rank %d: %s", msg_kind(server),
                           terse__cplan_peer(p, from), msg);
}

terse_status_t terse__cplan_unpack(terse_request_h req, const uint8_t *buf, size_t len,
                                   size_t s_lo, size_t s_hi, terse__cplan_op_t op, float *acc,
                                   int from, int server)
{
    size_t off = 0;
    for (size_t s = s_lo; s < s_hi; s++) {
        terse__cpart_t m = {NULL, 0};
        if (next_seg(req, buf, len, &off, &m, from, server) != TERSE_OK ||
            unpack_seg(req, s, &m, op, acc, from, server) != TERSE_OK)
            return req->status;
    }
    return end_packed(req, len, off, from, server);
}

terse_status_t terse__cplan_split(terse_request_h req, int q, const uint8_t *buf, size_t len,
                                  size_t s_lo, size_t s_hi)
{
    terse__cplan_t *p = terse__cplan(req);
    size_t off = 0;
    for (size_t s = s_lo; s < s_hi; s++)
        if (next_seg(req, buf, len, &off, &p->parts[(size_t)q * p->nseg + s], q, 0) != TERSE_OK)
            return req->status;
    return end_packed(req, len, off, q, 0);
}

/* The server step of segment @s: single-way out = acc / K; double-way d = e_s + acc / K in
 * place, compressed onto the end of smsg (the remainder into serr when staged). */
static terse_status_t serve_seg_run(terse_request_h req, size_t s)
{
    terse__cplan_t *p = terse__cplan(req);
    const terse__cseg_t *g = &p->seg[s];
    const terse_ctensor_t *t = &p->t[g->tensor];
    const float kf = (float)p->K;
    float *a = p->acc + p->toff[g->tensor];
    size_t lo = g->elem_off, hi = g->elem_off + g->elem_len;
    if (!p->double_way) {
        float *o = p->out + p->toff[g->tensor];
        for (size_t i = lo; i < hi; i++)
            o[i] = a[i] / kf;
        return TERSE_OK;
    }
    const float *es = t->server_error;
    if (es) {
        for (size_t i = lo; i < hi; i++)
            a[i] = es[i] + a[i] / kf;
    } else {
        for (size_t i = lo; i < hi; i++)
            a[i] = 0.0f + a[i] / kf;
    }
    char msg[256] = "";
    terse__crange_t r;
    terse_status_t st = terse__cplan_range(p, g->tensor, g->first, g->count, msg, sizeof(msg), &r);
    size_t len = 0;
    uint8_t *w = p->smsg + p->smsg_len;
    terse__cenc_args_t ea = {.v = a, .wire = w + 8, .wire_cap = terse__crange_max_bytes(&r),
                             .remainder_out = p->serr ? p->serr + p->toff[g->tensor] : NULL};
    if (st == TERSE_OK)
        st = terse__cblocks_encode_par(&r, &ea, &len);
    if (st != TERSE_OK)
        return terse__req_fail(req, st, "server compression: %s", msg);
    uint64_t l = len;
    memcpy(w, &l, 8);
    p->smsg_len += 8 + len;
    return TERSE_OK;
}

static terse_status_t serve_seg(terse_request_h req, size_t s)
{
    terse__cplan_t *p = terse__cplan(req);
    const terse__cseg_t *g = &p->seg[s];
    uint64_t n4 = g->elem_len * sizeof(float), before = p->smsg_len;
    int es = p->double_way && p->t[g->tensor].server_error;
    double t0 = terse__prof_begin(&req->prof);
    terse_status_t st = serve_seg_run(req, s);
    /* avg (+ e_s) read and d written; the codec reports its own passes over d */
    terse__prof_end(&req->prof, TERSE_PHASE_SERVER_COMPRESS, t0, (es ? 2 : 1) * n4,
                    n4 + p->smsg_len - before);
    return st;
}

/* After serve_seg of segments [s_lo, s_hi): the double-way output is the server message,
 * decoded now when staged, recorded for the commit when direct. */
static terse_status_t serve_done(terse_request_h req, size_t s_lo, size_t s_hi)
{
    terse__cplan_t *p = terse__cplan(req);
    if (!p->double_way)
        return TERSE_OK;
    if (p->direct_out) {
        terse__cplan_add_srv(p, p->smsg, p->smsg_len, s_lo, s_hi, p->rank);
        return TERSE_OK;
    }
    size_t e_lo = seg_elem(p, s_lo);
    double t0 = terse__prof_begin(&req->prof);
    memset(p->out + e_lo, 0, (seg_elem(p, s_hi) - e_lo) * sizeof(float));
    terse__prof_end(&req->prof, TERSE_PHASE_OUTPUT, t0, 0, (seg_elem(p, s_hi) - e_lo) * 4);
    return terse__cplan_add_packed(req, p->smsg, p->smsg_len, s_lo, s_hi, p->out, p->rank, 1);
}

terse_status_t terse__cplan_serve(terse_request_h req, size_t s_lo, size_t s_hi)
{
    terse__cplan(req)->smsg_len = 0;
    for (size_t s = s_lo; s < s_hi; s++)
        if (serve_seg(req, s) != TERSE_OK)
            return req->status;
    return serve_done(req, s_lo, s_hi);
}

terse_status_t terse__cplan_reduce_serve(terse_request_h req, size_t s_lo, size_t s_hi)
{
    terse__cplan_t *p = terse__cplan(req);
    p->smsg_len = 0;
    for (size_t s = s_lo; s < s_hi; s++) {
        /* one segment at a time, so acc stays in cache from the zeroing to the compression */
        size_t e_lo = seg_elem(p, s);
        memset(p->acc + e_lo, 0, (seg_elem(p, s + 1) - e_lo) * sizeof(float));
        for (int q = 0; q < p->K; q++)
            if (unpack_seg(req, s, &p->parts[(size_t)q * p->nseg + s], TERSE_CPLAN_ADD, p->acc, q,
                           0) != TERSE_OK)
                return req->status;
        if (serve_seg(req, s) != TERSE_OK)
            return req->status;
    }
    return serve_done(req, s_lo, s_hi);
}

/* Every message was validated before the confirmation round, so the unpacking here cannot
 * fail but for scratch memory on a thread that has not decoded yet (the request then fails on
 * this rank with its buffers partly written: the one case out of memory is not atomic). */
terse_status_t terse__cplan_commit(terse_request_h req, size_t serr_lo, size_t serr_hi)
{
    terse__cplan_t *p = terse__cplan(req);
    /* worker errors first: they read the inputs, which an in-place output overwrites */
    for (size_t s = 0; s < p->nseg && p->direct_werr; s++)
        if (terse__cplan_unpack(req, p->wmsg + p->wseg_off[s], p->wseg_end[s] - p->wseg_off[s], s,
                                s + 1, TERSE_CPLAN_WERR, NULL, p->rank, 0) != TERSE_OK)
            return req->status;
    double t0 = terse__prof_begin(&req->prof);
    for (size_t j = 0; j < p->nt && p->werr; j++)
        if (p->t[j].worker_error && p->t[j].count)
            memcpy(p->t[j].worker_error, p->werr + p->toff[j], p->t[j].count * sizeof(float));
    if (p->werr)
        terse__prof_end(&req->prof, TERSE_PHASE_WORKER_ERROR, t0, 4 * p->N, 4 * p->N);
    if (p->direct_serr && serr_hi > serr_lo &&
        terse__cplan_unpack(req, p->smsg, p->smsg_len, serr_lo, serr_hi, TERSE_CPLAN_SERR, p->acc,
                            p->rank, 1) != TERSE_OK)
        return req->status;
    t0 = terse__prof_begin(&req->prof);
    for (size_t s = serr_lo; s < serr_hi && p->serr; s++) {
        const terse__cseg_t *g = &p->seg[s];
        float *es = p->t[g->tensor].server_error;
        if (es)
            memcpy(es + g->elem_off, p->serr + p->toff[g->tensor] + g->elem_off,
                   g->elem_len * sizeof(float));
    }
    if (p->serr)
        terse__prof_end(&req->prof, TERSE_PHASE_SERVER_ERROR, t0,
                        4 * (seg_elem(p, serr_hi) - seg_elem(p, serr_lo)),
                        4 * (seg_elem(p, serr_hi) - seg_elem(p, serr_lo)));
    if (p->direct_out) {
        /* out = 0 + decode(server messages), the staged path's arithmetic, in place: the
         * server messages' segments cover every block once */
        for (int i = 0; i < p->nsrv; i++) {
            const terse__csrv_t *v = &p->srv[i];
            if (terse__cplan_unpack(req, v->buf, v->len, v->s_lo, v->s_hi, TERSE_CPLAN_OUT, NULL,
                                    v->from, 1) != TERSE_OK)
                return req->status;
        }
        return TERSE_OK;
    }
    t0 = terse__prof_begin(&req->prof);
    for (size_t j = 0; j < p->nt; j++) {
        float *o = p->t[j].out;
        const float *u = p->out + p->toff[j];
        if (terse__cplan_subtracts(p, j)) {
            for (size_t i = 0; i < p->t[j].count; i++)
                o[i] = o[i] - u[i];
        } else if (p->t[j].count) {
            memmove(o, u, p->t[j].count * sizeof(float));
        }
    }
    terse__prof_end(&req->prof, TERSE_PHASE_OUTPUT, t0, 4 * p->N, 4 * p->N);
    return TERSE_OK;
}

terse_status_t terse__cplan_finish(terse_request_h req, terse__ccommit_fn_t commit,
                                   size_t serr_lo, size_t serr_hi)
{
    terse__cplan_t *p = terse__cplan(req);
    if (p->hier.defer_commit) {
        p->hier.commit_lo = serr_lo;
        p->hier.commit_hi = serr_hi;
        return TERSE_OK;
    }
    if (p->hold.phase == TERSE_CHOLD_WANTED) {
        p->hold = (terse__chold_t){TERSE_CHOLD_HELD, commit, serr_lo, serr_hi};
        return TERSE_OK;
    }
    return commit(req, serr_lo, serr_hi);
}
