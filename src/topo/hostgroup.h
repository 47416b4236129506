/*
 * Host grouping: from every rank's host identity (terse__topo_host_id, allgathered by the
 * communicator), which ranks share a host. A pure function so it is tested on any layout.
 */
#ifndef TERSE_TOPO_HOSTGROUP_H
#define TERSE_TOPO_HOSTGROUP_H

#include <terse/status.h>

#include <stddef.h>

typedef struct terse__hostgroup {
    int rank;       /* this rank (as given) */
    int size;       /* ranks in all */
    int local_rank; /* index of this rank among the ranks of its host, in rank order */
    int local_size; /* ranks on this host */
    int cross_rank; /* index of this rank's host, hosts numbered by first appearance */
    int cross_size; /* number of hosts */
    /* Arrays of the communicator, owned by the group (one allocation): */
    int *host_of;     /* [size] host index of every rank */
    int *local_of;    /* [size] local rank of every rank */
    int *order;       /* [size] host-major order: ranks host by host, in rank order in a host;
                         rings follow it so intra-host hops go over shared memory */
    int *position;    /* [size] inverse of order: position[r] is r's place in order */
    int *host_first;  /* [cross_size + 1] host h holds order[host_first[h] .. host_first[h+1]) */
    int *local_ranks; /* [local_size] the ranks of this host (= order + host_first[cross_rank]);
                         local_ranks[0] is the host's leader */
} terse__hostgroup_t;

/**
 * Groups @n ranks by host. @ids holds n identities, @stride bytes apart (an allgather result);
 * each is compared up to its first NUL or @stride bytes. @rank is this rank.
 * Returns TERSE_OK and fills @hg_p (release it), TERSE_ERR_INVALID_ARG for bad arguments,
 * TERSE_ERR_NO_MEMORY.
 */
terse_status_t terse__hostgroup_compute(const char *ids, size_t stride, int n, int rank,
                                        terse__hostgroup_t *hg_p);

/* Same from an array of @n NUL-terminated strings. */
terse_status_t terse__hostgroup_compute_strv(const char *const *ids, int n, int rank,
                                             terse__hostgroup_t *hg_p);

/* Frees the arrays. NULL-safe and idempotent. */
void terse__hostgroup_release(terse__hostgroup_t *hg);

#endif
