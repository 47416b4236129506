/* Allocation helpers: every block records what it is for, so failures and leaks say so. */
#ifndef TERSE_CORE_ALLOC_H
#define TERSE_CORE_ALLOC_H

#include <stddef.h>

/* malloc that logs "@what" on failure. Returns NULL on failure. */
void *terse__malloc(size_t size, const char *what);
void *terse__calloc(size_t n, size_t size, const char *what);
void *terse__realloc(void *p, size_t size, const char *what);
void terse__free(void *p);

/* Page-aligned, pre-faulted buffer for large reusable scratch (first touch costs ~11 us per
 * page on some VMs, so we pay it once at allocation rather than in the hot path). */
void *terse__alloc_scratch(size_t size, const char *what);
void terse__free_scratch(void *p, size_t size);

/*
 * A grow-only buffer: reuse across calls, reallocate only when a larger size is needed.
 * Not shrunk so steady-state training never allocates.
 */
typedef struct terse__buf {
    void *ptr;
    size_t size;
    const char *what;
} terse__buf_t;

/* Ensures @buf holds at least @size bytes. Returns 0 or -1 (no memory). Contents not kept. */
int terse__buf_reserve(terse__buf_t *buf, size_t size);
void terse__buf_release(terse__buf_t *buf);

#endif
