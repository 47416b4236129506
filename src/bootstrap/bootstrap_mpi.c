/* libterse_mpi: terse's only MPI dependency. */
#include <terse/mpi.h>

#include <string.h>

static terse_status_t mpi_allgather(const void *sbuf, void *rbuf, size_t msglen, void *coll_info)
{
    MPI_Comm comm = *(MPI_Comm *)coll_info;
    if (msglen > (size_t)1 << 30)
        return TERSE_ERR_INVALID_ARG;
    return MPI_Allgather(sbuf, (int)msglen, MPI_BYTE, rbuf, (int)msglen, MPI_BYTE, comm) ==
                   MPI_SUCCESS
               ? TERSE_OK
               : TERSE_ERR_BOOTSTRAP;
}

terse_status_t terse_comm_create_mpi(MPI_Comm mpi_comm, const terse_comm_params_t *params,
                                     terse_comm_h *comm_p)
{
    terse_comm_params_t p;
    int rank, size;
    memset(&p, 0, sizeof(p));
    /* Field by field, never *params: a caller built against an older header passes a shorter
     * struct, which ends before the fields whose bit it cannot have set. */
    if (params) {
        uint64_t mask = params->field_mask;
        p.field_mask = mask;
        p.oob = params->oob;
        p.progress_thread = params->progress_thread;
        p.host_id = params->host_id;
        p.timeout = params->timeout;
        if (mask & TERSE_COMM_PARAM_FIELD_COMPRESSED_ALGO)
            p.compressed_algo = params->compressed_algo;
        if (mask & TERSE_COMM_PARAM_FIELD_HIERARCHY)
            p.hierarchy = params->hierarchy;
    }
    if (MPI_Comm_rank(mpi_comm, &rank) != MPI_SUCCESS ||
        MPI_Comm_size(mpi_comm, &size) != MPI_SUCCESS)
        return TERSE_ERR_BOOTSTRAP;
    p.field_mask |= TERSE_COMM_PARAM_FIELD_OOB;
    p.oob.allgather = mpi_allgather;
    p.oob.coll_info = &mpi_comm;
    p.oob.rank = rank;
    p.oob.size = size;
    return terse_comm_create(&p, comm_p);
}
