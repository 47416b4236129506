/* terse statuses as MPI error codes, raised through the communicator's error handler. */
#include "pmpi.h"

#include "core/log.h"

#include <pthread.h>
#include <stdio.h>

/* The MPI error class of each terse failure (MPI 3.1 has no class for a dead peer). */
static int error_class(terse_status_t st)
{
    switch (st) {
    case TERSE_ERR_INVALID_ARG: return MPI_ERR_ARG;
    case TERSE_ERR_MISMATCH: return MPI_ERR_ARG;
    case TERSE_ERR_NO_MEMORY: return MPI_ERR_NO_MEM;
    case TERSE_ERR_NOT_SUPPORTED: return MPI_ERR_UNSUPPORTED_OPERATION;
    case TERSE_ERR_INTERNAL: return MPI_ERR_INTERN;
    case TERSE_ERR_BUSY: return MPI_ERR_PENDING;
    default: return MPI_ERR_OTHER;
    }
}

/* One MPI error code per terse status, in that status' class, whose MPI_Error_string names
 * terse's status: a program that prints MPI's message learns what went wrong. */
static int codes[-TERSE_ERR_LAST];
static pthread_once_t codes_once = PTHREAD_ONCE_INIT;

static void add_codes(void)
{
    for (int i = 1; i < -TERSE_ERR_LAST; i++) {
        terse_status_t st = (terse_status_t)-i;
        char text[MPI_MAX_ERROR_STRING];
        codes[i] = error_class(st);
        int code;
        if (PMPI_Add_error_code(codes[i], &code) != MPI_SUCCESS)
            continue;
        snprintf(text, sizeof(text), "terse: %s", terse_status_string(st));
        if (PMPI_Add_error_string(code, text) == MPI_SUCCESS)
            codes[i] = code;
    }
}

int terse__pmpi_error_code(terse_status_t st)
{
    if (st == TERSE_OK)
        return MPI_SUCCESS;
    if (st >= 0 || st <= TERSE_ERR_LAST)
        return MPI_ERR_INTERN;
    pthread_once(&codes_once, add_codes);
    return codes[-st];
}

int terse__pmpi_fail(terse__pmpi_comm_t *e, const char *call, terse_status_t st)
{
    int code = terse__pmpi_error_code(st);
    terse_log_error("pmpi: %s on terse failed: %s (%s)", call, terse_status_string(st),
                    terse_comm_last_error(e->tcomm));
    PMPI_Comm_call_errhandler(e->mpi_comm, code);
    return code;
}
