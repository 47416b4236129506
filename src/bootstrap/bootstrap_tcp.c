#define _GNU_SOURCE
/* Environment rendezvous for launches without MPI (torchrun-style): rank 0 listens on
 * TERSE_ROOT_ADDR, every other rank connects and says who it is; allgathers go through
 * rank 0 (gather, then send the whole table back). Used a handful of times at setup. */
#include "bootstrap.h"

#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BOOT_MAGIC 0x7465727365626f6fULL /* "tersebootstrap" */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Full read/write with a deadline so a missing peer becomes an error, not a hang. */
static int io_full(int fd, void *buf, size_t len, int writing, double deadline)
{
    char *p = buf;
    while (len > 0) {
        struct pollfd pfd = {.fd = fd, .events = writing ? POLLOUT : POLLIN};
        int ms = (int)((deadline - now()) * 1000);
        if (ms <= 0)
            return -ETIMEDOUT;
        int r = poll(&pfd, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? -ETIMEDOUT : -errno;
        ssize_t n = writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return n == 0 ? -ECONNRESET : -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static terse_status_t tcp_allgather(terse__bootstrap_t *bs, const void *sbuf, void *rbuf,
                                    size_t len)
{
    double deadline = now() + bs->timeout;
    int r;
    if (bs->rank == 0) {
        memcpy(rbuf, sbuf, len);
        for (int i = 1; i < bs->size; i++) {
            r = io_full(bs->peer_fds[i], (char *)rbuf + (size_t)i * len, len, 0, deadline);
            if (r) {
                snprintf(bs->err, sizeof(bs->err), "receiving from rank %d: %s", i, strerror(-r));
                return r == -ETIMEDOUT ? TERSE_ERR_TIMEOUT : TERSE_ERR_BOOTSTRAP;
            }
        }
        for (int i = 1; i < bs->size; i++) {
            r = io_full(bs->peer_fds[i], rbuf, len * (size_t)bs->size, 1, deadline);
            if (r) {
                snprintf(bs->err, sizeof(bs->err), "sending to rank %d: %s", i, strerror(-r));
                return TERSE_ERR_BOOTSTRAP;
            }
        }
        return TERSE_OK;
    }
    r = io_full(bs->root_fd, (void *)sbuf, len, 1, deadline);
    if (!r)
        r = io_full(bs->root_fd, rbuf, len * (size_t)bs->size, 0, deadline);
    if (r) {
        snprintf(bs->err, sizeof(bs->err), "exchanging with rank 0: %s", strerror(-r));
        return r == -ETIMEDOUT ? TERSE_ERR_TIMEOUT : TERSE_ERR_BOOTSTRAP;
    }
    return TERSE_OK;
}

static void tcp_close(terse__bootstrap_t *bs)
{
    if (bs->root_fd >= 0)
        close(bs->root_fd);
    for (int i = 0; bs->peer_fds && i < bs->size; i++) {
        if (bs->peer_fds[i] >= 0)
            close(bs->peer_fds[i]);
    }
    terse__free(bs->peer_fds);
    bs->peer_fds = NULL;
    bs->root_fd = -1;
}

static const terse__bootstrap_ops_t tcp_ops = {
    .allgather = tcp_allgather,
    .close = tcp_close,
};

static int parse_int(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > (1 << 20))
        return -1;
    *out = (int)v;
    return 0;
}

static terse_status_t resolve(const char *addr, struct addrinfo **res, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host) || !colon[1]) {
        snprintf(err, errlen, "TERSE_ROOT_ADDR '%s' is not host:port", addr);
        return TERSE_ERR_INVALID_ARG;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    int r = getaddrinfo(host, colon + 1, &hints, res);
    if (r) {
        snprintf(err, errlen, "TERSE_ROOT_ADDR '%s': %s", addr, gai_strerror(r));
        return TERSE_ERR_INVALID_ARG;
    }
    return TERSE_OK;
}

static terse_status_t root_accept(terse__bootstrap_t *bs, struct addrinfo *ai)
{
    int one = 1;
    int lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        snprintf(bs->err, sizeof(bs->err), "socket: %s", strerror(errno));
        return TERSE_ERR_BOOTSTRAP;
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, ai->ai_addr, ai->ai_addrlen) || listen(lfd, bs->size)) {
        snprintf(bs->err, sizeof(bs->err), "listening on TERSE_ROOT_ADDR: %s", strerror(errno));
        close(lfd);
        return TERSE_ERR_BOOTSTRAP;
    }
    double deadline = now() + bs->timeout;
    for (int got = 1; got < bs->size;) {
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        int ms = (int)((deadline - now()) * 1000);
        if (ms <= 0 || poll(&pfd, 1, ms) <= 0) {
            snprintf(bs->err, sizeof(bs->err), "only %d of %d ranks connected to rank 0 within %.0f s",
                     got, bs->size, bs->timeout);
            close(lfd);
            return TERSE_ERR_TIMEOUT;
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        uint64_t hello[2];
        if (io_full(fd, hello, sizeof(hello), 0, deadline) || hello[0] != BOOT_MAGIC ||
            hello[1] == 0 || hello[1] >= (uint64_t)bs->size || bs->peer_fds[hello[1]] >= 0) {
            terse_log_warn("rejected a bootstrap connection (bad hello or duplicate rank)");
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        bs->peer_fds[hello[1]] = fd;
        got++;
    }
    close(lfd);
    return TERSE_OK;
}

static terse_status_t connect_root(terse__bootstrap_t *bs, struct addrinfo *ai)
{
    double deadline = now() + bs->timeout;
    int one = 1;
    /* Rank 0 may not listen yet: retry until the deadline. */
    for (;;) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(bs->err, sizeof(bs->err), "socket: %s", strerror(errno));
            return TERSE_ERR_BOOTSTRAP;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            uint64_t hello[2] = {BOOT_MAGIC, (uint64_t)bs->rank};
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            if (io_full(fd, hello, sizeof(hello), 1, deadline)) {
                close(fd);
                snprintf(bs->err, sizeof(bs->err), "sending hello to rank 0 failed");
                return TERSE_ERR_BOOTSTRAP;
            }
            bs->root_fd = fd;
            return TERSE_OK;
        }
        close(fd);
        if (now() > deadline) {
            snprintf(bs->err, sizeof(bs->err), "could not connect to rank 0 within %.0f s: %s",
                     bs->timeout, strerror(errno));
            return TERSE_ERR_TIMEOUT;
        }
        usleep(20000);
    }
}

terse_status_t terse__bootstrap_from_env(double timeout, terse__bootstrap_t *bs)
{
    const terse__config_t *cfg = terse__config();
    struct addrinfo *ai = NULL;
    terse_status_t st;

    memset(bs, 0, sizeof(*bs));
    bs->root_fd = -1;
    bs->timeout = timeout;
    if (!cfg->rank_env[0] || !cfg->size_env[0] || !cfg->root_addr[0]) {
        snprintf(bs->err, sizeof(bs->err),
                 "no bootstrap given: pass an out-of-band allgather, use terse_comm_create_mpi, "
                 "or set TERSE_RANK, TERSE_SIZE and TERSE_ROOT_ADDR");
        return TERSE_ERR_INVALID_ARG;
    }
    if (parse_int(cfg->rank_env, &bs->rank) || parse_int(cfg->size_env, &bs->size) ||
        bs->size < 1 || bs->rank >= bs->size) {
        snprintf(bs->err, sizeof(bs->err), "invalid TERSE_RANK '%s' / TERSE_SIZE '%s'",
                 cfg->rank_env, cfg->size_env);
        return TERSE_ERR_INVALID_ARG;
    }
    bs->ops = &tcp_ops;
    if (bs->size == 1)
        return TERSE_OK;
    st = resolve(cfg->root_addr, &ai, bs->err, sizeof(bs->err));
    if (st != TERSE_OK)
        return st;
    if (bs->rank == 0) {
        bs->peer_fds = terse__malloc(sizeof(int) * (size_t)bs->size, "bootstrap sockets");
        if (!bs->peer_fds) {
            freeaddrinfo(ai);
            return TERSE_ERR_NO_MEMORY;
        }
        for (int i = 0; i < bs->size; i++)
            bs->peer_fds[i] = -1;
        st = root_accept(bs, ai);
    } else {
        st = connect_root(bs, ai);
    }
    freeaddrinfo(ai);
    if (st != TERSE_OK)
        tcp_close(bs);
    return st;
}
