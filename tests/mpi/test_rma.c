/* RMA slabs: registered once, rkeys exchanged, puts into a neighbour's slab made visible by a
 * flush, then announced with a tag message. Uses the communicator's transport directly. */
#include "test_util.h"

#include "coll/comm.h"

static terse_status_t mpi_exchange(void *ctx, const void *sbuf, void *rbuf, size_t len)
{
    return MPI_Allgather(sbuf, (int)len, MPI_BYTE, rbuf, (int)len, MPI_BYTE, MPI_COMM_WORLD) ==
                   MPI_SUCCESS ? TERSE_OK : TERSE_ERR_BOOTSTRAP;
}

static void wait_op(terse_comm_h comm, terse__tp_op_t *op)
{
    while (op->state != TERSE_TP_OP_DONE)
        terse__tp_progress(&comm->tp);
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    const size_t slab_size = 4u << 20, len = 1u << 20; /* rendezvous-sized puts */
    terse__tp_slab_t slab;
    terse_status_t st = terse__tp_slab_create(&comm->tp, slab_size, mpi_exchange, NULL, &slab);
    CHECK(st == TERSE_OK, "slab create: %s", terse_status_string(st));
    if (st == TERSE_OK) {
        int right = (test_rank + 1) % test_size, left = (test_rank - 1 + test_size) % test_size;
        uint32_t *src = malloc(len);
        for (size_t i = 0; i < len / 4; i++)
            src[i] = (uint32_t)(test_rank * 1000003u + i);
        memset(slab.base, 0, slab_size);
        MPI_Barrier(MPI_COMM_WORLD);
        /* put at an offset that differs per rank, then tell the neighbour */
        size_t off = (size_t)test_rank * 4096;
        terse__tp_op_t put = {0}, note = {0}, recv = {0};
        uint64_t note_val = off, got = 0;
        terse__tp_recv(&comm->tp, left, 0x1234, ~0ull, &got, sizeof(got), &recv);
        terse__tp_put_flush(&comm->tp, &slab, right, off, src, len, &put);
        wait_op(comm, &put);
        CHECK(put.status == TERSE_TP_STATUS_OK, "put: %s", terse__tp_status_string(put.status));
        terse__tp_send(&comm->tp, right, 0x1234, &note_val, sizeof(note_val), &note);
        wait_op(comm, &note);
        wait_op(comm, &recv);
        CHECK(recv.status == TERSE_TP_STATUS_OK && got == (uint64_t)left * 4096,
              "notification: offset %llu",
              (unsigned long long)got);
        const uint32_t *dst = (const uint32_t *)((char *)slab.base + got);
        int ok = 1;
        for (size_t i = 0; i < len / 4 && ok; i++)
            ok = dst[i] == (uint32_t)(left * 1000003u + i);
        CHECK(ok, "slab holds rank %d's data after the notification", left);
        free(src);
        MPI_Barrier(MPI_COMM_WORLD);
        terse__tp_slab_destroy(&comm->tp, &slab);
    }
    return test_finish(comm);
}
