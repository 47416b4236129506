/* A small process-wide thread pool: a parallel-for over parts with a static partition, so
 * which thread computes what never changes a result. Part 0 always runs on the submitting
 * thread and part i (i >= 1) always on worker i - 1, which lets a caller keep per-thread state
 * (the codecs' thread-local views) across two runs of one acquisition. */
#ifndef TERSE_CORE_POOL_H
#define TERSE_CORE_POOL_H

#include <stddef.h>

/* Most threads a pool has (the caller included). */
#define TERSE__POOL_MAX 64

/* Runs part @part of @nparts; must not submit to the pool itself (it would run inline). */
typedef void (*terse__pool_func_t)(void *arg, int part, int nparts);

/* Called first thing in each new worker (the topology layer binds it to a core there). */
typedef void (*terse__pool_bind_func_t)(void *ctx, int worker);

/* Takes a reference on the pool, starting it with @threads threads (the caller included; 1:
 * no workers) on the first reference; later references keep the running size. @bind (may be
 * NULL) runs in each new worker before terse__pool_start returns, so @ctx need not outlive
 * the call; @at_exit (may be NULL) runs in each worker as it stops (frees its thread-locals).
 * 0, or -1 when some threads could not be started (the pool runs with those that did). */
int terse__pool_start(int threads, terse__pool_bind_func_t bind, void *ctx, void (*at_exit)(void));

/* Drops a reference; the last one joins the workers. */
void terse__pool_stop(void);

/* Threads of the running pool, caller included (1 when none). */
int terse__pool_size(void);

/*
 * Reserves the pool for up to @want parts. Returns how many parts the caller may run: 1 when
 * the pool is busy (another submitter holds it), when called from inside a part (nesting), or
 * when it has no workers; the caller then runs inline and must not call terse__pool_release.
 * Above 1 the caller holds the pool until terse__pool_release. Never blocks on a busy pool.
 */
int terse__pool_acquire(int want);

/* Runs f(arg, i, nparts) for every i < nparts (<= what terse__pool_acquire returned) and
 * returns when all are done. nparts 1 runs f(arg, 0, 1) inline. */
void terse__pool_run(int nparts, terse__pool_func_t f, void *arg);

void terse__pool_release(void);

/* Runs of more than one part so far (tests check that work was really split). */
unsigned long terse__pool_parallel_runs(void);

/* Part i of [0, n) split into nparts: [n*i/nparts, n*(i+1)/nparts). */
static inline size_t terse__pool_part_lo(size_t n, int i, int nparts)
{
    return (size_t)((unsigned __int128)n * (unsigned)i / (unsigned)nparts);
}

#endif
