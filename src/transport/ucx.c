#include "ucx_priv.h"

#include "bootstrap/bootstrap.h"
#include "core/alloc.h"
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

terse_status_t terse__status_from_ucs(ucs_status_t status)
{
    switch (status) {
    case UCS_OK:
        return TERSE_OK;
    case UCS_INPROGRESS:
        return TERSE_INPROGRESS;
    case UCS_ERR_NO_MEMORY:
    case UCS_ERR_EXCEEDS_LIMIT:
    case UCS_ERR_NO_RESOURCE:
        return TERSE_ERR_NO_MEMORY;
    case UCS_ERR_INVALID_PARAM:
    case UCS_ERR_INVALID_ADDR:
        return TERSE_ERR_INVALID_ARG;
    case UCS_ERR_TIMED_OUT:
    case UCS_ERR_ENDPOINT_TIMEOUT:
        return TERSE_ERR_TIMEOUT;
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_REJECTED:
    case UCS_ERR_NOT_CONNECTED:
        return TERSE_ERR_PEER_FAILED;
    case UCS_ERR_MESSAGE_TRUNCATED:
        /* Receivers size buffers from the call's arguments: a longer message means the
         * sender was called with different arguments. */
        return TERSE_ERR_MISMATCH;
    case UCS_ERR_UNSUPPORTED:
    case UCS_ERR_NO_DEVICE:
    case UCS_ERR_NO_ELEM:
        return TERSE_ERR_NOT_SUPPORTED;
    case UCS_ERR_IO_ERROR:
        return TERSE_ERR_IO;
    case UCS_ERR_BUSY:
        return TERSE_ERR_BUSY;
    default:
        return TERSE_ERR_TRANSPORT;
    }
}

_Static_assert(UCS_OK == TERSE_TP_STATUS_OK, "the transport's OK is UCX's");
_Static_assert(sizeof(terse__tp_iov_t) == sizeof(ucp_dt_iov_t) &&
                   offsetof(terse__tp_iov_t, buffer) == offsetof(ucp_dt_iov_t, buffer) &&
                   offsetof(terse__tp_iov_t, length) == offsetof(ucp_dt_iov_t, length),
               "an iov part is laid out as UCX's");
_Static_assert(sizeof(terse__tp_tag_t) == sizeof(ucp_tag_t), "tags are UCX's 64 bits");

terse_status_t terse__tp_status_terse(terse__tp_status_t status)
{
    return terse__status_from_ucs((ucs_status_t)status);
}

const char *terse__tp_status_string(terse__tp_status_t status)
{
    return ucs_status_string((ucs_status_t)status);
}

void terse__tp_version(char *buf, size_t len)
{
    unsigned major = 0, minor = 0, release = 0;
    ucp_get_version(&major, &minor, &release);
    snprintf(buf, len, "%u.%u.%u", major, minor, release);
}

void terse__tp_print_info(const terse__tp_t *tp, FILE *f)
{
    ucp_context_print_info(terse__tp_ucp_context(tp), f);
}

/* The endpoint's lanes ("tcp/lo.0 cma/memory"), so a failure report says which transport
 * broke: UCX reports a closed TCP connection and a vanished shared-memory peer alike. */
static void describe_lanes(ucp_ep_h ep, char *buf, size_t len)
{
    buf[0] = '\0';
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return;
    ucp_ep_print_info(ep, f);
    fclose(f);
    size_t used = 0;
    for (const char *l = text ? strstr(text, "lane[") : NULL; l; l = strstr(l + 1, "lane[")) {
        const char *tl = strchr(l, ':');
        tl = tl ? strchr(tl + 1, ':') : NULL; /* "lane[0]:  2:tcp/lo.0 md[1] ..." */
        if (!tl)
            break;
        int n = (int)strcspn(tl + 1, " \n");
        int w = snprintf(buf + used, len - used, "%s%.*s", used ? " " : "", n, tl + 1);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
    free(text);
}

static void ep_error_cb(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    terse__tp_peer_cb_t *cb = arg;
    if (!cb->tp->peer_failed[cb->peer]) {
        char lanes[160];
        describe_lanes(ep, lanes, sizeof(lanes));
        terse_log_warn("rank %d of %d: peer %d failed: %s (lanes: %s)", cb->tp->rank,
                       cb->tp->size, cb->peer, ucs_status_string(status),
                       lanes[0] ? lanes : "unknown");
    }
    cb->tp->peer_failed[cb->peer] = 1;
    cb->tp->any_peer_failed = 1;
}

static void fill_names(terse__tp_t *tp)
{
    snprintf(tp->tls, sizeof(tp->tls), "%s", "auto");
}

/* The context, restricted to @net_devices when given and the user left UCX_NET_DEVICES alone. */
static ucs_status_t create_context(terse__tp_t *tp, const char *net_devices, char *err,
                                   size_t errlen)
{
    ucp_params_t params = {
        .field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED,
        .features = UCP_FEATURE_TAG | UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP,
        .mt_workers_shared = 0,
    };
    int user = terse__tp_user_net_devices();
    int restrict_to = net_devices && net_devices[0] && !user;
    for (;;) {
        ucp_config_t *config = NULL;
        ucs_status_t us = ucp_config_read(NULL, NULL, &config);
        if (us != UCS_OK) {
            snprintf(err, errlen, "ucp_config_read: %s", ucs_status_string(us));
            return us;
        }
        if (restrict_to) {
            /* NET_DEVICES only filters network devices: shm, cma and self stay usable, so
             * ranks of this host keep talking over shared memory. */
            us = ucp_config_modify(config, "NET_DEVICES", net_devices);
            if (us != UCS_OK) {
                terse_log_warn("cannot restrict UCX to network devices '%s': %s; UCX chooses",
                               net_devices, ucs_status_string(us));
                restrict_to = 0;
            }
        }
        ucp_context_h context = NULL;
        us = ucp_init(&params, config, &context);
        tp->context = (terse__tp_context_h)context;
        ucp_config_release(config);
        if (us == UCS_OK) {
            if (restrict_to)
                snprintf(tp->devices, sizeof(tp->devices), "%s (this rank's rail)", net_devices);
            else if (user)
                snprintf(tp->devices, sizeof(tp->devices), "%s (UCX_NET_DEVICES)",
                         getenv("UCX_NET_DEVICES"));
            else
                snprintf(tp->devices, sizeof(tp->devices), "all (UCX's choice)");
            terse_log_debug("rank %d: UCX network devices %s", tp->rank, tp->devices);
            return UCS_OK;
        }
        if (!restrict_to && (params.features & UCP_FEATURE_WAKEUP)) {
            terse_log_debug("rank %d: ucp_init with wakeup: %s; idle waits keep polling",
                            tp->rank, ucs_status_string(us));
            params.features &= ~(uint64_t)UCP_FEATURE_WAKEUP;
            continue;
        }
        if (!restrict_to) {
            snprintf(err, errlen, "ucp_init: %s", ucs_status_string(us));
            return us;
        }
        terse_log_warn("rank %d: UCX refused network devices '%s' (%s); using all devices",
                       tp->rank, net_devices, ucs_status_string(us));
        restrict_to = 0;
    }
}

void terse__tp_check_local_peers(terse__tp_t *tp)
{
    for (int i = 0; i < tp->size; i++) {
        if (!tp->local_pid[i] || tp->peer_failed[i] || i == tp->rank)
            continue;
        if (kill(tp->local_pid[i], 0) != 0 && errno == ESRCH) {
            terse_log_warn("peer %d (pid %d on this host) is gone", i, tp->local_pid[i]);
            tp->peer_failed[i] = 1;
            tp->any_peer_failed = 1;
        }
    }
}

/* Every rank's worker address into *all_p (tp->size slots of *max_p bytes). Addresses differ
 * in length: the lengths travel first, then each address padded to the longest. */
static terse_status_t exchange_addresses(terse__tp_t *tp, struct terse__bootstrap *bs,
                                         const void *addr, size_t addr_len, char **all_p,
                                         size_t *max_p, char *err, size_t errlen)
{
    uint64_t *lens = terse__calloc(tp->size, sizeof(*lens), "worker address lengths");
    if (!lens)
        return TERSE_ERR_NO_MEMORY;
    uint64_t my_len = addr_len;
    terse_status_t st = terse__bootstrap_allgather(bs, &my_len, lens, sizeof(my_len));
    if (st != TERSE_OK) {
        snprintf(err, errlen, "exchanging worker address lengths: %s", bs->err);
        terse__free(lens);
        return st;
    }
    size_t max_len = 0;
    for (int i = 0; i < tp->size; i++)
        max_len = lens[i] > max_len ? lens[i] : max_len;
    terse__free(lens);
    char *mine = terse__calloc(1, max_len, "worker address");
    char *all = terse__calloc(tp->size, max_len, "worker addresses");
    if (!mine || !all) {
        terse__free(mine);
        terse__free(all);
        return TERSE_ERR_NO_MEMORY;
    }
    memcpy(mine, addr, addr_len);
    st = terse__bootstrap_allgather(bs, mine, all, max_len);
    terse__free(mine);
    if (st != TERSE_OK) {
        snprintf(err, errlen, "exchanging worker addresses: %s", bs->err);
        terse__free(all);
        return st;
    }
    *all_p = all;
    *max_p = max_len;
    return TERSE_OK;
}

static void free_peers(terse__tp_t *tp)
{
    for (int i = 0; tp->eps && i < tp->size; i++) {
        if (tp->eps[i])
            ucp_ep_destroy(terse__tp_ucp_ep(tp, i));
    }
    terse__free(tp->eps);
    terse__free(tp->peer_cb);
    terse__free((void *)tp->peer_failed);
    terse__free(tp->local_pid);
    tp->eps = NULL;
}

/* An endpoint to every rank, and the pids of same-host peers (so their death is noticed
 * without UCX's help). On failure nothing of it is left. */
static terse_status_t connect_peers(terse__tp_t *tp, struct terse__bootstrap *bs,
                                    const int *same_host, const char *all, size_t max_len,
                                    char *err, size_t errlen)
{
    terse_status_t st = TERSE_ERR_NO_MEMORY;
    tp->eps = terse__calloc(tp->size, sizeof(*tp->eps), "endpoints");
    tp->peer_cb = terse__calloc(tp->size, sizeof(*tp->peer_cb), "endpoint callbacks");
    tp->peer_failed = terse__calloc(tp->size, sizeof(*tp->peer_failed), "peer states");
    tp->local_pid = terse__calloc(tp->size, sizeof(int), "peer pids");
    if (!tp->eps || !tp->peer_cb || !tp->peer_failed || !tp->local_pid)
        goto fail;
    for (int i = 0; i < tp->size; i++) {
        tp->peer_cb[i].tp = tp;
        tp->peer_cb[i].peer = i;
        /* Peer error handling so a dead peer becomes an error, not an abort of this process. */
        ucp_ep_params_t ep_params = {
            .field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                          UCP_EP_PARAM_FIELD_ERR_HANDLER,
            .address = (const ucp_address_t *)(all + (size_t)i * max_len),
            .err_mode = same_host[i] ? UCP_ERR_HANDLING_MODE_NONE : UCP_ERR_HANDLING_MODE_PEER,
            .err_handler = {.cb = ep_error_cb, .arg = &tp->peer_cb[i]},
        };
        ucp_ep_h ep = NULL;
        ucs_status_t us = ucp_ep_create(terse__tp_ucp_worker(tp), &ep_params, &ep);
        tp->eps[i] = (terse__tp_ep_h)ep;
        if (us != UCS_OK) {
            snprintf(err, errlen, "ucp_ep_create to rank %d: %s", i, ucs_status_string(us));
            st = terse__status_from_ucs(us);
            goto fail;
        }
    }
    int mypid = (int)getpid();
    st = terse__bootstrap_allgather(bs, &mypid, tp->local_pid, sizeof(int));
    if (st != TERSE_OK) {
        snprintf(err, errlen, "exchanging pids: %s", bs->err);
        goto fail;
    }
    for (int i = 0; i < tp->size; i++) {
        if (!same_host[i])
            tp->local_pid[i] = 0;
    }
    return TERSE_OK;
fail:
    free_peers(tp);
    return st;
}

/* Every communicator has its own UCX context and worker: sockets to its peers, listening
 * sockets, shared-memory segments and event fds. Out of descriptors, UCX fails
 * ucp_worker_create with a fatal error (the process aborts) or reports live peers as
 * "Endpoint timeout". The soft open-file limit, often 1024 or lower in containers and CI,
 * goes up to the hard limit once per process, as the hard limit allows without privilege. */
static pthread_once_t fd_limit_once = PTHREAD_ONCE_INIT;

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        terse_log_debug("open-file limit raised from %llu to %llu", (unsigned long long)old,
                        (unsigned long long)rl.rlim_cur);
    else
        terse_log_debug("open-file limit left at %llu: %s", (unsigned long long)old,
                        strerror(errno));
}

terse_status_t terse__tp_init(terse__tp_t *tp, struct terse__bootstrap *bs, const int *same_host,
                              const char *net_devices, char *err, size_t errlen)
{
    ucp_address_t *addr = NULL;
    size_t addr_len = 0, max_len = 0;
    char *all = NULL;
    ucs_status_t us;
    terse_status_t st = TERSE_ERR_TRANSPORT;

    memset(tp, 0, sizeof(*tp));
    tp->rank = bs->rank;
    tp->size = bs->size;

    pthread_once(&fd_limit_once, raise_fd_limit);
    us = create_context(tp, net_devices, err, errlen);
    if (us != UCS_OK)
        goto out;
    /* The communicator serialises every UCX call under its own lock (caller threads and
     * the progress thread), so the worker needs no locking of its own. */
    ucp_worker_params_t wparams = {.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
                                   .thread_mode = UCS_THREAD_MODE_SERIALIZED};
    ucp_worker_h worker = NULL;
    us = ucp_worker_create(terse__tp_ucp_context(tp), &wparams, &worker);
    tp->worker = (terse__tp_worker_h)worker;
    if (us != UCS_OK) {
        snprintf(err, errlen, "ucp_worker_create: %s", ucs_status_string(us));
        goto err_context;
    }
    tp->event_fd = -1;
    int efd = -1;
    if (ucp_worker_get_efd(worker, &efd) == UCS_OK)
        tp->event_fd = efd;
    else
        terse_log_debug("rank %d: no UCX event fd: idle waits keep polling", tp->rank);
    us = ucp_worker_get_address(terse__tp_ucp_worker(tp), &addr, &addr_len);
    if (us != UCS_OK) {
        snprintf(err, errlen, "ucp_worker_get_address: %s", ucs_status_string(us));
        goto err_worker;
    }
    st = exchange_addresses(tp, bs, addr, addr_len, &all, &max_len, err, errlen);
    if (st == TERSE_OK)
        st = connect_peers(tp, bs, same_host, all, max_len, err, errlen);
    terse__free(all);
    ucp_worker_release_address(terse__tp_ucp_worker(tp), addr);
    if (st == TERSE_OK) {
        fill_names(tp);
        return TERSE_OK;
    }
err_worker:
    ucp_worker_destroy(terse__tp_ucp_worker(tp));
err_context:
    ucp_cleanup(terse__tp_ucp_context(tp));
out:
    if (st == TERSE_OK)
        st = TERSE_ERR_TRANSPORT;
    return st;
}

void terse__tp_fini(terse__tp_t *tp)
{
    if (!tp->worker)
        return;
    void **closing = terse__calloc(tp->size, sizeof(void *), "endpoint close requests");
    for (int i = 0; i < tp->size && closing; i++) {
        if (!tp->eps[i])
            continue;
        /* Flush to live peers so our last messages arrive; force-close to dead ones. */
        ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
                                   .flags = tp->peer_failed[i] ? UCP_EP_CLOSE_FLAG_FORCE : 0};
        closing[i] = ucp_ep_close_nbx(terse__tp_ucp_ep(tp, i), &prm);
    }
    for (int i = 0; i < tp->size && closing; i++) {
        if (!UCS_PTR_IS_PTR(closing[i]))
            continue;
        /* A close can only hang on a peer that stopped progressing; bound the wait. */
        for (long spin = 0; ucp_request_check_status(closing[i]) == UCS_INPROGRESS; spin++) {
            ucp_worker_progress(terse__tp_ucp_worker(tp));
            if (spin > 20000000L) {
                ucp_request_cancel(terse__tp_ucp_worker(tp), closing[i]);
                break;
            }
        }
        ucp_request_free(closing[i]);
    }
    terse__free(closing);
    ucp_worker_destroy(terse__tp_ucp_worker(tp));
    ucp_cleanup(terse__tp_ucp_context(tp));
    terse__free(tp->eps);
    terse__free(tp->peer_cb);
    terse__free((void *)tp->peer_failed);
    terse__free(tp->local_pid);
    memset(tp, 0, sizeof(*tp));
}

unsigned terse__tp_progress(terse__tp_t *tp)
{
    return ucp_worker_progress(terse__tp_ucp_worker(tp));
}

int terse__tp_arm(terse__tp_t *tp)
{
    return tp->event_fd >= 0 && ucp_worker_arm(terse__tp_ucp_worker(tp)) == UCS_OK;
}

void terse__tp_sleep(const terse__tp_t *tp, int ms)
{
    struct pollfd p = {.fd = tp->event_fd, .events = POLLIN};
    if (tp->event_fd >= 0)
        (void)poll(&p, 1, ms);
}

void terse__tp_wake(terse__tp_t *tp)
{
    if (tp->event_fd >= 0)
        (void)ucp_worker_signal(terse__tp_ucp_worker(tp));
}

void terse__tp_send_cb(void *request, ucs_status_t status, void *user_data)
{
    terse__tp_op_t *op = user_data;
    op->status = status;
    op->ucx_req = NULL;
    op->state = TERSE_TP_OP_DONE;
    ucp_request_free(request);
}

static void recv_cb(void *request, ucs_status_t status, const ucp_tag_recv_info_t *info,
                    void *user_data)
{
    terse__tp_op_t *op = user_data;
    op->status = status;
    if (status == UCS_OK) {
        op->length = info->length;
        op->tag = info->sender_tag;
    }
    op->ucx_req = NULL;
    op->state = TERSE_TP_OP_DONE;
    ucp_request_free(request);
}

void terse__tp_track(terse__tp_op_t *op, ucs_status_ptr_t p)
{
    if (p == NULL) {
        op->status = UCS_OK;
        op->state = TERSE_TP_OP_DONE;
    } else if (UCS_PTR_IS_ERR(p)) {
        op->status = UCS_PTR_STATUS(p);
        op->state = TERSE_TP_OP_DONE;
    } else {
        op->ucx_req = p;
    }
}

static void post_send(terse__tp_t *tp, int peer, ucp_tag_t tag, const void *buf, size_t len,
                      int is_iov, terse__tp_op_t *op)
{
    op->peer = peer;
    op->is_recv = 0;
    op->ucx_req = NULL;
    op->state = TERSE_TP_OP_PENDING;
    if (tp->peer_failed[peer]) {
        op->status = UCS_ERR_CONNECTION_RESET;
        op->state = TERSE_TP_OP_DONE;
        return;
    }
    ucp_request_param_t prm = {
        .op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                        (is_iov ? UCP_OP_ATTR_FIELD_DATATYPE : 0),
        .cb = {.send = terse__tp_send_cb},
        .user_data = op,
        .datatype = is_iov ? ucp_dt_make_iov() : 0,
    };
    terse__tp_track(op, ucp_tag_send_nbx(terse__tp_ucp_ep(tp, peer), buf, len, tag, &prm));
}

void terse__tp_send(terse__tp_t *tp, int peer, ucp_tag_t tag, const void *buf, size_t len,
                    terse__tp_op_t *op)
{
    post_send(tp, peer, tag, buf, len, 0, op);
}

void terse__tp_send2(terse__tp_t *tp, int peer, ucp_tag_t tag, const void *a, size_t alen,
                     const void *b, size_t blen, terse__tp_op_t *op)
{
    op->iov[0].buffer = (void *)a;
    op->iov[0].length = alen;
    op->iov[1].buffer = (void *)b;
    op->iov[1].length = blen;
    post_send(tp, peer, tag, op->iov, blen ? 2 : 1, 1, op);
}

static void post_recv(terse__tp_t *tp, int peer, ucp_tag_t tag, ucp_tag_t mask, void *buf,
                      size_t len, int is_iov, terse__tp_op_t *op)
{
    op->peer = peer;
    op->is_recv = 1;
    op->ucx_req = NULL;
    op->length = 0;
    op->state = TERSE_TP_OP_PENDING;
    ucp_request_param_t prm = {
        /* Always complete through the callback: it is the one place that records the
         * received length and tag. */
        .op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                        UCP_OP_ATTR_FLAG_NO_IMM_CMPL | (is_iov ? UCP_OP_ATTR_FIELD_DATATYPE : 0),
        .cb = {.recv = recv_cb},
        .user_data = op,
        .datatype = is_iov ? ucp_dt_make_iov() : 0,
    };
    terse__tp_track(op, ucp_tag_recv_nbx(terse__tp_ucp_worker(tp), buf, len, tag, mask, &prm));
}

void terse__tp_recv(terse__tp_t *tp, int peer, ucp_tag_t tag, ucp_tag_t mask, void *buf,
                    size_t len, terse__tp_op_t *op)
{
    post_recv(tp, peer, tag, mask, buf, len, 0, op);
}

void terse__tp_recv2(terse__tp_t *tp, int peer, ucp_tag_t tag, ucp_tag_t mask, void *a,
                     size_t alen, void *b, size_t blen, terse__tp_op_t *op)
{
    op->iov[0].buffer = a;
    op->iov[0].length = alen;
    op->iov[1].buffer = b;
    op->iov[1].length = blen;
    post_recv(tp, peer, tag, mask, op->iov, blen ? 2 : 1, 1, op);
}

void terse__tp_cancel(terse__tp_t *tp, terse__tp_op_t *op)
{
    if (op->state == TERSE_TP_OP_PENDING && op->ucx_req)
        ucp_request_cancel(terse__tp_ucp_worker(tp), op->ucx_req);
}
