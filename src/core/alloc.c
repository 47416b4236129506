#include "alloc.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *terse__malloc(size_t size, const char *what)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        terse_log_error("failed to allocate %zu bytes for %s", size, what);
    return p;
}

void *terse__calloc(size_t n, size_t size, const char *what)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        terse_log_error("failed to allocate %zu x %zu bytes for %s", n, size, what);
    return p;
}

void *terse__realloc(void *p, size_t size, const char *what)
{
    void *q = realloc(p, size ? size : 1);
    if (!q)
        terse_log_error("failed to reallocate %zu bytes for %s", size, what);
    return q;
}

void terse__free(void *p)
{
    free(p);
}

void *terse__alloc_scratch(size_t size, const char *what)
{
    if (size == 0)
        size = 1;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    if (p == MAP_FAILED) {
        terse_log_error("failed to map %zu bytes for %s: %m", size, what);
        return NULL;
    }
    return p;
}

void *terse__alloc_scratch_with(const terse__allocator_t *a, size_t size, const char *what)
{
    if (a && a->alloc)
        return a->alloc(a->ctx, size ? size : 1, what);
    return terse__alloc_scratch(size, what);
}

void terse__free_scratch(void *p, size_t size)
{
    if (p)
        munmap(p, size ? size : 1);
}

int terse__buf_reserve(terse__buf_t *buf, size_t size)
{
    if (size <= buf->size)
        return 0;
    /* Grow geometrically so a sequence of slightly larger requests costs O(log) remaps. */
    size_t want = buf->size ? buf->size : 4096;
    while (want < size)
        want *= 2;
    void *p =
        terse__alloc_scratch_with(buf->allocator, want, buf->what ? buf->what : "scratch buffer");
    if (!p)
        return -1;
    terse__free_scratch(buf->ptr, buf->size);
    buf->ptr = p;
    buf->size = want;
    return 0;
}

void terse__buf_release(terse__buf_t *buf)
{
    terse__free_scratch(buf->ptr, buf->size);
    buf->ptr = NULL;
    buf->size = 0;
}
