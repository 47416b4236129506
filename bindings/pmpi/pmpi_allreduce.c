/* MPI_Allreduce and MPI_Iallreduce on terse: predefined datatypes, SUM/PROD/MIN/MAX,
 * intracommunicators of two ranks or more, from TERSE_PMPI_THRESHOLD bytes. terse sums in a
 * fixed order, so every rank gets the same bits (MPI allows any order). */
#include "pmpi.h"

#include <limits.h>

/* Everything that decides whether terse takes the call comes from the arguments and the
 * settings, which MPI (and the README, for the settings) require to be the same on every
 * rank: every rank takes it over, or none. Returns the entry, or NULL for PMPI. */
static terse__pmpi_comm_t *take(terse__pmpi_kind_t kind, const void *sbuf, void *rbuf,
                                int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                                terse_dtype_t *dt, terse_op_t *top, size_t *n)
{
    size_t mult;
    if (!terse__pmpi_wants(kind) || count <= 0 || !rbuf || !sbuf ||
        !terse__pmpi_dtype(type, op, dt, top, &mult))
        return NULL;
    *n = (size_t)count * mult;
    if (*n * terse_dtype_size(*dt) < terse__pmpi_threshold())
        return NULL;
    return terse__pmpi_comm_get(comm);
}

int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype,
                  MPI_Op op, MPI_Comm comm)
{
    terse_dtype_t dt;
    terse_op_t top;
    size_t n;
    terse_request_h req = NULL;
    terse__pmpi_progress();
    terse__pmpi_comm_t *e = take(TERSE_PMPI_ALLREDUCE, sendbuf, recvbuf, count, datatype, op,
                                 comm, &dt, &top, &n);
    if (!e)
        return PMPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm);
    terse__pmpi_announce(e, TERSE_PMPI_ALLREDUCE);
    const void *sbuf = sendbuf == MPI_IN_PLACE ? TERSE_IN_PLACE : sendbuf;
    terse_status_t st = terse_iallreduce(e->tcomm, sbuf, recvbuf, n, dt, top, &req);
    if (st == TERSE_OK)
        st = terse__pmpi_wait(e, req);
    return st == TERSE_OK ? MPI_SUCCESS : terse__pmpi_fail(e, "MPI_Allreduce", st);
}

int MPI_Iallreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype,
                   MPI_Op op, MPI_Comm comm, MPI_Request *request)
{
    terse_dtype_t dt;
    terse_op_t top;
    size_t n;
    terse_request_h req = NULL;
    terse__pmpi_progress();
    terse__pmpi_comm_t *e = take(TERSE_PMPI_IALLREDUCE, sendbuf, recvbuf, count, datatype, op,
                                 comm, &dt, &top, &n);
    if (!e || !request)
        return PMPI_Iallreduce(sendbuf, recvbuf, count, datatype, op, comm, request);
    terse__pmpi_announce(e, TERSE_PMPI_IALLREDUCE);
    const void *sbuf = sendbuf == MPI_IN_PLACE ? TERSE_IN_PLACE : sendbuf;
    terse_status_t st = terse_iallreduce(e->tcomm, sbuf, recvbuf, n, dt, top, &req);
    if (st != TERSE_OK)
        return terse__pmpi_fail(e, "MPI_Iallreduce", st);
    int rc = terse__pmpi_request_start(e, req, request);
    if (rc != MPI_SUCCESS)
        PMPI_Comm_call_errhandler(comm, rc);
    return rc;
}
