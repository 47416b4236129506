/* Picks the kernel table once: TERSE_SIMD if set, else the widest the CPU runs. */
#include "kernels.h"

#include "core/config.h"
#include "core/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static _Atomic(const terse__ckernels_t *) current;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

int terse__ckernels_supported(const char *name)
{
    if (!strcmp(name, "scalar"))
        return 1;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!strcmp(name, "avx2"))
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") &&
               __builtin_cpu_supports("popcnt");
    if (!strcmp(name, "avx512"))
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
#endif
    return 0;
}

static const terse__ckernels_t *by_name(const char *name)
{
    if (!strcmp(name, "scalar"))
        return &terse__ckernels_scalar;
    if (!strcmp(name, "avx2"))
        return &terse__ckernels_avx2;
    if (!strcmp(name, "avx512"))
        return &terse__ckernels_avx512;
    return NULL;
}

static const terse__ckernels_t *best(void)
{
    if (terse__ckernels_supported("avx512"))
        return &terse__ckernels_avx512;
    if (terse__ckernels_supported("avx2"))
        return &terse__ckernels_avx2;
    return &terse__ckernels_scalar;
}

static void init(void)
{
    const char *want = terse__config()->simd;
    const terse__ckernels_t *k = best();
    if (strcmp(want, "auto") != 0) {
        const terse__ckernels_t *w = by_name(want);
        if (!w)
            terse_log_warn("unknown TERSE_SIMD '%s', using %s", want, k->name);
        else if (!terse__ckernels_supported(want))
            terse_log_warn("TERSE_SIMD=%s but this cpu lacks it, using %s", want, k->name);
        else
            k = w;
    }
    terse_log_debug("compression kernels: %s", k->name);
    atomic_store(&current, k);
}

const terse__ckernels_t *terse__ckernels(void)
{
    const terse__ckernels_t *k = atomic_load_explicit(&current, memory_order_acquire);
    if (k)
        return k;
    pthread_once(&init_once, init);
    return atomic_load(&current);
}

int terse__ckernels_set(const char *name)
{
    pthread_once(&init_once, init);
    const terse__ckernels_t *k = strcmp(name, "auto") ? by_name(name) : best();
    if (!k || !terse__ckernels_supported(k->name))
        return -1;
    atomic_store(&current, k);
    return 0;
}
