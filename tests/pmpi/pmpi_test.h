/* Shared helpers of the libterse_pmpi tests: plain MPI programs (no terse header, no terse
 * library), so they run the same with and without LD_PRELOAD=libterse_pmpi.so. */
#ifndef TERSE_PMPI_TEST_H
#define TERSE_PMPI_TEST_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pt_rank, pt_size, pt_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", pt_rank, __FILE__, __LINE__,    \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            pt_failures++;                                                                         \
        }                                                                                          \
    } while (0)

/* With TERSE_TEST_PRELOADED=1 the test insists that MPI_Allreduce is libterse_pmpi's (a run
 * meant to test the preload must not silently test Open MPI alone). */
static inline void pt_check_preload(void)
{
    const char *want = getenv("TERSE_TEST_PRELOADED");
    Dl_info info;
    int ours = dladdr((void *)MPI_Allreduce, &info) && info.dli_fname &&
               strstr(info.dli_fname, "libterse_pmpi");
    if (want && atoi(want))
        CHECK(ours, "MPI_Allreduce comes from %s, not libterse_pmpi", info.dli_fname);
    else
        CHECK(!ours, "libterse_pmpi is preloaded but TERSE_TEST_PRELOADED is not set");
}

static inline void pt_init(int *argc, char ***argv, int level)
{
    int provided;
    MPI_Init_thread(argc, argv, level, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &pt_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &pt_size);
    if (provided < level) {
        fprintf(stderr, "rank %d: MPI gives thread level %d < %d\n", pt_rank, provided, level);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    pt_check_preload();
}

/* Every rank fails if any failed. PMPI_ on purpose: the verdict never depends on the
 * library under test. */
static inline int pt_finish(void)
{
    int total = 0;
    PMPI_Allreduce(&pt_failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (pt_rank == 0)
        printf("%s: %d failure(s) over %d ranks\n", total ? "FAIL" : "PASS", total, pt_size);
    MPI_Finalize();
    return total ? 1 : 0;
}

/* Are @p bytes of @p buf the same on every rank of @p comm? (Through PMPI_*: the check does not
 * use what it checks.) */
static inline int pt_identical(const void *buf, size_t bytes, MPI_Comm comm)
{
    int r, n, ok = 1, all;
    MPI_Comm_rank(comm, &r);
    MPI_Comm_size(comm, &n);
    unsigned char *ref = malloc(bytes ? bytes : 1);
    memcpy(ref, buf, bytes);
    PMPI_Bcast(ref, (int)bytes, MPI_BYTE, 0, comm);
    ok = memcmp(ref, buf, bytes) == 0;
    free(ref);
    PMPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
    return all;
}

static inline size_t pt_threshold(void)
{
    const char *t = getenv("TERSE_PMPI_THRESHOLD");
    return t ? (size_t)strtoull(t, NULL, 10) : 1048576;
}

#endif
