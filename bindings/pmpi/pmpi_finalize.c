/* MPI_Finalize: terse communicators go before MPI does (their bootstrap and error handlers
 * are MPI's; MPI_COMM_WORLD is never freed by most programs). */
#include "pmpi.h"

int MPI_Finalize(void)
{
    terse__pmpi_progress();
    terse__pmpi_progress_stop();
    terse__pmpi_finalize();
    return PMPI_Finalize();
}
