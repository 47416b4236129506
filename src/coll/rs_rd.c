/* reduce_scatter(_v) and reduce for the small vectors the allreduce reduces by recursive
 * doubling: that allreduce whole (its expression tree, so its bits), then each rank keeps its
 * part. Every rank computes everything, which is what recursive doubling costs anyway; it is
 * chosen only where latency, not bandwidth, dominates. */
#include "algos.h"

static terse_status_t rs_rd_progress(terse_request_h req)
{
    void *work = terse__rs_work(req);
    if (!work)
        return req->status;
    terse_status_t st = terse__allreduce_rd_run(req, work);
    if (st != TERSE_OK)
        return st;
    return terse__rs_deliver(req, work, 0);
}

const terse__algo_t terse__rs_rd_algo = {
    .name = "recursive_doubling",
    .id = TERSE_ALGO_RS_RD,
    .progress = rs_rd_progress,
};
