/* Phase accounting (include/terse/prof.h), internal side. A phase is timed between
 * terse__prof_begin and terse__prof_end on one thread; the bytes it moves are the explicit
 * counts passed to terse__prof_end plus what lower layers (the codecs) report meanwhile with
 * terse__prof_io into a thread-local tally, so the codecs need not know about requests.
 * Phases never nest. */
#ifndef TERSE_CORE_PROF_H
#define TERSE_CORE_PROF_H

#include <terse/prof.h>

#include <stdint.h>

typedef struct terse__prof {
    int on; /* accounting was on when the request was created */
    terse_phase_stats_t ph[TERSE_PHASE_LAST];
} terse__prof_t;

extern int terse__prof_enabled;

typedef struct terse__prof_tally {
    uint64_t rd, wr;
} terse__prof_tally_t;
extern _Thread_local terse__prof_tally_t terse__prof_tls;

double terse__prof_clock(void);

/* Starts a phase: 0 when @p is not accounting, else the time (the tally restarts). */
static inline double terse__prof_begin(const terse__prof_t *p)
{
    if (!p->on)
        return 0.0;
    terse__prof_tls = (terse__prof_tally_t){0, 0};
    return terse__prof_clock();
}

/* Ends the phase begun at @t0: time, @rd / @wr bytes and the codecs' tally go to @ph. */
void terse__prof_end(terse__prof_t *p, terse_phase_t ph, double t0, uint64_t rd, uint64_t wr);

/* A lower layer read @rd and wrote @wr bytes for the phase running on this thread. */
static inline void terse__prof_io(uint64_t rd, uint64_t wr)
{
    if (terse__prof_enabled) {
        terse__prof_tls.rd += rd;
        terse__prof_tls.wr += wr;
    }
}

#endif
