/* The shared plan of the compressed allreduce: segments by owner, buffer layout, worker
 * compression, validated aggregation in rank order and the server step (the commit that
 * ends every schedule is plan_commit.c). */
#include "compressed.h"

#include "compress/compress.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/prof.h"

#include <stdio.h>
#include <string.h>

enum { TERSE_CPLAN_MAX_CHUNKS = 64 };

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
    terse__free(p->call.tensors);
    terse__free(p->geo.tensor_off);
    terse__free(p->geo.seg);
    terse__free(p->geo.own_seg);
    terse__free(p->geo.own_elem);
    terse__free(p->geo.own_cap);
    terse__free(p->buf.worker_seg_off);
    terse__free(p->buf.worker_seg_end);
    terse__free(p->geo.chunk_seg);
    terse__free(p->geo.chunk_cap);
    terse__free(p->buf.server_msgs);
    terse__free(p->buf.parts);
    terse__free(p->buf.recv);
    terse__free(p->buf.recv_at);
    terse__free((void *)p->geo.peer);
    terse__free(p->sched_mem);
    terse__free(p);
}

void terse__cplan_cleanup(terse_request_h req)
{
    terse__cplan_free(terse__cplan(req));
    req->algo_data = NULL;
}

/* For error texts. */
static const char *msg_kind(int server)
{
    return server ? "server message" : "message";
}

static size_t seg_cap_bytes(const terse__cplan_t *p, size_t s)
{
    const terse__cseg_t *g = &p->geo.seg[s];
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
    size_t limit = p->geo.nparts > 1 ? TERSE_CPLAN_MAX_CHUNKS : 1;
    size_t target = p->geo.nelems;
    if (p->geo.seg_cap && limit > 1) {
        size_t even = (p->geo.nelems + limit - 2) / (limit - 1);
        target = p->geo.seg_cap > even ? p->geo.seg_cap : even;
    }
    p->geo.chunk_seg = terse__calloc(limit + 2, sizeof(size_t), "compressed allreduce chunks");
    p->geo.chunk_cap = terse__calloc(limit + 2, sizeof(size_t), "compressed allreduce chunks");
    if (!p->geo.chunk_seg || !p->geo.chunk_cap)
        return TERSE_ERR_NO_MEMORY;
    size_t c = 0, elems = 0, cap = 0;
    for (size_t s = 0; s < p->geo.nseg; s++) {
        if (elems >= target && c + 1 < limit) {
            p->geo.chunk_seg[++c] = s;
            p->geo.chunk_cap[c] = cap;
            elems = 0;
        }
        elems += p->geo.seg[s].elem_len;
        cap += seg_cap_bytes(p, s);
    }
    p->geo.nchunk = c + 1;
    p->geo.chunk_seg[p->geo.nchunk] = p->geo.nseg;
    p->geo.chunk_cap[p->geo.nchunk] = cap;
    return TERSE_OK;
}

/* The segments: each tensor's blocks in order, consecutive blocks of one owner merged up to
 * seg_cap elements. */
static void plan_segments(terse__cplan_t *p)
{
    terse__cgeom_t *g = &p->geo;
    for (size_t j = 0; j < p->call.ntensors; j++) {
        size_t n = p->call.tensors[j].count, nb = terse__compress_nblocks(&p->call.compressor, n),
               bs = terse__cplan_block_size(&p->call.compressor, n);
        for (size_t b = 0; b < nb; b++) {
            size_t start = b * bs, len = n - start < bs ? n - start : bs;
            int o = owner_of(g->tensor_off[j] + start, g->nelems, g->nparts);
            terse__cseg_t *last = g->nseg ? &g->seg[g->nseg - 1] : NULL;
            if (last && last->tensor == j && last->owner == o &&
                (!g->seg_cap || last->elem_len + len <= g->seg_cap)) {
                last->count++;
                last->elem_len += len;
                continue;
            }
            g->seg[g->nseg++] = (terse__cseg_t){.tensor = j, .first = b, .count = 1,
                                                .elem_off = start, .elem_len = len, .owner = o};
        }
    }
}

static terse_status_t plan_build(terse__cplan_t *p, const terse_callreduce_params_t *params,
                                 int K_, int rank)
{
    p->call.compressor = *params->compressor;
    if (terse__crange_init(&p->call.range, &p->call.compressor, NULL, 0) != TERSE_OK)
        return TERSE_ERR_INVALID_ARG;
    p->call.double_way =
        (params->field_mask & TERSE_CALLREDUCE_FIELD_DOUBLE_WAY) && params->double_way;
    p->call.step = (params->field_mask & TERSE_CALLREDUCE_FIELD_STEP) ? params->step : 0;
    p->geo.nparts = K_;
    p->geo.me = rank;
    p->call.ntensors = params->ntensors;
    size_t K = (size_t)p->geo.nparts;
    p->call.tensors = terse__calloc(p->call.ntensors ? p->call.ntensors : 1,
                                    sizeof(*p->call.tensors), "compressed allreduce tensors");
    p->geo.tensor_off =
        terse__calloc(p->call.ntensors + 1, sizeof(size_t), "compressed allreduce offsets");
    p->geo.own_seg = terse__calloc(K + 1, sizeof(size_t), "compressed allreduce owners");
    p->geo.own_elem = terse__calloc(K + 1, sizeof(size_t), "compressed allreduce owners");
    p->geo.own_cap = terse__calloc(K, sizeof(size_t), "compressed allreduce owners");
    p->buf.recv = terse__calloc(K, sizeof(uint8_t *), "compressed allreduce receive buffers");
    p->buf.server_msgs =
        terse__calloc(K, sizeof(*p->buf.server_msgs), "compressed allreduce server messages");
    if (!p->call.tensors || !p->geo.tensor_off || !p->geo.own_seg || !p->geo.own_elem ||
        !p->geo.own_cap || !p->buf.recv || !p->buf.server_msgs)
        return TERSE_ERR_NO_MEMORY;
    p->geo.seg_cap = terse__config()->pipeline_bytes / sizeof(float);
    if (p->call.ntensors)
        memcpy(p->call.tensors, params->tensors, p->call.ntensors * sizeof(*p->call.tensors));
    size_t nblk = 0;
    for (size_t j = 0; j < p->call.ntensors; j++) {
        p->geo.tensor_off[j + 1] = p->geo.tensor_off[j] + p->call.tensors[j].count;
        nblk += terse__compress_nblocks(&p->call.compressor, p->call.tensors[j].count);
        p->geo.any_werr |= p->call.tensors[j].worker_error != NULL;
        p->geo.any_serr |= p->call.tensors[j].server_error != NULL;
    }
    p->geo.nelems = p->geo.tensor_off[p->call.ntensors];
    p->geo.nblocks = nblk;
    /* at most one segment per block, plus one split per owner boundary per tensor */
    p->geo.seg = terse__calloc(nblk + 1, sizeof(*p->geo.seg), "compressed allreduce segments");
    p->buf.worker_seg_off =
        terse__calloc(nblk + 1, sizeof(size_t), "compressed allreduce segments");
    p->buf.worker_seg_end =
        terse__calloc(nblk + 1, sizeof(size_t), "compressed allreduce segments");
    if (!p->geo.seg || !p->buf.worker_seg_off || !p->buf.worker_seg_end)
        return TERSE_ERR_NO_MEMORY;
    plan_segments(p);
    /* owners are monotone along the segments: owner r's segments and elements are contiguous */
    size_t s = 0;
    for (int r = 0; r < p->geo.nparts; r++) {
        p->geo.own_seg[r] = s;
        p->geo.own_elem[r] = terse__cplan_seg_elem(p, s);
        size_t cap = 0;
        for (; s < p->geo.nseg && p->geo.seg[s].owner == r; s++)
            cap += seg_cap_bytes(p, s);
        p->geo.own_cap[r] = cap;
    }
    p->geo.own_seg[K] = p->geo.nseg;
    p->geo.own_elem[K] = p->geo.nelems;
    p->buf.parts = terse__calloc(K * (p->geo.nseg ? p->geo.nseg : 1), sizeof(*p->buf.parts),
                             "compressed allreduce message index");
    if (!p->buf.parts || plan_chunks(p) != TERSE_OK)
        return TERSE_ERR_NO_MEMORY;
    p->buf.recv_at = terse__calloc(K * p->geo.nchunk, sizeof(int), "compressed allreduce receives");
    return p->buf.recv_at ? TERSE_OK : TERSE_ERR_NO_MEMORY;
}

void terse__cplan_server_input(terse__cplan_t *p, size_t lo, size_t hi)
{
    const float kf = (float)p->geo.nparts;
    float *a = p->buf.acc;
    for (size_t t = 0; t < p->call.ntensors; t++) {
        size_t t_lo = p->geo.tensor_off[t], t_hi = p->geo.tensor_off[t + 1];
        size_t i0 = t_lo > lo ? t_lo : lo, i1 = t_hi < hi ? t_hi : hi;
        const float *es = p->call.tensors[t].server_error;
        if (i0 >= i1)
            continue;
        if (es)
            for (size_t i = i0; i < i1; i++)
                a[i] = es[i - t_lo] + a[i] / kf;
        else
            for (size_t i = i0; i < i1; i++)
                a[i] = 0.0f + a[i] / kf;
    }
}

int terse__cplan_balanced(const terse__cplan_t *p)
{
    int K = p->geo.nparts;
    int balanced = p->geo.nblocks >= (size_t)(2 * K) && p->geo.own_elem[1] > 0;
    for (int r = 0; r < K && balanced; r++)
        balanced = p->geo.own_elem[r + 1] - p->geo.own_elem[r] >= p->geo.nelems / (size_t)(4 * K);
    return balanced;
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

terse_status_t terse__cplan_layout(terse_request_h req, size_t rcap, int flags)
{
    terse__cplan_t *p = terse__cplan(req);
    int remainders = !p->geo.peer && terse__compress_has_remainder(&p->call.compressor);
    p->buf.direct_werr = p->geo.any_werr && remainders;
    p->buf.direct_serr = p->call.double_way && remainders;
    p->buf.direct_out = !p->geo.peer && p->call.double_way && (flags & TERSE_CPLAN_SERVER_MSGS);
    p->buf.nserver_msgs = 0;
    p->buf.worker_fill = 0;
    size_t wcap = 0, fl = terse__align64(p->geo.nelems * sizeof(float));
    for (int r = 0; r < p->geo.nparts; r++)
        wcap += p->geo.own_cap[r];
    wcap = terse__align64(wcap);
    int werr = p->geo.any_werr && !p->buf.direct_werr,
        serr = p->call.double_way && !p->buf.direct_serr;
    int dense = (flags & TERSE_CPLAN_DENSE) != 0;
    size_t total = 2 * wcap + (size_t)p->geo.nparts * terse__align64(rcap) + fl;
    total += (p->buf.direct_out ? 0 : fl) + (werr ? fl : 0) + (serr ? fl : 0) + (dense ? fl : 0);
    uint8_t *m = terse__req_scratch(req, total + 64);
    if (!m)
        return req->status;
    m = (uint8_t *)terse__align64((size_t)m);
    p->buf.worker_msg = m, m += wcap;
    p->buf.server_msg = m, m += wcap;
    for (int r = 0; r < p->geo.nparts; r++)
        p->buf.recv[r] = m, m += terse__align64(rcap);
    p->buf.acc = (float *)m, m += fl;
    p->buf.out = p->buf.direct_out ? NULL : (float *)m, m += p->buf.direct_out ? 0 : fl;
    p->buf.werr = werr ? (float *)m : NULL, m += werr ? fl : 0;
    p->buf.serr = serr ? (float *)m : NULL, m += serr ? fl : 0;
    p->buf.cdense = dense ? (float *)m : NULL;
    return TERSE_OK;
}

terse_status_t terse__cplan_compress(terse_request_h req, size_t lo, size_t hi)
{
    terse__cplan_t *p = terse__cplan(req);
    char msg[256] = "";
    for (size_t s = lo; s < hi; s++) {
        if (p->buf.worker_fill > 0 && p->geo.nparts > 1) { /* something may be on its way */
            terse__req_poll(req);
            if (req->status != TERSE_INPROGRESS)
                return req->status;
        }
        const terse__cseg_t *g = &p->geo.seg[s];
        terse__crange_t r;
        terse_status_t st =
            terse__cplan_range(p, g->tensor, g->first, g->count, msg, sizeof(msg), &r);
        size_t len = 0;
        uint8_t *w = p->buf.worker_msg + p->buf.worker_fill;
        terse__cenc_args_t a = {
            .v = terse__cplan_in(p, g->tensor),
            .wire = w + 8,
            .wire_cap = terse__crange_max_bytes(&r),
            .remainder_out = p->buf.werr ? p->buf.werr + p->geo.tensor_off[g->tensor] : NULL};
        double t0 = terse__prof_begin(&req->prof);
        if (st == TERSE_OK)
            st = terse__cblocks_encode_par(&r, &a, &len);
        terse__prof_end(&req->prof, TERSE_PHASE_WORKER_COMPRESS, t0, 0, 8 + len);
        if (st != TERSE_OK)
            return terse__req_fail(req, st, "compressing %s: %s",
                                   p->geo.peer ? "this host's average of its ranks' inputs"
                                           : "this rank's input", msg);
        uint64_t l = len;
        memcpy(w, &l, 8);
        p->buf.worker_seg_off[s] = p->buf.worker_fill;
        p->buf.worker_fill += 8 + len;
        p->buf.worker_seg_end[s] = p->buf.worker_fill;
    }
    return TERSE_OK;
}

/* One segment's message under @op; see terse__cplan_op_t. */
static terse_status_t unpack_one(terse__cplan_t *p, const terse__cseg_t *g, const uint8_t *m,
                                 size_t l, terse__cplan_op_t op, float *acc, char *msg, size_t ml)
{
    const terse_ctensor_t *t = &p->call.tensors[g->tensor];
    size_t off = p->geo.tensor_off[g->tensor];
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
    terse_status_t st = unpack_one(p, &p->geo.seg[s], m->p, m->len, op, acc, msg, sizeof(msg));
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
        if (next_seg(req, buf, len, &off, &p->buf.parts[(size_t)q * p->geo.nseg + s], q, 0) !=
            TERSE_OK)
            return req->status;
    return end_packed(req, len, off, q, 0);
}

/* The server step of segment @s: single-way out = acc / K; double-way d = e_s + acc / K in
 * place, compressed onto the end of server_msg (the remainder into serr when staged). */
static terse_status_t serve_seg_run(terse_request_h req, size_t s)
{
    terse__cplan_t *p = terse__cplan(req);
    const terse__cseg_t *g = &p->geo.seg[s];
    const float kf = (float)p->geo.nparts;
    float *a = p->buf.acc + p->geo.tensor_off[g->tensor];
    size_t lo = g->elem_off, hi = g->elem_off + g->elem_len;
    if (!p->call.double_way) {
        float *o = p->buf.out + p->geo.tensor_off[g->tensor];
        for (size_t i = lo; i < hi; i++)
            o[i] = a[i] / kf;
        return TERSE_OK;
    }
    terse__cplan_server_input(p, p->geo.tensor_off[g->tensor] + lo,
                              p->geo.tensor_off[g->tensor] + hi);
    char msg[256] = "";
    terse__crange_t r;
    terse_status_t st = terse__cplan_range(p, g->tensor, g->first, g->count, msg, sizeof(msg), &r);
    size_t len = 0;
    uint8_t *w = p->buf.server_msg + p->buf.server_len;
    terse__cenc_args_t ea = {.v = a,
                             .wire = w + 8,
                             .wire_cap = terse__crange_max_bytes(&r),
                             .remainder_out =
                                 p->buf.serr ? p->buf.serr + p->geo.tensor_off[g->tensor] : NULL};
    if (st == TERSE_OK)
        st = terse__cblocks_encode_par(&r, &ea, &len);
    if (st != TERSE_OK)
        return terse__req_fail(req, st, "server compression: %s", msg);
    uint64_t l = len;
    memcpy(w, &l, 8);
    p->buf.server_len += 8 + len;
    return TERSE_OK;
}

static terse_status_t serve_seg(terse_request_h req, size_t s)
{
    terse__cplan_t *p = terse__cplan(req);
    const terse__cseg_t *g = &p->geo.seg[s];
    uint64_t n4 = g->elem_len * sizeof(float), before = p->buf.server_len;
    int es = p->call.double_way && p->call.tensors[g->tensor].server_error;
    double t0 = terse__prof_begin(&req->prof);
    terse_status_t st = serve_seg_run(req, s);
    /* avg (+ e_s) read and d written; the codec reports its own passes over d */
    terse__prof_end(&req->prof, TERSE_PHASE_SERVER_COMPRESS, t0, (es ? 2 : 1) * n4,
                    n4 + p->buf.server_len - before);
    return st;
}

/* After serve_seg of segments [s_lo, s_hi): the double-way output is the server message,
 * decoded now when staged, recorded for the commit when direct. */
static terse_status_t serve_done(terse_request_h req, size_t s_lo, size_t s_hi)
{
    terse__cplan_t *p = terse__cplan(req);
    if (!p->call.double_way)
        return TERSE_OK;
    if (p->buf.direct_out) {
        terse__cplan_add_srv(p, p->buf.server_msg, p->buf.server_len, s_lo, s_hi, p->geo.me);
        return TERSE_OK;
    }
    size_t e_lo = terse__cplan_seg_elem(p, s_lo);
    double t0 = terse__prof_begin(&req->prof);
    memset(p->buf.out + e_lo, 0, (terse__cplan_seg_elem(p, s_hi) - e_lo) * sizeof(float));
    terse__prof_end(&req->prof, TERSE_PHASE_OUTPUT, t0, 0, (terse__cplan_seg_elem(p, s_hi) - e_lo) * 4);
    return terse__cplan_add_packed(req, p->buf.server_msg, p->buf.server_len, s_lo, s_hi,
                                   p->buf.out, p->geo.me, 1);
}

terse_status_t terse__cplan_serve(terse_request_h req, size_t s_lo, size_t s_hi)
{
    terse__cplan(req)->buf.server_len = 0;
    for (size_t s = s_lo; s < s_hi; s++)
        if (serve_seg(req, s) != TERSE_OK)
            return req->status;
    return serve_done(req, s_lo, s_hi);
}

terse_status_t terse__cplan_reduce_serve(terse_request_h req, size_t s_lo, size_t s_hi)
{
    terse__cplan_t *p = terse__cplan(req);
    p->buf.server_len = 0;
    for (size_t s = s_lo; s < s_hi; s++) {
        /* one segment at a time, so acc stays in cache from the zeroing to the compression */
        size_t e_lo = terse__cplan_seg_elem(p, s);
        memset(p->buf.acc + e_lo, 0, (terse__cplan_seg_elem(p, s + 1) - e_lo) * sizeof(float));
        for (int q = 0; q < p->geo.nparts; q++)
            if (unpack_seg(req, s, &p->buf.parts[(size_t)q * p->geo.nseg + s], TERSE_CPLAN_ADD,
                           p->buf.acc, q, 0) != TERSE_OK)
                return req->status;
        if (serve_seg(req, s) != TERSE_OK)
            return req->status;
    }
    return serve_done(req, s_lo, s_hi);
}
