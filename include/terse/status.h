/* terse: status codes shared by every layer of the public API. */
#ifndef TERSE_STATUS_H
#define TERSE_STATUS_H

#include <terse/api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* OK = 0, in progress = 1, errors negative and specific (never reuse a value). */
typedef enum terse_status {
    TERSE_OK = 0,
    TERSE_INPROGRESS = 1,
    TERSE_ERR_INVALID_ARG = -1,   /* a NULL buffer, bad dtype/op/count, bad parameter */
    TERSE_ERR_NO_MEMORY = -2,     /* an allocation or registration failed */
    TERSE_ERR_TRANSPORT = -3,     /* UCX reported an error not covered below */
    TERSE_ERR_TIMEOUT = -4,       /* a peer did not answer within TERSE_TIMEOUT */
    TERSE_ERR_MISMATCH = -5,      /* ranks disagree about a call (count, dtype, op, root, ...) */
    TERSE_ERR_PEER_FAILED = -6,   /* a peer died or its connection broke */
    TERSE_ERR_NONFINITE = -7,     /* NaN or +-Inf in an input that must be finite */
    TERSE_ERR_CORRUPT = -8,       /* a received message failed validation */
    TERSE_ERR_NOT_SUPPORTED = -9, /* valid request this build or algorithm cannot do */
    TERSE_ERR_BOOTSTRAP = -10,    /* out-of-band setup (MPI, TCP rendezvous, callback) failed */
    TERSE_ERR_IO = -11,           /* a file or socket operation failed */
    TERSE_ERR_BUSY = -12,         /* the object has work in flight and cannot do this now */
    TERSE_ERR_INTERNAL = -13,     /* a bug in terse: please report it */
    TERSE_ERR_LAST = -14
} terse_status_t;

/**
 * A static, human-readable name for @p status ("invalid argument", ...).
 * Never NULL; unknown values give "unknown status".
 */
TERSE_API const char *terse_status_string(terse_status_t status);

/** The enumerator's name without prefix ("ERR_MISMATCH"), for bindings. Never NULL. */
TERSE_API const char *terse_status_name(terse_status_t status);

#ifdef __cplusplus
}
#endif
#endif
