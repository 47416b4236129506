/* The request engine: transfers with signature headers, round-by-round progress, mismatch
 * detection, abort propagation, timeouts and peer failures. */
#include "comm.h"

#include "core/checksum.h"
#include "core/config.h"
#include "core/log.h"

#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double terse__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *terse__coll_name(int kind)
{
    switch (kind) {
    case TERSE_COLL_ALLREDUCE: return "allreduce";
    case TERSE_COLL_ALLGATHER: return "allgather";
    case TERSE_COLL_ALLGATHERV: return "allgatherv";
    case TERSE_COLL_BCAST: return "broadcast";
    case TERSE_COLL_ALLTOALL: return "alltoall";
    case TERSE_COLL_ALLTOALLV: return "alltoallv";
    case TERSE_COLL_BARRIER: return "barrier";
    case TERSE_COLL_COMPRESSED: return "compressed allreduce";
    case TERSE_COLL_INTERNAL: return "internal exchange";
    case TERSE_COLL_REDUCE_SCATTER: return "reduce_scatter";
    case TERSE_COLL_REDUCE_SCATTER_V: return "reduce_scatter_v";
    case TERSE_COLL_REDUCE: return "reduce";
    case TERSE_COLL_P2P: return "point-to-point";
    default: return "unknown collective";
    }
}

uint64_t terse__digest(const void *data, size_t len, uint64_t seed)
{
    /* FNV-1a: only needs to tell different argument arrays apart across ranks. */
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The TERSE_CHECKSUM in effect, as headers carry it. */
static uint8_t sum_mode_configured(void)
{
    const char *v = terse__config()->checksum;
    if (!strcmp(v, "all"))
        return TERSE_SUM_MODE_ALL;
    if (!strcmp(v, "none"))
        return TERSE_SUM_MODE_NONE;
    return TERSE_SUM_MODE_COMPRESSED;
}

static int sum_mode_valid(unsigned mode)
{
    return mode == TERSE_SUM_MODE_NONE || mode == TERSE_SUM_MODE_COMPRESSED ||
           mode == TERSE_SUM_MODE_ALL;
}

static const char *sum_mode_name(unsigned mode)
{
    switch (mode) {
    case TERSE_SUM_MODE_NONE: return "none";
    case TERSE_SUM_MODE_COMPRESSED: return "compressed";
    case TERSE_SUM_MODE_ALL: return "all";
    default: return "invalid";
    }
}

/* Do the messages of a call with this collective and mode carry payload checksums? Sender and
 * receiver decide alike: check_header makes them agree on both. */
static int sum_covers(unsigned mode, unsigned coll)
{
    if (mode == TERSE_SUM_MODE_ALL)
        return 1;
    return mode == TERSE_SUM_MODE_COMPRESSED &&
           (coll == TERSE_COLL_COMPRESSED || coll == TERSE_COLL_INTERNAL);
}

static ucp_tag_t make_tag(uint64_t cls, uint32_t seq, int sender, uint16_t step)
{
    return (cls << 62) | ((uint64_t)seq << 30) | ((uint64_t)(sender & 0xfffff) << 10) |
           (uint64_t)(step & 0x3ff);
}

terse_status_t terse__req_create(terse_comm_h comm, terse__coll_kind_t kind,
                                 const terse__algo_t *algo, terse_request_h *req_p)
{
    terse_request_h req = terse__calloc(1, sizeof(*req), "collective request");
    if (!req)
        return TERSE_ERR_NO_MEMORY;
    req->comm = comm;
    req->algo = algo;
    req->status = TERSE_INPROGRESS;
    req->sig.magic = TERSE_MSG_MAGIC;
    req->sig.version = TERSE_MSG_VERSION;
    req->sig.coll = (uint8_t)kind;
    req->sig.algo = algo->id;
    req->sig.sum_mode = sum_mode_configured();
    req->root = -1;
    req->sig.root = -1;
    *req_p = req;
    return TERSE_OK;
}

static terse__xfer_t *new_xfer(terse_request_h req)
{
    if (req->nx == req->capx) {
        int cap = req->capx ? 2 * req->capx : 8;
        /* Transfers in flight are referenced by UCX: only grow between rounds. */
        terse__xfer_t *x = terse__realloc(req->x, sizeof(*x) * (size_t)cap, "transfer list");
        if (!x)
            return NULL;
        req->x = x;
        req->capx = cap;
    }
    terse__xfer_t *x = &req->x[req->nx++];
    memset(x, 0, sizeof(*x));
    return x;
}

/* Rounds post at most this many transfers, so the list never moves while UCX holds it. */
#define TERSE_XFER_RESERVE 1024

static int reserve_xfers(terse_request_h req, int n)
{
    if (req->capx >= n)
        return 0;
    terse__xfer_t *x = terse__realloc(req->x, sizeof(*x) * (size_t)n, "transfer list");
    if (!x)
        return -1;
    req->x = x;
    req->capx = n;
    return 0;
}

/* ---- test-only fault injection (TERSE_FAULT_INJECT, see core/config.c) ---- */

typedef struct fault_copy {
    struct fault_copy *next;
    unsigned char data[];
} fault_copy_t;

/* Arms req->fault when the variable names this rank and this call's sequence number. */
static void arm_fault(terse_request_h req)
{
    const char *spec = terse__config()->fault_inject;
    if (!spec[0])
        return;
    terse__fault_t f = {.step = -1, .peer = -1};
    long long rank = -1, seq = -1, len = -1;
    const char *colon = strchr(spec, ':');
    size_t klen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (klen == 7 && !strncmp(spec, "corrupt", 7))
        f.kind = TERSE_FAULT_CORRUPT;
    else if (klen == 8 && !strncmp(spec, "truncate", 8))
        f.kind = TERSE_FAULT_TRUNCATE;
    else if (klen == 4 && !strncmp(spec, "kill", 4))
        f.kind = TERSE_FAULT_KILL;
    for (const char *p = colon ? colon + 1 : spec + klen; f.kind && *p;) {
        char key[8] = "";
        size_t n = strcspn(p, "=,");
        if (n >= sizeof(key) || p[n] != '=') {
            f.kind = TERSE_FAULT_NONE;
            break;
        }
        memcpy(key, p, n);
        char *end;
        long long v = strtoll(p + n + 1, &end, 10);
        if (end == p + n + 1 || (*end && *end != ',') || v < 0) {
            f.kind = TERSE_FAULT_NONE;
            break;
        }
        if (!strcmp(key, "rank"))
            rank = v;
        else if (!strcmp(key, "seq"))
            seq = v;
        else if (!strcmp(key, "step"))
            f.step = (int)v;
        else if (!strcmp(key, "peer"))
            f.peer = (int)v;
        else if (!strcmp(key, "at"))
            f.at = (size_t)v;
        else if (!strcmp(key, "len"))
            len = v;
        else
            f.kind = TERSE_FAULT_NONE;
        p = *end ? end + 1 : end;
    }
    if (!f.kind || rank < 0 || seq < 0) {
        terse_log_warn("TERSE_FAULT_INJECT='%s' not understood (KIND:rank=R,seq=S[,step=T]"
                       "[,peer=P][,at=B][,len=L], KIND corrupt|truncate|kill): ignored", spec);
        return;
    }
    if (rank != req->comm->rank || (uint64_t)seq != req->sig.seq)
        return;
    f.len = len >= 0 ? (size_t)len : f.kind == TERSE_FAULT_CORRUPT ? 8 : 4;
    req->fault = f;
    terse_log_warn("rank %d: fault injection armed for %s seq %u: %s", req->comm->rank,
                   terse__coll_name(req->sig.coll), req->sig.seq, spec);
}

static int fault_hits(const terse_request_h req, const terse__xfer_t *x)
{
    const terse__fault_t *f = &req->fault;
    return f->kind != TERSE_FAULT_NONE && x->step != TERSE_STEP_CONFIRM &&
           (f->step < 0 || f->step == x->step) && (f->peer < 0 || f->peer == x->peer);
}

/* The payload this send puts on the wire: a garbled copy for a corrupt fault, fewer bytes
 * for a truncate fault. The header (already built) announces the true length. */
static const void *fault_payload(terse_request_h req, terse__xfer_t *x, size_t *len_p)
{
    terse__fault_t *f = &req->fault;
    *len_p = x->len;
    if (f->kind == TERSE_FAULT_TRUNCATE) {
        *len_p = x->len - (f->len < x->len ? f->len : x->len);
        return x->buf;
    }
    if (f->kind != TERSE_FAULT_CORRUPT || f->at >= x->len)
        return x->buf;
    fault_copy_t *c = malloc(sizeof(*c) + x->len);
    if (!c)
        return x->buf;
    memcpy(c->data, x->buf, x->len);
    memset(c->data + f->at, 0xff, f->len < x->len - f->at ? f->len : x->len - f->at);
    c->next = f->copies;
    f->copies = c;
    return c->data;
}

/* Checksum of a send's payload. Rounds that send the same bytes to several peers post those
 * sends back to back: one pass serves them all (a buffer posted for sending stays as it is
 * until its transfers complete). */
static uint64_t send_sum(terse_request_h req, const terse__xfer_t *x)
{
    const terse__xfer_t *prev = x > req->x ? x - 1 : NULL;
    if (prev && !prev->is_recv && prev->buf == x->buf && prev->len == x->len)
        return prev->hdr.sum;
    return terse__checksum(x->buf, x->len);
}

static void post_xfer(terse_request_h req, terse__xfer_t *x)
{
    terse_comm_h comm = req->comm;
    terse__tp_t *tp = &comm->tp;
    uint32_t seq = req->sig.seq;
    if (x->is_recv) {
        ucp_tag_t data = make_tag(TERSE_TAG_CLASS_DATA, seq, x->peer, x->step);
        ucp_tag_t hdr = make_tag(TERSE_TAG_CLASS_HDR, seq, x->peer, x->step);
        ucp_tag_t inl = make_tag(TERSE_TAG_CLASS_INLINE, seq, x->peer, x->step);
        if (x->var_len) {
            /* The first message is a header (HDR, the payload follows as DATA) or header and
             * payload together (INLINE): one receive matches either (see comm.h). The payload
             * receive, if any, is posted once the header arrived (round_state). */
            terse__tp_recv2(tp, x->peer, hdr, ~(1ull << 63), &x->hdr, sizeof(x->hdr), x->buf,
                            x->len, &x->hdr_op);
        } else if (x->any_step) {
            x->hdr_op.state = TERSE_TP_OP_DONE;
            terse__tp_recv2(tp, x->peer, inl, ~0x3ffull, &x->hdr, sizeof(x->hdr), x->buf, x->len,
                            &x->op);
        } else if (x->split) {
            terse__tp_recv(tp, x->peer, hdr, ~0ull, &x->hdr, sizeof(x->hdr), &x->hdr_op);
            terse__tp_recv(tp, x->peer, data, ~0ull, x->buf, x->len, &x->op);
        } else {
            x->hdr_op.state = TERSE_TP_OP_DONE;
            terse__tp_recv2(tp, x->peer, inl, ~0ull, &x->hdr, sizeof(x->hdr), x->buf, x->len,
                            &x->op);
        }
    } else {
        x->hdr = req->sig;
        x->hdr.step = x->step;
        x->hdr.sender = (uint32_t)comm->rank;
        x->hdr.len = x->len;
        /* over the caller's bytes, before a fault injection garbles its copy below, so that
         * injected corruption is caught like corruption on the way */
        if (sum_covers(req->sig.sum_mode, req->sig.coll))
            x->hdr.sum = send_sum(req, x);
        req->bytes_sent += x->len;
        size_t len = x->len;
        const void *buf = fault_hits(req, x) ? fault_payload(req, x, &len) : x->buf;
        if (x->split) {
            terse__tp_send(tp, x->peer, make_tag(TERSE_TAG_CLASS_HDR, seq, comm->rank, x->step),
                           &x->hdr, sizeof(x->hdr), &x->hdr_op);
            terse__tp_send(tp, x->peer, make_tag(TERSE_TAG_CLASS_DATA, seq, comm->rank, x->step),
                           buf, len, &x->op);
        } else {
            x->hdr_op.state = TERSE_TP_OP_DONE;
            terse__tp_send2(tp, x->peer, make_tag(TERSE_TAG_CLASS_INLINE, seq, comm->rank, x->step),
                            &x->hdr, sizeof(x->hdr), buf, len, &x->op);
        }
        if (req->fault.kind == TERSE_FAULT_KILL && fault_hits(req, x)) {
            /* let what was posted leave, then die mid-call without a word */
            for (int i = 0; i < 100; i++)
                terse__tp_progress(tp);
            terse_log_warn("rank %d: fault injection: killing this process in %s seq %u step %u",
                           comm->rank, terse__coll_name(req->sig.coll), seq, x->step);
            raise(SIGKILL);
        }
    }
}

enum { XFER_VAR = 1, XFER_ANY_STEP = 2 };

static void add_xfer(terse_request_h req, int is_recv, int flags, int peer, uint16_t step,
                     void *buf, size_t len)
{
    if (req->status != TERSE_INPROGRESS)
        return;
    if (reserve_xfers(req, TERSE_XFER_RESERVE) != 0 || req->nx >= TERSE_XFER_RESERVE) {
        terse__req_fail(req, TERSE_ERR_NO_MEMORY, "too many transfers in one round");
        return;
    }
    terse__xfer_t *x = new_xfer(req);
    x->is_recv = is_recv;
    int var = (flags & XFER_VAR) != 0;
    x->var_len = var;
    x->any_step = (flags & XFER_ANY_STEP) != 0;
    x->peer = peer;
    x->step = step;
    x->buf = buf;
    x->len = len;
    /* Small payloads share a message with their header; large ones go as their own
     * contiguous message (zero-copy rendezvous) behind a small header message. Receivers of
     * unknown length learn which from the first message (round_state). */
    x->split = !x->any_step && !var && len > req->comm->eager_hdr_bytes;
    post_xfer(req, x);
}

void terse__req_send(terse_request_h req, int peer, uint16_t step, const void *buf, size_t len)
{
    add_xfer(req, 0, 0, peer, step, (void *)buf, len);
}

void terse__req_recv(terse_request_h req, int peer, uint16_t step, void *buf, size_t len)
{
    add_xfer(req, 1, 0, peer, step, buf, len);
}

void terse__req_recv_any_step(terse_request_h req, int peer, uint16_t step, void *buf, size_t len)
{
    add_xfer(req, 1, XFER_ANY_STEP, peer, step, buf, len);
}

void terse__req_recv_var(terse_request_h req, int peer, uint16_t step, void *buf, size_t cap)
{
    add_xfer(req, 1, XFER_VAR, peer, step, buf, cap);
}

size_t terse__req_received_len(terse_request_h req, int i)
{
    const terse__xfer_t *x = &req->x[i];
    size_t hdr = x->split ? 0 : sizeof(terse__msg_hdr_t);
    return x->op.length > hdr ? x->op.length - hdr : 0;
}

terse_status_t terse__req_confirm(terse_request_h req, const int *peers, int n)
{
    terse_comm_h comm = req->comm;
    if (req->status != TERSE_INPROGRESS)
        return req->status;
    int posted = 0;
    for (int i = 0; i < n; i++) {
        int q = peers ? peers[i] : i;
        if (q != comm->rank) {
            terse__req_recv(req, q, TERSE_STEP_CONFIRM, NULL, 0);
            posted++;
        }
    }
    for (int i = 0; i < n; i++) {
        int q = peers ? peers[i] : i;
        if (q != comm->rank)
            terse__req_send(req, q, TERSE_STEP_CONFIRM, NULL, 0);
    }
    return posted ? req->status : TERSE_OK;
}

static void *pool_scratch(terse_request_h req, terse__buf_t **slot, size_t size, const char *what)
{
    terse_comm_h comm = req->comm;
    if (!*slot) {
        for (int i = 0; i < TERSE_POOL_MAX; i++) {
            if (!comm->pool_used[i]) {
                comm->pool_used[i] = 1;
                *slot = &comm->pool[i];
                (*slot)->what = what;
                break;
            }
        }
        if (!*slot) {
            terse__req_fail(req, TERSE_ERR_NO_MEMORY, "more than %d collective buffers in use",
                            TERSE_POOL_MAX);
            return NULL;
        }
    }
    if (terse__buf_reserve(*slot, size ? size : 1) != 0) {
        terse__req_fail(req, TERSE_ERR_NO_MEMORY, "no memory for %zu bytes of %s", size, what);
        return NULL;
    }
    return (*slot)->ptr;
}

void *terse__req_scratch(terse_request_h req, size_t size)
{
    return pool_scratch(req, &req->scratch, size, "collective scratch");
}

void *terse__req_scratch2(terse_request_h req, size_t size)
{
    return pool_scratch(req, &req->scratch2, size, "collective scratch (second)");
}

static void release_scratch(terse_request_h req)
{
    if (req->scratch)
        req->comm->pool_used[req->scratch - req->comm->pool] = 0;
    if (req->scratch2)
        req->comm->pool_used[req->scratch2 - req->comm->pool] = 0;
    req->scratch = req->scratch2 = NULL;
}

static void send_aborts(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    for (int peer = 0; peer < comm->size; peer++) {
        if (peer == comm->rank || comm->tp.peer_failed[peer])
            continue;
        terse__abort_send_t *a = terse__calloc(1, sizeof(*a), "abort message");
        if (!a)
            return;
        a->rec.seq = req->sig.seq;
        a->rec.status = req->status;
        a->rec.origin = comm->rank;
        size_t n = strnlen(comm->last_error, sizeof(a->rec.msg) - 1);
        memcpy(a->rec.msg, comm->last_error, n); /* truncated reasons are fine */
        a->rec.msg[n] = '\0';
        terse__tp_send(&comm->tp, peer,
                       make_tag(TERSE_TAG_CLASS_ABORT, req->sig.seq, comm->rank, 0), &a->rec,
                       sizeof(a->rec), &a->op);
        a->next = comm->abort_sends;
        comm->abort_sends = a;
    }
}

static terse_status_t fail_v(terse_request_h req, terse_status_t st, int announce,
                             const char *fmt, va_list ap)
{
    char what[400];
    if (req->status != TERSE_INPROGRESS && req->status != TERSE_OK)
        return req->status;
    vsnprintf(what, sizeof(what), fmt, ap);
    terse__comm_set_error(req->comm, "%s seq %u (%s) on rank %d: %s",
                          terse__coll_name(req->sig.coll), req->sig.seq, req->algo->name,
                          req->comm->rank, what);
    terse_log_debug("%s", req->comm->last_error);
    req->status = st;
    if (announce && !req->quiet)
        send_aborts(req);
    return st;
}

terse_status_t terse__req_fail(terse_request_h req, terse_status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(req, st, 1, fmt, ap);
    va_end(ap);
    return st;
}

terse_status_t terse__req_fail_quiet(terse_request_h req, terse_status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(req, st, 0, fmt, ap);
    va_end(ap);
    return st;
}

/* Compare a received header with what this rank was called with; say what differs.
 * @payload_done: also check the payload length (once the payload arrived). */
static terse_status_t check_header(terse_request_h req, terse__xfer_t *x, int payload_done)
{
    const terse__msg_hdr_t *h = &x->hdr, *s = &req->sig;
    int p = x->peer;
    static const uint8_t zeros[sizeof(h->reserved)];
    if (h->magic != TERSE_MSG_MAGIC || h->version != TERSE_MSG_VERSION ||
        !sum_mode_valid(h->sum_mode) ||
        memcmp(h->reserved, zeros, sizeof(zeros)) != 0)
        return terse__req_fail(req, TERSE_ERR_CORRUPT,
                               "message from rank %d has a bad header (magic %#x version %u "
                               "checksum mode %#x)",
                               p, h->magic, h->version, h->sum_mode);
    if (h->coll != s->coll)
        return terse__req_fail(req, TERSE_ERR_MISMATCH, "rank %d called %s, this rank called %s",
                               p, terse__coll_name(h->coll), terse__coll_name(s->coll));
    if (h->count != s->count)
        return terse__req_fail(req, TERSE_ERR_MISMATCH,
                               "rank %d has count %llu, this rank has count %llu", p,
                               (unsigned long long)h->count, (unsigned long long)s->count);
    if (h->dtype != s->dtype)
        return terse__req_fail(req, TERSE_ERR_MISMATCH, "rank %d has dtype %s, this rank has %s",
                               p, terse_dtype_name(h->dtype), terse_dtype_name(s->dtype));
    if (h->op != s->op)
        return terse__req_fail(req, TERSE_ERR_MISMATCH, "rank %d has op %s, this rank has %s", p,
                               terse_op_name(h->op), terse_op_name(s->op));
    if (h->root != s->root)
        return terse__req_fail(req, TERSE_ERR_MISMATCH, "rank %d has root %d, this rank has %d",
                               p, h->root, s->root);
    if (h->aux != s->aux)
        return terse__req_fail(req, TERSE_ERR_MISMATCH,
                               "rank %d passed different per-rank counts or settings", p);
    if (h->algo != s->algo)
        return terse__req_fail(req, TERSE_ERR_MISMATCH,
                               "rank %d chose algorithm %u, this rank %u (%s)", p, h->algo,
                               s->algo, req->algo->name);
    /* Strict, whether or not this collective is checksummed: ranks configured differently
     * are told at their first call rather than when a checksummed one comes. */
    if (h->sum_mode != s->sum_mode)
        return terse__req_fail(req, TERSE_ERR_MISMATCH,
                               "rank %d runs TERSE_CHECKSUM=%s, this rank TERSE_CHECKSUM=%s", p,
                               sum_mode_name(h->sum_mode), sum_mode_name(s->sum_mode));
    if (h->seq != s->seq || h->sender != (uint32_t)p || (!x->any_step && h->step != x->step))
        return terse__req_fail(req, TERSE_ERR_CORRUPT,
                               "message from rank %d is for seq %u step %u, expected seq %u step %u",
                               p, h->seq, h->step, s->seq, x->step);
    if (!payload_done) {
        if (!x->var_len && h->len != x->len)
            return terse__req_fail(req, TERSE_ERR_MISMATCH,
                                   "message from rank %d announces %llu bytes, expected %zu", p,
                                   (unsigned long long)h->len, x->len);
        if (x->var_len && h->len > x->len)
            return terse__req_fail(req, TERSE_ERR_MISMATCH,
                                   "message from rank %d announces %llu bytes, at most %zu fit", p,
                                   (unsigned long long)h->len, x->len);
        return TERSE_OK;
    }
    size_t hb = x->split ? 0 : sizeof(terse__msg_hdr_t);
    if (x->op.length < hb)
        return terse__req_fail(req, TERSE_ERR_CORRUPT,
                               "message from rank %d is shorter than its header (%zu bytes)", p,
                               x->op.length);
    size_t got = x->op.length - hb;
    /* A header that announces what this rank expects with a payload of another length is a
     * broken message; a header that announces another length is a call with other arguments. */
    int len_ok = x->var_len ? h->len <= x->len : h->len == x->len;
    if (len_ok && got != h->len)
        return terse__req_fail(req, TERSE_ERR_CORRUPT,
                               "message from rank %d is corrupt: its header announces %llu bytes, "
                               "%zu arrived", p, (unsigned long long)h->len, got);
    if (h->len != got || (!x->var_len && got != x->len))
        return terse__req_fail(req, TERSE_ERR_MISMATCH,
                               "message from rank %d has %llu bytes (%zu arrived), expected %zu",
                               p, (unsigned long long)h->len, got, x->len);
    /* The bytes that arrived, zero of them included (the sum of nothing is a value too). */
    if (sum_covers(h->sum_mode, h->coll) && terse__checksum(x->buf, got) != h->sum)
        return terse__req_fail(req, TERSE_ERR_CORRUPT,
                               "message from rank %d is corrupt: payload checksum mismatch "
                               "(step %u, %zu bytes)",
                               p, h->step, got);
    return TERSE_OK;
}

/* The first message of a receive of unknown length arrived: header and payload together
 * (done; checked with the payload), or a header alone: check it, then receive the payload. */
static terse_status_t var_first_arrived(terse_request_h req, terse__xfer_t *x)
{
    x->hdr_checked = 1;
    if ((x->hdr_op.tag >> 62) == TERSE_TAG_CLASS_INLINE) {
        x->split = 0;
        x->op.length = x->hdr_op.length;
        x->op.ucs = UCS_OK;
        x->op.state = TERSE_TP_OP_DONE;
        return TERSE_OK;
    }
    x->split = 1;
    if (x->hdr_op.length != sizeof(x->hdr))
        return terse__req_fail(req, TERSE_ERR_CORRUPT,
                               "header message from rank %d has %zu bytes, not %zu", x->peer,
                               x->hdr_op.length, sizeof(x->hdr));
    if (check_header(req, x, 0) != TERSE_OK)
        return req->status;
    terse__tp_recv(&req->comm->tp, x->peer,
                   make_tag(TERSE_TAG_CLASS_DATA, req->sig.seq, x->peer, x->step), ~0ull, x->buf,
                   x->len, &x->op);
    return TERSE_OK;
}

/* Checks the transfers of the round: 1 when all are done (and received headers match),
 * 0 when some are pending, -1 on failure (req->status says why). */
static int round_state(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    int pending = 0;
    for (int i = 0; i < req->nx; i++) {
        terse__xfer_t *x = &req->x[i];
        if (x->is_recv && x->var_len && !x->hdr_checked && x->hdr_op.state == TERSE_TP_OP_DONE &&
            x->hdr_op.ucs == UCS_OK && var_first_arrived(req, x) != TERSE_OK)
            return -1;
        terse__tp_op_t *ops[2] = {&x->hdr_op, &x->op};
        int done = 0;
        for (int k = 0; k < 2; k++) {
            if (ops[k]->state != TERSE_TP_OP_DONE)
                continue;
            done++;
            if (ops[k]->ucs == UCS_OK)
                continue;
            terse_status_t st = terse__status_from_ucs(ops[k]->ucs);
            /* a same-host peer's death shows as whatever its transport saw: look for it */
            if (st != TERSE_ERR_PEER_FAILED && !comm->tp.peer_failed[x->peer])
                terse__tp_check_local_peers(&comm->tp);
            if (st == TERSE_ERR_PEER_FAILED || comm->tp.peer_failed[x->peer]) {
                comm->broken = 1;
                terse__req_fail_quiet(req, TERSE_ERR_PEER_FAILED, "rank %d died or its connection broke (%s)",
                           x->peer, ucs_status_string(ops[k]->ucs));
            } else if (st == TERSE_ERR_MISMATCH) {
                terse__req_fail(req, st,
                                "rank %d sent a longer message than this rank expects (%zu bytes)",
                                x->peer, x->len);
            } else {
                terse__req_fail(req, st, "%s with rank %d failed: %s",
                                x->is_recv ? "receive" : "send", x->peer,
                                ucs_status_string(ops[k]->ucs));
            }
            return -1;
        }
        if (done < 2) {
            /* A split header arrives first: check it now, because a payload that does not
             * fit may never complete (UCX rendezvous into a too-small buffer). */
            if (x->is_recv && x->split && !x->hdr_checked && x->hdr_op.state == TERSE_TP_OP_DONE) {
                x->hdr_checked = 1;
                if (check_header(req, x, 0) != TERSE_OK)
                    return -1;
            }
            pending = 1;
            continue;
        }
        /* once: the checksum reads the whole payload, and rounds are polled until done */
        if (x->is_recv && !x->payload_checked) {
            if (check_header(req, x, 1) != TERSE_OK)
                return -1;
            x->payload_checked = 1;
        }
    }
    return pending ? 0 : 1;
}

static const terse__abort_rec_t *find_abort(terse_comm_h comm, uint32_t seq)
{
    int n = comm->naborts < TERSE_ABORT_TABLE ? comm->naborts : TERSE_ABORT_TABLE;
    for (int i = 0; i < n; i++) {
        if (comm->aborts[i].seq == seq)
            return &comm->aborts[i];
    }
    return NULL;
}

static terse_status_t check_failures(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    const terse__abort_rec_t *a = find_abort(comm, req->sig.seq);
    if (a) {
        terse_status_t st = (terse_status_t)a->status;
        if (st >= 0 || st <= TERSE_ERR_LAST)
            st = TERSE_ERR_CORRUPT;
        return terse__req_fail_quiet(req, st, "rank %d failed this call: %s", a->origin, a->msg);
    }
    /* Same-host peers have no UCX error handling: look for their pid once a call waits. */
    if (terse__now() - req->start > 0.5)
        terse__tp_check_local_peers(&comm->tp);
    /* A dead peer fails everything still running: collectives need every rank. Name every
     * rank found gone (peers that finished and left look the same from here). */
    if (comm->tp.any_peer_failed) {
        char list[160] = "";
        int n = 0, len = 0;
        for (int i = 0; i < comm->size && len < (int)sizeof(list) - 16; i++) {
            if (comm->tp.peer_failed[i])
                len += snprintf(list + len, sizeof(list) - (size_t)len, "%s%d", n++ ? ", " : "", i);
        }
        if (n) {
            comm->broken = 1;
            return terse__req_fail_quiet(req, TERSE_ERR_PEER_FAILED,
                                         n == 1 ? "rank %s died or its connection broke"
                                                : "ranks %s died or their connections broke",
                                         list);
        }
    }
    if (terse__now() - req->start > comm->timeout) {
        int waiting = -1;
        for (int i = 0; i < req->nx && waiting < 0; i++) {
            if (req->x[i].op.state != TERSE_TP_OP_DONE || req->x[i].hdr_op.state != TERSE_TP_OP_DONE)
                waiting = req->x[i].peer;
        }
        return terse__req_fail(req, TERSE_ERR_TIMEOUT,
                               "no progress for %.0f s (round %d, waiting for rank %d)",
                               comm->timeout, req->round, waiting);
    }
    return TERSE_INPROGRESS;
}

static int xfers_pending(terse_request_h req)
{
    for (int i = 0; i < req->nx; i++) {
        if (req->x[i].op.state == TERSE_TP_OP_PENDING || req->x[i].hdr_op.state == TERSE_TP_OP_PENDING)
            return 1;
    }
    return 0;
}

static void cancel_xfers(terse_request_h req)
{
    for (int i = 0; i < req->nx; i++) {
        terse__tp_cancel(&req->comm->tp, &req->x[i].op);
        terse__tp_cancel(&req->comm->tp, &req->x[i].hdr_op);
    }
}

static void unlink_active(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    if (req->prev)
        req->prev->next = req->next;
    else if (comm->active == req)
        comm->active = req->next;
    if (req->next)
        req->next->prev = req->prev;
    req->next = req->prev = NULL;
    comm->nactive--;
}

/* A failed rank usually returns to its caller at once, and the caller may then block in
 * something else (MPI, its own barrier) without progressing this communicator: make sure the
 * abort messages left first, or peers would wait for them until their timeout. They can sit
 * behind a rendezvous of this call to the same peer, which that peer completes while it
 * waits, so this takes a moment at most; bounded for peers that never answer. */
static void flush_aborts(terse_comm_h comm)
{
    double limit = comm->timeout < 2.0 ? comm->timeout : 2.0, t0 = terse__now();
    for (;;) {
        int pending = 0;
        for (terse__abort_send_t *a = comm->abort_sends; a && !pending; a = a->next)
            pending = a->op.state == TERSE_TP_OP_PENDING && !comm->tp.peer_failed[a->op.peer];
        if (!pending || terse__now() - t0 > limit)
            return;
        if (!terse__tp_progress(&comm->tp))
            sched_yield(); /* the peer may share our core */
    }
}

static void finish(terse_request_h req)
{
    if (req->done)
        return;
    req->done = 1;
    if (req->status != TERSE_OK) {
        cancel_xfers(req);
        flush_aborts(req->comm);
    }
    if (req->algo->cleanup)
        req->algo->cleanup(req);
    /* A receive already matched (a rendezvous under way) cannot be cancelled and still
     * writes into the scratch: keep it from the next call until terse__req_destroy, which
     * runs once no transfer is pending (the request waits among the zombies till then). */
    if (!xfers_pending(req))
        release_scratch(req);
    unlink_active(req);
}

terse_status_t terse__req_advance(terse_request_h req)
{
    if (req->done)
        return req->status;
    for (;;) {
        if (req->status != TERSE_INPROGRESS)
            break;
        int state = round_state(req);
        if (state < 0)
            break;
        if (state == 0) {
            check_failures(req);
            break;
        }
        /* Round complete: the algorithm consumes it and posts the next one. */
        req->nx = 0;
        terse_status_t st = req->algo->progress(req);
        if (st == TERSE_OK && req->status == TERSE_INPROGRESS) {
            req->status = TERSE_OK;
            break;
        }
        if (st != TERSE_INPROGRESS && req->status == TERSE_INPROGRESS)
            terse__req_fail(req, st, "algorithm failed");
        if (req->nx == 0 && req->status == TERSE_INPROGRESS) {
            terse__req_fail(req, TERSE_ERR_INTERNAL, "algorithm posted nothing and is not done");
            break;
        }
        /* Loop: transfers that completed immediately let the next round start now. */
    }
    if (req->status != TERSE_INPROGRESS)
        finish(req);
    return req->status;
}

terse_status_t terse__req_start(terse_request_h req)
{
    return terse__req_start_at(req, req->comm->next_seq++);
}

terse_status_t terse__req_start_at(terse_request_h req, uint32_t seq)
{
    terse_comm_h comm = req->comm;
    req->sig.seq = seq;
    req->start = terse__now();
    arm_fault(req);
    req->next = comm->active;
    if (comm->active)
        comm->active->prev = req;
    comm->active = req;
    comm->nactive++;
    if (comm->p2p_used && req->sig.coll != TERSE_COLL_P2P && req->sig.coll != TERSE_COLL_INTERNAL) {
        terse__req_fail_quiet(req, TERSE_ERR_INVALID_ARG,
                              "point-to-point messages ran on this communicator: collectives "
                              "need one of their own (terse_comm_dup)");
        finish(req);
        return req->status;
    }
    if (comm->broken) {
        terse__req_fail_quiet(req, TERSE_ERR_PEER_FAILED, "a peer failed earlier; create a new communicator");
        finish(req);
        return req->status;
    }
    terse_status_t st = terse__req_advance(req);
    if (comm->has_progress_thread)
        pthread_cond_signal(&comm->cond);
    return st == TERSE_INPROGRESS ? TERSE_OK : st;
}

int terse__req_has_pending(terse_request_h req)
{
    return xfers_pending(req);
}

void terse__req_destroy(terse_request_h req)
{
    release_scratch(req);
    terse__free(req->counts);
    terse__free(req->displs);
    terse__free(req->rcounts);
    terse__free(req->rdispls);
    terse__free(req->x);
    for (fault_copy_t *c = req->fault.copies, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    terse__free(req);
}
void terse__req_poll(terse_request_h req)
{
    terse__tp_progress(&req->comm->tp);
    if (req->status == TERSE_INPROGRESS)
        (void)round_state(req); /* posts the payload receives whose headers arrived */
}

