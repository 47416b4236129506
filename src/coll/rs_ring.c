/* reduce_scatter(_v) and reduce for the vectors the allreduce sends around its ring: the ring
 * allreduce's reduce-scatter half over the whole vector (its chunks, its order of operands,
 * so the bits of terse_allreduce), then one round in which every rank sends the pieces of the
 * chunk it finished to the ranks whose output they are (reduce_scatter: for equal blocks,
 * chunk r + 1 to rank r + 1; reduce: every chunk to the root). */
#include "algos.h"

/* In req->phase, which the ring (terse__allreduce_ring_run) leaves alone. */
enum { RS_RING_REDUCING, RS_RING_DELIVERING };

static terse_status_t rs_ring_progress(terse_request_h req)
{
    if (req->phase == RS_RING_DELIVERING)
        return TERSE_OK;
    void *work = terse__rs_work(req);
    if (!work)
        return req->status;
    terse_status_t st = terse__allreduce_ring_run(req, work, 1);
    if (st != TERSE_OK)
        return st;
    req->phase = RS_RING_DELIVERING;
    return terse__rs_deliver(req, work, 1);
}

const terse__algo_t terse__rs_ring_algo = {
    .name = "ring",
    .id = TERSE_ALGO_RS_RING,
    .progress = rs_ring_progress,
};
