/* The failure protocol, owned here and nowhere else: which requests of a communicator are in
 * flight, how they end when something goes wrong, and what outlives them.
 *
 * - A rank that fails a call (mismatch, corrupt message, invalid argument, timeout) tells
 *   every peer with an abort message (tag class ABORT, carrying the reason); a peer that
 *   receives one fails its request of that sequence number with the origin's reason, so all
 *   ranks return an error instead of waiting.
 * - A dead peer (UCX endpoint error, or a same-host pid gone) fails every request in flight
 *   and marks the communicator broken: later calls fail at once.
 * - A request that waits longer than the communicator's timeout fails with TERSE_ERR_TIMEOUT
 *   naming the peer it waits for.
 * - A request freed by the user while UCX still writes into it waits among the zombies until
 *   its transfers ended. */
#ifndef TERSE_COLL_ABORT_H
#define TERSE_COLL_ABORT_H

#include "transport/ucx.h"

#include <stdint.h>

struct terse_comm;
struct terse_request;
struct terse__xfer;

typedef struct terse__abort_rec {
    uint32_t seq;
    int32_t status;
    int32_t origin;
    char msg[200];
} terse__abort_rec_t;

typedef struct terse__abort_send {
    terse__tp_op_t op;
    terse__abort_rec_t rec;
    struct terse__abort_send *next;
} terse__abort_send_t;

#define TERSE_ABORT_TABLE 64

/* One per communicator (comm->abort); only abort.c reads or writes it. */
typedef struct terse__abort {
    int broken; /* a peer died: every later call fails fast */
    struct terse_request *active; /* doubly linked */
    int nactive;
    struct terse_request *zombies; /* freed by the user while transfers were in flight */
    terse__abort_send_t *sends;    /* abort messages on their way */
    terse__abort_rec_t table[TERSE_ABORT_TABLE]; /* announced by peers, by sequence number */
    int ntable;
    terse__tp_op_t recv;
    terse__abort_rec_t recv_buf;
} terse__abort_t;

/* Posts the receive of peers' abort messages (the transport is up and every endpoint exists). */
void terse__abort_init(struct terse_comm *comm);
/* Takes in peers' aborts, advances every request in flight once, and frees abort messages
 * that left and zombies whose transfers ended. Caller holds comm->lock. */
void terse__abort_progress(struct terse_comm *comm);
/* Nothing in flight, no zombie, no abort message leaving: a progress thread may sleep. */
int terse__abort_idle(const struct terse_comm *comm);
/* Teardown before the transport closes: lets abort messages leave (a second at most), fails
 * the requests still in flight, cancels the abort receive. */
void terse__abort_shutdown(struct terse_comm *comm);
/* Teardown after the transport closed: frees what is left. */
void terse__abort_fini(struct terse_comm *comm);

/* Links a starting request into the active list; fails it at once when the communicator is
 * broken (returns 0 then, 1 when it may run). */
int terse__abort_track(struct terse_request *req);
/* Unlinks a finished request from the active list. */
void terse__abort_untrack(struct terse_request *req);
/* The user freed @req while UCX still writes into it: destroy it once its transfers end. */
void terse__abort_defer_free(struct terse_request *req);
/* A waiting request's checks: a peer's abort of this call, dead peers, the timeout. Fails the
 * request (and returns its status) or returns TERSE_INPROGRESS. */
terse_status_t terse__abort_check(struct terse_request *req);
/* Transfer @x of @req ended with transport status @tst (not TERSE_TP_STATUS_OK): fails the
 * request, as a peer failure (the communicator breaks) or a transfer error. */
void terse__abort_xfer_failed(struct terse_request *req, const struct terse__xfer *x,
                              terse__tp_status_t tst);
/* A failed rank usually returns to its caller at once: make sure its abort messages left. */
void terse__abort_flush(struct terse_comm *comm);

#endif
