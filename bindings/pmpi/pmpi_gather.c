/* MPI_Allgather, MPI_Allgatherv and MPI_Bcast on terse, for the programs that turn them on
 * (TERSE_PMPI_COLLECTIVES; off by default: see README for where terse was faster). They
 * move bytes, so any predefined datatype without holes qualifies, given as the same datatype
 * and count on every rank (MPI allows a rank to describe its part differently: such a
 * program must leave these calls with MPI). */
#include "pmpi.h"

#include <stdlib.h>

int MPI_Allgather(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
                  int recvcount, MPI_Datatype recvtype, MPI_Comm comm)
{
    terse_dtype_t dt;
    size_t esize = 0;
    terse__pmpi_comm_t *e = NULL;
    int in_place = sendbuf == MPI_IN_PLACE, size = 0;
    terse__pmpi_progress();
    if (terse__pmpi_wants(TERSE_PMPI_ALLGATHER) && recvcount > 0 && recvbuf &&
        (in_place || (sendbuf && sendtype == recvtype && sendcount == recvcount)) &&
        terse__pmpi_dtype(recvtype, MPI_OP_NULL, &dt, NULL, &esize) &&
        PMPI_Comm_size(comm, &size) == MPI_SUCCESS &&
        (size_t)recvcount * esize * (size_t)size >= terse__pmpi_threshold())
        e = terse__pmpi_comm_get(comm);
    if (!e)
        return PMPI_Allgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
    terse__pmpi_announce(e, TERSE_PMPI_ALLGATHER);
    terse_request_h req = NULL;
    terse_status_t st = terse_iallgather(e->tcomm, in_place ? TERSE_IN_PLACE : sendbuf, recvbuf,
                                         (size_t)recvcount * esize, dt, &req);
    if (st == TERSE_OK)
        st = terse__pmpi_wait(e, req);
    return st == TERSE_OK ? MPI_SUCCESS : terse__pmpi_fail(e, "MPI_Allgather", st);
}

int MPI_Allgatherv(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
                   const int recvcounts[], const int displs[], MPI_Datatype recvtype,
                   MPI_Comm comm)
{
    terse_dtype_t dt;
    size_t esize = 0, total = 0;
    terse__pmpi_comm_t *e = NULL;
    int in_place = sendbuf == MPI_IN_PLACE, size = 0, rank = 0, ok = 1;
    terse__pmpi_progress();
    if (terse__pmpi_wants(TERSE_PMPI_ALLGATHERV) && recvbuf && recvcounts && displs &&
        terse__pmpi_dtype(recvtype, MPI_OP_NULL, &dt, NULL, &esize) &&
        PMPI_Comm_size(comm, &size) == MPI_SUCCESS &&
        PMPI_Comm_rank(comm, &rank) == MPI_SUCCESS) {
        for (int i = 0; i < size && ok; i++) {
            ok = recvcounts[i] >= 0 && displs[i] >= 0;
            total += ok ? (size_t)recvcounts[i] : 0;
        }
        /* recvcounts are the same on every rank (MPI requires it), so is this decision. */
        ok = ok && total * esize >= terse__pmpi_threshold() &&
             (in_place || (sendbuf && sendtype == recvtype && sendcount == recvcounts[rank]));
        if (ok)
            e = terse__pmpi_comm_get(comm);
    }
    if (!e)
        return PMPI_Allgatherv(sendbuf, sendcount, sendtype, recvbuf, recvcounts, displs,
                               recvtype, comm);
    terse__pmpi_announce(e, TERSE_PMPI_ALLGATHERV);
    size_t *counts = malloc(2 * (size_t)size * sizeof(size_t));
    if (!counts)
        return terse__pmpi_fail(e, "MPI_Allgatherv", TERSE_ERR_NO_MEMORY);
    size_t *offs = counts + size;
    for (int i = 0; i < size; i++) {
        counts[i] = (size_t)recvcounts[i] * esize;
        offs[i] = (size_t)displs[i] * esize;
    }
    terse_request_h req = NULL;
    terse_status_t st = terse_iallgatherv(e->tcomm, in_place ? TERSE_IN_PLACE : sendbuf, recvbuf,
                                          counts, offs, dt, &req);
    free(counts); /* terse copied them */
    if (st == TERSE_OK)
        st = terse__pmpi_wait(e, req);
    return st == TERSE_OK ? MPI_SUCCESS : terse__pmpi_fail(e, "MPI_Allgatherv", st);
}

int MPI_Bcast(void *buffer, int count, MPI_Datatype datatype, int root, MPI_Comm comm)
{
    terse_dtype_t dt;
    size_t esize = 0;
    terse__pmpi_comm_t *e = NULL;
    terse__pmpi_progress();
    if (terse__pmpi_wants(TERSE_PMPI_BCAST) && count > 0 && buffer &&
        terse__pmpi_dtype(datatype, MPI_OP_NULL, &dt, NULL, &esize) &&
        (size_t)count * esize >= terse__pmpi_threshold())
        e = terse__pmpi_comm_get(comm);
    if (!e)
        return PMPI_Bcast(buffer, count, datatype, root, comm);
    terse__pmpi_announce(e, TERSE_PMPI_BCAST);
    terse_request_h req = NULL;
    terse_status_t st = terse_ibcast(e->tcomm, buffer, (size_t)count * esize, dt, root, &req);
    if (st == TERSE_OK)
        st = terse__pmpi_wait(e, req);
    return st == TERSE_OK ? MPI_SUCCESS : terse__pmpi_fail(e, "MPI_Bcast", st);
}
