/* terse: per-request accounting of where a compressed allreduce spends its time and memory
 * traffic, phase by phase (perf/terse_bench --breakdown prints it). Off by default; when off
 * the hooks cost one load and a branch each. */
#ifndef TERSE_PROF_H
#define TERSE_PROF_H

#include <terse/api.h>
#include <terse/coll.h>
#include <terse/status.h>
#include <terse/types.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The phases of a compressed allreduce, on the rank that runs them. */
typedef enum terse_phase {
    TERSE_PHASE_WORKER_COMPRESS, /* C(Delta_k) into this rank's message */
    TERSE_PHASE_WORKER_ERROR,    /* worker_error = Delta_k - C(Delta_k) */
    TERSE_PHASE_REDUCE,          /* validating and summing the workers' messages (owner) */
    TERSE_PHASE_SERVER_COMPRESS, /* avg = acc / K; double-way: d = e_s + avg, C(d) */
    TERSE_PHASE_SERVER_ERROR,    /* server_error = d - C(d) */
    TERSE_PHASE_OUTPUT,          /* out = 0 + decode(server messages), or the dense copy */
    TERSE_PHASE_LAST
} terse_phase_t;

/** One phase of one request. Bytes are counted from the algorithm (elements touched times
 *  their size, message lengths), not measured by hardware counters. */
typedef struct terse_phase_stats {
    double seconds;
    uint64_t bytes_read, bytes_written;
    uint64_t calls; /* how many times the phase ran (once per segment, typically) */
} terse_phase_stats_t;

/** Turns the accounting on (1) or off (0) for requests created afterwards, process-wide. */
TERSE_API void terse_phase_accounting(int on);

/** Copies @p req's phase records (TERSE_PHASE_LAST of them at most) into @p stats.
 *  All zero when accounting was off at the request's creation.
 * @param [in]  req    A completed request (before terse_request_free).
 * @param [out] stats  @p n records, indexed by terse_phase_t. */
TERSE_API terse_status_t terse_request_phases(terse_request_h req, terse_phase_stats_t *stats,
                                              size_t n);

/** Short lowercase name of @p ph ("worker_compress", ...), "?" when out of range. */
TERSE_API const char *terse_phase_name(terse_phase_t ph);

#ifdef __cplusplus
}
#endif
#endif
