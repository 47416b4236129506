/* Bad input and mismatched calls: every rank gets an error with a message saying what, no
 * hang, and the communicator keeps working afterwards. */
#include "test_util.h"

static void expect_all_fail(terse_comm_h comm, terse_status_t st, const char *what,
                            const char *needle)
{
    int failed = st != TERSE_OK, all = 0;
    MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    CHECK(all, "%s: some rank did not fail (this rank: %s)", what, terse_status_string(st));
    if (st != TERSE_OK && needle)
        CHECK(strstr(terse_comm_last_error(comm), needle) != NULL, "%s: message '%s' lacks '%s'",
              what, terse_comm_last_error(comm), needle);
}

static void expect_works(terse_comm_h comm, const char *after)
{
    float v[64], out[64];
    for (int i = 0; i < 64; i++)
        v[i] = (float)test_rank;
    terse_status_t st = terse_allreduce(comm, v, out, 64, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
    CHECK(st == TERSE_OK && out[5] == (float)(test_size * (test_size - 1) / 2),
          "allreduce after %s: %s (%s)", after, terse_status_string(st), terse_comm_last_error(comm));
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    float in[1 << 16], out[1 << 16];
    memset(in, 0, sizeof(in));
    terse_status_t st;

    if (test_size > 1) {
        /* counts differ: small (recursive doubling) and large (ring) */
        size_t sizes[] = {7, 40000};
        for (int k = 0; k < 2; k++) {
            size_t count = sizes[k] + (test_rank == test_size - 1 ? 1 : 0);
            st = terse_allreduce(comm, in, out, count, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
            expect_all_fail(comm, st, "count mismatch", NULL);
            CHECK(st == TERSE_ERR_MISMATCH, "count mismatch gives %s: %s", terse_status_name(st),
                  terse_comm_last_error(comm));
            expect_works(comm, "count mismatch");
        }
        /* dtypes differ */
        st = terse_allreduce(comm, in, out, 16,
                             test_rank == 0 ? TERSE_DTYPE_INT32 : TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
        expect_all_fail(comm, st, "dtype mismatch", "dtype");
        expect_works(comm, "dtype mismatch");
        /* ops differ */
        st = terse_allreduce(comm, in, out, 16, TERSE_DTYPE_FLOAT32,
                             test_rank == 0 ? TERSE_OP_MAX : TERSE_OP_SUM);
        expect_all_fail(comm, st, "op mismatch", "op");
        expect_works(comm, "op mismatch");
        /* roots differ */
        st = terse_bcast(comm, in, 16, TERSE_DTYPE_FLOAT32, test_rank == 0 ? 0 : 1);
        expect_all_fail(comm, st, "root mismatch", NULL);
        expect_works(comm, "root mismatch");
        /* different collectives */
        st = test_rank == 0 ? terse_allgather(comm, in, out, 4, TERSE_DTYPE_FLOAT32)
                            : terse_allreduce(comm, in, out, 4, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
        expect_all_fail(comm, st, "collective mismatch", NULL);
        expect_works(comm, "collective mismatch");
        /* a NULL buffer on one rank: that rank says why, the others hear it at once */
        st = terse_allreduce(comm, in, test_rank == 1 ? NULL : out, 16, TERSE_DTYPE_FLOAT32,
                             TERSE_OP_SUM);
        expect_all_fail(comm, st, "NULL buffer on rank 1", "NULL");
        expect_works(comm, "NULL buffer");
        /* allgatherv with counts that disagree across ranks */
        size_t counts[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        if (test_rank == 0)
            counts[0] = 9;
        st = terse_allgatherv(comm, in, out, counts, NULL, TERSE_DTYPE_FLOAT32);
        expect_all_fail(comm, st, "allgatherv counts mismatch", NULL);
        expect_works(comm, "allgatherv mismatch");
    }
    /* invalid arguments on every rank */
    st = terse_allreduce(comm, in, out, 16, (terse_dtype_t)99, TERSE_OP_SUM);
    CHECK(st == TERSE_ERR_INVALID_ARG && strstr(terse_comm_last_error(comm), "dtype"),
          "bad dtype: %s %s", terse_status_name(st), terse_comm_last_error(comm));
    st = terse_allreduce(comm, in, out, 16, TERSE_DTYPE_FLOAT32, (terse_op_t)42);
    CHECK(st == TERSE_ERR_INVALID_ARG, "bad op: %s", terse_status_name(st));
    st = terse_allreduce(comm, in, out, SIZE_MAX / 2, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
    CHECK(st == TERSE_ERR_INVALID_ARG && strstr(terse_comm_last_error(comm), "overflow"),
          "count overflow: %s %s", terse_status_name(st), terse_comm_last_error(comm));
    st = terse_bcast(comm, in, 4, TERSE_DTYPE_FLOAT32, test_size);
    CHECK(st == TERSE_ERR_INVALID_ARG, "bad root: %s", terse_status_name(st));
    CHECK(terse_allreduce(NULL, in, out, 4, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM) ==
              TERSE_ERR_INVALID_ARG, "NULL communicator accepted");
    expect_works(comm, "invalid arguments");
    /* status strings */
    CHECK(!strcmp(terse_status_name(TERSE_ERR_MISMATCH), "ERR_MISMATCH"), "status name");
    CHECK(strcmp(terse_status_string((terse_status_t)-999), "unknown status") == 0, "unknown status");
    return test_finish(comm);
}
