/* The life of a request: created with its signature, started (sequence number, active list),
 * advanced round by round as its transfers complete, finished (cleanup, scratch back to the
 * pool) and destroyed. Posting is in xfer.c, validation in validate.c, failures in abort.c. */
#include "engine.h"

#include <time.h>

double terse__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
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
    req->sig.sum_mode = terse__sum_mode_configured();
    req->root = -1;
    req->sig.root = -1;
    req->prof.on = terse__prof_enabled;
    *req_p = req;
    return TERSE_OK;
}

/* Where transfer @x stands: 1 done and validated, 0 pending, -1 failed (req->status says
 * why). Headers are validated as soon as they arrive, payloads once. */
static int xfer_state(terse_request_h req, terse__xfer_t *x)
{
    if (x->is_recv && x->var_len && !x->hdr_checked && x->hdr_op.state == TERSE_TP_OP_DONE &&
        x->hdr_op.status == TERSE_TP_STATUS_OK && terse__xfer_var_arrived(req, x) != TERSE_OK)
        return -1;
    terse__tp_op_t *ops[2] = {&x->hdr_op, &x->op};
    int done = 0;
    for (int k = 0; k < 2; k++) {
        if (ops[k]->state != TERSE_TP_OP_DONE)
            continue;
        done++;
        if (ops[k]->status != TERSE_TP_STATUS_OK) {
            terse__abort_xfer_failed(req, x, ops[k]->status);
            return -1;
        }
    }
    if (done < 2) {
        /* A split header arrives first: check it now, because a payload that does not fit
         * may never complete (UCX rendezvous into a too-small buffer). */
        if (x->is_recv && x->split && !x->hdr_checked && x->hdr_op.state == TERSE_TP_OP_DONE) {
            x->hdr_checked = 1;
            if (terse__xfer_check_header(req, x, 0) != TERSE_OK)
                return -1;
        }
        return 0;
    }
    /* once: the checksum reads the whole payload, and rounds are polled until done */
    if (x->is_recv && !x->payload_checked) {
        if (terse__xfer_check_header(req, x, 1) != TERSE_OK)
            return -1;
        x->payload_checked = 1;
    }
    return 1;
}

/* 1 when every transfer of the round is done (and received headers match), 0 when some are
 * pending, -1 on failure. */
static int round_state(terse_request_h req)
{
    int pending = 0;
    for (int i = 0; i < req->nx; i++) {
        int s = xfer_state(req, terse__xfer_at(&req->xfers, i));
        if (s < 0)
            return -1;
        pending |= s == 0;
    }
    return pending ? 0 : 1;
}

static void finish(terse_request_h req)
{
    if (req->done)
        return;
    req->done = 1;
    if (req->status != TERSE_OK) {
        terse__xfers_cancel(req);
        terse__abort_flush(req->comm);
        req->keep_state = 0;
    }
    if (req->keep_state) { /* every transfer completed: nothing writes into the scratch */
        terse__abort_untrack(req);
        return;
    }
    if (req->algo->cleanup)
        req->algo->cleanup(req);
    /* A receive already matched (a rendezvous under way) cannot be cancelled and still
     * writes into the scratch: keep it from the next call until terse__req_destroy, which
     * runs once no transfer is pending (the request waits among the zombies till then). */
    if (!terse__xfers_pending(req))
        terse__scratch_release(req);
    terse__abort_untrack(req);
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
            terse__abort_check(req);
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
    terse__fault_arm(req);
    if (!terse__abort_track(req)) {
        finish(req);
        return req->status;
    }
    terse_status_t st = terse__req_advance(req);
    if (comm->has_progress_thread)
        pthread_cond_signal(&comm->cond);
    if (comm->sleepers)
        terse__tp_wake(&comm->tp); /* a sleeping progress thread has a new request to drive */
    return st == TERSE_INPROGRESS ? TERSE_OK : st;
}

void terse__req_poll(terse_request_h req)
{
    terse__tp_progress(&req->comm->tp);
    if (req->status == TERSE_INPROGRESS)
        (void)round_state(req); /* posts the payload receives whose headers arrived */
}

int terse__req_has_pending(terse_request_h req)
{
    return terse__xfers_pending(req);
}

void terse__req_release_state(terse_request_h req)
{
    if (!req->keep_state)
        return;
    req->keep_state = 0;
    if (req->algo->cleanup)
        req->algo->cleanup(req);
    terse__scratch_release(req);
}

void terse__req_destroy(terse_request_h req)
{
    terse__req_release_state(req);
    terse__scratch_release(req);
    terse__free(req->counts);
    terse__free(req->displs);
    terse__free(req->rcounts);
    terse__free(req->rdispls);
    terse__xfer_list_free(&req->xfers);
    terse__fault_release(&req->fault);
    terse__free(req);
}
