/* The pool: workers sleep on a condition variable, a run bumps a generation number and waits
 * until every worker with a part reported done. One submitter at a time (a try-lock), so two
 * users (the caller thread and a progress thread, two communicators) never wait on each
 * other: the second runs its work inline. */
#include "pool.h"

#include "log.h"

#include <pthread.h>
#include <string.h>

typedef struct pool {
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake, done;
    pthread_mutex_t submit; /* held by the submitter between acquire and release */
    pthread_t th[TERSE__POOL_MAX];
    int nworkers, refs, stopping;
    unsigned long gen;   /* bumped per run: the runs of more than one part so far */
    int nparts, pending; /* of the current run */
    terse__pool_func_t f;
    void *arg;
    void (*at_exit)(void);
    terse__pool_bind_func_t bind; /* only during start */
    void *bind_ctx;
    int started; /* workers that ran their bind */
} pool_t;

static pool_t pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .submit = PTHREAD_MUTEX_INITIALIZER,
};

/* Set in workers and in a submitter holding the pool: a nested submission runs inline. */
static _Thread_local int inside;

typedef struct worker_arg {
    int index;
} worker_arg_t;

static worker_arg_t worker_args[TERSE__POOL_MAX];

static void *worker_main(void *p)
{
    int me = ((worker_arg_t *)p)->index;
    inside = 1;
    pthread_mutex_lock(&pool.lock);
    if (pool.bind)
        pool.bind(pool.bind_ctx, me);
    pool.started++;
    pthread_cond_broadcast(&pool.done);
    unsigned long seen = pool.gen;
    for (;;) {
        while (!pool.stopping && pool.gen == seen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.stopping)
            break;
        seen = pool.gen;
        if (me + 1 >= pool.nparts)
            continue;
        terse__pool_func_t f = pool.f;
        void *arg = pool.arg;
        int n = pool.nparts;
        pthread_mutex_unlock(&pool.lock);
        f(arg, me + 1, n);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0)
            pthread_cond_broadcast(&pool.done);
    }
    void (*at_exit)(void) = pool.at_exit;
    pthread_mutex_unlock(&pool.lock);
    if (at_exit)
        at_exit();
    return NULL;
}

static void join_workers(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.stopping = 1;
    pthread_cond_broadcast(&pool.wake);
    int n = pool.nworkers;
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < n; i++)
        pthread_join(pool.th[i], NULL);
    pthread_mutex_lock(&pool.lock);
    pool.nworkers = 0;
    pool.stopping = 0;
    pthread_mutex_unlock(&pool.lock);
}

int terse__pool_start(int threads, terse__pool_bind_func_t bind, void *ctx, void (*at_exit)(void))
{
    pthread_mutex_lock(&pool.lock);
    if (pool.refs++ > 0 || threads <= 1) {
        pthread_mutex_unlock(&pool.lock);
        return 0;
    }
    int want = (threads > TERSE__POOL_MAX ? TERSE__POOL_MAX : threads) - 1, rc = 0;
    pool.bind = bind;
    pool.bind_ctx = ctx;
    pool.at_exit = at_exit;
    pool.started = 0;
    for (int i = 0; i < want; i++) {
        worker_args[i].index = i;
        if (pthread_create(&pool.th[i], NULL, worker_main, &worker_args[i]) != 0) {
            terse_log_warn("compression pool: %d of %d worker threads started", i, want);
            rc = -1;
            break;
        }
        pool.nworkers++;
    }
    while (pool.started < pool.nworkers)
        pthread_cond_wait(&pool.done, &pool.lock);
    pool.bind = NULL;
    pool.bind_ctx = NULL;
    /* a partial pool is fine: the parts of a run are fixed when it is acquired */
    pthread_mutex_unlock(&pool.lock);
    return rc;
}

void terse__pool_stop(void)
{
    pthread_mutex_lock(&pool.lock);
    int last = pool.refs > 0 && --pool.refs == 0;
    pthread_mutex_unlock(&pool.lock);
    if (last)
        join_workers();
}

int terse__pool_size(void)
{
    pthread_mutex_lock(&pool.lock);
    int n = pool.nworkers + 1;
    pthread_mutex_unlock(&pool.lock);
    return n;
}

int terse__pool_acquire(int want)
{
    if (want <= 1 || inside)
        return 1;
    if (pthread_mutex_trylock(&pool.submit) != 0)
        return 1;
    pthread_mutex_lock(&pool.lock);
    int n = pool.nworkers + 1;
    pthread_mutex_unlock(&pool.lock);
    if (n <= 1) {
        pthread_mutex_unlock(&pool.submit);
        return 1;
    }
    inside = 1;
    return want < n ? want : n;
}

void terse__pool_release(void)
{
    inside = 0;
    pthread_mutex_unlock(&pool.submit);
}

unsigned long terse__pool_parallel_runs(void)
{
    pthread_mutex_lock(&pool.lock);
    unsigned long n = pool.gen;
    pthread_mutex_unlock(&pool.lock);
    return n;
}

void terse__pool_run(int nparts, terse__pool_func_t f, void *arg)
{
    if (nparts <= 1) {
        f(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    pool.f = f;
    pool.arg = arg;
    pool.nparts = nparts;
    pool.pending = nparts - 1;
    pool.gen++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    f(arg, 0, nparts);
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
}
