/* MPI requests for MPI_Iallreduces that run on terse, and the blocking wait of the others.
 *
 * An MPI_Iallreduce on terse returns an MPI generalized request (MPI_Grequest_start). The
 * collective must advance while the program computes or sits in other MPI calls (MPI's
 * progress rule: a peer may wait for it there), so with TERSE_PMPI_PROGRESS_THREAD=1 a thread
 * of this library drives the terse communicators that have one in flight, and sleeps when
 * none has. (terse's own per-communicator progress thread would also spin during blocking
 * calls, where the caller already drives progress: measured 2.4x slower at 64 MiB.) Someone
 * must then tell MPI the request is complete (MPI_Grequest_complete), from a thread allowed to
 * call MPI. Open MPI 4.1 has no poll hook for generalized requests, so this library does it in
 * the MPI calls that wait for or test requests (pmpi_wait.c): each first completes the
 * finished terse collectives here, and the waits poll instead of blocking while one is in
 * flight. */
#include "pmpi.h"

#include "core/config.h"
#include "core/log.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct pmpi_op {
    terse_request_h req;
    terse__pmpi_comm_t *entry;
    MPI_Request greq;
    int mpi_err; /* set when terse finished; what MPI_Wait on greq returns */
    struct pmpi_op *next;
} pmpi_op_t;

static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pending_cond = PTHREAD_COND_INITIALIZER;
static pmpi_op_t *pending;
static atomic_int npending;
static pthread_t progress_tid;
static int progress_started, progress_stopping;

/* The progress thread: drives (never completes) the communicators with a call in flight. It
 * holds a reference on each entry while it drives it, since a wait may free the request (and
 * the last reference) meanwhile, and the pending lock only to take those references. */
static void *progress_main(void *arg)
{
    enum { MAX_COMMS = 16 };
    terse__pmpi_comm_t *comms[MAX_COMMS];
    pthread_mutex_lock(&pending_lock);
    while (!progress_stopping) {
        if (!pending) {
            pthread_cond_wait(&pending_cond, &pending_lock);
            continue;
        }
        int n = 0;
        for (pmpi_op_t *op = pending; op && n < MAX_COMMS; op = op->next) {
            int seen = 0;
            for (int i = 0; i < n && !seen; i++)
                seen = comms[i] == op->entry;
            if (!seen) {
                terse__pmpi_comm_ref(op->entry);
                comms[n++] = op->entry;
            }
        }
        pthread_mutex_unlock(&pending_lock);
        for (int i = 0; i < n; i++) {
            terse_comm_progress(comms[i]->tcomm);
            terse__pmpi_comm_unref(comms[i]);
        }
        sched_yield(); /* ranks share cores */
        pthread_mutex_lock(&pending_lock);
    }
    pthread_mutex_unlock(&pending_lock);
    return NULL;
}

/* Under pending_lock. */
static void progress_thread_start(void)
{
    if (progress_started || !terse__config()->pmpi_progress_thread)
        return;
    if (pthread_create(&progress_tid, NULL, progress_main, NULL) == 0)
        progress_started = 1;
    else
        terse_log_warn("pmpi: no progress thread (%m); MPI_Iallreduce advances in MPI_Wait/Test only");
}

void terse__pmpi_progress_stop(void)
{
    pthread_mutex_lock(&pending_lock);
    int joined = progress_started;
    progress_stopping = 1;
    pthread_cond_signal(&pending_cond);
    pthread_mutex_unlock(&pending_lock);
    if (joined)
        pthread_join(progress_tid, NULL);
    pthread_mutex_lock(&pending_lock);
    progress_started = 0;
    progress_stopping = 0;
    pthread_mutex_unlock(&pending_lock);
}

int terse__pmpi_pending(void)
{
    return atomic_load_explicit(&npending, memory_order_acquire) != 0;
}

void terse__pmpi_progress(void)
{
    pmpi_op_t *done = NULL;
    if (!terse__pmpi_pending())
        return;
    /* Another thread is already at it: it completes what finished, this one need not wait. */
    if (pthread_mutex_trylock(&pending_lock) != 0)
        return;
    for (pmpi_op_t **pp = &pending; *pp;) {
        pmpi_op_t *op = *pp;
        terse_status_t st = terse_test(op->req);
        if (st == TERSE_INPROGRESS) {
            pp = &op->next;
            continue;
        }
        *pp = op->next;
        op->mpi_err = st == TERSE_OK ? MPI_SUCCESS : terse__pmpi_error_code(st);
        if (st != TERSE_OK)
            terse_log_error("pmpi: MPI_Iallreduce on terse failed: %s (%s)",
                            terse_status_string(st), terse_comm_last_error(op->entry->tcomm));
        op->next = done;
        done = op;
        atomic_fetch_sub_explicit(&npending, 1, memory_order_release);
    }
    pthread_mutex_unlock(&pending_lock);
    /* Outside the lock: completing may let another thread's MPI_Wait free the request. */
    while (done) {
        pmpi_op_t *op = done;
        done = op->next;
        PMPI_Grequest_complete(op->greq);
    }
}

static int query_fn(void *extra, MPI_Status *status)
{
    pmpi_op_t *op = extra;
    PMPI_Status_set_elements(status, MPI_BYTE, 0);
    PMPI_Status_set_cancelled(status, 0);
    status->MPI_SOURCE = MPI_UNDEFINED;
    status->MPI_TAG = MPI_UNDEFINED;
    status->MPI_ERROR = op->mpi_err;
    return op->mpi_err;
}

/* Runs when MPI frees the completed request (MPI_Wait, a successful MPI_Test, ...). */
static int free_fn(void *extra)
{
    pmpi_op_t *op = extra;
    terse_request_free(op->req);
    terse__pmpi_comm_unref(op->entry);
    free(op);
    return MPI_SUCCESS;
}

/* A collective cannot be cancelled (MPI says so too); completion will come. */
static int cancel_fn(void *extra, int complete)
{
    return MPI_SUCCESS;
}

int terse__pmpi_request_start(terse__pmpi_comm_t *e, terse_request_h req, MPI_Request *mpi_req)
{
    pmpi_op_t *op = calloc(1, sizeof(*op));
    if (!op) {
        terse_request_free(req);
        return MPI_ERR_NO_MEM;
    }
    op->req = req;
    op->entry = e;
    int rc = PMPI_Grequest_start(query_fn, free_fn, cancel_fn, op, &op->greq);
    if (rc != MPI_SUCCESS) {
        terse_request_free(req);
        free(op);
        return rc;
    }
    terse__pmpi_comm_ref(e);
    pthread_mutex_lock(&pending_lock);
    op->next = pending;
    pending = op;
    atomic_fetch_add_explicit(&npending, 1, memory_order_release);
    progress_thread_start();
    pthread_cond_signal(&pending_cond);
    pthread_mutex_unlock(&pending_lock);
    *mpi_req = op->greq;
    return MPI_SUCCESS;
}

terse_status_t terse__pmpi_wait(terse__pmpi_comm_t *e, terse_request_h req)
{
    terse_status_t st;
    for (unsigned i = 1;; i++) {
        st = terse_test(req);
        if (st != TERSE_INPROGRESS)
            break;
        /* MPI's progress rule: a send this rank posted before this call must still reach a
         * peer that waits for it; Open MPI moves it only inside its own calls. */
        if (i % 32 == 0) {
            int flag;
            PMPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, e->mpi_comm, &flag, MPI_STATUS_IGNORE);
            terse__pmpi_progress();
        }
        sched_yield(); /* ranks share cores: let a peer run */
    }
    terse_request_free(req);
    return st;
}
