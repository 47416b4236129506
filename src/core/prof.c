/* Phase accounting: the process-wide switch, the clock and the per-request records. */
#include "prof.h"

#include <string.h>
#include <time.h>

int terse__prof_enabled;
_Thread_local terse__prof_tally_t terse__prof_tls;

void terse_phase_accounting(int on)
{
    terse__prof_enabled = on != 0;
}

double terse__prof_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void terse__prof_end(terse__prof_t *p, terse_phase_t ph, double t0, uint64_t rd, uint64_t wr)
{
    if (!p->on)
        return;
    terse_phase_stats_t *s = &p->ph[ph];
    s->seconds += terse__prof_clock() - t0;
    s->bytes_read += rd + terse__prof_tls.rd;
    s->bytes_written += wr + terse__prof_tls.wr;
    s->calls++;
    terse__prof_tls = (terse__prof_tally_t){0, 0};
}

const char *terse_phase_name(terse_phase_t ph)
{
    static const char *const names[TERSE_PHASE_LAST] = {
        [TERSE_PHASE_WORKER_COMPRESS] = "worker_compress",
        [TERSE_PHASE_WORKER_ERROR] = "worker_error",
        [TERSE_PHASE_REDUCE] = "reduce",
        [TERSE_PHASE_SERVER_COMPRESS] = "server_compress",
        [TERSE_PHASE_SERVER_ERROR] = "server_error",
        [TERSE_PHASE_OUTPUT] = "output",
    };
    return (unsigned)ph < TERSE_PHASE_LAST ? names[ph] : "?";
}
