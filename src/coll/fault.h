/* Test-only fault injection (TERSE_FAULT_INJECT, see core/config.c): garbles, truncates or
 * dies in one send of the one call it names, so tests exercise the receivers' validation and
 * the abort protocol over the real transport. Requests carry a terse__fault_t that stays
 * TERSE_FAULT_NONE unless armed; the send path tests that one field and leaves the rest to
 * fault.c. */
#ifndef TERSE_COLL_FAULT_H
#define TERSE_COLL_FAULT_H

#include <stddef.h>

typedef enum {
    TERSE_FAULT_NONE,
    TERSE_FAULT_CORRUPT,
    TERSE_FAULT_TRUNCATE,
    TERSE_FAULT_KILL,
} terse__fault_kind_t;

typedef struct terse__fault {
    terse__fault_kind_t kind;
    int step, peer; /* -1: any */
    size_t at, len; /* corrupt: payload bytes [at, at + len) go out as 0xff; truncate: len cut */
    void *copies;   /* garbled payload copies, a list freed with the request */
} terse__fault_t;

struct terse_request;
struct terse__xfer;

/* Arms req->fault when TERSE_FAULT_INJECT names this rank and the request's sequence number
 * (called once the request has its number). Costs one byte test when the variable is unset. */
void terse__fault_arm(struct terse_request *req);
/* Posts the send @x (header built) of an armed request, with the fault applied when it hits
 * this send; a kill fault ends the process here. */
void terse__fault_post_send(struct terse_request *req, struct terse__xfer *x);
/* Frees the garbled copies (the request's transfers are over). */
void terse__fault_release(terse__fault_t *f);

#endif
