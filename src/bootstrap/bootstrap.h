/* Out-of-band allgather used only while a communicator is created: from a user callback
 * (bootstrap_oob.c) or a TCP rendezvous described by the environment (bootstrap_tcp.c).
 * The MPI bootstrap (bootstrap_mpi.c) lives in libterse_mpi and comes in as a callback. */
#ifndef TERSE_BOOTSTRAP_H
#define TERSE_BOOTSTRAP_H

#include <terse/comm.h>

typedef struct terse__bootstrap terse__bootstrap_t;

typedef struct terse__bootstrap_ops {
    terse_status_t (*allgather)(terse__bootstrap_t *bs, const void *sbuf, void *rbuf, size_t len);
    void (*close)(terse__bootstrap_t *bs);
} terse__bootstrap_ops_t;

struct terse__bootstrap {
    const terse__bootstrap_ops_t *ops;
    int rank;
    int size;
    terse_oob_t oob;  /* callback bootstrap */
    int root_fd;      /* TCP: non-root ranks' connection to rank 0 */
    int *peer_fds;    /* TCP: rank 0's connections, indexed by rank */
    double timeout;
    char err[256];    /* why the last call failed */
};

terse_status_t terse__bootstrap_from_oob(const terse_oob_t *oob, terse__bootstrap_t *bs);

/* TERSE_RANK, TERSE_SIZE, TERSE_ROOT_ADDR=host:port (rank 0 listens there). */
terse_status_t terse__bootstrap_from_env(double timeout, terse__bootstrap_t *bs);

/* rbuf gets size * len bytes, rank i's at i * len. */
terse_status_t terse__bootstrap_allgather(terse__bootstrap_t *bs, const void *sbuf, void *rbuf,
                                          size_t len);
void terse__bootstrap_close(terse__bootstrap_t *bs);

#endif
