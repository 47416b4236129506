/* terse: communicators — bootstrap, identity, progress, last error. */
#ifndef TERSE_COMM_H
#define TERSE_COMM_H

#include <terse/status.h>
#include <terse/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct terse_comm *terse_comm_h;

/**
 * Out-of-band allgather used once at setup (UCC-style). Every rank calls it with
 * the same @p msglen; on return @p rbuf holds size * msglen bytes, rank i's at i * msglen.
 * Must be blocking and collective. Return TERSE_OK or an error.
 */
typedef terse_status_t (*terse_oob_allgather_func_t)(const void *sbuf, void *rbuf, size_t msglen,
                                                     void *coll_info);

typedef struct terse_oob {
    terse_oob_allgather_func_t allgather;
    void *coll_info; /* passed back to allgather; owned by the caller */
    int rank;
    int size;
} terse_oob_t;

enum terse_comm_params_field {
    TERSE_COMM_PARAM_FIELD_OOB = 1u << 0,
    TERSE_COMM_PARAM_FIELD_PROGRESS_THREAD = 1u << 1,
    TERSE_COMM_PARAM_FIELD_HOST_ID = 1u << 2,
    TERSE_COMM_PARAM_FIELD_TIMEOUT = 1u << 3,
    TERSE_COMM_PARAM_FIELD_COMPRESSED_ALGO = 1u << 4,
    TERSE_COMM_PARAM_FIELD_HIERARCHY = 1u << 5,
};

typedef struct terse_comm_params {
    uint64_t field_mask; /* which fields below are set (terse_comm_params_field) */
    /* Bootstrap. Unset: rendezvous from the environment (TERSE_RANK, TERSE_SIZE,
     * TERSE_ROOT_ADDR), see README "Launching without MPI". */
    terse_oob_t oob;
    /* 1: a background thread drives progress; 0: the caller does (test/wait/progress).
     * Default: TERSE_PROGRESS_THREAD. */
    int progress_thread;
    /* Ranks with equal host ids are "local" to each other. Default: TERSE_HOST_ID, else the
     * hostname plus the machine's boot id. Copied. */
    const char *host_id;
    /* Seconds a collective may wait for a peer before failing with TERSE_ERR_TIMEOUT.
     * Default: TERSE_TIMEOUT. */
    double timeout;
    /* Fields below were added later: the library reads one only when its bit is set, so a
     * caller built against an older header (a shorter struct) keeps working. */
    /* The compressed allreduce's algorithm when a call does not choose one.
     * Default: TERSE_COMPRESSED_ALGO. */
    terse_compressed_algo_t compressed_algo;
    /* Hierarchical compressed allreduce when a call does not choose. Default: TERSE_HIERARCHY. */
    terse_hierarchy_t hierarchy;
} terse_comm_params_t;

/**
 * Create a communicator over all ranks of the bootstrap. Collective: every rank calls it.
 * @param [in]  params   may be NULL (all defaults: environment rendezvous)
 * @param [out] comm_p   the new communicator, set only on success
 */
TERSE_API terse_status_t terse_comm_create(const terse_comm_params_t *params, terse_comm_h *comm_p);

/**
 * Destroy @p comm: waits for nothing; requests still in flight are cancelled and must not be
 * used afterwards. Not collective, but peers should have finished their collectives.
 */
TERSE_API terse_status_t terse_comm_destroy(terse_comm_h comm);

/** A color that makes terse_comm_split give this rank no communicator. */
#define TERSE_UNDEFINED (-1)

/**
 * Split @p parent into communicators of the ranks that pass the same @p color (like
 * MPI_Comm_split). Collective over @p parent: every rank calls it, in the same order as its
 * other collectives on @p parent. In each new communicator ranks are ordered by @p key, ties
 * by their rank in @p parent. The child is bootstrapped over @p parent (no MPI, no
 * environment rendezvous) and is complete: its own transport, every collective, the
 * compressed allreduce and error feedback, local and cross ranks of its own members, and
 * the parent's timeout, host id, progress mode, compressed algorithm and hierarchy. It is independent of @p parent
 * afterwards: either may be destroyed first. Either every rank succeeds or every rank gets
 * an error (and no communicator).
 * @param [in]  parent     the communicator to split
 * @param [in]  color      >= 0, or TERSE_UNDEFINED (any negative value): this rank joins none
 * @param [in]  key        order among the ranks of one color
 * @param [out] newcomm_p  the new communicator (the caller destroys it with
 *                         terse_comm_destroy), NULL for TERSE_UNDEFINED; set only on success
 */
TERSE_API terse_status_t terse_comm_split(terse_comm_h parent, int color, int key,
                                          terse_comm_h *newcomm_p);

/**
 * A copy of @p parent with the same ranks in the same order and its own transport and
 * sequence of collectives (terse_comm_split with one color). Collective over @p parent.
 * @param [out] newcomm_p  the new communicator, owned by the caller; set only on success
 */
TERSE_API terse_status_t terse_comm_dup(terse_comm_h parent, terse_comm_h *newcomm_p);

TERSE_API int terse_comm_rank(terse_comm_h comm);
TERSE_API int terse_comm_size(terse_comm_h comm);
/** Rank among the ranks of the same host, and the number of those ranks. */
TERSE_API int terse_comm_local_rank(terse_comm_h comm);
TERSE_API int terse_comm_local_size(terse_comm_h comm);
/** Index of this rank's host among hosts, and the number of hosts (Horovod's cross_*). */
TERSE_API int terse_comm_cross_rank(terse_comm_h comm);
TERSE_API int terse_comm_cross_size(terse_comm_h comm);

/**
 * The human reason of the last error on @p comm ("allreduce seq 12: rank 2 has count 7,
 * rank 0 has 8"), or "" if none. Owned by @p comm; valid until the next failing call.
 */
TERSE_API const char *terse_comm_last_error(terse_comm_h comm);

/** Advance every request of @p comm once; never blocks. */
TERSE_API terse_status_t terse_comm_progress(terse_comm_h comm);

/** Blocking barrier over all ranks of @p comm. */
TERSE_API terse_status_t terse_barrier(terse_comm_h comm);

/** Library version string, e.g. "0.1.0". */
TERSE_API const char *terse_version(void);

/**
 * Write the configuration in effect (every TERSE_* variable, value, default, doc) to @p out
 * (a FILE*), one per line.
 */
TERSE_API void terse_config_print(void *out);

#ifdef __cplusplus
}
#endif
#endif
