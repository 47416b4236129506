/* The shared plan of the compressed allreduce: segments by owner, buffer layout, worker
 * compression, validated aggregation in rank order, the server step and the final commit. */
#include "compressed.h"

#include "compress/compress.h"
#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

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

void terse__cplan_cleanup(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    if (!p)
        return;
    terse__free(p->t);
    terse__free(p->toff);
    terse__free(p->seg);
    terse__free(p->own_seg);
    terse__free(p->own_elem);
    terse__free(p->own_cap);
    terse__free(p->wseg_off);
    terse__free(p->rbuf);
    terse__free((void *)p->peer);
    terse__free(p);
    req->algo_data = NULL;
}

terse_status_t terse__cplan_create(terse_request_h req, const terse_callreduce_params_t *params,
                                   int K_, int rank)
{
    terse__cplan_t *p = terse__calloc(1, sizeof(*p), "compressed allreduce plan");
    if (!p)
        return TERSE_ERR_NO_MEMORY;
    req->algo_data = p;
    p->c = params->compressor;
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
    if (!p->t || !p->toff || !p->own_seg || !p->own_elem || !p->own_cap || !p->rbuf)
        return TERSE_ERR_NO_MEMORY;
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
    p->wseg_off = terse__calloc(nblk + 2, sizeof(size_t), "compressed allreduce segments");
    if (!p->seg || !p->wseg_off)
        return TERSE_ERR_NO_MEMORY;
    for (size_t j = 0; j < p->nt; j++) {
        size_t n = p->t[j].count, nb = terse__compress_nblocks(&p->c, n), bs = block_size_of(&p->c, n);
        for (size_t b = 0; b < nb; b++) {
            size_t start = b * bs, len = n - start < bs ? n - start : bs;
            int o = owner_of(p->toff[j] + start, p->N, p->K);
            terse__cseg_t *last = p->nseg ? &p->seg[p->nseg - 1] : NULL;
            if (last && last->tensor == j && last->owner == o) {
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
        p->own_elem[r] = s < p->nseg ? p->toff[p->seg[s].tensor] + p->seg[s].elem_off : p->N;
        size_t cap = 0;
        for (; s < p->nseg && p->seg[s].owner == r; s++) {
            const terse__cseg_t *g = &p->seg[s];
            cap += 8 + terse__compress_blocks_max_bytes(&p->c, p->t[g->tensor].count, g->first,
                                                        g->count);
        }
        p->own_cap[r] = cap;
    }
    p->own_seg[K] = p->nseg;
    p->own_elem[K] = p->N;
    return TERSE_OK;
}

static size_t align64(size_t x)
{
    return (x + 63) & ~(size_t)63;
}

terse_status_t terse__cplan_layout(terse_request_h req, size_t rcap, int dense)
{
    terse__cplan_t *p = terse__cplan(req);
    size_t wcap = 0, fl = align64(p->N * sizeof(float));
    for (int r = 0; r < p->K; r++)
        wcap += p->own_cap[r];
    wcap = align64(wcap);
    size_t total = 2 * wcap + (size_t)p->K * align64(rcap) + 2 * fl;
    total += p->any_werr ? fl : 0;
    total += p->double_way ? fl : 0;
    total += dense ? fl : 0;
    uint8_t *m = terse__req_scratch(req, total + 64);
    if (!m)
        return req->status;
    m = (uint8_t *)align64((size_t)m);
    p->wmsg = m, m += wcap;
    p->smsg = m, m += wcap;
    for (int r = 0; r < p->K; r++)
        p->rbuf[r] = m, m += align64(rcap);
    p->acc = (float *)m, m += fl;
    p->out = (float *)m, m += fl;
    p->werr = p->any_werr ? (float *)m : NULL, m += p->any_werr ? fl : 0;
    p->serr = p->double_way ? (float *)m : NULL, m += p->double_way ? fl : 0;
    p->cdense = dense ? (float *)m : NULL;
    return TERSE_OK;
}

terse_status_t terse__cplan_compress_worker(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    size_t off = 0;
    char msg[256] = "";
    for (size_t s = 0; s < p->nseg; s++) {
        const terse__cseg_t *g = &p->seg[s];
        const terse_ctensor_t *t = &p->t[g->tensor];
        size_t cap = terse__compress_blocks_max_bytes(&p->c, t->count, g->first, g->count), len = 0;
        float *rem = p->werr ? p->werr + p->toff[g->tensor] : NULL;
        p->wseg_off[s] = off;
        terse_status_t st = terse__compress_blocks(&p->c, t->in, t->count, t->id, p->step, g->first,
                                                   g->count, p->wmsg + off + 8, cap, &len, NULL,
                                                   rem, msg, sizeof(msg));
        if (st != TERSE_OK)
            return terse__req_fail(req, st, "compressing %s: %s",
                                   p->peer ? "this host's average of its ranks' inputs"
                                           : "this rank's input", msg);
        uint64_t l = len;
        memcpy(p->wmsg + off, &l, 8);
        off += 8 + len;
    }
    p->wseg_off[p->nseg] = off;
    return TERSE_OK;
}

terse_status_t terse__cplan_add_packed(terse_request_h req, const uint8_t *buf, size_t len,
                                       size_t s_lo, size_t s_hi, float *acc, int from, int server)
{
    terse__cplan_t *p = terse__cplan(req);
    const char *what = server ? "server message" : "message";
    char msg[256] = "";
    size_t off = 0;
    for (size_t s = s_lo; s < s_hi; s++) {
        const terse__cseg_t *g = &p->seg[s];
        const terse_ctensor_t *t = &p->t[g->tensor];
        uint64_t l;
        if (len - off < 8)
            return terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d truncated at %zu bytes",
                                   what, terse__cplan_peer(p, from), len);
        memcpy(&l, buf + off, 8);
        off += 8;
        if (l > len - off)
            return terse__req_fail(req, TERSE_ERR_CORRUPT,
                                   "%s from rank %d: segment of %llu bytes overruns %zu", what,
                                   terse__cplan_peer(p, from), (unsigned long long)l, len);
        terse_status_t st = terse__decompress_blocks_add(&p->c, buf + off, (size_t)l, t->count, t->id,
                                                         p->step, g->first, g->count,
                                                         acc + p->toff[g->tensor], msg, sizeof(msg));
        if (st != TERSE_OK)
            return terse__req_fail(req, st == TERSE_ERR_INVALID_ARG ? TERSE_ERR_CORRUPT : st,
                                   "%s from rank %d: %s", what, terse__cplan_peer(p, from), msg);
        off += (size_t)l;
    }
    if (off != len)
        return terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d has %zu trailing bytes",
                               what, terse__cplan_peer(p, from), len - off);
    return TERSE_OK;
}

terse_status_t terse__cplan_serve(terse_request_h req, size_t s_lo, size_t s_hi)
{
    terse__cplan_t *p = terse__cplan(req);
    size_t e_lo = s_lo < p->nseg ? p->toff[p->seg[s_lo].tensor] + p->seg[s_lo].elem_off : p->N;
    size_t e_hi = s_hi < p->nseg ? p->toff[p->seg[s_hi].tensor] + p->seg[s_hi].elem_off : p->N;
    const float kf = (float)p->K;
    float *acc = p->acc, *out = p->out;
    if (!p->double_way) {
        for (size_t i = e_lo; i < e_hi; i++)
            out[i] = acc[i] / kf;
        return TERSE_OK;
    }
    /* d = e_s + avg, in place in acc */
    for (size_t s = s_lo; s < s_hi; s++) {
        const terse__cseg_t *g = &p->seg[s];
        const float *es = p->t[g->tensor].server_error;
        float *a = acc + p->toff[g->tensor];
        if (es) {
            for (size_t i = g->elem_off; i < g->elem_off + g->elem_len; i++)
                a[i] = es[i] + a[i] / kf;
        } else {
            for (size_t i = g->elem_off; i < g->elem_off + g->elem_len; i++)
                a[i] = 0.0f + a[i] / kf;
        }
    }
    char msg[256] = "";
    size_t off = 0;
    for (size_t s = s_lo; s < s_hi; s++) {
        const terse__cseg_t *g = &p->seg[s];
        const terse_ctensor_t *t = &p->t[g->tensor];
        size_t cap = terse__compress_blocks_max_bytes(&p->c, t->count, g->first, g->count), len = 0;
        terse_status_t st = terse__compress_blocks(&p->c, p->acc + p->toff[g->tensor], t->count, t->id,
                                                   p->step, g->first, g->count, p->smsg + off + 8,
                                                   cap, &len, NULL, p->serr + p->toff[g->tensor],
                                                   msg, sizeof(msg));
        if (st != TERSE_OK)
            return terse__req_fail(req, st, "server compression: %s", msg);
        uint64_t l = len;
        memcpy(p->smsg + off, &l, 8);
        off += 8 + len;
    }
    p->smsg_len = off;
    memset(out + e_lo, 0, (e_hi - e_lo) * sizeof(float));
    return terse__cplan_add_packed(req, p->smsg, off, s_lo, s_hi, out, p->rank, 1);
}

terse_status_t terse__cplan_confirm_commit(terse_request_h req, uint64_t confirmed, size_t serr_lo,
                                           size_t serr_hi)
{
    terse__cplan_t *p = terse__cplan(req);
    if (req->state[0] != confirmed) {
        req->state[0] = confirmed;
        if (terse__req_confirm(req, p->peer, p->K) != TERSE_OK)
            return req->status;
    }
    terse__cplan_commit(req, serr_lo, serr_hi);
    return TERSE_OK;
}

void terse__cplan_commit(terse_request_h req, size_t serr_lo, size_t serr_hi)
{
    terse__cplan_t *p = terse__cplan(req);
    if (p->defer_commit) {
        p->commit_lo = serr_lo;
        p->commit_hi = serr_hi;
        return;
    }
    for (size_t j = 0; j < p->nt; j++) {
        const terse_ctensor_t *t = &p->t[j];
        if (!t->count)
            continue;
        memmove(t->out, p->out + p->toff[j], t->count * sizeof(float));
        if (t->worker_error)
            memcpy(t->worker_error, p->werr + p->toff[j], t->count * sizeof(float));
    }
    if (!p->double_way)
        return;
    for (size_t s = serr_lo; s < serr_hi; s++) {
        const terse__cseg_t *g = &p->seg[s];
        float *es = p->t[g->tensor].server_error;
        if (es)
            memcpy(es + g->elem_off, p->serr + p->toff[g->tensor] + g->elem_off,
                   g->elem_len * sizeof(float));
    }
}
