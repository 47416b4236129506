/* UCX (ucp) transport: one context and worker per communicator, an endpoint per peer,
 * nonblocking tag send/recv tracked by terse__tp_op_t, and RMA slabs (rma.c).
 *
 * This header is all the layers above see of the transport, and it names nothing of UCX:
 * UCX's objects are opaque handles, an operation's outcome is the transport's own status
 * (TERSE_TP_STATUS_OK, terse__tp_status_string, terse__tp_status_terse), tags are plain
 * 64-bit values whose layout is the caller's (coll/wire.h). The files of src/transport
 * convert with ucx_priv.h. */
#ifndef TERSE_TRANSPORT_UCX_H
#define TERSE_TRANSPORT_UCX_H

#include <terse/status.h>

#include "core/alloc.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct terse__bootstrap;

/* UCX's objects, opaque here (ucx_priv.h turns them back into ucp handles). */
typedef struct terse__tp_context *terse__tp_context_h;
typedef struct terse__tp_worker *terse__tp_worker_h;
typedef struct terse__tp_ep *terse__tp_ep_h;
typedef struct terse__tp_memh *terse__tp_memh_h;
typedef struct terse__tp_rkey *terse__tp_rkey_h;

/* A message's matching tag and a receive's mask of the bits that must match (1 = must). */
typedef uint64_t terse__tp_tag_t;

/* How an operation ended, in the transport's own codes: TERSE_TP_STATUS_OK or an error that
 * terse__tp_status_string names and terse__tp_status_terse maps. */
typedef int terse__tp_status_t;
#define TERSE_TP_STATUS_OK 0

/* One part of a 2-part message (same layout as the transport's own, checked in ucx.c). */
typedef struct terse__tp_iov {
    void *buffer;
    size_t length;
} terse__tp_iov_t;

typedef enum terse__tp_op_state {
    TERSE_TP_OP_IDLE = 0,
    TERSE_TP_OP_PENDING = 1,
    TERSE_TP_OP_DONE = 2
} terse__tp_op_state_t;

/* One send or receive in flight. Lives inside a collective request; must not move or be
 * freed while PENDING (UCX's callback writes into it). */
typedef struct terse__tp_op {
    void *ucx_req;
    volatile int state;
    terse__tp_status_t status; /* once DONE */
    int peer;
    int is_recv;
    size_t length;    /* receives: bytes received */
    terse__tp_tag_t tag; /* receives: the sender's tag */
    terse__tp_iov_t iov[2];
} terse__tp_op_t;

typedef struct terse__tp_peer_cb {
    struct terse__tp *tp;
    int peer;
} terse__tp_peer_cb_t;

typedef struct terse__tp {
    terse__tp_context_h context;
    terse__tp_worker_h worker;
    terse__tp_ep_h *eps;
    terse__tp_peer_cb_t *peer_cb;
    volatile int *peer_failed;  /* set by UCX's endpoint error callback */
    volatile int any_peer_failed;
    int *local_pid; /* pid of same-host peers, 0 for remote ones */
    int rank;
    int size;
    int event_fd;    /* readable when the worker has an event (UCX wakeup), -1: none */
    char tls[256];   /* transports in use, for terse_info and logs */
    char devices[256]; /* network devices UCX may use and who chose them, for logs */
    /* Where RMA slabs come from (NUMA-local, see src/topo); NULL: plain scratch. Set after
     * terse__tp_init; must outlive the slabs' creation. */
    const terse__allocator_t *slab_allocator;
} terse__tp_t;

/* The single place the transport's status codes become terse ones. */
terse_status_t terse__tp_status_terse(terse__tp_status_t status);
/* What went wrong, in the transport's words ("Connection reset by remote peer"). */
const char *terse__tp_status_string(terse__tp_status_t status);
/* The transport's version ("UCX 1.13.1"), for terse_info. */
void terse__tp_version(char *buf, size_t len);

/* Create context, worker and endpoints to every rank (addresses exchanged over @bs).
 * @net_devices: a UCX_NET_DEVICES value the context is restricted to ("mlx5_1:1,ib1": this
 * rank's rail, from the topology plan), or NULL/"" for UCX's own choice. Applied only when the
 * user did not set UCX_NET_DEVICES; shared memory and self transports are not network devices
 * and stay available. If UCX rejects it the context is created without it (warning).
 * @same_host[i] != 0 marks ranks on this host: UCX 1.13 offers its shared-memory and CMA
 * transports only to endpoints without peer error handling, so those endpoints go without
 * it (a dead local peer is found by its pid instead, see terse__tp_check_local_peers);
 * remote endpoints keep UCX's peer error handling. */
terse_status_t terse__tp_init(terse__tp_t *tp, struct terse__bootstrap *bs, const int *same_host,
                              const char *net_devices, char *err, size_t errlen);

/* Marks same-host peers whose process is gone as failed (kill(pid, 0)). */
void terse__tp_check_local_peers(terse__tp_t *tp);
/* Close endpoints (flushing when peers are alive) and destroy worker and context. */
void terse__tp_fini(terse__tp_t *tp);

/* Progress the worker; returns nonzero if something happened. */
unsigned terse__tp_progress(terse__tp_t *tp);

/* Sleeping until the network has something (spin-then-block waits). Under the caller's lock
 * (as every other call here): terse__tp_arm returns 1 when nothing is pending and the event
 * fd will wake a sleeper, 0 when the caller should progress again (or has no wakeup).
 * terse__tp_sleep needs no lock: it waits on the fd for at most @ms milliseconds.
 * terse__tp_wake (under the lock) wakes the sleepers, e.g. after another thread's progress
 * consumed the event they were waiting for. */
int terse__tp_arm(terse__tp_t *tp);
void terse__tp_sleep(const terse__tp_t *tp, int ms);
void terse__tp_wake(terse__tp_t *tp);

/* Nonblocking contiguous or 2-part (iov) tag send/recv. @op must be IDLE; on return it is
 * PENDING or DONE (immediate completion or immediate error, see op->status). */
void terse__tp_send(terse__tp_t *tp, int peer, terse__tp_tag_t tag, const void *buf, size_t len,
                    terse__tp_op_t *op);
void terse__tp_send2(terse__tp_t *tp, int peer, terse__tp_tag_t tag, const void *a, size_t alen,
                     const void *b, size_t blen, terse__tp_op_t *op);
void terse__tp_recv(terse__tp_t *tp, int peer, terse__tp_tag_t tag, terse__tp_tag_t mask,
                    void *buf, size_t len, terse__tp_op_t *op);
void terse__tp_recv2(terse__tp_t *tp, int peer, terse__tp_tag_t tag, terse__tp_tag_t mask,
                     void *a, size_t alen, void *b, size_t blen, terse__tp_op_t *op);

/* Ask UCX to cancel a pending receive; it turns DONE with an error status on progress. */
void terse__tp_cancel(terse__tp_t *tp, terse__tp_op_t *op);

/* ---- RMA (rma.c): receive slabs registered once, rkeys exchanged, put + notification. ---- */
typedef struct terse__tp_slab {
    void *base;
    size_t size;
    terse__tp_memh_h memh;
    uint64_t *remote_addr; /* per peer */
    terse__tp_rkey_h *rkeys; /* per peer */
} terse__tp_slab_t;

/* Collective over the communicator: register @size bytes here and learn every peer's slab.
 * @exchange is an allgather over the live transport (rank i's @len bytes at i * len). */
typedef terse_status_t (*terse__tp_allgather_func_t)(void *ctx, const void *sbuf, void *rbuf,
                                                      size_t len);
terse_status_t terse__tp_slab_create(terse__tp_t *tp, size_t size,
                                     terse__tp_allgather_func_t exchange, void *ctx,
                                     terse__tp_slab_t *slab);
void terse__tp_slab_destroy(terse__tp_t *tp, terse__tp_slab_t *slab);

/* Put @len bytes at @offset of @peer's slab and flush the endpoint: @op turns DONE when the
 * data is visible at the peer (remote completion), so a tag message sent afterwards can tell
 * the peer the data is there (UCX orders RMA against tag messages only through a flush). */
void terse__tp_put_flush(terse__tp_t *tp, terse__tp_slab_t *slab, int peer, size_t offset,
                         const void *buf, size_t len, terse__tp_op_t *op);

/* Names of the network devices UCX can use ("eth0", "mlx5_0:1"), loopback excluded, for
 * topology planning. Returns how many were written (at most @max). */
size_t terse__tp_net_devices(char (*names)[64], size_t max);

/* The devices to plan placement with: the user's UCX_NET_DEVICES list when set (its names
 * kept as written, or with a leading '^' UCX's devices minus those), otherwise
 * terse__tp_net_devices(). *@from_user is 1 when the names (or the exclusion) are the user's.
 * Returns how many were written (at most @max). */
size_t terse__tp_planning_devices(char (*names)[64], size_t max, int *from_user);

/* 1 when the user restricts UCX's network devices (UCX_NET_DEVICES set, not "all"). */
int terse__tp_user_net_devices(void);

/* UCX's description of the context's transports and devices, printed to @f (tests, logs). */
void terse__tp_print_info(const terse__tp_t *tp, FILE *f);

#endif
