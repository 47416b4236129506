/* Allocation helpers: every block records what it is for, so failures and leaks say so. */
#ifndef TERSE_CORE_ALLOC_H
#define TERSE_CORE_ALLOC_H

#include <stddef.h>

/* malloc that logs "@what" on failure. Returns NULL on failure. */
void *terse__malloc(size_t size, const char *what);
void *terse__calloc(size_t n, size_t size, const char *what);
void *terse__realloc(void *p, size_t size, const char *what);
void terse__free(void *p);

/* Page-aligned, pre-faulted, zeroed buffer for large reusable scratch (first touch costs ~11 us
 * per page on some VMs, so we pay it once at allocation rather than in the hot path). */
void *terse__alloc_scratch(size_t size, const char *what);
void terse__free_scratch(void *p, size_t size);

/*
 * Where scratch memory comes from. Layers above core (src/topo) provide one that places pages on
 * a NUMA node; core only calls it. Contract of @alloc: like terse__alloc_scratch (page-aligned,
 * pre-faulted, zeroed, NULL after logging on failure) and the block is a private anonymous
 * mapping of @size bytes, so terse__free_scratch releases it: freeing never needs the allocator
 * (nor whatever @ctx points to), which lets memory outlive the object that placed it.
 */
typedef struct terse__allocator {
    void *(*alloc)(void *ctx, size_t size, const char *what);
    void *ctx;
} terse__allocator_t;

/* terse__alloc_scratch through @a; @a NULL (or without alloc): terse__alloc_scratch itself. */
void *terse__alloc_scratch_with(const terse__allocator_t *a, size_t size, const char *what);

/*
 * A grow-only buffer: reuse across calls, reallocate only when a larger size is needed.
 * Not shrunk so steady-state training never allocates.
 */
typedef struct terse__buf {
    void *ptr;
    size_t size;
    const char *what;
    const terse__allocator_t *allocator; /* NULL: plain scratch; must outlive the buffer */
} terse__buf_t;

/* Ensures @buf holds at least @size bytes (from buf->allocator). Returns 0 or -1 (no memory).
 * Contents not kept. */
int terse__buf_reserve(terse__buf_t *buf, size_t size);
void terse__buf_release(terse__buf_t *buf);

#endif
