/* The failure protocol (abort.h): abort messages out and in, peer failures, timeouts, the
 * active list and the zombies. */
#include "engine.h"

#include "core/log.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void send_aborts(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    terse__abort_t *ab = &comm->abort;
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
                       terse__make_tag(TERSE_TAG_CLASS_ABORT, req->sig.seq, comm->rank, 0),
                       &a->rec, sizeof(a->rec), &a->op);
        a->next = ab->sends;
        ab->sends = a;
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

/* ---- peers' aborts ---- */

static void post_abort_recv(terse_comm_h comm)
{
    terse__abort_t *ab = &comm->abort;
    terse__tp_recv(&comm->tp, -1, terse__make_tag(TERSE_TAG_CLASS_ABORT, 0, 0, 0),
                   TERSE_TAG_MASK_CLASS, &ab->recv_buf, sizeof(ab->recv_buf), &ab->recv);
}

void terse__abort_init(terse_comm_h comm)
{
    post_abort_recv(comm);
}

static void poll_aborts(terse_comm_h comm)
{
    terse__abort_t *ab = &comm->abort;
    while (ab->recv.state == TERSE_TP_OP_DONE) {
        if (ab->recv.status != TERSE_TP_STATUS_OK)
            return; /* cancelled at teardown */
        ab->recv_buf.msg[sizeof(ab->recv_buf.msg) - 1] = '\0';
        ab->table[ab->ntable % TERSE_ABORT_TABLE] = ab->recv_buf;
        ab->ntable++;
        post_abort_recv(comm);
    }
}

static const terse__abort_rec_t *find_abort(const terse__abort_t *ab, uint32_t seq)
{
    int n = ab->ntable < TERSE_ABORT_TABLE ? ab->ntable : TERSE_ABORT_TABLE;
    for (int i = 0; i < n; i++) {
        if (ab->table[i].seq == seq)
            return &ab->table[i];
    }
    return NULL;
}

/* ---- checks of a waiting request ---- */

/* A dead peer fails everything still running: collectives need every rank. Names every rank
 * found gone (peers that finished and left look the same from here). */
static terse_status_t check_dead_peers(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    char list[160] = "";
    int n = 0, len = 0;
    for (int i = 0; i < comm->size && len < (int)sizeof(list) - 16; i++) {
        if (comm->tp.peer_failed[i])
            len += snprintf(list + len, sizeof(list) - (size_t)len, "%s%d", n++ ? ", " : "", i);
    }
    if (!n)
        return TERSE_INPROGRESS;
    comm->abort.broken = 1;
    return terse__req_fail_quiet(req, TERSE_ERR_PEER_FAILED,
                                 n == 1 ? "rank %s died or its connection broke"
                                        : "ranks %s died or their connections broke",
                                 list);
}

terse_status_t terse__abort_check(terse_request_h req)
{
    terse_comm_h comm = req->comm;
    const terse__abort_rec_t *a = find_abort(&comm->abort, req->sig.seq);
    if (a) {
        terse_status_t st = (terse_status_t)a->status;
        if (st >= 0 || st <= TERSE_ERR_LAST)
            st = TERSE_ERR_CORRUPT;
        return terse__req_fail_quiet(req, st, "rank %d failed this call: %s", a->origin, a->msg);
    }
    /* Same-host peers have no UCX error handling: look for their pid once a call waits. */
    if (terse__now() - req->start > 0.5)
        terse__tp_check_local_peers(&comm->tp);
    if (comm->tp.any_peer_failed && check_dead_peers(req) != TERSE_INPROGRESS)
        return req->status;
    if (terse__now() - req->start > comm->timeout) {
        int waiting = -1;
        for (int i = 0; i < req->nx && waiting < 0; i++) {
            const terse__xfer_t *x = terse__xfer_at(&req->xfers, i);
            if (x->op.state != TERSE_TP_OP_DONE || x->hdr_op.state != TERSE_TP_OP_DONE)
                waiting = x->peer;
        }
        return terse__req_fail(req, TERSE_ERR_TIMEOUT,
                               "no progress for %.0f s (round %d, waiting for rank %d)",
                               comm->timeout, req->round, waiting);
    }
    return TERSE_INPROGRESS;
}

void terse__abort_xfer_failed(terse_request_h req, const terse__xfer_t *x, terse__tp_status_t tst)
{
    terse_comm_h comm = req->comm;
    terse_status_t st = terse__tp_status_terse(tst);
    /* a same-host peer's death shows as whatever its transport saw: look for it */
    if (st != TERSE_ERR_PEER_FAILED && !comm->tp.peer_failed[x->peer])
        terse__tp_check_local_peers(&comm->tp);
    if (st == TERSE_ERR_PEER_FAILED || comm->tp.peer_failed[x->peer]) {
        comm->abort.broken = 1;
        terse__req_fail_quiet(req, TERSE_ERR_PEER_FAILED,
                              "rank %d died or its connection broke (%s)", x->peer,
                              terse__tp_status_string(tst));
    } else if (st == TERSE_ERR_MISMATCH) {
        terse__req_fail(req, st, "rank %d sent a longer message than this rank expects (%zu bytes)",
                        x->peer, x->len);
    } else {
        terse__req_fail(req, st, "%s with rank %d failed: %s", x->is_recv ? "receive" : "send",
                        x->peer, terse__tp_status_string(tst));
    }
}

/* ---- the active list and the zombies ---- */

int terse__abort_track(terse_request_h req)
{
    terse__abort_t *ab = &req->comm->abort;
    req->next = ab->active;
    if (ab->active)
        ab->active->prev = req;
    ab->active = req;
    ab->nactive++;
    if (req->comm->p2p_used && req->sig.coll != TERSE_COLL_P2P &&
        req->sig.coll != TERSE_COLL_INTERNAL) {
        terse__req_fail_quiet(req, TERSE_ERR_INVALID_ARG,
                              "point-to-point messages ran on this communicator: collectives "
                              "need one of their own (terse_comm_dup)");
        return 0;
    }
    if (ab->broken) {
        terse__req_fail_quiet(req, TERSE_ERR_PEER_FAILED,
                              "a peer failed earlier; create a new communicator");
        return 0;
    }
    return 1;
}

void terse__abort_untrack(terse_request_h req)
{
    terse__abort_t *ab = &req->comm->abort;
    if (req->prev)
        req->prev->next = req->next;
    else if (ab->active == req)
        ab->active = req->next;
    if (req->next)
        req->next->prev = req->prev;
    req->next = req->prev = NULL;
    ab->nactive--;
}

void terse__abort_defer_free(terse_request_h req)
{
    terse__abort_t *ab = &req->comm->abort;
    req->next = ab->zombies;
    ab->zombies = req;
}

/* They can sit behind a rendezvous of this call to the same peer, which that peer completes
 * while it waits, so this takes a moment at most; bounded for peers that never answer (or a
 * caller that then blocks in something else, MPI or its own barrier, would leave its peers
 * waiting for the abort until their timeout). */
void terse__abort_flush(terse_comm_h comm)
{
    double limit = comm->timeout < 2.0 ? comm->timeout : 2.0, t0 = terse__now();
    for (;;) {
        int pending = 0;
        for (terse__abort_send_t *a = comm->abort.sends; a && !pending; a = a->next)
            pending = a->op.state == TERSE_TP_OP_PENDING && !comm->tp.peer_failed[a->op.peer];
        if (!pending || terse__now() - t0 > limit)
            return;
        if (!terse__tp_progress(&comm->tp))
            sched_yield(); /* the peer may share our core */
    }
}

static void reap(terse_comm_h comm)
{
    terse__abort_send_t **pa = &comm->abort.sends;
    while (*pa) {
        terse__abort_send_t *a = *pa;
        if (a->op.state == TERSE_TP_OP_DONE) {
            *pa = a->next;
            terse__free(a);
        } else {
            pa = &a->next;
        }
    }
    terse_request_h *pz = &comm->abort.zombies;
    while (*pz) {
        terse_request_h z = *pz;
        if (!terse__req_has_pending(z)) {
            *pz = z->next;
            terse__req_destroy(z);
        } else {
            pz = &z->next;
        }
    }
}

void terse__abort_progress(terse_comm_h comm)
{
    poll_aborts(comm);
    for (terse_request_h r = comm->abort.active, next; r; r = next) {
        next = r->next; /* advance may unlink r */
        terse__req_advance(r);
    }
    if (comm->abort.sends || comm->abort.zombies)
        reap(comm);
}

int terse__abort_idle(const struct terse_comm *comm)
{
    const terse__abort_t *ab = &comm->abort;
    return ab->nactive == 0 && !ab->zombies && !ab->sends;
}

void terse__abort_shutdown(terse_comm_h comm)
{
    terse__abort_t *ab = &comm->abort;
    /* Let abort notices and last sends leave before endpoints close. */
    double until = terse__now() + 1.0;
    while (ab->sends && terse__now() < until)
        terse__comm_progress_locked(comm);
    while (ab->active) {
        terse_request_h r = ab->active;
        terse__req_fail_quiet(r, TERSE_ERR_BUSY, "communicator destroyed with the call in flight");
        terse__req_advance(r);
        if (ab->active == r) /* not unlinked: should not happen */
            break;
    }
    terse__tp_cancel(&comm->tp, &ab->recv);
    terse__tp_progress(&comm->tp);
}

void terse__abort_fini(terse_comm_h comm)
{
    terse__abort_t *ab = &comm->abort;
    reap(comm);
    while (ab->sends) {
        terse__abort_send_t *a = ab->sends;
        ab->sends = a->next;
        terse__free(a);
    }
    while (ab->zombies) {
        terse_request_h z = ab->zombies;
        ab->zombies = z->next;
        terse__req_destroy(z);
    }
}
