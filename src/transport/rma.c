/* One-sided RMA: slabs registered once per communicator, rkeys exchanged at setup. */
#include "ucx_priv.h"

#include "core/alloc.h"
#include "core/log.h"

#include <string.h>

#define RKEY_MAX 1024 /* packed rkey bytes we reserve per rank in the exchange */

typedef struct slab_info {
    uint64_t addr;
    uint64_t rkey_len;
    char rkey[RKEY_MAX];
} slab_info_t;

/* Every rank's slab address and key, unpacked against this rank's endpoints; on failure
 * nothing of it is left. */
static terse_status_t exchange_rkeys(terse__tp_t *tp, terse__tp_allgather_func_t exchange,
                                     void *ctx, slab_info_t *mine, terse__tp_slab_t *slab)
{
    terse_status_t st = TERSE_ERR_NO_MEMORY;
    slab_info_t *all = terse__calloc(tp->size, sizeof(*all), "rkey exchange");
    slab->remote_addr = terse__calloc(tp->size, sizeof(uint64_t), "remote slab addresses");
    slab->rkeys = terse__calloc(tp->size, sizeof(*slab->rkeys), "remote keys");
    if (all && slab->remote_addr && slab->rkeys)
        st = exchange(ctx, mine, all, sizeof(*mine));
    for (int i = 0; st == TERSE_OK && i < tp->size; i++) {
        slab->remote_addr[i] = all[i].addr;
        ucp_rkey_h rkey = NULL;
        ucs_status_t us = ucp_ep_rkey_unpack(terse__tp_ucp_ep(tp, i), all[i].rkey, &rkey);
        slab->rkeys[i] = (terse__tp_rkey_h)rkey;
        if (us != UCS_OK) {
            terse_log_error("unpacking rank %d's rkey: %s", i, ucs_status_string(us));
            st = terse__status_from_ucs(us);
        }
    }
    terse__free(all);
    if (st == TERSE_OK)
        return TERSE_OK;
    for (int i = 0; slab->rkeys && i < tp->size; i++) {
        if (slab->rkeys[i])
            ucp_rkey_destroy((ucp_rkey_h)slab->rkeys[i]);
    }
    terse__free(slab->remote_addr);
    terse__free(slab->rkeys);
    slab->remote_addr = NULL;
    slab->rkeys = NULL;
    return st;
}

terse_status_t terse__tp_slab_create(terse__tp_t *tp, size_t size,
                                     terse__tp_allgather_func_t exchange, void *ctx,
                                     terse__tp_slab_t *slab)
{
    slab_info_t mine;
    void *packed = NULL;
    size_t packed_len = 0;
    terse_status_t st;
    ucs_status_t us;

    memset(slab, 0, sizeof(*slab));
    memset(&mine, 0, sizeof(mine));
    slab->size = size;
    /* On the rank's NUMA node (the NIC's) when the communicator placed it: the NIC DMAs into
     * it and the rank decodes from it. */
    slab->base = terse__alloc_scratch_with(tp->slab_allocator, size, "rma slab");
    if (!slab->base)
        return TERSE_ERR_NO_MEMORY;
    ucp_mem_map_params_t mp = {
        .field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH,
        .address = slab->base,
        .length = size,
    };
    ucp_mem_h memh = NULL;
    us = ucp_mem_map(terse__tp_ucp_context(tp), &mp, &memh);
    slab->memh = (terse__tp_memh_h)memh;
    if (us != UCS_OK) {
        terse_log_error("ucp_mem_map of %zu bytes: %s", size, ucs_status_string(us));
        st = terse__status_from_ucs(us);
        goto err_free;
    }
    us = ucp_rkey_pack(terse__tp_ucp_context(tp), memh, &packed, &packed_len);
    if (us != UCS_OK || packed_len > RKEY_MAX) {
        terse_log_error("ucp_rkey_pack: %s (%zu bytes)", ucs_status_string(us), packed_len);
        st = us != UCS_OK ? terse__status_from_ucs(us) : TERSE_ERR_NOT_SUPPORTED;
        goto err_unmap;
    }
    mine.addr = (uint64_t)(uintptr_t)slab->base;
    mine.rkey_len = packed_len;
    memcpy(mine.rkey, packed, packed_len);
    ucp_rkey_buffer_release(packed);

    st = exchange_rkeys(tp, exchange, ctx, &mine, slab);
    if (st == TERSE_OK)
        return TERSE_OK;
err_unmap:
    ucp_mem_unmap(terse__tp_ucp_context(tp), (ucp_mem_h)slab->memh);
err_free:
    terse__free_scratch(slab->base, size);
    memset(slab, 0, sizeof(*slab));
    return st;
}

void terse__tp_slab_destroy(terse__tp_t *tp, terse__tp_slab_t *slab)
{
    if (!slab->base)
        return;
    for (int i = 0; i < tp->size; i++) {
        if (slab->rkeys[i])
            ucp_rkey_destroy((ucp_rkey_h)slab->rkeys[i]);
    }
    terse__free(slab->remote_addr);
    terse__free(slab->rkeys);
    ucp_mem_unmap(terse__tp_ucp_context(tp), (ucp_mem_h)slab->memh);
    terse__free_scratch(slab->base, slab->size);
    memset(slab, 0, sizeof(*slab));
}

void terse__tp_put_flush(terse__tp_t *tp, terse__tp_slab_t *slab, int peer, size_t offset,
                         const void *buf, size_t len, terse__tp_op_t *op)
{
    op->peer = peer;
    op->is_recv = 0;
    op->ucx_req = NULL;
    op->state = TERSE_TP_OP_DONE;
    if (tp->peer_failed[peer]) {
        op->status = UCS_ERR_CONNECTION_RESET;
        return;
    }
    ucp_request_param_t put_prm = {.op_attr_mask = 0};
    ucs_status_ptr_t p = ucp_put_nbx(terse__tp_ucp_ep(tp, peer), buf, len,
                                     slab->remote_addr[peer] + offset,
                                     (ucp_rkey_h)slab->rkeys[peer], &put_prm);
    if (UCS_PTR_IS_ERR(p)) {
        op->status = UCS_PTR_STATUS(p);
        return;
    }
    if (UCS_PTR_IS_PTR(p))
        ucp_request_free(p); /* the flush below covers its completion */
    ucp_request_param_t flush_prm = {
        .op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA,
        .cb = {.send = terse__tp_send_cb},
        .user_data = op,
    };
    op->state = TERSE_TP_OP_PENDING;
    terse__tp_track(op, ucp_ep_flush_nbx(terse__tp_ucp_ep(tp, peer), &flush_prm));
}
