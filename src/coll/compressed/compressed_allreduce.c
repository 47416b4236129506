/* Compressed allreduce entry points: argument checks, the call signature (compressor, tensor
 * list, double-way, step) every message carries, and algorithm selection. */
#include "compressed.h"

#include "compress/compress.h"
#include "core/config.h"
#include "core/log.h"

#include <string.h>

/* The algorithm choices other than auto. */
static const terse__algo_t *const by_choice[TERSE_COMPRESSED_ALGO_LAST] = {
    [TERSE_COMPRESSED_ALGO_SPARSE_ALLGATHER] = &terse__cmp_sparse_allgather_algo,
    [TERSE_COMPRESSED_ALGO_SPARSE_RS_AG] = &terse__cmp_sparse_rs_ag_algo,
    [TERSE_COMPRESSED_ALGO_SIGN_ALLGATHER] = &terse__cmp_sign_allgather_algo,
    [TERSE_COMPRESSED_ALGO_SIGN_A2A_AG] = &terse__cmp_sign_a2a_ag_algo,
    [TERSE_COMPRESSED_ALGO_DENSE] = &terse__cmp_dense_algo,
};

/* The call's choice, else the communicator's (its params, else the environment when it was
 * made). A pure function of the call and the communicator, and the result is part of the
 * signature: ranks that choose differently fail with TERSE_ERR_MISMATCH, never mis-sum. */
static terse_compressed_algo_t call_algo(terse_comm_h comm, const terse_callreduce_params_t *prm)
{
    return (prm->field_mask & TERSE_CALLREDUCE_FIELD_ALGO) ? prm->algo
                                                           : comm->settings.compressed_algo;
}

static terse_hierarchy_t call_hierarchy(terse_comm_h comm, const terse_callreduce_params_t *prm)
{
    return (prm->field_mask & TERSE_CALLREDUCE_FIELD_HIERARCHY) ? prm->hierarchy
                                                                : comm->settings.hierarchy;
}

/* Same inputs on every rank (they are part of the signature), so every rank picks the same. */
static const terse__algo_t *select_algo(terse_compressed_algo_t want, const terse__cplan_t *p)
{
    if (want != TERSE_COMPRESSED_ALGO_AUTO)
        return by_choice[want];
    int K = p->geo.nparts;
    int sign = p->call.compressor.kind == TERSE_COMPRESSOR_SIGN;
    if (K == 1)
        return sign ? &terse__cmp_sign_allgather_algo : &terse__cmp_sparse_allgather_algo;
    size_t wire = 0;
    for (int r = 0; r < K; r++)
        wire += p->geo.own_cap[r];
    double density = p->geo.nelems ? (double)wire / ((double)p->geo.nelems * sizeof(float)) : 0.0;
    /* Owners balance only when there are blocks enough to share out. */
    int balanced = terse__cplan_balanced(p);
    if (p->call.compressor.kind == TERSE_COMPRESSOR_NONE ||
        p->call.compressor.kind == TERSE_COMPRESSOR_FP16 ||
        p->call.compressor.kind == TERSE_COMPRESSOR_BF16 || density >= 0.5)
        return &terse__cmp_dense_algo;
    /* Allgather moves (K-1)*wire per rank, owner schedules ~2*wire: owners win from K >= 3
     * when the work balances; single-way results travel densely from owners, so allgather
     * while K*density stays below the dense 2 (K-1)/K. */
    /* Blocks split over the owners by elements balance by construction. */
    int split = terse__csplit_applies(p) || terse__csign_split_applies(p);
    if (p->call.double_way && K >= 3 && (balanced || split))
        return sign ? &terse__cmp_sign_a2a_ag_algo : &terse__cmp_sparse_rs_ag_algo;
    if (!p->call.double_way && K * density >= 1.0)
        return balanced ? &terse__cmp_sparse_rs_ag_algo : &terse__cmp_dense_algo;
    return sign ? &terse__cmp_sign_allgather_algo : &terse__cmp_sparse_allgather_algo;
}

/* Hierarchy node with several ranks on a host and the same number on every host (the
 * host average must weigh every rank alike). Every rank sees the same host grouping. */
static int use_hierarchy(terse_comm_h comm, terse_hierarchy_t want)
{
    static int warned;
    const terse__hostgroup_t *hg = &comm->hosts;
    if (want != TERSE_HIERARCHY_NODE)
        return 0;
    int L = hg->host_first[1] - hg->host_first[0], homogeneous = 1;
    for (int h = 1; h < hg->cross_size; h++)
        homogeneous &= hg->host_first[h + 1] - hg->host_first[h] == L;
    if (!homogeneous && !warned) {
        warned = 1;
        terse_log_warn("hierarchy node needs the same number of ranks on every host; "
                       "running the flat compressed allreduce");
    }
    return homogeneous && L > 1;
}

static uint64_t signature_digest(const terse__cplan_t *p, int hier)
{
    char spec[256] = "";
    /* seg_cap: TERSE_PIPELINE_BYTES decides how the message splits into segments */
    uint64_t h, v[6] = {(uint64_t)p->call.double_way,
                        p->call.step,
                        p->algo ? p->algo->id : 0,
                        p->geo.peer ? (uint64_t)p->geo.any_werr : 0,
                        p->geo.seg_cap,
                        (uint64_t)hier};
    terse_compressor_format(&p->call.compressor, spec, sizeof(spec));
    h = terse__digest(spec, strlen(spec), 0x7e55e);
    h = terse__digest(v, sizeof(v), h);
    for (size_t j = 0; j < p->call.ntensors; j++) {
        uint64_t t[2] = {p->call.tensors[j].id, p->call.tensors[j].count};
        h = terse__digest(t, sizeof(t), h);
    }
    return h;
}

static terse_status_t check_params(terse_comm_h comm, const terse_callreduce_params_t *prm)
{
    if (!prm)
        return terse__coll_reject(comm, TERSE_COLL_COMPRESSED, TERSE_ERR_INVALID_ARG,
                                  "NULL params");
    if (!prm->compressor)
        return terse__coll_reject(comm, TERSE_COLL_COMPRESSED, TERSE_ERR_INVALID_ARG,
                                  "NULL compressor");
    if (terse_compressor_validate(prm->compressor) != TERSE_OK)
        return terse__coll_reject(comm, TERSE_COLL_COMPRESSED, TERSE_ERR_INVALID_ARG,
                                  "invalid compressor (kind %d, ratio %g)",
                                  (int)prm->compressor->kind, prm->compressor->ratio);
    if ((unsigned)call_algo(comm, prm) >= TERSE_COMPRESSED_ALGO_LAST ||
        (unsigned)call_hierarchy(comm, prm) >= TERSE_HIERARCHY_LAST)
        return terse__coll_reject(comm, TERSE_COLL_COMPRESSED, TERSE_ERR_INVALID_ARG,
                                  "invalid algorithm %u or hierarchy %u",
                                  (unsigned)call_algo(comm, prm),
                                  (unsigned)call_hierarchy(comm, prm));
    if (prm->ntensors && !prm->tensors)
        return terse__coll_reject(comm, TERSE_COLL_COMPRESSED, TERSE_ERR_INVALID_ARG,
                                  "NULL tensor list");
    size_t total = 0;
    for (size_t j = 0; j < prm->ntensors; j++) {
        const terse_ctensor_t *t = &prm->tensors[j];
        if (t->count && (!t->in || !t->out))
            return terse__coll_reject(comm, TERSE_COLL_COMPRESSED, TERSE_ERR_INVALID_ARG,
                                      "tensor %zu (id %u): NULL %s buffer", j, t->id,
                                      t->in ? "output" : "input");
        if (t->count > (SIZE_MAX / 16) - total)
            return terse__coll_reject(comm, TERSE_COLL_COMPRESSED, TERSE_ERR_INVALID_ARG,
                                      "tensor sizes overflow at tensor %zu", j);
        total += t->count;
    }
    return TERSE_OK;
}

/* The plan among every rank, or in hierarchical mode among one leader per host (host h is the
 * leaders' participant h). */
static terse_status_t make_plan(terse_comm_h comm, const terse_callreduce_params_t *params,
                                int hier, terse__cplan_t **plan_p)
{
    terse__cplan_t *p = NULL;
    terse_status_t st = hier ? terse__cplan_create(params, comm->cross_size, comm->cross_rank, &p)
                             : terse__cplan_create(params, comm->size, comm->rank, &p);
    if (st != TERSE_OK || !hier) {
        *plan_p = p;
        return st;
    }
    int *leaders = terse__malloc((size_t)comm->cross_size * sizeof(int), "host leaders");
    if (!leaders) {
        terse__cplan_free(p);
        return TERSE_ERR_NO_MEMORY;
    }
    for (int h = 0; h < comm->cross_size; h++)
        leaders[h] = comm->hosts.order[comm->hosts.host_first[h]];
    p->geo.peer = leaders;
    *plan_p = p;
    return TERSE_OK;
}

/* @held: the request completes without writing the caller's buffers (terse__chold_t). */
static terse_status_t post(terse_comm_h comm, const terse_callreduce_params_t *params, int held,
                           terse_request_h *req_p)
{
    terse_request_h req = NULL;
    if (!comm)
        return TERSE_ERR_INVALID_ARG;
    if (!req_p)
        return terse__coll_reject(comm, TERSE_COLL_COMPRESSED, TERSE_ERR_INVALID_ARG,
                                  "NULL request pointer");
    terse_status_t st = check_params(comm, params);
    if (st != TERSE_OK)
        return st;
    pthread_mutex_lock(&comm->lock);
    terse__cplan_t *p = NULL;
    int hier = use_hierarchy(comm, call_hierarchy(comm, params));
    st = make_plan(comm, params, hier, &p);
    if (st == TERSE_OK) {
        /* the plan decides the algorithm, so the request is made for it */
        p->algo = select_algo(call_algo(comm, params), p);
        st = terse__req_create(comm, TERSE_COLL_COMPRESSED,
                               hier ? &terse__cmp_hier_node_algo : p->algo, &req);
    }
    if (st != TERSE_OK) {
        terse__cplan_free(p);
        pthread_mutex_unlock(&comm->lock);
        return terse__coll_reject(comm, TERSE_COLL_COMPRESSED, st, "no memory for the plan");
    }
    req->algo_data = p;
    req->count = p->geo.nelems;
    req->dtype = TERSE_DTYPE_FLOAT32;
    req->sig.count = p->geo.nelems;
    req->sig.dtype = (uint8_t)TERSE_DTYPE_FLOAT32;
    req->sig.aux = signature_digest(p, hier);
    if (held) {
        p->hold.phase = TERSE_CHOLD_WANTED;
        req->keep_state = 1;
    }
    terse__req_start(req);
    *req_p = req;
    pthread_mutex_unlock(&comm->lock);
    return TERSE_OK;
}

terse_status_t terse_icompressed_allreduce(terse_comm_h comm,
                                           const terse_callreduce_params_t *params,
                                           terse_request_h *req_p)
{
    return post(comm, params, 0, req_p);
}

terse_status_t terse__icompressed_allreduce_held(terse_comm_h comm,
                                                 const terse_callreduce_params_t *params,
                                                 terse_request_h *req_p)
{
    return post(comm, params, 1, req_p);
}

terse_status_t terse__compressed_commit(terse_request_h req, const unsigned char *subtract)
{
    if (!req)
        return TERSE_ERR_INVALID_ARG;
    terse_comm_h comm = req->comm;
    pthread_mutex_lock(&comm->lock);
    terse__cplan_t *p = req->keep_state && req->sig.coll == TERSE_COLL_COMPRESSED
                            ? terse__cplan(req) : NULL;
    terse_status_t st = req->done ? req->status : TERSE_ERR_INVALID_ARG;
    if (st == TERSE_OK && (!p || p->hold.phase != TERSE_CHOLD_HELD))
        st = terse__req_fail_quiet(req, TERSE_ERR_INVALID_ARG, "no held commit to run");
    if (st == TERSE_OK) {
        /* every peer confirmed already: a failure here (no scratch for a decode thread) is
         * this rank's alone, so it is not announced */
        req->quiet = 1;
        p->out_subtract = subtract;
        st = p->hold.commit(req, p->hold.serr_lo, p->hold.serr_hi);
        terse__req_release_state(req);
    }
    pthread_mutex_unlock(&comm->lock);
    return st;
}

terse_status_t terse_compressed_allreduce(terse_comm_h comm,
                                          const terse_callreduce_params_t *params)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_icompressed_allreduce(comm, params, &req);
    return terse__wait_free(req, st);
}

uint64_t terse_request_bytes_sent(terse_request_h req)
{
    return req ? req->bytes_sent : 0;
}

terse_status_t terse_request_phases(terse_request_h req, terse_phase_stats_t *stats, size_t n)
{
    if (!req || (n && !stats))
        return TERSE_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++)
        stats[i] = i < TERSE_PHASE_LAST ? req->prof.ph[i] : (terse_phase_stats_t){0};
    return TERSE_OK;
}
