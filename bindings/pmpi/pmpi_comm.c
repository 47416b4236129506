/* One terse communicator per MPI communicator: created on first use inside a collective call,
 * kept as an attribute (copied by nobody: a dup gets its own), destroyed when MPI deletes the
 * attribute (MPI_Comm_free) or at MPI_Finalize. */
#include "pmpi.h"

#include "core/config.h"
#include "core/log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Guards the keyval, the list of live entries, reference counts and announcements. Never held
 * across an MPI call that can call back into this file (delete callbacks, request frees). */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_keyval = MPI_KEYVAL_INVALID;
static terse__pmpi_comm_t *g_live;
static int g_finalizing; /* set once MPI_Finalize's barrier passed (see terse__pmpi_finalize) */

static const char *const kind_names[TERSE_PMPI_KIND_LAST] = {
    [TERSE_PMPI_ALLREDUCE] = "allreduce",
    [TERSE_PMPI_IALLREDUCE] = "iallreduce",
    [TERSE_PMPI_ALLGATHER] = "allgather",
    [TERSE_PMPI_ALLGATHERV] = "allgatherv",
    [TERSE_PMPI_BCAST] = "bcast",
};
static const char *const call_names[TERSE_PMPI_KIND_LAST] = {
    [TERSE_PMPI_ALLREDUCE] = "MPI_Allreduce",
    [TERSE_PMPI_IALLREDUCE] = "MPI_Iallreduce",
    [TERSE_PMPI_ALLGATHER] = "MPI_Allgather",
    [TERSE_PMPI_ALLGATHERV] = "MPI_Allgatherv",
    [TERSE_PMPI_BCAST] = "MPI_Bcast",
};

static pthread_once_t settings_once = PTHREAD_ONCE_INIT;
static unsigned wanted; /* bit per kind */
static size_t threshold;

static void parse_settings(void)
{
    const terse__config_t *cfg = terse__config();
    char list[sizeof(cfg->pmpi_collectives)];
    char *save = NULL;
    snprintf(list, sizeof(list), "%s", cfg->pmpi_collectives);
    threshold = cfg->pmpi_threshold;
    if (!cfg->pmpi_enable)
        return;
    for (char *w = strtok_r(list, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
        int k, found = 0;
        if (!strcmp(w, "all")) {
            wanted = (1u << TERSE_PMPI_KIND_LAST) - 1;
            continue;
        }
        if (!strcmp(w, "none")) {
            wanted = 0;
            continue;
        }
        for (k = 0; k < TERSE_PMPI_KIND_LAST; k++) {
            if (!strcmp(w, kind_names[k])) {
                wanted |= 1u << k;
                found = 1;
            }
        }
        if (!found)
            terse_log_warn("TERSE_PMPI_COLLECTIVES: unknown call '%s' ignored (allreduce, "
                           "iallreduce, allgather, allgatherv, bcast, all, none)", w);
    }
}

int terse__pmpi_wants(terse__pmpi_kind_t kind)
{
    pthread_once(&settings_once, parse_settings);
    return (wanted >> kind) & 1u;
}

size_t terse__pmpi_threshold(void)
{
    pthread_once(&settings_once, parse_settings);
    return threshold;
}

/* terse's bootstrap over the communicator itself, through PMPI so that an intercepted
 * MPI_Allgather never sees it. */
static terse_status_t oob_allgather(const void *sbuf, void *rbuf, size_t msglen, void *info)
{
    MPI_Comm comm = *(MPI_Comm *)info;
    if (msglen > (size_t)1 << 30)
        return TERSE_ERR_INVALID_ARG;
    return PMPI_Allgather(sbuf, (int)msglen, MPI_BYTE, rbuf, (int)msglen, MPI_BYTE, comm) ==
                   MPI_SUCCESS
               ? TERSE_OK
               : TERSE_ERR_BOOTSTRAP;
}

static void entry_destroy(terse__pmpi_comm_t *e)
{
    if (e->tcomm)
        terse_comm_destroy(e->tcomm);
    free(e);
}

void terse__pmpi_comm_ref(terse__pmpi_comm_t *e)
{
    pthread_mutex_lock(&g_lock);
    e->refs++;
    pthread_mutex_unlock(&g_lock);
}

void terse__pmpi_comm_unref(terse__pmpi_comm_t *e)
{
    pthread_mutex_lock(&g_lock);
    int last = --e->refs == 0;
    pthread_mutex_unlock(&g_lock);
    if (last)
        entry_destroy(e);
}

/* MPI deletes the attribute: the communicator is being freed (or MPI_Finalize asked). An
 * MPI_Iallreduce still in flight keeps the terse communicator until its request is freed.
 * MPI_Comm_free is collective but need not synchronise, so the members meet first: a rank
 * that finished the last collective early would otherwise close its connections while a peer
 * is still in that collective waiting on a third rank, and UCX tells that peer the leaver
 * failed ("Endpoint timeout": the 64 MiB MPI_Allgather failures at 1 Gbit/s were this, at
 * MPI_Finalize). */
static int delete_attr(MPI_Comm comm, int keyval, void *val, void *extra)
{
    terse__pmpi_comm_t *e = val, **pp;
    if (!g_finalizing)
        PMPI_Barrier(comm);
    pthread_mutex_lock(&g_lock);
    for (pp = &g_live; *pp && *pp != e; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = e->next;
    pthread_mutex_unlock(&g_lock);
    terse__pmpi_comm_unref(e);
    return MPI_SUCCESS;
}

static int keyval(void)
{
    pthread_mutex_lock(&g_lock);
    if (g_keyval == MPI_KEYVAL_INVALID &&
        PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, delete_attr, &g_keyval, NULL) !=
            MPI_SUCCESS) {
        g_keyval = MPI_KEYVAL_INVALID;
        terse_log_warn("pmpi: no attribute keyval; every call stays with MPI");
    }
    int kv = g_keyval;
    pthread_mutex_unlock(&g_lock);
    return kv;
}

/* Makes the terse communicator of @p e. Collective over e->mpi_comm; every rank ends with a
 * communicator or every rank with none (the last step is an agreement). */
static void entry_connect(terse__pmpi_comm_t *e)
{
    const terse__config_t *cfg = terse__config();
    MPI_Comm comm = e->mpi_comm;
    terse_comm_h tcomm = NULL;
    terse_comm_params_t p = {
        .field_mask = TERSE_COMM_PARAM_FIELD_OOB | TERSE_COMM_PARAM_FIELD_TIMEOUT |
                      TERSE_COMM_PARAM_FIELD_PROGRESS_THREAD,
        .oob = {.allgather = oob_allgather, .coll_info = &comm, .rank = e->rank, .size = e->size},
        .progress_thread = 0, /* blocking calls drive it; pmpi_request.c's thread the rest */
        /* MPI has no time limit on a collective: a peer may join it minutes later. */
        .timeout = cfg->pmpi_timeout > 0 ? cfg->pmpi_timeout : 1e9,
    };
    terse_status_t st = terse_comm_create(&p, &tcomm);
    int ok = st == TERSE_OK, all = 0;
    if (PMPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        all = 0;
    if (!all) {
        if (tcomm)
            terse_comm_destroy(tcomm);
        if (e->rank == 0 || !ok)
            terse_log_warn("pmpi: no terse communicator for this MPI communicator (%s); its "
                           "calls stay with MPI", ok ? "another rank failed" : terse_status_string(st));
        return;
    }
    e->tcomm = tcomm;
}

static terse__pmpi_comm_t *entry_create(MPI_Comm comm)
{
    terse__pmpi_comm_t *e = calloc(1, sizeof(*e));
    int inter = 0;
    if (!e)
        return NULL;
    e->mpi_comm = comm;
    e->refs = 1;
    PMPI_Comm_rank(comm, &e->rank);
    PMPI_Comm_size(comm, &e->size);
    PMPI_Comm_test_inter(comm, &inter);
    /* Intercommunicators have two groups terse has no notion of; one rank has nothing to
     * move. Both are decided locally and the same on every rank, so no one connects. */
    if (!inter && e->size > 1)
        entry_connect(e);
    return e;
}

terse__pmpi_comm_t *terse__pmpi_comm_get(MPI_Comm comm)
{
    int kv = keyval(), flag = 0;
    void *val = NULL;
    if (kv == MPI_KEYVAL_INVALID || comm == MPI_COMM_NULL)
        return NULL;
    if (PMPI_Comm_get_attr(comm, kv, &val, &flag) != MPI_SUCCESS)
        return NULL;
    if (flag)
        return ((terse__pmpi_comm_t *)val)->tcomm ? val : NULL;
    terse__pmpi_comm_t *e = entry_create(comm);
    if (!e)
        return NULL; /* out of memory before anyone talked: every rank gets here alike or dies */
    if (PMPI_Comm_set_attr(comm, kv, e) != MPI_SUCCESS) {
        entry_destroy(e);
        return NULL;
    }
    pthread_mutex_lock(&g_lock);
    e->next = g_live;
    g_live = e;
    pthread_mutex_unlock(&g_lock);
    return e->tcomm ? e : NULL;
}

void terse__pmpi_announce(terse__pmpi_comm_t *e, terse__pmpi_kind_t kind)
{
    pthread_mutex_lock(&g_lock);
    int first = !(e->announced & (1u << kind));
    e->announced |= 1u << kind;
    pthread_mutex_unlock(&g_lock);
    if (!first || e->rank != 0 || terse__log_level_current < TERSE_LOG_LEVEL_INFO)
        return;
    char name[MPI_MAX_OBJECT_NAME] = "";
    int len = 0;
    PMPI_Comm_get_name(e->mpi_comm, name, &len);
    terse_log_info("pmpi: terse takes over %s on %s (%d ranks) from %zu bytes", call_names[kind],
                   name[0] ? name : "an unnamed communicator", e->size, terse__pmpi_threshold());
}

void terse__pmpi_finalize(void)
{
    /* Every rank calls this, with or without terse communicators: once all are here, no
     * peer is inside a collective on any of them, and they go in any order (one barrier per
     * communicator could deadlock, as ranks list them in different orders). */
    PMPI_Barrier(MPI_COMM_WORLD);
    g_finalizing = 1;
    int kv = keyval();
    for (;;) {
        pthread_mutex_lock(&g_lock);
        terse__pmpi_comm_t *e = g_live;
        MPI_Comm comm = e ? e->mpi_comm : MPI_COMM_NULL;
        pthread_mutex_unlock(&g_lock);
        if (!e)
            break;
        /* Deleting the attribute runs delete_attr, which unlinks and releases the entry. */
        if (PMPI_Comm_delete_attr(comm, kv) != MPI_SUCCESS)
            delete_attr(comm, kv, e, NULL);
    }
    pthread_mutex_lock(&g_lock);
    if (g_keyval != MPI_KEYVAL_INVALID)
        PMPI_Comm_free_keyval(&g_keyval);
    g_keyval = MPI_KEYVAL_INVALID;
    pthread_mutex_unlock(&g_lock);
}
