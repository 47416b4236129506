/* Posting a round's transfers: where each message goes (inline or split, which tags), the
 * header a send carries, and the storage transfers live in (xfer.h). */
#include "engine.h"

#include "core/checksum.h"

#include <string.h>

terse__xfer_t *terse__xfer_list_slot(terse__xfer_list_t *l, int i)
{
    int c = i >> TERSE_XFER_CHUNK_SHIFT;
    if (c == l->nchunk) {
        if (l->nchunk == l->capchunk) {
            int cap = l->capchunk ? 2 * l->capchunk : 4;
            terse__xfer_t **v = terse__realloc(l->chunk, sizeof(*v) * (size_t)cap,
                                               "transfer chunk list");
            if (!v)
                return NULL;
            l->chunk = v;
            l->capchunk = cap;
        }
        l->chunk[c] = terse__malloc(sizeof(terse__xfer_t) * TERSE_XFER_CHUNK, "transfers");
        if (!l->chunk[c])
            return NULL;
        l->nchunk++;
    }
    terse__xfer_t *x = terse__xfer_at(l, i);
    memset(x, 0, sizeof(*x));
    return x;
}

void terse__xfer_list_free(terse__xfer_list_t *l)
{
    for (int c = 0; c < l->nchunk; c++)
        terse__free(l->chunk[c]);
    terse__free(l->chunk);
    *l = (terse__xfer_list_t){0};
}

int terse__xfers_pending(terse_request_h req)
{
    for (int i = 0; i < req->nx; i++) {
        const terse__xfer_t *x = terse__xfer_at(&req->xfers, i);
        if (x->op.state == TERSE_TP_OP_PENDING || x->hdr_op.state == TERSE_TP_OP_PENDING)
            return 1;
    }
    return 0;
}

void terse__xfers_cancel(terse_request_h req)
{
    for (int i = 0; i < req->nx; i++) {
        terse__xfer_t *x = terse__xfer_at(&req->xfers, i);
        terse__tp_cancel(&req->comm->tp, &x->op);
        terse__tp_cancel(&req->comm->tp, &x->hdr_op);
    }
}

/* Checksum of send @i's payload. Rounds that send the same bytes to several peers post those
 * sends back to back: one pass serves them all (a buffer posted for sending stays as it is
 * until its transfers complete). */
static uint64_t send_sum(terse_request_h req, int i)
{
    const terse__xfer_t *x = terse__xfer_at(&req->xfers, i);
    const terse__xfer_t *prev = i > 0 ? terse__xfer_at(&req->xfers, i - 1) : NULL;
    if (prev && !prev->is_recv && prev->buf == x->buf && prev->len == x->len)
        return prev->hdr.sum;
    return terse__checksum(x->buf, x->len);
}

void terse__xfer_post_send_bytes(terse_request_h req, terse__xfer_t *x, const void *buf,
                                 size_t len)
{
    terse_comm_h comm = req->comm;
    uint32_t seq = req->sig.seq;
    if (x->split) {
        terse__tp_send(&comm->tp, x->peer,
                       terse__make_tag(TERSE_TAG_CLASS_HDR, seq, comm->rank, x->step), &x->hdr,
                       sizeof(x->hdr), &x->hdr_op);
        terse__tp_send(&comm->tp, x->peer,
                       terse__make_tag(TERSE_TAG_CLASS_DATA, seq, comm->rank, x->step), buf, len,
                       &x->op);
    } else {
        x->hdr_op.state = TERSE_TP_OP_DONE;
        terse__tp_send2(&comm->tp, x->peer,
                        terse__make_tag(TERSE_TAG_CLASS_INLINE, seq, comm->rank, x->step),
                        &x->hdr, sizeof(x->hdr), buf, len, &x->op);
    }
}

static void post_send(terse_request_h req, terse__xfer_t *x, int i)
{
    x->hdr = req->sig;
    x->hdr.step = x->step;
    x->hdr.sender = (uint32_t)req->comm->rank;
    x->hdr.len = x->len;
    /* over the caller's bytes, before a fault injection garbles its copy, so that injected
     * corruption is caught like corruption on the way */
    if (terse__sum_covers(req->sig.sum_mode, req->sig.coll))
        x->hdr.sum = send_sum(req, i);
    req->bytes_sent += x->len;
    if (__builtin_expect(req->fault.kind != TERSE_FAULT_NONE, 0))
        terse__fault_post_send(req, x);
    else
        terse__xfer_post_send_bytes(req, x, x->buf, x->len);
}

static void post_recv(terse_request_h req, terse__xfer_t *x)
{
    terse__tp_t *tp = &req->comm->tp;
    uint32_t seq = req->sig.seq;
    uint64_t hdr = terse__make_tag(TERSE_TAG_CLASS_HDR, seq, x->peer, x->step);
    uint64_t inl = terse__make_tag(TERSE_TAG_CLASS_INLINE, seq, x->peer, x->step);
    if (x->var_len) {
        /* The first message is a header (HDR, the payload follows as DATA) or header and
         * payload together (INLINE): one receive matches either (see wire.h). The payload
         * receive, if any, is posted once the header arrived (terse__xfer_var_arrived). */
        terse__tp_recv2(tp, x->peer, hdr, TERSE_TAG_MASK_HDR_INLINE, &x->hdr, sizeof(x->hdr),
                        x->buf, x->len, &x->hdr_op);
    } else if (x->any_step) {
        x->hdr_op.state = TERSE_TP_OP_DONE;
        terse__tp_recv2(tp, x->peer, inl, TERSE_TAG_MASK_ANY_STEP, &x->hdr, sizeof(x->hdr),
                        x->buf, x->len, &x->op);
    } else if (x->split) {
        terse__tp_recv(tp, x->peer, hdr, TERSE_TAG_MASK_EXACT, &x->hdr, sizeof(x->hdr),
                       &x->hdr_op);
        terse__tp_recv(tp, x->peer, terse__make_tag(TERSE_TAG_CLASS_DATA, seq, x->peer, x->step),
                       TERSE_TAG_MASK_EXACT, x->buf, x->len, &x->op);
    } else {
        x->hdr_op.state = TERSE_TP_OP_DONE;
        terse__tp_recv2(tp, x->peer, inl, TERSE_TAG_MASK_EXACT, &x->hdr, sizeof(x->hdr), x->buf,
                        x->len, &x->op);
    }
}

terse_status_t terse__xfer_var_arrived(terse_request_h req, terse__xfer_t *x)
{
    x->hdr_checked = 1;
    if (terse__tag_class(x->hdr_op.tag) == TERSE_TAG_CLASS_INLINE) {
        x->split = 0;
        x->op.length = x->hdr_op.length;
        x->op.status = TERSE_TP_STATUS_OK;
        x->op.state = TERSE_TP_OP_DONE;
        return TERSE_OK;
    }
    x->split = 1;
    if (x->hdr_op.length != sizeof(x->hdr))
        return terse__req_fail(req, TERSE_ERR_CORRUPT,
                               "header message from rank %d has %zu bytes, not %zu", x->peer,
                               x->hdr_op.length, sizeof(x->hdr));
    if (terse__xfer_check_header(req, x, 0) != TERSE_OK)
        return req->status;
    terse__tp_recv(&req->comm->tp, x->peer,
                   terse__make_tag(TERSE_TAG_CLASS_DATA, req->sig.seq, x->peer, x->step),
                   TERSE_TAG_MASK_EXACT, x->buf, x->len, &x->op);
    return TERSE_OK;
}

enum { XFER_VAR = 1, XFER_ANY_STEP = 2 };

static void add_xfer(terse_request_h req, int is_recv, int flags, int peer, uint16_t step,
                     void *buf, size_t len)
{
    if (req->status != TERSE_INPROGRESS)
        return;
    int i = req->nx;
    terse__xfer_t *x = terse__xfer_list_slot(&req->xfers, i);
    if (!x) {
        terse__req_fail(req, TERSE_ERR_NO_MEMORY, "no memory for %d transfers in one round",
                        i + 1);
        return;
    }
    req->nx++;
    x->is_recv = is_recv;
    x->var_len = (flags & XFER_VAR) != 0;
    x->any_step = (flags & XFER_ANY_STEP) != 0;
    x->peer = peer;
    x->step = step;
    x->buf = buf;
    x->len = len;
    /* Small payloads share a message with their header; large ones go as their own
     * contiguous message (zero-copy rendezvous) behind a small header message. Receivers of
     * unknown length learn which from the first message (terse__xfer_var_arrived). */
    x->split = !x->any_step && !x->var_len && len > req->comm->eager_hdr_bytes;
    if (is_recv)
        post_recv(req, x);
    else
        post_send(req, x, i);
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
    const terse__xfer_t *x = terse__xfer_at(&req->xfers, i);
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
