/* The pooled collective scratch (scratch.h). */
#include "engine.h"

static void *pool_scratch(terse_request_h req, terse__buf_t **slot, size_t size, const char *what)
{
    terse_comm_h comm = req->comm;
    if (!*slot) {
        for (int i = 0; i < TERSE_POOL_MAX; i++) {
            if (!comm->pool_used[i]) {
                comm->pool_used[i] = 1;
                *slot = &comm->pool[i];
                (*slot)->what = what;
                break;
            }
        }
        if (!*slot) {
            terse__req_fail(req, TERSE_ERR_NO_MEMORY, "more than %d collective buffers in use",
                            TERSE_POOL_MAX);
            return NULL;
        }
    }
    if (terse__buf_reserve(*slot, size ? size : 1) != 0) {
        terse__req_fail(req, TERSE_ERR_NO_MEMORY, "no memory for %zu bytes of %s", size, what);
        return NULL;
    }
    return (*slot)->ptr;
}

void *terse__req_scratch(terse_request_h req, size_t size)
{
    return pool_scratch(req, &req->scratch, size, "collective scratch");
}

void *terse__req_scratch2(terse_request_h req, size_t size)
{
    return pool_scratch(req, &req->scratch2, size, "collective scratch (second)");
}

void terse__scratch_release(terse_request_h req)
{
    if (req->scratch)
        req->comm->pool_used[req->scratch - req->comm->pool] = 0;
    if (req->scratch2)
        req->comm->pool_used[req->scratch2 - req->comm->pool] = 0;
    req->scratch = req->scratch2 = NULL;
}

void terse__scratch_pool_set_allocator(terse_comm_h comm, const terse__allocator_t *a)
{
    for (int i = 0; i < TERSE_POOL_MAX; i++)
        comm->pool[i].allocator = a;
}

void terse__scratch_pool_fini(terse_comm_h comm)
{
    for (int i = 0; i < TERSE_POOL_MAX; i++)
        terse__buf_release(&comm->pool[i]);
}
