/* What the engine's files (request.c, xfer.c, validate.c, abort.c, scratch.c, fault.c) call in
 * each other. Algorithms use comm.h only. */
#ifndef TERSE_COLL_ENGINE_H
#define TERSE_COLL_ENGINE_H

#include "comm.h"

/* Puts send @x (its header built) on the wire with payload @buf/@len, which is the caller's
 * x->buf/x->len except under fault injection. */
void terse__xfer_post_send_bytes(terse_request_h req, terse__xfer_t *x, const void *buf,
                                 size_t len);
/* The first message of a receive of unknown length arrived: header and payload together
 * (done), or a header alone: validate it, then post the payload receive. */
terse_status_t terse__xfer_var_arrived(terse_request_h req, terse__xfer_t *x);
/* Any transfer of the round still referenced by UCX? */
int terse__xfers_pending(terse_request_h req);
void terse__xfers_cancel(terse_request_h req);

/* Compares a received header with what this rank was called with and fails the request
 * saying what differs. @payload_done: the payload arrived, also check its length and
 * checksum. */
terse_status_t terse__xfer_check_header(terse_request_h req, terse__xfer_t *x, int payload_done);

#endif
