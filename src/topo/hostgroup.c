/* Host grouping: sort identities once (O(n log n)), then number hosts by first appearance. */
#include "topo/hostgroup.h"

#include "core/alloc.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

typedef struct id_item {
    const char *id;
    size_t len;
    int rank;
} id_item_t;

typedef struct host_span {
    int start; /* first item of the host in the sorted items */
    int count;
    int first_rank; /* lowest rank on the host: its first appearance */
} host_span_t;

static int cmp_item(const void *a, const void *b)
{
    const id_item_t *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->id, y->id, m);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

static int cmp_span(const void *a, const void *b)
{
    const host_span_t *x = a, *y = b;
    return (x->first_rank > y->first_rank) - (x->first_rank < y->first_rank);
}

static terse_status_t group(id_item_t *items, int n, int rank, terse__hostgroup_t *hg_p)
{
    terse__hostgroup_t hg;
    host_span_t *spans = NULL;

    memset(&hg, 0, sizeof(hg));
    qsort(items, (size_t)n, sizeof(*items), cmp_item);
    spans = terse__malloc((size_t)n * sizeof(*spans), "host spans");
    /* host_of, local_of, order, position: n each; host_first: at most n + 1. */
    hg.host_of = terse__malloc((5 * (size_t)n + 1) * sizeof(int), "host group");
    if (!spans || !hg.host_of) {
        terse__free(spans);
        terse__free(hg.host_of);
        return TERSE_ERR_NO_MEMORY;
    }
    hg.local_of = hg.host_of + n;
    hg.order = hg.local_of + n;
    hg.position = hg.order + n;
    hg.host_first = hg.position + n;

    int nspans = 0;
    for (int i = 0; i < n; i++) {
        if (i == 0 || cmp_item(&(id_item_t){items[i].id, items[i].len, 0},
                               &(id_item_t){items[i - 1].id, items[i - 1].len, 0}) != 0) {
            /* Items of a host are sorted by rank, so its first is its lowest rank. */
            spans[nspans].start = i;
            spans[nspans].count = 0;
            spans[nspans].first_rank = items[i].rank;
            nspans++;
        }
        spans[nspans - 1].count++;
    }
    qsort(spans, (size_t)nspans, sizeof(*spans), cmp_span);

    int pos = 0;
    for (int h = 0; h < nspans; h++) {
        hg.host_first[h] = pos;
        for (int k = 0; k < spans[h].count; k++) {
            int r = items[spans[h].start + k].rank;
            hg.host_of[r] = h;
            hg.local_of[r] = k;
            hg.order[pos] = r;
            hg.position[r] = pos;
            pos++;
        }
    }
    hg.host_first[nspans] = pos;
    terse__free(spans);

    hg.rank = rank;
    hg.size = n;
    hg.cross_size = nspans;
    hg.cross_rank = hg.host_of[rank];
    hg.local_rank = hg.local_of[rank];
    hg.local_size = hg.host_first[hg.cross_rank + 1] - hg.host_first[hg.cross_rank];
    hg.local_ranks = hg.order + hg.host_first[hg.cross_rank];
    *hg_p = hg;
    return TERSE_OK;
}

terse_status_t terse__hostgroup_compute(const char *ids, size_t stride, int n, int rank,
                                        terse__hostgroup_t *hg_p)
{
    if (!ids || stride == 0 || n < 1 || rank < 0 || rank >= n || !hg_p) {
        terse_log_error("invalid host grouping request (rank %d of %d)", rank, n);
        return TERSE_ERR_INVALID_ARG;
    }
    id_item_t *items = terse__malloc((size_t)n * sizeof(*items), "host ids");
    if (!items)
        return TERSE_ERR_NO_MEMORY;
    for (int i = 0; i < n; i++) {
        items[i].id = ids + (size_t)i * stride;
        items[i].len = strnlen(items[i].id, stride);
        items[i].rank = i;
    }
    terse_status_t st = group(items, n, rank, hg_p);
    terse__free(items);
    return st;
}

terse_status_t terse__hostgroup_compute_strv(const char *const *ids, int n, int rank,
                                             terse__hostgroup_t *hg_p)
{
    if (!ids || n < 1 || rank < 0 || rank >= n || !hg_p) {
        terse_log_error("invalid host grouping request (rank %d of %d)", rank, n);
        return TERSE_ERR_INVALID_ARG;
    }
    id_item_t *items = terse__malloc((size_t)n * sizeof(*items), "host ids");
    if (!items)
        return TERSE_ERR_NO_MEMORY;
    for (int i = 0; i < n; i++) {
        if (!ids[i]) {
            terse_log_error("host id of rank %d is missing", i);
            terse__free(items);
            return TERSE_ERR_INVALID_ARG;
        }
        items[i].id = ids[i];
        items[i].len = strlen(ids[i]);
        items[i].rank = i;
    }
    terse_status_t st = group(items, n, rank, hg_p);
    terse__free(items);
    return st;
}

void terse__hostgroup_release(terse__hostgroup_t *hg)
{
    if (!hg)
        return;
    terse__free(hg->host_of);
    memset(hg, 0, sizeof(*hg));
}
