/* Checkpoint images of the error-feedback states (ef.c, model_ckpt.c): a writer that either
 * counts bytes (p NULL) or writes them, and a reader that never reads past the end. */
#ifndef TERSE_EF_CKPT_H
#define TERSE_EF_CKPT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct terse__ckpt_wr {
    uint8_t *p; /* NULL: only count */
    size_t off;
} terse__ckpt_wr_t;

static inline void terse__ckpt_put(terse__ckpt_wr_t *w, const void *src, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->off, src, n);
    w->off += n;
}

static inline void terse__ckpt_put_u64(terse__ckpt_wr_t *w, uint64_t x)
{
    terse__ckpt_put(w, &x, 8);
}

#endif
