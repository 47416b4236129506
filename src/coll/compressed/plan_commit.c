/* The end of every compressed schedule: writing the caller's buffers once every participant
 * confirmed (terse__cplan_commit), now or later (terse__cplan_finish: the hierarchy wrapper,
 * a held commit). */
#include "compressed.h"

#include "core/prof.h"

#include <string.h>

/* Every message was validated before the confirmation round, so the unpacking here cannot
 * fail but for scratch memory on a thread that has not decoded yet (the request then fails on
 * this rank with its buffers partly written: the one case out of memory is not atomic). */
terse_status_t terse__cplan_commit(terse_request_h req, size_t serr_lo, size_t serr_hi)
{
    terse__cplan_t *p = terse__cplan(req);
    /* worker errors first: they read the inputs, which an in-place output overwrites */
    for (size_t s = 0; s < p->geo.nseg && p->buf.direct_werr; s++)
        if (terse__cplan_unpack(req, p->buf.worker_msg + p->buf.worker_seg_off[s],
                                p->buf.worker_seg_end[s] - p->buf.worker_seg_off[s], s, s + 1,
                                TERSE_CPLAN_WERR, NULL, p->geo.me, 0) != TERSE_OK)
            return req->status;
    double t0 = terse__prof_begin(&req->prof);
    for (size_t j = 0; j < p->call.ntensors && p->buf.werr; j++)
        if (p->call.tensors[j].worker_error && p->call.tensors[j].count)
            memcpy(p->call.tensors[j].worker_error, p->buf.werr + p->geo.tensor_off[j],
                   p->call.tensors[j].count * sizeof(float));
    if (p->buf.werr)
        terse__prof_end(&req->prof, TERSE_PHASE_WORKER_ERROR, t0, 4 * p->geo.nelems,
                        4 * p->geo.nelems);
    if (p->buf.direct_serr && serr_hi > serr_lo &&
        terse__cplan_unpack(req, p->buf.server_msg, p->buf.server_len, serr_lo, serr_hi,
                            TERSE_CPLAN_SERR, p->buf.acc, p->geo.me, 1) != TERSE_OK)
        return req->status;
    t0 = terse__prof_begin(&req->prof);
    for (size_t s = serr_lo; s < serr_hi && p->buf.serr; s++) {
        const terse__cseg_t *g = &p->geo.seg[s];
        float *es = p->call.tensors[g->tensor].server_error;
        if (es)
            memcpy(es + g->elem_off, p->buf.serr + p->geo.tensor_off[g->tensor] + g->elem_off,
                   g->elem_len * sizeof(float));
    }
    if (p->buf.serr)
        terse__prof_end(&req->prof, TERSE_PHASE_SERVER_ERROR, t0,
                        4 * (terse__cplan_seg_elem(p, serr_hi) - terse__cplan_seg_elem(p, serr_lo)),
                        4 * (terse__cplan_seg_elem(p, serr_hi) - terse__cplan_seg_elem(p, serr_lo)));
    if (p->buf.direct_out) {
        /* out = 0 + decode(server messages), the staged path's arithmetic, in place: the
         * server messages' segments cover every block once */
        for (int i = 0; i < p->buf.nserver_msgs; i++) {
            const terse__csrv_t *v = &p->buf.server_msgs[i];
            if (terse__cplan_unpack(req, v->buf, v->len, v->s_lo, v->s_hi, TERSE_CPLAN_OUT, NULL,
                                    v->from, 1) != TERSE_OK)
                return req->status;
        }
        return TERSE_OK;
    }
    t0 = terse__prof_begin(&req->prof);
    for (size_t j = 0; j < p->call.ntensors; j++) {
        float *o = p->call.tensors[j].out;
        const float *u = p->buf.out + p->geo.tensor_off[j];
        if (terse__cplan_subtracts(p, j)) {
            for (size_t i = 0; i < p->call.tensors[j].count; i++)
                o[i] = o[i] - u[i];
        } else if (p->call.tensors[j].count) {
            memmove(o, u, p->call.tensors[j].count * sizeof(float));
        }
    }
    terse__prof_end(&req->prof, TERSE_PHASE_OUTPUT, t0, 4 * p->geo.nelems, 4 * p->geo.nelems);
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
