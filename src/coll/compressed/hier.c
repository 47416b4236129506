/* Hierarchical compressed allreduce (TERSE_HIERARCHY=node): the ranks of a host send their
 * Delta_k to the host's leader over shared memory, the leader averages them (in local-rank
 * order), the leaders run a flat compressed algorithm among themselves with one participant
 * per host, and each leader sends the result (and the host's worker error) back to its ranks.
 *
 * Semantics: Algorithm 1 with the hosts as its workers. Host h's input is
 *   Delta_h = (Delta_{l0} + Delta_{l1} + ... + Delta_{l(L-1)}) / L   (local ranks in order)
 * and out = (sum_h C(Delta_h)) / H (double-way: C(e_s + that)). Every rank of the host gets the
 * host's error e_h = Delta_h - C(Delta_h) as its worker error, so with error feedback all ranks
 * of a host hold the same e_k and Delta_h = e_h + mean of the local steps, as for one worker.
 * The server errors e_s live on the leaders. Hosts must all have the same number of ranks
 * (the average over hosts is then the average over ranks); otherwise the flat algorithm runs.
 * Between hosts only the leaders' compressed messages travel: the bytes on the network drop
 * by the ranks-per-host factor against the flat algorithms. */
#include "compressed.h"

#include <string.h>

/* Steps of the intra-host messages, clear of the leaders' algorithm steps. */
enum { STEP_UP = 1000, STEP_OUT = 1001, STEP_WERR = 1002 };

/* Staging for the host exchange is the request's second scratch buffer: the first is laid
 * out by the leaders' algorithm, which may grow (move) it. */
static void gather_inputs(const terse__cplan_t *p, float *dst)
{
    for (size_t j = 0; j < p->call.ntensors; j++)
        if (p->call.tensors[j].count)
            memcpy(dst + p->geo.tensor_off[j], p->call.tensors[j].in,
                   p->call.tensors[j].count * sizeof(float));
}

/* Nobody commits before every rank of the communicator holds a validated result: a leader's
 * algorithm confirms among the leaders only, and a host's ranks could still fail receiving. */
static terse_status_t confirm_all(terse_request_h req)
{
    terse__cplan(req)->hier.phase = TERSE_CHIER_CONFIRMING;
    return terse__req_confirm(req, NULL, req->comm->size);
}

static terse_status_t nonleader_progress(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int leader = req->comm->hosts.local_ranks[0];
    size_t N = p->geo.nelems;

    switch (p->hier.phase) {
    case TERSE_CHIER_START: {
        /* [0,N) my Delta, [N,2N) out, [2N,3N) e_h */
        float *h = terse__req_scratch2(req, 3 * N * sizeof(float));
        if (!h)
            return req->status;
        gather_inputs(p, h);
        p->buf.out = h + N;
        p->buf.werr = p->geo.any_werr ? h + 2 * N : NULL;
        p->hier.phase = TERSE_CHIER_DOWN;
        terse__req_recv(req, leader, STEP_OUT, p->buf.out, N * sizeof(float));
        if (p->buf.werr)
            terse__req_recv(req, leader, STEP_WERR, p->buf.werr, N * sizeof(float));
        terse__req_send(req, leader, STEP_UP, h, N * sizeof(float));
        return TERSE_INPROGRESS;
    }
    case TERSE_CHIER_DOWN:
        if (confirm_all(req) != TERSE_OK)
            return req->status;
        /* fall through */
    default:
        /* e_s stays with the leaders */
        return terse__cplan_finish(req, terse__cplan_commit, 0, 0);
    }
}

/* The host's inputs, one local rank at a time into [N,2N) of the stage, summed into [0,N) in
 * local-rank order, then averaged: the leaders' input. Returns TERSE_INPROGRESS while
 * receiving. */
static terse_status_t reduce_host(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    terse__chier_t *hs = &p->hier;
    const int *locals = req->comm->hosts.local_ranks;
    int L = req->comm->local_size;
    size_t N = p->geo.nelems;
    float *h = hs->stage;
    if (hs->phase == TERSE_CHIER_START) {
        h = hs->stage = terse__req_scratch2(req, (L > 1 ? 2 : 1) * N * sizeof(float));
        if (!h)
            return req->status;
        gather_inputs(p, h);
        hs->next_local = 1;
        hs->phase = TERSE_CHIER_REDUCE;
    } else {
        const float *in = h + N;
        for (size_t i = 0; i < N; i++)
            h[i] += in[i];
        hs->next_local++;
    }
    if (hs->next_local < L) {
        terse__req_recv(req, locals[hs->next_local], STEP_UP, h + N, N * sizeof(float));
        return TERSE_INPROGRESS;
    }
    if (L > 1) {
        const float lf = (float)L;
        for (size_t i = 0; i < N; i++)
            h[i] /= lf;
    }
    return TERSE_OK;
}

static terse_status_t leader_progress(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    terse__chier_t *hs = &p->hier;
    const int *locals = req->comm->hosts.local_ranks;
    int L = req->comm->local_size;
    terse_status_t st;

    switch (hs->phase) {
    case TERSE_CHIER_START:
    case TERSE_CHIER_REDUCE:
        st = reduce_host(req);
        if (st != TERSE_OK)
            return st;
        p->call.input = hs->stage;
        hs->defer_commit = 1;
        hs->phase = TERSE_CHIER_INNER;
        /* fall through */
    case TERSE_CHIER_INNER:
        st = p->algo->progress(req);
        if (st != TERSE_OK)
            return st;
        hs->phase = TERSE_CHIER_DOWN;
        for (int i = 1; i < L; i++) {
            terse__req_send(req, locals[i], STEP_OUT, p->buf.out, p->geo.nelems * sizeof(float));
            if (p->geo.any_werr)
                terse__req_send(req, locals[i], STEP_WERR, p->buf.werr,
                                p->geo.nelems * sizeof(float));
        }
        if (L > 1)
            return TERSE_INPROGRESS;
        /* fall through */
    case TERSE_CHIER_DOWN:
        if (confirm_all(req) != TERSE_OK)
            return req->status;
        /* fall through */
    default:
        hs->defer_commit = 0;
        return terse__cplan_finish(req, terse__cplan_commit, hs->commit_lo, hs->commit_hi);
    }
}

static terse_status_t hier_progress(terse_request_h req)
{
    return req->comm->local_rank == 0 ? leader_progress(req) : nonleader_progress(req);
}

const terse__algo_t terse__cmp_hier_node_algo = {
    .name = "hier_node",
    .id = TERSE_ALGO_CMP_HIER_NODE,
    .progress = hier_progress,
    .cleanup = terse__cplan_cleanup,
};
