/* Configuration: every TERSE_* variable is declared once in config.c's table and parsed there. */
#ifndef TERSE_CORE_CONFIG_H
#define TERSE_CORE_CONFIG_H

#include <terse/types.h>

#include <stddef.h>
#include <stdio.h>

/* Choice-valued settings that requests consult, parsed once per (re)load into these enums so
 * that no request compares strings. The words are config.c's (*_words): keep them in step. */
typedef enum terse__allreduce_algo {
    TERSE__ALLREDUCE_ALGO_AUTO = 0,
    TERSE__ALLREDUCE_ALGO_RECURSIVE_DOUBLING,
    TERSE__ALLREDUCE_ALGO_RING,
    TERSE__ALLREDUCE_ALGO_LAST
} terse__allreduce_algo_t;

/* TERSE_COMPRESSED_ALGO and TERSE_HIERARCHY parse into the public enums (terse/types.h): a
 * communicator or a call may choose them too, in the same words. */

typedef enum terse__checksum {
    TERSE__CHECKSUM_COMPRESSED = 0,
    TERSE__CHECKSUM_ALL,
    TERSE__CHECKSUM_NONE,
    TERSE__CHECKSUM_LAST
} terse__checksum_t;

typedef struct terse__config {
    int log_level;
    double timeout;          /* seconds a collective waits for a peer */
    int progress_thread;     /* 0/1 */
    double spin_us;          /* idle waits poll this long before they sleep; < 0: never sleep */
    int threads;             /* compression threads per rank, 0 = from the cpuset */
    char host_id[256];       /* "" = hostname + boot id */
    char allreduce_algo[32]; /* auto|recursive_doubling|ring */
    size_t small_msg_bytes;  /* below: latency-optimal algorithms */
    size_t eager_hdr_bytes;  /* payloads up to this travel in one message with their header */
    char compressed_algo[32];  /* auto|sparse_allgather|sparse_rs_ag|sign_allgather|sign_a2a_ag|dense */
    size_t pipeline_bytes;     /* compressed allreduce chunk (input bytes), 0 = no pipelining */
    int nonfinite_passthrough; /* 0: NaN/Inf input is an error; 1: pass it through */
    char simd[16];             /* auto|avx512|avx2|scalar */
    char bind[256];            /* auto|none|<cpulist> */
    char hierarchy[16];        /* none|node */
    char checksum[16];         /* compressed|all|none: messages with payload checksums */
    char fault_inject[128];    /* testing only: see TERSE_FAULT_INJECT in config.c */
    int pmpi_enable;           /* libterse_pmpi: 0 = everything to PMPI_* */
    size_t pmpi_threshold;     /* libterse_pmpi: smaller calls stay with MPI */
    char pmpi_collectives[128]; /* libterse_pmpi: comma-separated calls taken over */
    double pmpi_timeout;       /* libterse_pmpi: 0 = no limit */
    int pmpi_progress_thread;  /* libterse_pmpi: progress thread for its communicators */
    char rank_env[32], size_env[32], root_addr[256]; /* env bootstrap */
    char c10d_module[512]; /* read by terse.torch (Python), declared here for terse_info */
    char torch_malloc[16]; /* read by terse.torch (Python), declared here for terse_info */
    /* The choices above as enums (the strings stay for printing and names). */
    terse__allreduce_algo_t allreduce_algo_id;
    terse_compressed_algo_t compressed_algo_id;
    terse_hierarchy_t hierarchy_id;
    terse__checksum_t checksum_id;
} terse__config_t;

/* Parsed once (thread-safe); later calls return the same object. */
const terse__config_t *terse__config(void);

/* Re-read the environment (tests change variables between communicators). */
void terse__config_reload(void);

void terse__config_print(FILE *out);

#endif
