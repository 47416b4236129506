/* Validation of what arrives: a received header against this rank's call signature, the
 * announced against the arrived length, and the payload checksum. The first difference found
 * fails the request with a reason that names the peer and the field: a different call is
 * TERSE_ERR_MISMATCH, a damaged message TERSE_ERR_CORRUPT. */
#include "engine.h"

#include "core/checksum.h"

#include <string.h>

static terse_status_t check_intact(terse_request_h req, const terse__msg_hdr_t *h, int p)
{
    static const uint8_t zeros[sizeof(h->reserved)];
    if (h->magic != TERSE_MSG_MAGIC || h->version != TERSE_MSG_VERSION ||
        !terse__sum_mode_valid(h->sum_mode) || memcmp(h->reserved, zeros, sizeof(zeros)) != 0)
        return terse__req_fail(req, TERSE_ERR_CORRUPT,
                               "message from rank %d has a bad header (magic %#x version %u "
                               "checksum mode %#x)",
                               p, h->magic, h->version, h->sum_mode);
    return TERSE_OK;
}

/* The call's signature: what the caller passed on each rank. */
static terse_status_t check_signature(terse_request_h req, const terse__msg_hdr_t *h, int p)
{
    const terse__msg_hdr_t *s = &req->sig;
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
                               terse__sum_mode_name(h->sum_mode), terse__sum_mode_name(s->sum_mode));
    return TERSE_OK;
}

/* Before the payload: the length the header announces fits what this rank posted. */
static terse_status_t check_announced(terse_request_h req, const terse__xfer_t *x)
{
    const terse__msg_hdr_t *h = &x->hdr;
    if (!x->var_len && h->len != x->len)
        return terse__req_fail(req, TERSE_ERR_MISMATCH,
                               "message from rank %d announces %llu bytes, expected %zu", x->peer,
                               (unsigned long long)h->len, x->len);
    if (x->var_len && h->len > x->len)
        return terse__req_fail(req, TERSE_ERR_MISMATCH,
                               "message from rank %d announces %llu bytes, at most %zu fit",
                               x->peer, (unsigned long long)h->len, x->len);
    return TERSE_OK;
}

/* The payload arrived: its length against the header's and this rank's, then its checksum. */
static terse_status_t check_payload(terse_request_h req, const terse__xfer_t *x)
{
    const terse__msg_hdr_t *h = &x->hdr;
    int p = x->peer;
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
    if (terse__sum_covers(h->sum_mode, h->coll) && terse__checksum(x->buf, got) != h->sum)
        return terse__req_fail(req, TERSE_ERR_CORRUPT,
                               "message from rank %d is corrupt: payload checksum mismatch "
                               "(step %u, %zu bytes)",
                               p, h->step, got);
    return TERSE_OK;
}

terse_status_t terse__xfer_check_header(terse_request_h req, terse__xfer_t *x, int payload_done)
{
    const terse__msg_hdr_t *h = &x->hdr, *s = &req->sig;
    int p = x->peer;
    if (check_intact(req, h, p) != TERSE_OK || check_signature(req, h, p) != TERSE_OK)
        return req->status;
    if (h->seq != s->seq || h->sender != (uint32_t)p || (!x->any_step && h->step != x->step))
        return terse__req_fail(req, TERSE_ERR_CORRUPT,
                               "message from rank %d is for seq %u step %u, expected seq %u step %u",
                               p, h->seq, h->step, s->seq, x->step);
    return payload_done ? check_payload(req, x) : check_announced(req, x);
}
