/* What only the files of src/transport see: UCX's own types behind the opaque handles of
 * ucx.h, and the completion bookkeeping every kind of operation shares. */
#ifndef TERSE_TRANSPORT_UCX_PRIV_H
#define TERSE_TRANSPORT_UCX_PRIV_H

#include "ucx.h"

#include <ucp/api/ucp.h>

/* The opaque handles are UCX's pointers, stored as they are. */
static inline ucp_context_h terse__tp_ucp_context(const terse__tp_t *tp)
{
    return (ucp_context_h)tp->context;
}

static inline ucp_worker_h terse__tp_ucp_worker(const terse__tp_t *tp)
{
    return (ucp_worker_h)tp->worker;
}

static inline ucp_ep_h terse__tp_ucp_ep(const terse__tp_t *tp, int peer)
{
    return (ucp_ep_h)tp->eps[peer];
}

/* UCX status codes become terse ones here and nowhere else (ucx.c). */
terse_status_t terse__status_from_ucs(ucs_status_t status);

/* Completion bookkeeping shared by every kind of operation: @p is what the ucp call
 * returned (NULL: done, error, or a request whose callback is terse__tp_send_cb). */
void terse__tp_track(terse__tp_op_t *op, ucs_status_ptr_t p);
void terse__tp_send_cb(void *request, ucs_status_t status, void *user_data);

#endif
