/* Test-only fault injection (fault.h). Nothing here runs unless TERSE_FAULT_INJECT is set:
 * terse__fault_arm returns after one byte test, and the send path calls in only for a request
 * it armed. */
#include "engine.h"

#include "core/config.h"
#include "core/log.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef struct fault_copy {
    struct fault_copy *next;
    unsigned char data[];
} fault_copy_t;

/* One "key=value" of the spec; 0 when not understood. */
static int parse_field(terse__fault_t *f, long long *rank, long long *seq, long long *len,
                       const char *key, long long v)
{
    if (!strcmp(key, "rank"))
        *rank = v;
    else if (!strcmp(key, "seq"))
        *seq = v;
    else if (!strcmp(key, "step"))
        f->step = (int)v;
    else if (!strcmp(key, "peer"))
        f->peer = (int)v;
    else if (!strcmp(key, "at"))
        f->at = (size_t)v;
    else if (!strcmp(key, "len"))
        *len = v;
    else
        return 0;
    return 1;
}

static terse__fault_kind_t parse_kind(const char *spec, size_t klen)
{
    if (klen == 7 && !strncmp(spec, "corrupt", 7))
        return TERSE_FAULT_CORRUPT;
    if (klen == 8 && !strncmp(spec, "truncate", 8))
        return TERSE_FAULT_TRUNCATE;
    if (klen == 4 && !strncmp(spec, "kill", 4))
        return TERSE_FAULT_KILL;
    return TERSE_FAULT_NONE;
}

/* KIND:rank=R,seq=S[,step=T][,peer=P][,at=B][,len=L]; f->kind NONE when not understood. */
static void parse_spec(const char *spec, terse__fault_t *f, long long *rank, long long *seq,
                       long long *len)
{
    const char *colon = strchr(spec, ':');
    size_t klen = colon ? (size_t)(colon - spec) : strlen(spec);
    f->kind = parse_kind(spec, klen);
    for (const char *p = colon ? colon + 1 : spec + klen; f->kind && *p;) {
        char key[8] = "";
        size_t n = strcspn(p, "=,");
        if (n >= sizeof(key) || p[n] != '=') {
            f->kind = TERSE_FAULT_NONE;
            return;
        }
        memcpy(key, p, n);
        char *end;
        long long v = strtoll(p + n + 1, &end, 10);
        if (end == p + n + 1 || (*end && *end != ',') || v < 0 ||
            !parse_field(f, rank, seq, len, key, v)) {
            f->kind = TERSE_FAULT_NONE;
            return;
        }
        p = *end ? end + 1 : end;
    }
}

void terse__fault_arm(terse_request_h req)
{
    const char *spec = terse__config()->fault_inject;
    if (!spec[0])
        return;
    terse__fault_t f = {.step = -1, .peer = -1};
    long long rank = -1, seq = -1, len = -1;
    parse_spec(spec, &f, &rank, &seq, &len);
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

void terse__fault_post_send(terse_request_h req, terse__xfer_t *x)
{
    if (!fault_hits(req, x)) {
        terse__xfer_post_send_bytes(req, x, x->buf, x->len);
        return;
    }
    size_t len;
    const void *buf = fault_payload(req, x, &len);
    terse__xfer_post_send_bytes(req, x, buf, len);
    if (req->fault.kind == TERSE_FAULT_KILL) {
        /* let what was posted leave, then die mid-call without a word */
        for (int i = 0; i < 100; i++)
            terse__tp_progress(&req->comm->tp);
        terse_log_warn("rank %d: fault injection: killing this process in %s seq %u step %u",
                       req->comm->rank, terse__coll_name(req->sig.coll), req->sig.seq, x->step);
        raise(SIGKILL);
    }
}

void terse__fault_release(terse__fault_t *f)
{
    for (fault_copy_t *c = f->copies, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    f->copies = NULL;
}
