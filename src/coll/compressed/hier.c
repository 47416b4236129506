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

enum { PH_START = 0, PH_REDUCE = 1, PH_INNER = 2, PH_DOWN = 3, PH_RECEIVED = 4, PH_CONFIRMED = 5 };

/* Staging for the host exchange is the request's second scratch buffer: the first is laid
 * out by the leaders' algorithm, which may grow (move) it. */
static void gather_inputs(const terse__cplan_t *p, float *dst)
{
    for (size_t j = 0; j < p->nt; j++)
        if (p->t[j].count)
            memcpy(dst + p->toff[j], p->t[j].in, p->t[j].count * sizeof(float));
}

/* Nobody commits before every rank of the communicator holds a validated result: a leader's
 * algorithm confirms among the leaders only, and a host's ranks could still fail receiving. */
static terse_status_t confirm_all(terse_request_h req)
{
    req->state[15] = PH_CONFIRMED;
    return terse__req_confirm(req, NULL, req->comm->size);
}

static terse_status_t nonleader_progress(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    int leader = req->comm->hosts.local_ranks[0];
    size_t N = p->N;

    switch (req->state[15]) {
    case PH_START: {
        /* [0,N) my Delta, [N,2N) out, [2N,3N) e_h */
        float *h = terse__req_scratch2(req, 3 * N * sizeof(float));
        if (!h)
            return req->status;
        gather_inputs(p, h);
        p->out = h + N;
        p->werr = p->any_werr ? h + 2 * N : NULL;
        req->state[15] = PH_RECEIVED;
        terse__req_recv(req, leader, STEP_OUT, p->out, N * sizeof(float));
        if (p->werr)
            terse__req_recv(req, leader, STEP_WERR, p->werr, N * sizeof(float));
        terse__req_send(req, leader, STEP_UP, h, N * sizeof(float));
        return TERSE_INPROGRESS;
    }
    case PH_RECEIVED:
        if (confirm_all(req) != TERSE_OK)
            return req->status;
        /* fall through */
    default:
        return terse__cplan_commit(req, 0, 0); /* e_s stays with the leaders */
    }
}

static terse_status_t leader_progress(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    terse_comm_h comm = req->comm;
    const int *locals = comm->hosts.local_ranks;
    int L = comm->local_size;
    size_t N = p->N;
    float *h = p->hstage;
    terse_status_t st;

    switch (req->state[15]) {
    case PH_START:
        /* [0,N) the host sum, [N,2N) one local rank's Delta */
        h = p->hstage = terse__req_scratch2(req, (L > 1 ? 2 : 1) * N * sizeof(float));
        if (!h)
            return req->status;
        gather_inputs(p, h);
        req->state[14] = 1;
        req->state[15] = PH_REDUCE;
        if (L > 1) {
            terse__req_recv(req, locals[1], STEP_UP, h + N, N * sizeof(float));
            return TERSE_INPROGRESS;
        }
        /* fall through */
    case PH_REDUCE:
        if (L > 1) {
            const float *in = h + N;
            for (size_t i = 0; i < N; i++)
                h[i] += in[i];
            if (++req->state[14] < (uint64_t)L) {
                terse__req_recv(req, locals[req->state[14]], STEP_UP, h + N, N * sizeof(float));
                return TERSE_INPROGRESS;
            }
            const float lf = (float)L;
            for (size_t i = 0; i < N; i++)
                h[i] /= lf;
        }
        for (size_t j = 0; j < p->nt; j++)
            p->t[j].in = h + p->toff[j];
        p->defer_commit = 1;
        req->state[0] = 0;
        req->state[15] = PH_INNER;
        /* fall through */
    case PH_INNER:
        st = p->inner->progress(req);
        if (st != TERSE_OK)
            return st;
        req->state[15] = PH_DOWN;
        for (int i = 1; i < L; i++) {
            terse__req_send(req, locals[i], STEP_OUT, p->out, N * sizeof(float));
            if (p->any_werr)
                terse__req_send(req, locals[i], STEP_WERR, p->werr, N * sizeof(float));
        }
        if (L > 1)
            return TERSE_INPROGRESS;
        /* fall through */
    case PH_DOWN:
        if (confirm_all(req) != TERSE_OK)
            return req->status;
        /* fall through */
    default:
        p->defer_commit = 0;
        return terse__cplan_commit(req, p->commit_lo, p->commit_hi);
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
