/* Communicator lifetime, progress (caller-driven or a progress thread), request API. */
#include "comm.h"

#include "bootstrap/bootstrap.h"
#include "compress/compress.h"
#include "core/config.h"
#include "core/log.h"
#include "core/pool.h"
#include "topo/hostgroup.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void terse__comm_set_error(terse_comm_h comm, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(comm->last_error, sizeof(comm->last_error), fmt, ap);
    va_end(ap);
}

const terse__allocator_t *terse__comm_allocator(terse_comm_h comm)
{
    return comm->has_plan ? &comm->plan.allocator : NULL;
}

/* Host grouping (local/cross ranks, host-major order) from every rank's host id. */
static terse_status_t group_hosts(terse_comm_h comm, terse__bootstrap_t *bs)
{
    enum { ID_LEN = 256 };
    char *ids = terse__calloc((size_t)comm->size, ID_LEN, "host ids");
    if (!ids)
        return TERSE_ERR_NO_MEMORY;
    char mine[ID_LEN] = {0};
    snprintf(mine, sizeof(mine), "%s", comm->host_id);
    terse_status_t st = terse__bootstrap_allgather(bs, mine, ids, ID_LEN);
    if (st == TERSE_OK)
        st = terse__hostgroup_compute(ids, ID_LEN, comm->size, comm->rank, &comm->hosts);
    terse__free(ids);
    if (st != TERSE_OK)
        return st;
    comm->host_of = comm->hosts.host_of;
    comm->local_rank = comm->hosts.local_rank;
    comm->local_size = comm->hosts.local_size;
    comm->cross_rank = comm->hosts.cross_rank;
    comm->cross_size = comm->hosts.cross_size;
    return TERSE_OK;
}

/* Where this rank's progress thread and buffers should live, and which NIC it drives (warns
 * and runs unbound on any trouble: placement is an optimisation, never a reason to fail).
 * Runs before the transport exists: the plan's rail restricts the UCX context. The pooled
 * scratch buffers get the plan's NUMA-local allocator here. */
static void plan_placement(terse_comm_h comm)
{
    char devs[16][64];
    const char *names[16];
    int from_user = 0;
    size_t n = terse__tp_planning_devices(devs, 16, &from_user);
    for (size_t i = 0; i < n; i++)
        names[i] = devs[i];
    comm->topo = terse__topo_load(NULL);
    terse__topo_request_t treq = {
        .allowed = NULL,
        .nics = names,
        .num_nics = n,
        .nics_from_user = from_user,
        .local_rank = comm->local_rank,
        .local_size = comm->local_size,
        .bind = terse__config()->bind,
    };
    if (terse__topo_plan(comm->topo, &treq, &comm->plan) == TERSE_OK) {
        comm->has_plan = 1;
        const terse__allocator_t *a = terse__topo_plan_allocator(comm->topo, &comm->plan);
        terse__scratch_pool_set_allocator(comm, a);
        char line[512];
        terse__topo_plan_string(&comm->plan, line, sizeof(line));
        terse_log_info("rank %d placement: %s", comm->rank, line);
    }
}

/* Drops what plan_placement made (error paths and destroy). */
static void release_placement(terse_comm_h comm)
{
    if (comm->has_plan)
        terse__topo_plan_release(&comm->plan);
    comm->has_plan = 0;
    terse__topo_release(comm->topo);
    comm->topo = NULL;
}

unsigned terse__comm_progress_locked(terse_comm_h comm)
{
    unsigned n = terse__tp_progress(&comm->tp);
    terse__abort_progress(comm);
    return n;
}

static void bind_pool_worker(void *ctx, int worker)
{
    terse_comm_h comm = ctx;
    if (terse__topo_bind_worker(comm->topo, &comm->plan) != TERSE_OK)
        terse_log_debug("rank %d: compression worker %d left unbound", comm->rank, worker);
}

/* The process's compression pool: TERSE_THREADS, else what the cpuset allows. The first
 * communicator sizes it; each holds a reference. */
static void start_pool(terse_comm_h comm)
{
    int n = terse__config()->threads;
    if (n <= 0)
        n = comm->has_plan ? terse__topo_default_threads(comm->topo, &comm->plan, comm->local_size)
                           : 1;
    terse__pool_start(n, comm->has_plan ? bind_pool_worker : NULL, comm,
                      terse__compress_scratch_release);
    terse_log_debug("rank %d: %d compression threads", comm->rank, terse__pool_size());
}

/* Spin-then-block, the end of every idle wait's turn (lock held, and held again on return):
 * after progress that did something, wake the sleepers (their event may be the one consumed);
 * after TERSE_SPIN_US without any, sleep on the transport's event fd, at most @max_ms so that
 * timeouts, aborts and dead local peers are still seen by the next progress. Ranks that
 * share cores (oversubscribed, or a framework's threads) then leave them to the ranks with
 * work, and to the kernel's network stack. */
enum { TERSE_IDLE_SLEEP_MS = 5 };

static void idle_turn(terse_comm_h comm, unsigned progressed, double *idle_since, int max_ms)
{
    if (progressed) {
        *idle_since = 0;
        if (comm->sleepers)
            terse__tp_wake(&comm->tp);
        pthread_mutex_unlock(&comm->lock);
        pthread_mutex_lock(&comm->lock);
        return;
    }
    double now = terse__now(), spin = terse__config()->spin_us * 1e-6;
    if (*idle_since == 0)
        *idle_since = now;
    if (spin < 0 || now - *idle_since < spin || max_ms <= 0 || !terse__tp_arm(&comm->tp)) {
        pthread_mutex_unlock(&comm->lock);
        sched_yield(); /* the ranks sharing our cores run */
        pthread_mutex_lock(&comm->lock);
        return;
    }
    comm->sleepers++;
    pthread_mutex_unlock(&comm->lock);
    terse__tp_sleep(&comm->tp, max_ms < TERSE_IDLE_SLEEP_MS ? max_ms : TERSE_IDLE_SLEEP_MS);
    pthread_mutex_lock(&comm->lock);
    comm->sleepers--;
}

static void *progress_main(void *arg)
{
    terse_comm_h comm = arg;
    if (comm->has_plan && comm->plan.bind_thread &&
        terse__topo_bind_thread(comm->topo, &comm->plan) != TERSE_OK)
        terse_log_warn("rank %d: progress thread left unbound", comm->rank);
    pthread_mutex_lock(&comm->lock);
    double idle = 0;
    while (!comm->stopping) {
        if (terse__abort_idle(comm)) {
            pthread_cond_wait(&comm->cond, &comm->lock);
            idle = 0;
            continue;
        }
        idle_turn(comm, terse__comm_progress_locked(comm), &idle, TERSE_IDLE_SLEEP_MS);
    }
    pthread_mutex_unlock(&comm->lock);
    return NULL;
}

/* The communicator's own fields, before anything talks to a peer. */
static terse_comm_h comm_alloc(const terse_comm_params_t *params, const terse__bootstrap_t *bs,
                               double timeout)
{
    uint64_t mask = params ? params->field_mask : 0;
    const terse__config_t *cfg = terse__config();
    terse_comm_h comm = terse__calloc(1, sizeof(*comm), "communicator");
    if (!comm)
        return NULL;
    comm->rank = bs->rank;
    comm->size = bs->size;
    comm->timeout = timeout;
    comm->eager_hdr_bytes = cfg->eager_hdr_bytes;
    comm->settings = (terse__comm_settings_t){
        .compressed_algo = (mask & TERSE_COMM_PARAM_FIELD_COMPRESSED_ALGO)
                               ? params->compressed_algo
                               : cfg->compressed_algo_id,
        .hierarchy = (mask & TERSE_COMM_PARAM_FIELD_HIERARCHY) ? params->hierarchy
                                                               : cfg->hierarchy_id,
        .allreduce_algo = (int)cfg->allreduce_algo_id,
        .small_msg_bytes = cfg->small_msg_bytes,
    };
    if ((mask & TERSE_COMM_PARAM_FIELD_HOST_ID) && params->host_id)
        snprintf(comm->host_id, sizeof(comm->host_id), "%s", params->host_id);
    else if (cfg->host_id[0])
        snprintf(comm->host_id, sizeof(comm->host_id), "%s", cfg->host_id);
    else if (terse__topo_host_id(comm->host_id, sizeof(comm->host_id)) != TERSE_OK)
        snprintf(comm->host_id, sizeof(comm->host_id), "unknown-host");
    pthread_mutex_init(&comm->lock, NULL);
    pthread_cond_init(&comm->cond, NULL);
    return comm;
}

/* Hosts, placement and the transport, up to the barrier after which every endpoint exists.
 * On failure what it made is released again, but for the host grouping and placement (the
 * caller's error path releases those). */
static terse_status_t comm_connect(terse_comm_h comm, terse__bootstrap_t *bs)
{
    char err[256] = "";
    terse_status_t st = group_hosts(comm, bs);
    if (st != TERSE_OK) {
        terse_log_error("grouping ranks by host: %s", bs->err);
        return st;
    }
    int *same_host = terse__calloc((size_t)comm->size, sizeof(int), "host flags");
    if (!same_host)
        return TERSE_ERR_NO_MEMORY;
    for (int i = 0; i < comm->size; i++)
        same_host[i] = comm->host_of[i] == comm->cross_rank;
    plan_placement(comm);
    st = terse__tp_init(&comm->tp, bs, same_host,
                        comm->has_plan ? comm->plan.ucx_net_devices : NULL, err, sizeof(err));
    terse__free(same_host);
    if (st != TERSE_OK) {
        terse_log_error("rank %d: transport setup failed: %s", bs->rank, err);
        return st;
    }
    comm->tp.slab_allocator = comm->has_plan ? &comm->plan.allocator : NULL;
    /* Everyone's endpoints exist before anyone sends: the last bootstrap exchange is the
     * barrier that guarantees it. It carries the result-changing settings too, which every
     * rank must share (a call that differs in them could wait for messages that never come
     * instead of failing): every rank sees every value, so all fail alike. */
    const terse__comm_settings_t *set = &comm->settings;
    int mine = (int)set->compressed_algo | (int)set->hierarchy << 8 | set->allreduce_algo << 16;
    int *all = terse__calloc((size_t)bs->size, sizeof(int), "setup barrier");
    st = all ? terse__bootstrap_allgather(bs, &mine, all, sizeof(int)) : TERSE_ERR_NO_MEMORY;
    if (st != TERSE_OK)
        terse_log_error("setup barrier: %s", bs->err);
    for (int r = 0; st == TERSE_OK && r < bs->size; r++) {
        if (all[r] != all[0]) {
            terse_log_error("rank %d: compressed algorithm %s, hierarchy %s, allreduce algorithm "
                            "%d; rank 0: %s, %s, %d (params or TERSE_COMPRESSED_ALGO, "
                            "TERSE_HIERARCHY, TERSE_ALLREDUCE_ALGO differ)", r,
                            terse_compressed_algo_name(all[r] & 0xff),
                            terse_hierarchy_name((all[r] >> 8) & 0xff), all[r] >> 16,
                            terse_compressed_algo_name(all[0] & 0xff),
                            terse_hierarchy_name((all[0] >> 8) & 0xff), all[0] >> 16);
            st = TERSE_ERR_MISMATCH;
        }
    }
    terse__free(all);
    if (st != TERSE_OK)
        terse__tp_fini(&comm->tp);
    return st;
}

terse_status_t terse_comm_create(const terse_comm_params_t *params, terse_comm_h *comm_p)
{
    terse__bootstrap_t bs;
    terse_status_t st;
    uint64_t mask = params ? params->field_mask : 0;

    if (!comm_p)
        return TERSE_ERR_INVALID_ARG;
    terse__config_reload();
    const terse__config_t *cfg = terse__config();
    double timeout = (mask & TERSE_COMM_PARAM_FIELD_TIMEOUT) ? params->timeout : cfg->timeout;
    if (timeout <= 0) {
        terse_log_error("invalid timeout %g", timeout);
        return TERSE_ERR_INVALID_ARG;
    }
    if (((mask & TERSE_COMM_PARAM_FIELD_COMPRESSED_ALGO) &&
         (unsigned)params->compressed_algo >= TERSE_COMPRESSED_ALGO_LAST) ||
        ((mask & TERSE_COMM_PARAM_FIELD_HIERARCHY) &&
         (unsigned)params->hierarchy >= TERSE_HIERARCHY_LAST)) {
        terse_log_error("invalid compressed algorithm or hierarchy in the params");
        return TERSE_ERR_INVALID_ARG;
    }
    if (mask & TERSE_COMM_PARAM_FIELD_OOB)
        st = terse__bootstrap_from_oob(&params->oob, &bs);
    else
        st = terse__bootstrap_from_env(timeout, &bs);
    if (st != TERSE_OK) {
        terse_log_error("bootstrap: %s", bs.err);
        return st;
    }
    if (bs.size > TERSE_MAX_RANKS) {
        terse_log_error("%d ranks exceed the maximum of %d", bs.size, TERSE_MAX_RANKS);
        st = TERSE_ERR_NOT_SUPPORTED;
        goto err_bootstrap;
    }
    terse_comm_h comm = comm_alloc(params, &bs, timeout);
    if (!comm) {
        st = TERSE_ERR_NO_MEMORY;
        goto err_bootstrap;
    }
    st = comm_connect(comm, &bs);
    if (st != TERSE_OK)
        goto err_comm;
    terse__bootstrap_close(&bs);
    terse__abort_init(comm);
    start_pool(comm);

    int want_thread = (mask & TERSE_COMM_PARAM_FIELD_PROGRESS_THREAD) ? params->progress_thread
                                                                       : cfg->progress_thread;
    if (want_thread) {
        if (pthread_create(&comm->progress_thread, NULL, progress_main, comm) == 0)
            comm->has_progress_thread = 1;
        else
            terse_log_warn("could not start the progress thread: %m; progress is caller-driven");
    }
    terse_log_info("rank %d of %d: local %d of %d, host %d of %d, progress %s", comm->rank,
                   comm->size, comm->local_rank, comm->local_size, comm->cross_rank,
                   comm->cross_size, comm->has_progress_thread ? "thread" : "caller");
    *comm_p = comm;
    return TERSE_OK;

err_comm:
    release_placement(comm);
    terse__hostgroup_release(&comm->hosts);
    pthread_mutex_destroy(&comm->lock);
    pthread_cond_destroy(&comm->cond);
    terse__free(comm);
err_bootstrap:
    terse__bootstrap_close(&bs);
    return st;
}

terse_status_t terse_comm_destroy(terse_comm_h comm)
{
    if (!comm)
        return TERSE_ERR_INVALID_ARG;
    if (comm->has_progress_thread) {
        pthread_mutex_lock(&comm->lock);
        comm->stopping = 1;
        pthread_cond_signal(&comm->cond);
        terse__tp_wake(&comm->tp); /* out of an idle sleep */
        pthread_mutex_unlock(&comm->lock);
        pthread_join(comm->progress_thread, NULL);
    }
    pthread_mutex_lock(&comm->lock);
    terse__abort_shutdown(comm);
    terse__scratch_pool_fini(comm);
    terse__p2p_fini(comm);
    terse__tp_fini(&comm->tp);
    terse__abort_fini(comm);
    pthread_mutex_unlock(&comm->lock);
    pthread_mutex_destroy(&comm->lock);
    pthread_cond_destroy(&comm->cond);
    terse__pool_stop(); /* before the placement: the workers bound from it */
    release_placement(comm);
    terse__hostgroup_release(&comm->hosts);
    terse__free(comm);
    return TERSE_OK;
}

int terse_comm_rank(terse_comm_h comm) { return comm ? comm->rank : -1; }
int terse_comm_size(terse_comm_h comm) { return comm ? comm->size : -1; }
int terse_comm_local_rank(terse_comm_h comm) { return comm ? comm->local_rank : -1; }
int terse_comm_local_size(terse_comm_h comm) { return comm ? comm->local_size : -1; }
int terse_comm_cross_rank(terse_comm_h comm) { return comm ? comm->cross_rank : -1; }
int terse_comm_cross_size(terse_comm_h comm) { return comm ? comm->cross_size : -1; }

const char *terse_comm_last_error(terse_comm_h comm)
{
    return comm ? comm->last_error : "no communicator";
}

terse_status_t terse_comm_progress(terse_comm_h comm)
{
    if (!comm)
        return TERSE_ERR_INVALID_ARG;
    pthread_mutex_lock(&comm->lock);
    terse__comm_progress_locked(comm);
    pthread_mutex_unlock(&comm->lock);
    return TERSE_OK;
}

terse_status_t terse_test(terse_request_h req)
{
    if (!req)
        return TERSE_ERR_INVALID_ARG;
    terse_comm_h comm = req->comm;
    pthread_mutex_lock(&comm->lock);
    if (!req->done)
        terse__comm_progress_locked(comm);
    terse_status_t st = req->status;
    pthread_mutex_unlock(&comm->lock);
    return st;
}

terse_status_t terse_wait_for(terse_request_h req, double timeout_s)
{
    if (!req)
        return TERSE_ERR_INVALID_ARG;
    terse_comm_h comm = req->comm;
    double idle = 0, end = terse__now() + (timeout_s > 0 ? timeout_s : 0);
    pthread_mutex_lock(&comm->lock);
    for (;;) {
        unsigned n = req->done ? 0 : terse__comm_progress_locked(comm);
        terse_status_t st = req->status;
        double left = timeout_s >= 0 ? end - terse__now() : 1.0;
        if (st != TERSE_INPROGRESS || left <= 0) {
            pthread_mutex_unlock(&comm->lock);
            return st;
        }
        idle_turn(comm, n, &idle, (int)(left * 1e3));
    }
}

terse_status_t terse_wait(terse_request_h req)
{
    return terse_wait_for(req, -1.0);
}

void terse_request_free(terse_request_h req)
{
    if (!req)
        return;
    terse_comm_h comm = req->comm;
    pthread_mutex_lock(&comm->lock);
    if (!req->done) {
        terse__req_fail(req, TERSE_ERR_BUSY, "request freed while in flight");
        terse__req_advance(req);
    }
    if (terse__req_has_pending(req))
        terse__abort_defer_free(req); /* UCX still writes into it */
    else
        terse__req_destroy(req);
    pthread_mutex_unlock(&comm->lock);
}

const char *terse_request_algorithm(terse_request_h req)
{
    return req ? req->algo->name : "none";
}

terse_status_t terse__wait_free(terse_request_h req, terse_status_t post_status)
{
    if (post_status != TERSE_OK) {
        if (req)
            terse_request_free(req);
        return post_status;
    }
    terse_status_t st = terse_wait(req);
    terse_request_free(req);
    return st;
}
