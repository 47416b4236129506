/* libterse_pmpi internals: MPI collectives of unmodified programs run on terse (LD_PRELOAD).
 *
 * The MPI_* entry points this library defines take a call over when it is one terse does
 * (pmpi_types.c decides, from the arguments alone, so every rank decides the same) and pass
 * everything else to PMPI_*. A terse communicator per MPI communicator is created on first
 * use (pmpi_comm.c), inside the collective call every rank of that communicator is making,
 * so its creation (PMPI_Allgather) is collective too. */
#ifndef TERSE_PMPI_H
#define TERSE_PMPI_H

#include <mpi.h>
#include <terse/terse.h>

#include <stddef.h>

/* The calls that can be taken over (bits of TERSE_PMPI_COLLECTIVES). */
typedef enum terse__pmpi_kind {
    TERSE_PMPI_ALLREDUCE = 0,
    TERSE_PMPI_IALLREDUCE = 1,
    TERSE_PMPI_ALLGATHER = 2,
    TERSE_PMPI_ALLGATHERV = 3,
    TERSE_PMPI_BCAST = 4,
    TERSE_PMPI_KIND_LAST = 5
} terse__pmpi_kind_t;

/* What the library keeps per MPI communicator (the value of its attribute). */
typedef struct terse__pmpi_comm {
    MPI_Comm mpi_comm;
    terse_comm_h tcomm; /* NULL: this communicator stays with MPI (intercommunicator, one rank,
                           creation failed somewhere) */
    int rank, size;
    int refs;           /* the attribute's + one per MPI_Iallreduce in flight (under the lock) */
    unsigned announced; /* bit per kind: its "taken over" info line is out */
    struct terse__pmpi_comm *next; /* live entries, for MPI_Finalize */
} terse__pmpi_comm_t;

/* Settings of TERSE_PMPI_* (parsed once). */
int terse__pmpi_wants(terse__pmpi_kind_t kind);
size_t terse__pmpi_threshold(void);

/* The entry of @p comm, creating it on first use: call only from inside a collective call
 * that every rank of @p comm makes (creation talks to them). Returns NULL when @p comm stays
 * with MPI. Never fails: any trouble makes the communicator fall back, on every rank. */
terse__pmpi_comm_t *terse__pmpi_comm_get(MPI_Comm comm);
void terse__pmpi_comm_ref(terse__pmpi_comm_t *e);
void terse__pmpi_comm_unref(terse__pmpi_comm_t *e);

/* Prints the info line for (@p e, @p kind) once. */
void terse__pmpi_announce(terse__pmpi_comm_t *e, terse__pmpi_kind_t kind);

/* Maps @p st (not TERSE_OK) to an MPI error code, logs terse's reason and calls @p comm's
 * error handler, as MPI itself does for a failing call. Returns the code. */
int terse__pmpi_fail(terse__pmpi_comm_t *e, const char *call, terse_status_t st);
int terse__pmpi_error_code(terse_status_t st);

/* terse element type of (@p type, @p op) for a reduction; @p op MPI_OP_NULL: any operation
 * (gathers and broadcasts move bytes). @p mult_p: terse elements per MPI element (complex
 * sums are two floats). Returns 0 when terse cannot do it. */
int terse__pmpi_dtype(MPI_Datatype type, MPI_Op op, terse_dtype_t *dtype_p, terse_op_t *op_p,
                      size_t *mult_p);

/* Blocks until @p req completes, keeping MPI's own progress going (a peer may wait for a
 * message this rank sent with MPI before this call). Frees @p req. */
terse_status_t terse__pmpi_wait(terse__pmpi_comm_t *e, terse_request_h req);

/* Completes the MPI requests of the MPI_Iallreduces on terse that have finished. Cheap when
 * none is in flight. */
void terse__pmpi_progress(void);
/* Nonzero while an MPI_Iallreduce on terse is in flight. */
int terse__pmpi_pending(void);

/* Starts the MPI request of an MPI_Iallreduce that runs as @p req on @p e (takes a reference
 * on @p e and owns @p req). */
int terse__pmpi_request_start(terse__pmpi_comm_t *e, terse_request_h req, MPI_Request *mpi_req);

/* Stops the Iallreduce progress thread (pmpi_request.c), if it runs. */
void terse__pmpi_progress_stop(void);

/* Called by MPI_Finalize: every terse communicator is destroyed before MPI goes. */
void terse__pmpi_finalize(void);

#endif
