#include "config.h"

#include "log.h"

#include <terse/comm.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char **environ;

/* CFG_CHOICE: a string that must be one of the '|'-separated words that start its doc.
 * CFG_DOUBLE is at least 0; CFG_SDOUBLE may be negative (a value whose doc gives negatives a
 * meaning). */
typedef enum {
    CFG_INT,
    CFG_DOUBLE,
    CFG_SDOUBLE,
    CFG_SIZE,
    CFG_STRING,
    CFG_LOGLEVEL,
    CFG_CHOICE
} cfg_type_t;

typedef struct cfg_entry {
    const char *name;
    const char *dflt;
    cfg_type_t type;
    size_t offset;
    size_t size; /* strings: capacity */
    const char *doc;
} cfg_entry_t;

/* A CFG_CHOICE that requests read, also kept as an enum: its words indexed by the enum's
 * values (in the order of the doc's words), the string's field and the enum's. */
typedef struct cfg_enum {
    const char *name;
    const char *const *words;
    size_t nwords;
    size_t str_offset;
    size_t enum_offset;
} cfg_enum_t;

#define FIELD(f) offsetof(terse__config_t, f), sizeof(((terse__config_t *)0)->f)

/* The words of each enum-backed choice, in the order of its doc's words below. */
static const char *const allreduce_algo_words[] = {
    [TERSE__ALLREDUCE_ALGO_AUTO] = "auto",
    [TERSE__ALLREDUCE_ALGO_RECURSIVE_DOUBLING] = "recursive_doubling",
    [TERSE__ALLREDUCE_ALGO_RING] = "ring",
};
static const char *const compressed_algo_words[] = {
    [TERSE_COMPRESSED_ALGO_AUTO] = "auto",
    [TERSE_COMPRESSED_ALGO_SPARSE_ALLGATHER] = "sparse_allgather",
    [TERSE_COMPRESSED_ALGO_SPARSE_RS_AG] = "sparse_rs_ag",
    [TERSE_COMPRESSED_ALGO_SIGN_ALLGATHER] = "sign_allgather",
    [TERSE_COMPRESSED_ALGO_SIGN_A2A_AG] = "sign_a2a_ag",
    [TERSE_COMPRESSED_ALGO_DENSE] = "dense",
};
static const char *const hierarchy_words[] = {
    [TERSE_HIERARCHY_NONE] = "none",
    [TERSE_HIERARCHY_NODE] = "node",
};
static const char *const checksum_words[] = {
    [TERSE__CHECKSUM_COMPRESSED] = "compressed",
    [TERSE__CHECKSUM_ALL] = "all",
    [TERSE__CHECKSUM_NONE] = "none",
};
_Static_assert(sizeof(allreduce_algo_words) / sizeof(char *) == TERSE__ALLREDUCE_ALGO_LAST,
               "a word per TERSE_ALLREDUCE_ALGO choice");
_Static_assert(sizeof(compressed_algo_words) / sizeof(char *) == TERSE_COMPRESSED_ALGO_LAST,
               "a word per TERSE_COMPRESSED_ALGO choice");
_Static_assert(sizeof(hierarchy_words) / sizeof(char *) == TERSE_HIERARCHY_LAST,
               "a word per TERSE_HIERARCHY choice");
_Static_assert(sizeof(checksum_words) / sizeof(char *) == TERSE__CHECKSUM_LAST,
               "a word per TERSE_CHECKSUM choice");
/* load() stores the index through an int. */
_Static_assert(sizeof(terse__allreduce_algo_t) == sizeof(int) &&
                   sizeof(terse_compressed_algo_t) == sizeof(int) &&
                   sizeof(terse_hierarchy_t) == sizeof(int) &&
                   sizeof(terse__checksum_t) == sizeof(int),
               "choice enums are int-sized");

/* The one table of TERSE_* variables. README's configuration table mirrors it. */
static const cfg_entry_t cfg_table[] = {
    {"TERSE_LOG_LEVEL", "warn", CFG_LOGLEVEL, FIELD(log_level),
     "error|warn|info|debug|trace"},
    {"TERSE_TIMEOUT", "60", CFG_DOUBLE, FIELD(timeout),
     "seconds a collective waits for a peer before TERSE_ERR_TIMEOUT"},
    {"TERSE_PROGRESS_THREAD", "0", CFG_INT, FIELD(progress_thread),
     "1: a background thread drives UCX progress"},
    {"TERSE_SPIN_US", "200", CFG_SDOUBLE, FIELD(spin_us),
     "microseconds a waiting thread polls the network before it sleeps until the next event "
     "(ranks that share cores then leave them to the ranks with work); negative: never sleep"},
    {"TERSE_THREADS", "0", CFG_INT, FIELD(threads),
     "threads per rank that compress and decode blocks in parallel (results identical to 1); "
     "0 = the cores of the rank's cpuset over the ranks of its host that share them"},
    {"TERSE_HOST_ID", "", CFG_STRING, FIELD(host_id),
     "host identity for local ranks (default hostname + boot id); tests use it to emulate hosts"},
    {"TERSE_ALLREDUCE_ALGO", "auto", CFG_CHOICE, FIELD(allreduce_algo),
     "auto|recursive_doubling|ring: dense allreduce algorithm"},
    {"TERSE_SMALL_MSG_BYTES", "65536", CFG_SIZE, FIELD(small_msg_bytes),
     "dense allreduce below this many bytes uses recursive doubling"},
    {"TERSE_EAGER_HDR_BYTES", "8192", CFG_SIZE, FIELD(eager_hdr_bytes),
     "payloads up to this size share one message with their header"},
    {"TERSE_COMPRESSED_ALGO", "auto", CFG_CHOICE, FIELD(compressed_algo),
     "auto|sparse_allgather|sparse_rs_ag|sign_allgather|sign_a2a_ag|dense"},
    {"TERSE_PIPELINE_BYTES", "4194304", CFG_SIZE, FIELD(pipeline_bytes),
     "compressed allreduce: input bytes compressed per chunk while earlier chunks travel "
     "(0: compress everything, then send)"},
    {"TERSE_NONFINITE_PASSTHROUGH", "0", CFG_INT, FIELD(nonfinite_passthrough),
     "1: compress NaN/Inf like other values instead of failing with TERSE_ERR_NONFINITE"},
    {"TERSE_SIMD", "auto", CFG_CHOICE, FIELD(simd), "auto|avx512|avx2|scalar: kernel dispatch"},
    {"TERSE_BIND", "auto", CFG_STRING, FIELD(bind),
     "auto|none|<cpulist>: where progress/compression threads run"},
    {"TERSE_HIERARCHY", "none", CFG_CHOICE, FIELD(hierarchy),
     "none|node: node = compressed allreduce averages within each host, then compresses among "
     "one leader per host"},
    {"TERSE_CHECKSUM", "compressed", CFG_CHOICE, FIELD(checksum),
     "compressed|all|none: which collectives' messages carry a payload checksum that receivers "
     "verify (compressed: compressed allreduce and internal exchanges); the same on every rank"},
    {"TERSE_FAULT_INJECT", "", CFG_STRING, FIELD(fault_inject),
     "for testing only: KIND:rank=R,seq=S[,step=T][,peer=P][,at=B][,len=L] makes rank R "
     "misbehave in its call with sequence number S (KIND corrupt: payload bytes [B, B+L) sent "
     "as 0xff after the header is built; truncate: payload sent L bytes short of what its "
     "header announces; kill: SIGKILL itself after posting the send)"},
    {"TERSE_PMPI_ENABLE", "1", CFG_INT, FIELD(pmpi_enable),
     "libterse_pmpi.so (LD_PRELOAD): 0 passes every MPI call to Open MPI unchanged"},
    {"TERSE_PMPI_THRESHOLD", "1048576", CFG_SIZE, FIELD(pmpi_threshold),
     "libterse_pmpi.so: calls moving fewer bytes than this (count x datatype size; allgather(v): "
     "the whole result) stay with MPI; must be the same on every rank"},
    /* allgather(v) on by default since they were 1.2-2x faster on the emulated 1 Gbit/s
     * network (README); bcast stays off (no gain from 16 MiB) */
    {"TERSE_PMPI_COLLECTIVES", "allreduce,iallreduce,allgather,allgatherv", CFG_STRING,
     FIELD(pmpi_collectives),
     "libterse_pmpi.so: comma-separated calls terse takes over, of allreduce|iallreduce|"
     "allgather|allgatherv|bcast|all|none; the same on every rank"},
    {"TERSE_PMPI_TIMEOUT", "0", CFG_DOUBLE, FIELD(pmpi_timeout),
     "libterse_pmpi.so: seconds an intercepted call may take before it fails (0: no limit, "
     "as in MPI)"},
    {"TERSE_PMPI_PROGRESS_THREAD", "1", CFG_INT, FIELD(pmpi_progress_thread),
     "libterse_pmpi.so: 1 = a thread drives MPI_Iallreduces on terse while the program is in "
     "other MPI calls or computing (MPI's progress rule), asleep when none is in flight; "
     "0 = they advance only inside MPI_Wait/MPI_Test"},
    {"TERSE_RANK", "", CFG_STRING, FIELD(rank_env), "rank for the environment rendezvous"},
    {"TERSE_SIZE", "", CFG_STRING, FIELD(size_env), "rank count for the environment rendezvous"},
    {"TERSE_ROOT_ADDR", "", CFG_STRING, FIELD(root_addr),
     "host:port where rank 0 listens for the environment rendezvous"},
    {"TERSE_C10D_MODULE", "", CFG_STRING, FIELD(c10d_module),
     "path of the torch backend's extension (_c10d*.so) for terse.torch to load instead of "
     "the installed one (build trees, tests)"},
    {"TERSE_TORCH_MALLOC", "keep", CFG_STRING, FIELD(torch_malloc),
     "keep|system: keep makes terse.torch ask glibc to reuse freed large blocks instead of "
     "unmapping them, so autograd's per-step gradient buffers are not page-faulted in again "
     "every backward; system leaves malloc as it is"},
};

#define CHOICE_ENUM(env, w, str, id)                                                   \
    {env, w, sizeof(w) / sizeof(w[0]), offsetof(terse__config_t, str),                   \
     offsetof(terse__config_t, id)}
static const cfg_enum_t cfg_enums[] = {
    CHOICE_ENUM("TERSE_ALLREDUCE_ALGO", allreduce_algo_words, allreduce_algo, allreduce_algo_id),
    CHOICE_ENUM("TERSE_COMPRESSED_ALGO", compressed_algo_words, compressed_algo,
                compressed_algo_id),
    CHOICE_ENUM("TERSE_HIERARCHY", hierarchy_words, hierarchy, hierarchy_id),
    CHOICE_ENUM("TERSE_CHECKSUM", checksum_words, checksum, checksum_id),
};

static terse__config_t cfg;

const char *terse_compressed_algo_name(terse_compressed_algo_t algo)
{
    return (unsigned)algo < TERSE_COMPRESSED_ALGO_LAST ? compressed_algo_words[algo] : "invalid";
}

const char *terse_hierarchy_name(terse_hierarchy_t hierarchy)
{
    return (unsigned)hierarchy < TERSE_HIERARCHY_LAST ? hierarchy_words[hierarchy] : "invalid";
}

static int word_index(const char *const *words, int n, const char *word)
{
    for (int i = 0; word && i < n; i++)
        if (strcasecmp(words[i], word) == 0)
            return i;
    return -1;
}

terse_status_t terse_compressed_algo_parse(const char *word, terse_compressed_algo_t *out_p)
{
    int i = word_index(compressed_algo_words, TERSE_COMPRESSED_ALGO_LAST, word);
    if (i < 0 || !out_p)
        return TERSE_ERR_INVALID_ARG;
    *out_p = (terse_compressed_algo_t)i;
    return TERSE_OK;
}

terse_status_t terse_hierarchy_parse(const char *word, terse_hierarchy_t *out_p)
{
    int i = word_index(hierarchy_words, TERSE_HIERARCHY_LAST, word);
    if (i < 0 || !out_p)
        return TERSE_ERR_INVALID_ARG;
    *out_p = (terse_hierarchy_t)i;
    return TERSE_OK;
}
static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

static int parse_level(const char *v)
{
    for (int i = 0; i < 5; i++) {
        if (strcasecmp(v, level_names[i]) == 0)
            return i;
    }
    return -1;
}

/* Sizes accept k/m/g suffixes (powers of two). */
static int parse_size(const char *v, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v)
        return -1;
    switch (*end) {
    case 'k': case 'K': x <<= 10; end++; break;
    case 'm': case 'M': x <<= 20; end++; break;
    case 'g': case 'G': x <<= 30; end++; break;
    default: break;
    }
    if (*end != '\0')
        return -1;
    *out = (size_t)x;
    return 0;
}

static int apply(terse__config_t *c, const cfg_entry_t *e, const char *v)
{
    char *p = (char *)c + e->offset;
    char *end;
    switch (e->type) {
    case CFG_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end)
            return -1;
        *(int *)p = (int)x;
        return 0;
    }
    case CFG_DOUBLE:
    case CFG_SDOUBLE: {
        double x = strtod(v, &end);
        if (end == v || *end || (x < 0 && e->type == CFG_DOUBLE))
            return -1;
        *(double *)p = x;
        return 0;
    }
    case CFG_SIZE:
        return parse_size(v, (size_t *)p);
    case CFG_LOGLEVEL: {
        int l = parse_level(v);
        if (l < 0)
            return -1;
        *(int *)p = l;
        return 0;
    }
    case CFG_CHOICE: {
        size_t n = strlen(v), words = strcspn(e->doc, ":");
        int ok = 0;
        for (const char *w = e->doc; w < e->doc + words && !ok;) {
            size_t wl = strcspn(w, "|:");
            ok = wl == n && !strncmp(w, v, n);
            w += wl + 1;
        }
        if (!ok)
            return -1;
    } /* fall through */
    case CFG_STRING:
        if (strlen(v) >= e->size)
            return -1;
        strcpy(p, v);
        return 0;
    }
    return -1;
}

/* 1 if the words that start @p doc are @p en's, in order: the doc is what users read and what
 * apply() accepts, the words give the enum's values. */
static int words_match_doc(const cfg_enum_t *en, const char *doc)
{
    const char *w = doc, *end = doc + strcspn(doc, ":");
    size_t i = 0;
    for (; w < end && i < en->nwords; i++) {
        size_t wl = strcspn(w, "|:");
        if (wl != strlen(en->words[i]) || strncmp(w, en->words[i], wl) != 0)
            return 0;
        w += wl + 1;
    }
    return w >= end && i == en->nwords;
}

/* The enums of the (validated) choices in @p c: parsed here once, so requests compare no
 * strings. A word the enum lacks is a bug (the two lists drifted), logged, and reads as 0. */
static void set_choice_enums(terse__config_t *c)
{
    for (size_t k = 0; k < sizeof(cfg_enums) / sizeof(cfg_enums[0]); k++) {
        const cfg_enum_t *en = &cfg_enums[k];
        const char *v = (const char *)c + en->str_offset;
        size_t i = 0;
        while (i < en->nwords && strcmp(en->words[i], v) != 0)
            i++;
        if (i == en->nwords) {
            terse_log_error("%s: '%s' has no enum value (a bug)", en->name, v);
            i = 0;
        }
        *(int *)((char *)c + en->enum_offset) = (int)i;
    }
}

static void check_choice_enums(void)
{
    const size_t n = sizeof(cfg_table) / sizeof(cfg_table[0]);
    for (size_t k = 0; k < sizeof(cfg_enums) / sizeof(cfg_enums[0]); k++) {
        size_t i = 0;
        while (i < n && strcmp(cfg_table[i].name, cfg_enums[k].name) != 0)
            i++;
        if (i == n || cfg_table[i].type != CFG_CHOICE ||
            cfg_table[i].offset != cfg_enums[k].str_offset ||
            !words_match_doc(&cfg_enums[k], cfg_table[i].doc))
            terse_log_error("%s: its table entry and its enum's words differ (a bug)",
                            cfg_enums[k].name);
    }
}

/* Parses into a copy and writes the shared table only when a value changed: a reload (every
 * terse_comm_create does one) must not disturb threads reading the configuration meanwhile,
 * e.g. libterse_pmpi creating one communicator while a collective runs on another. */
static void load(void)
{
    const size_t n = sizeof(cfg_table) / sizeof(cfg_table[0]);
    terse__config_t next;
    memset(&next, 0, sizeof(next));
    for (size_t i = 0; i < n; i++)
        apply(&next, &cfg_table[i], cfg_table[i].dflt);
    /* The log level first so that warnings below obey it. */
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(cfg_table[i].name);
        if (v && apply(&next, &cfg_table[i], v) != 0) {
            apply(&next, &cfg_table[i], cfg_table[i].dflt);
            terse__log(TERSE_LOG_LEVEL_WARN, __FILE__, __LINE__,
                       "invalid value '%s' for %s, using default '%s' (%s)", v, cfg_table[i].name,
                       cfg_table[i].dflt, cfg_table[i].doc);
        }
    }
    set_choice_enums(&next);
    if (memcmp(&next, &cfg, sizeof(cfg)) != 0)
        memcpy(&cfg, &next, sizeof(cfg));
    if (terse__log_level_current != cfg.log_level)
        terse__log_level_current = cfg.log_level;
    for (char **env = environ; env && *env; env++) {
        if (strncmp(*env, "TERSE_", 6) != 0)
            continue;
        size_t len = strcspn(*env, "=");
        int known = 0;
        for (size_t i = 0; i < n && !known; i++)
            known = strlen(cfg_table[i].name) == len && !strncmp(cfg_table[i].name, *env, len);
        /* Test and launcher helpers may add their own TERSE_TEST_* variables. */
        if (!known && strncmp(*env, "TERSE_TEST_", 11) != 0)
            terse_log_warn("unknown environment variable %.*s ignored", (int)len, *env);
    }
}

static void first_load(void)
{
    check_choice_enums();
    load();
}

const terse__config_t *terse__config(void)
{
    pthread_once(&cfg_once, first_load);
    return &cfg;
}

void terse__config_reload(void)
{
    pthread_once(&cfg_once, first_load);
    pthread_mutex_lock(&cfg_lock);
    load();
    pthread_mutex_unlock(&cfg_lock);
}

/* The value in effect (an invalid setting shows as the default it fell back to). */
static void format_value(const cfg_entry_t *e, char *buf, size_t len)
{
    const char *p = (const char *)&cfg + e->offset;
    switch (e->type) {
    case CFG_INT: snprintf(buf, len, "%d", *(const int *)p); break;
    case CFG_DOUBLE:
    case CFG_SDOUBLE: snprintf(buf, len, "%g", *(const double *)p); break;
    case CFG_SIZE: snprintf(buf, len, "%zu", *(const size_t *)p); break;
    case CFG_LOGLEVEL: snprintf(buf, len, "%s", level_names[*(const int *)p]); break;
    default: snprintf(buf, len, "%s", p[0] ? p : "\"\""); break;
    }
}

void terse__config_print(FILE *out)
{
    char v[256];
    terse__config();
    for (size_t i = 0; i < sizeof(cfg_table) / sizeof(cfg_table[0]); i++) {
        format_value(&cfg_table[i], v, sizeof(v));
        fprintf(out, "%-28s = %-12s (default %s) %s\n", cfg_table[i].name, v,
                cfg_table[i].dflt[0] ? cfg_table[i].dflt : "\"\"", cfg_table[i].doc);
    }
}

void terse_config_print(void *out)
{
    terse__config_print(out ? (FILE *)out : stdout);
}
