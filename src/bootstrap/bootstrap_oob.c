#include "bootstrap.h"

#include <stdio.h>
#include <string.h>

static terse_status_t oob_allgather(terse__bootstrap_t *bs, const void *sbuf, void *rbuf,
                                    size_t len)
{
    terse_status_t st = bs->oob.allgather(sbuf, rbuf, len, bs->oob.coll_info);
    if (st != TERSE_OK)
        snprintf(bs->err, sizeof(bs->err), "out-of-band allgather callback returned %d (%s)",
                 (int)st, terse_status_string(st));
    return st == TERSE_OK ? TERSE_OK : TERSE_ERR_BOOTSTRAP;
}

static void oob_close(terse__bootstrap_t *bs)
{
}

static const terse__bootstrap_ops_t oob_ops = {
    .allgather = oob_allgather,
    .close = oob_close,
};

terse_status_t terse__bootstrap_from_oob(const terse_oob_t *oob, terse__bootstrap_t *bs)
{
    memset(bs, 0, sizeof(*bs));
    if (!oob->allgather || oob->size <= 0 || oob->rank < 0 || oob->rank >= oob->size) {
        snprintf(bs->err, sizeof(bs->err), "invalid out-of-band bootstrap: rank %d size %d%s",
                 oob->rank, oob->size, oob->allgather ? "" : ", no allgather callback");
        return TERSE_ERR_INVALID_ARG;
    }
    bs->ops = &oob_ops;
    bs->oob = *oob;
    bs->rank = oob->rank;
    bs->size = oob->size;
    bs->root_fd = -1;
    return TERSE_OK;
}

terse_status_t terse__bootstrap_allgather(terse__bootstrap_t *bs, const void *sbuf, void *rbuf,
                                          size_t len)
{
    return bs->ops->allgather(bs, sbuf, rbuf, len);
}

void terse__bootstrap_close(terse__bootstrap_t *bs)
{
    if (bs->ops)
        bs->ops->close(bs);
    bs->ops = NULL;
}
