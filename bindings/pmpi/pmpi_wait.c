/* MPI's wait and test calls, so that MPI_Iallreduce requests on terse complete (see
 * pmpi_request.c). With none in flight they go straight to PMPI_*; with one in flight a wait
 * polls the matching test call, completing terse's finished requests in between (a mix of
 * MPI's own and terse's requests keeps both progressing). */
#include "pmpi.h"

#include <sched.h>

int MPI_Test(MPI_Request *request, int *flag, MPI_Status *status)
{
    terse__pmpi_progress();
    return PMPI_Test(request, flag, status);
}

int MPI_Testall(int count, MPI_Request requests[], int *flag, MPI_Status statuses[])
{
    terse__pmpi_progress();
    return PMPI_Testall(count, requests, flag, statuses);
}

int MPI_Testany(int count, MPI_Request requests[], int *index, int *flag, MPI_Status *status)
{
    terse__pmpi_progress();
    return PMPI_Testany(count, requests, index, flag, status);
}

int MPI_Testsome(int incount, MPI_Request requests[], int *outcount, int indices[],
                 MPI_Status statuses[])
{
    terse__pmpi_progress();
    return PMPI_Testsome(incount, requests, outcount, indices, statuses);
}

int MPI_Request_get_status(MPI_Request request, int *flag, MPI_Status *status)
{
    terse__pmpi_progress();
    return PMPI_Request_get_status(request, flag, status);
}

int MPI_Wait(MPI_Request *request, MPI_Status *status)
{
    int flag = 0, rc;
    if (!terse__pmpi_pending())
        return PMPI_Wait(request, status);
    for (;;) {
        terse__pmpi_progress();
        rc = PMPI_Test(request, &flag, status);
        if (rc != MPI_SUCCESS || flag)
            return rc;
        sched_yield();
    }
}

int MPI_Waitall(int count, MPI_Request requests[], MPI_Status statuses[])
{
    int flag = 0, rc;
    if (!terse__pmpi_pending())
        return PMPI_Waitall(count, requests, statuses);
    for (;;) {
        terse__pmpi_progress();
        rc = PMPI_Testall(count, requests, &flag, statuses);
        if (rc != MPI_SUCCESS || flag)
            return rc;
        sched_yield();
    }
}

int MPI_Waitany(int count, MPI_Request requests[], int *index, MPI_Status *status)
{
    int flag = 0, rc;
    if (!terse__pmpi_pending())
        return PMPI_Waitany(count, requests, index, status);
    for (;;) {
        terse__pmpi_progress();
        rc = PMPI_Testany(count, requests, index, &flag, status);
        if (rc != MPI_SUCCESS || flag)
            return rc;
        sched_yield();
    }
}

int MPI_Waitsome(int incount, MPI_Request requests[], int *outcount, int indices[],
                 MPI_Status statuses[])
{
    int rc;
    if (!terse__pmpi_pending())
        return PMPI_Waitsome(incount, requests, outcount, indices, statuses);
    for (;;) {
        terse__pmpi_progress();
        rc = PMPI_Testsome(incount, requests, outcount, indices, statuses);
        /* MPI_UNDEFINED: no active request left, as MPI_Waitsome reports it. */
        if (rc != MPI_SUCCESS || *outcount != 0)
            return rc;
        sched_yield();
    }
}
