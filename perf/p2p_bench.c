/* perf/p2p_bench: how large messages should travel. Rank 0 streams messages to rank 1 (the
 * other ranks idle) over terse's UCX transport three ways, and over MPI, in the same run:
 *   tag       UCX tag send/recv into the user buffer (rendezvous above UCX's threshold)
 *   rma       put into rank 1's registered slab + flush + an 8-byte notification, then rank 1
 *             copies the slab into the user buffer (what an RMA path of the engine has to do,
 *             since collectives deliver into the caller's buffers)
 *   rma_slab  the same without the copy (data whose final home is the slab)
 *   mpi       MPI_Send / MPI_Recv
 * and reports bandwidth, ratios to MPI and to memcpy in the same run.
 *
 *   mpirun -np 2 perf/p2p_bench [--min-bytes 64K] [--max-bytes 64M] [--iters 20] [--csv F]
 * Run across two emulated hosts (perf/netcluster.sh) or under UCX_TLS=tcp,self for the
 * network case, plain for shared memory. */
#include "bootstrap/bootstrap.h"
#include "coll/comm.h"
#include "core/alloc.h"

#include <terse/mpi.h>

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_DATA 0x7001ull
#define TAG_NOTE 0x7002ull
#define TAG_ACK  0x7003ull

static size_t parse_bytes(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'G': case 'g': v *= 1024.0; /* fall through */
    case 'M': case 'm': v *= 1024.0; /* fall through */
    case 'K': case 'k': v *= 1024.0; break;
    default: break;
    }
    return (size_t)v;
}

static terse_status_t mpi_allgather(void *ctx, const void *sbuf, void *rbuf, size_t len)
{
    (void)ctx;
    return MPI_Allgather(sbuf, (int)len, MPI_BYTE, rbuf, (int)len, MPI_BYTE, MPI_COMM_WORLD) ==
                   MPI_SUCCESS ? TERSE_OK : TERSE_ERR_BOOTSTRAP;
}

static int wait_op(terse__tp_t *tp, terse__tp_op_t *op)
{
    while (op->state != TERSE_TP_OP_DONE)
        terse__tp_progress(tp);
    return op->status == TERSE_TP_STATUS_OK ? 0 : -1;
}

/* One message rank 0 -> rank 1 by @how; an 8-byte ack back closes every iteration so the
 * sender never runs ahead of the receiver's copy (the slab is reused). */
static int one(terse__tp_t *tp, terse__tp_slab_t *slab, const char *how, int rank, void *sbuf,
               void *rbuf, size_t len)
{
    terse__tp_op_t a = {0}, b = {0};
    uint64_t note = len, ack = 0;
    if (!strcmp(how, "mpi")) {
        if (rank == 0) {
            MPI_Send(sbuf, (int)len, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
            MPI_Recv(&ack, 8, MPI_BYTE, 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(rbuf, (int)len, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(&ack, 8, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
        }
        return 0;
    }
    int rma = strncmp(how, "rma", 3) == 0, copy = !strcmp(how, "rma");
    if (rank == 0) {
        terse__tp_recv(tp, 1, TAG_ACK, ~0ull, &ack, 8, &b);
        if (rma) {
            terse__tp_put_flush(tp, slab, 1, 0, sbuf, len, &a);
            if (wait_op(tp, &a))
                return -1;
            memset(&a, 0, sizeof(a));
            terse__tp_send(tp, 1, TAG_NOTE, &note, 8, &a);
        } else {
            terse__tp_send(tp, 1, TAG_DATA, sbuf, len, &a);
        }
        return wait_op(tp, &a) || wait_op(tp, &b) ? -1 : 0;
    }
    if (rma) {
        terse__tp_recv(tp, 0, TAG_NOTE, ~0ull, &note, 8, &a);
        if (wait_op(tp, &a))
            return -1;
        if (copy)
            memcpy(rbuf, slab->base, len);
    } else {
        terse__tp_recv(tp, 0, TAG_DATA, ~0ull, rbuf, len, &a);
        if (wait_op(tp, &a))
            return -1;
    }
    terse__tp_send(tp, 0, TAG_ACK, &ack, 8, &b);
    return wait_op(tp, &b);
}

int main(int argc, char **argv)
{
    size_t min_b = 64 << 10, max_b = 64 << 20;
    int iters = 20;
    const char *csv = NULL;
    MPI_Init(&argc, &argv);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--min-bytes")) min_b = parse_bytes(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-bytes")) max_b = parse_bytes(argv[i + 1]);
        else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--csv")) csv = argv[i + 1];
    }
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) {
        fprintf(stderr, "p2p_bench: run with 2 ranks\n");
        MPI_Finalize();
        return 1;
    }
    terse_comm_h comm = NULL;
    if (terse_comm_create_mpi(MPI_COMM_WORLD, NULL, &comm) != TERSE_OK) {
        fprintf(stderr, "p2p_bench: terse_comm_create_mpi failed\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    terse__tp_t *tp = &comm->tp;
    terse__tp_slab_t slab;
    if (terse__tp_slab_create(tp, max_b, mpi_allgather, NULL, &slab) != TERSE_OK) {
        fprintf(stderr, "p2p_bench: slab registration failed\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    char *sbuf = terse__alloc_scratch(max_b, "p2p send"), *rbuf = terse__alloc_scratch(max_b, "p2p recv");
    memset(sbuf, 1, max_b);
    FILE *out = rank == 0 && csv ? fopen(csv, "w") : NULL;
    if (out)
        fprintf(out, "bytes,how,seconds,gbps,vs_mpi,vs_memcpy\n");
    if (rank == 0)
        printf("# transports: %s\n%12s %9s %9s %9s %9s %9s %8s %8s %8s\n", tp->tls, "bytes", "memcpy",
               "mpi", "tag", "rma", "rma_slab", "tag/mpi", "rma/mpi", "slab/mpi");
    const char *hows[] = {"mpi", "tag", "rma", "rma_slab"};
    for (size_t len = min_b; len <= max_b; len *= 4) {
        double gbps[4], t, mc = 0;
        double t0 = MPI_Wtime();
        for (int i = 0; i < iters; i++)
            memcpy(rbuf, sbuf, len);
        mc = (double)len * iters / (MPI_Wtime() - t0) / 1e9;
        for (int h = 0; h < 4; h++) {
            int fail = 0;
            if (rank < 2)
                fail |= one(tp, &slab, hows[h], rank, sbuf, rbuf, len); /* warmup */
            MPI_Barrier(MPI_COMM_WORLD);
            t0 = MPI_Wtime();
            for (int i = 0; i < iters && rank < 2 && !fail; i++)
                fail |= one(tp, &slab, hows[h], rank, sbuf, rbuf, len);
            t = (MPI_Wtime() - t0) / iters;
            MPI_Bcast(&t, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
            if (fail && rank < 2)
                fprintf(stderr, "p2p_bench: %s at %zu bytes failed\n", hows[h], len);
            gbps[h] = (double)len / t / 1e9;
        }
        if (rank == 0) {
            printf("%12zu %9.2f %9.2f %9.2f %9.2f %9.2f %8.2f %8.2f %8.2f\n", len, mc, gbps[0], gbps[1],
                   gbps[2], gbps[3], gbps[1] / gbps[0], gbps[2] / gbps[0], gbps[3] / gbps[0]);
            for (int h = 0; out && h < 4; h++)
                fprintf(out, "%zu,%s,%.9f,%.4f,%.4f,%.4f\n", len, hows[h], (double)len / gbps[h] / 1e9,
                        gbps[h], gbps[h] / gbps[0], gbps[h] / mc);
        }
    }
    if (rank == 0)
        printf("# GB/s, rank 0 -> rank 1, %d iterations, each closed by an 8-byte ack\n", iters);
    if (out)
        fclose(out);
    terse__free_scratch(sbuf, max_b);
    terse__free_scratch(rbuf, max_b);
    terse__tp_slab_destroy(tp, &slab);
    terse_comm_destroy(comm);
    MPI_Finalize();
    return 0;
}
