/* The communicator and the request engine every collective algorithm runs on.
 *
 * A collective is a request whose algorithm advances in rounds: the algorithm's progress
 * function posts the transfers of a round (terse__req_send / terse__req_recv) and is called
 * again when all of them completed, resuming from its own counters. Every message carries a
 * header with the call's signature (collective, dtype, op, count, root, algorithm, sequence
 * number); a receiver that sees a different signature fails with TERSE_ERR_MISMATCH and
 * tells every rank (an abort message), so all ranks return the error instead of hanging.
 * Headers also carry a checksum of their payload (TERSE_CHECKSUM: by default for the
 * compressed allreduce and internal exchanges), which the receiver recomputes over the bytes
 * that arrived: a mismatch is TERSE_ERR_CORRUPT naming the sender. */
#ifndef TERSE_COLL_COMM_H
#define TERSE_COLL_COMM_H

#include <terse/coll.h>

#include "core/alloc.h"
#include "core/prof.h"
#include "topo/hostgroup.h"
#include "topo/topo.h"
#include "transport/ucx.h"

#include "abort.h"
#include "coll.h"
#include "fault.h"
#include "scratch.h"
#include "wire.h"
#include "xfer.h"

#include <pthread.h>
#include <stdint.h>

typedef struct terse__algo terse__algo_t;

struct terse_request {
    terse_comm_h comm;
    const terse__algo_t *algo;
    terse__msg_hdr_t sig;
    terse_status_t status;
    double start;
    int round;
    int phase;
    /* arguments */
    const void *sbuf;
    void *rbuf;
    size_t count;
    terse_dtype_t dtype;
    terse_op_t op;
    int root;
    size_t *counts, *displs, *rcounts, *rdispls; /* owned copies (v-collectives) */
    /* transfers of the current round: terse__xfer_at(&req->xfers, i) for i < nx */
    terse__xfer_list_t xfers;
    int nx;
    terse__buf_t *scratch; /* from the communicator's pool, while running */
    terse__buf_t *scratch2; /* a second one (terse__req_scratch2), same lifetime */
    void *algo_data;       /* algorithm-owned allocation, freed by algo->cleanup */
    /* small algorithm state, zeroed at creation: each algorithm keeps its own typed struct
     * here through one accessor with a _Static_assert that it fits (allreduce_rd.c) */
    uint64_t state[16];
    uint64_t bytes_sent;
    terse__prof_t prof; /* phase accounting (compressed allreduce), core/prof.h */
    terse__fault_t fault; /* test-only, see fault.h */
    int quiet; /* failures are not announced to other ranks (point-to-point) */
    int user_freed;
    int done;
    /* Completed with TERSE_OK, the algorithm's data and scratch are kept (no cleanup) for a
     * commit its caller runs later (a held compressed commit); terse__req_release_state or
     * terse__req_destroy lets them go. */
    int keep_state;
    struct terse_request *next, *prev;
};

struct terse__algo {
    const char *name;
    uint16_t id;
    /* Called at start and whenever every transfer of the round completed: post the next
     * round and return TERSE_INPROGRESS, or return TERSE_OK when finished, or an error
     * (after terse__req_fail to say why). */
    terse_status_t (*progress)(terse_request_h req);
    void (*cleanup)(terse_request_h req); /* may be NULL */
};

/* The settings that change results (which algorithm sums in which order, who keeps e_s, what
 * error feedback sees), fixed when the communicator is made: from its params, else the
 * environment parsed then. Read from here, never from terse__config(): another communicator's
 * creation re-reads the environment and must not change this one's collectives. */
typedef struct terse__comm_settings {
    terse_compressed_algo_t compressed_algo; /* a call's default */
    terse_hierarchy_t hierarchy;             /* a call's default */
    int allreduce_algo;                      /* terse__allreduce_algo_t */
    size_t small_msg_bytes;
} terse__comm_settings_t;

struct terse_comm {
    terse__tp_t tp;
    terse__comm_settings_t settings;
    int rank, size;
    int local_rank, local_size, cross_rank, cross_size;
    int *host_of;  /* host index of every rank (owned by hosts) */
    terse__hostgroup_t hosts;
    double timeout;
    uint32_t next_seq;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t progress_thread;
    int has_progress_thread;
    int sleepers; /* threads in an idle wait's sleep on the transport's event fd */
    volatile int stopping;
    terse__abort_t abort; /* requests in flight and the failure protocol (abort.c) */
    terse__buf_t pool[TERSE_POOL_MAX]; /* collective scratch (scratch.c) */
    int pool_used[TERSE_POOL_MAX];
    size_t eager_hdr_bytes;
    char host_id[256];
    char last_error[512];
    terse__topo_t *topo; /* may be NULL: run unbound */
    terse__topo_plan_t plan;
    int has_plan;
    struct terse__p2p_chan *p2p_chans; /* message counts per (peer, tag), p2p.c */
    int p2p_used; /* point-to-point ran here: collectives are refused */
};

/* ---- engine: request.c (life of a request), xfer.c (posting), validate.c (headers),
 * abort.c (failures), scratch.c (pooled scratch), fault.c (test-only fault injection) ---- */
double terse__now(void);
terse_status_t terse__req_create(terse_comm_h comm, terse__coll_kind_t kind, const terse__algo_t *algo,
                                 terse_request_h *req_p);
/* Start the request (call its algorithm once) and link it into the active list. */
terse_status_t terse__req_start(terse_request_h req);
/* The same with a sequence number the caller reserved (comm->next_seq is left alone): for
 * exchanges among a subset of the ranks, which the others do not count (comm_split.c). */
terse_status_t terse__req_start_at(terse_request_h req, uint32_t seq);
/* Advance one request once; caller holds comm->lock. */
terse_status_t terse__req_advance(terse_request_h req);
void terse__req_send(terse_request_h req, int peer, uint16_t step, const void *buf, size_t len);
void terse__req_recv(terse_request_h req, int peer, uint16_t step, void *buf, size_t len);
/* Receive of unknown length up to @cap: matches a terse__req_send of any length up to @cap,
 * header and payload in one message (short) or split (long), so senders need no padding. */
void terse__req_recv_var(terse_request_h req, int peer, uint16_t step, void *buf, size_t cap);
/* Payload bytes received by transfer @xfer_index of the round that just completed. A round's
 * transfers are numbered in posting order: the one posted next gets index req->nx. */
size_t terse__req_received_len(terse_request_h req, int xfer_index);
/* Confirmation round: an empty message to and from every participant (@peers[0..n), this
 * rank skipped; NULL: ranks 0..n-1), posted by an algorithm that validated
 * everything it received and is about to write the caller's buffers. A rank that failed
 * sends an abort instead, so no participant commits unless every one validated (a one-round
 * algorithm whose messages only their receivers can check would otherwise finish on the
 * sender while the receivers fail). Returns TERSE_INPROGRESS when it posted the round (the
 * algorithm commits on its next call), TERSE_OK when there is no peer to wait for. */
terse_status_t terse__req_confirm(terse_request_h req, const int *peers, int n);
/* A receive that matches @peer's next message of this call whatever its step: used where a
 * rank with a different view of the call would send something else (e.g. its own root). */
void terse__req_recv_any_step(terse_request_h req, int peer, uint16_t step, void *buf, size_t len);
/* Moves this round's transfers along while the algorithm computes more of it (pipelining:
 * between compressed chunks): progresses the transport and posts the payload receives whose
 * headers arrived. May fail the request (check req->status). */
void terse__req_poll(terse_request_h req);
/* Record a local failure with a formatted reason (becomes the comm's last error). */
terse_status_t terse__req_fail(terse_request_h req, terse_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, without telling peers (they already know, or it is local teardown). */
terse_status_t terse__req_fail_quiet(terse_request_h req, terse_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Scratch of at least @size bytes held by the request until it completes (and until its
 * last transfer ended, when it failed with transfers under way). Growing it may move it. */
void *terse__req_scratch(terse_request_h req, size_t size);
/* A second such buffer, for composite algorithms whose parts each lay out their own. */
void *terse__req_scratch2(terse_request_h req, size_t size);
int terse__req_has_pending(terse_request_h req);
/* Runs the cleanup and returns the scratch of a request completed with keep_state. */
void terse__req_release_state(terse_request_h req);
void terse__req_destroy(terse_request_h req);

/* ---- point-to-point (p2p.c) ---- */
void terse__p2p_fini(terse_comm_h comm);

/* ---- communicator (comm.c; terse__comm_set_error and terse__comm_allocator in coll.h) ---- */
unsigned terse__comm_progress_locked(terse_comm_h comm);
/* Blocking wrapper: wait and free. */
terse_status_t terse__wait_free(terse_request_h req, terse_status_t post_status);

#endif
