/* terse: bootstrap from an MPI communicator (libterse_mpi; link terse::terse_mpi). */
#ifndef TERSE_MPI_H
#define TERSE_MPI_H

#include <mpi.h>
#include <terse/comm.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Create a terse communicator over the ranks of @p mpi_comm (collective over it). MPI is used
 * only during this call; @p params may be NULL and its oob field is ignored.
 * @param [out] comm_p  set only on success
 */
TERSE_API terse_status_t terse_comm_create_mpi(MPI_Comm mpi_comm, const terse_comm_params_t *params,
                                               terse_comm_h *comm_p);

#ifdef __cplusplus
}
#endif
#endif
