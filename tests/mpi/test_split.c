/* terse_comm_split and terse_comm_dup: membership and order, every kind of collective on the
 * children (compressed allreduce and error feedback included), children used at the same
 * time, nested splits, TERSE_UNDEFINED, destroying children or the parent first, bad input. */
#include "test_util.h"

#include <terse/ef.h>

static int ranks_per_host; /* TERSE_TEST_RANKS_PER_HOST (emulated hosts), else every rank */

/* Checks a communicator whose members are @members (parent ranks, in child rank order):
 * identity, then dense, reduce and compressed collectives with values that name the members. */
static void check_child(terse_comm_h c, const int *members, int n, int me, const char *what)
{
    CHECK(terse_comm_size(c) == n && terse_comm_rank(c) == me, "%s: rank %d of %d, want %d of %d",
          what, terse_comm_rank(c), terse_comm_size(c), me, n);
    /* hosts of the members (parent rank q on host q / L, see emulate_hosts.sh), numbered by
     * first appearance in child order, as the child must compute them */
    int hosts[8], nh = 0, lr = 0, ls = 0, cr = 0;
    for (int i = 0; i < n; i++) {
        int h = members[i] / ranks_per_host, k = 0;
        while (k < nh && hosts[k] != h)
            k++;
        if (k == nh)
            hosts[nh++] = h;
        if (h == test_rank / ranks_per_host) {
            lr += i < me;
            ls++;
            cr = k;
        }
    }
    CHECK(terse_comm_local_size(c) == ls && terse_comm_local_rank(c) == lr &&
              terse_comm_cross_size(c) == nh && terse_comm_cross_rank(c) == cr,
          "%s: local %d/%d cross %d/%d, want %d/%d %d/%d", what, terse_comm_local_rank(c),
          terse_comm_local_size(c), terse_comm_cross_rank(c), terse_comm_cross_size(c), lr, ls,
          cr, nh);
    int64_t sum = 0, max = -1, v[3] = {test_rank, test_rank, test_rank}, out[3];
    for (int i = 0; i < n; i++) {
        sum += members[i];
        max = members[i] > max ? members[i] : max;
    }
    terse_status_t st = terse_allreduce(c, v, out, 3, TERSE_DTYPE_INT64, TERSE_OP_SUM);
    CHECK(st == TERSE_OK && out[2] == sum, "%s: allreduce %s, %lld != %lld", what,
          terse_comm_last_error(c), (long long)out[2], (long long)sum);
    int64_t *g = calloc((size_t)n, sizeof(int64_t));
    st = terse_allgather(c, v, g, 1, TERSE_DTYPE_INT64);
    for (int i = 0; i < n && st == TERSE_OK; i++)
        CHECK(g[i] == members[i], "%s: allgather[%d] = %lld, want %d", what, i, (long long)g[i],
              members[i]);
    int64_t b = test_rank;
    CHECK(terse_bcast(c, &b, 1, TERSE_DTYPE_INT64, n - 1) == TERSE_OK && b == members[n - 1],
          "%s: bcast %lld", what, (long long)b);
    /* reduce_scatter of 2 elements per member: member j's block sums j over everyone */
    int64_t *rs = malloc(2 * (size_t)n * sizeof(int64_t)), blk[2] = {-1, -1};
    for (int j = 0; j < 2 * n; j++)
        rs[j] = j / 2 + test_rank;
    st = terse_reduce_scatter(c, rs, blk, 2, TERSE_DTYPE_INT64, TERSE_OP_SUM);
    CHECK(st == TERSE_OK && blk[1] == (int64_t)me * n + sum, "%s: reduce_scatter %s %lld", what,
          terse_comm_last_error(c), (long long)blk[1]);
    st = terse_reduce(c, v, out, 3, TERSE_DTYPE_INT64, TERSE_OP_MAX, 0);
    CHECK(st == TERSE_OK && (me != 0 || out[0] == max), "%s: reduce %s", what,
          terse_comm_last_error(c));
    CHECK(terse_barrier(c) == TERSE_OK, "%s: barrier %s", what, terse_comm_last_error(c));
    free(g);
    free(rs);
    /* compressed allreduce: Top-K of a one-hot vector per member */
    float x[16] = {0}, y[16], e[16];
    x[me % 16] = 1.0f;
    terse_ctensor_t t = {.id = 7, .count = 16, .in = x, .out = y, .worker_error = e};
    terse_compressor_t cmp;
    terse_callreduce_params_t prm = {.tensors = &t, .ntensors = 1, .compressor = &cmp};
    CHECK(terse_compressor_parse("topk:0.0625", &cmp) == TERSE_OK, "parse");
    st = terse_compressed_allreduce(c, &prm);
    CHECK(st == TERSE_OK && y[0] == 1.0f / (float)n, "%s: compressed allreduce %s %g", what,
          terse_comm_last_error(c), y[0]);
    /* error feedback: one exchange; C(Delta) + e == Delta */
    terse_ef_h ef;
    uint32_t id = 3;
    size_t cnt = 16;
    terse_ef_params_t ep = {.mode = TERSE_EF_MODE_EF, .ntensors = 1, .ids = &id, .counts = &cnt,
                            .compressor = prm.compressor};
    st = terse_ef_create(c, &ep, &ef);
    CHECK(st == TERSE_OK, "%s: ef_create", what);
    if (st == TERSE_OK) {
        x[15] = 0.25f;
        const float *d[1] = {x};
        float *u[1] = {y};
        st = terse_ef_exchange(ef, d, u);
        CHECK(st == TERSE_OK && terse_ef_worker_error(ef, 0)[15] == 0.25f, "%s: ef_exchange %s",
              what, terse_comm_last_error(c));
        terse_ef_destroy(ef);
    }
}

/* color = rank % 2, key reversing the order; returns the child. */
static terse_comm_h split_parity(terse_comm_h comm)
{
    terse_comm_h c = NULL;
    terse_status_t st = terse_comm_split(comm, test_rank % 2, -test_rank, &c);
    CHECK(st == TERSE_OK && c, "split parity: %s", terse_comm_last_error(comm));
    if (!c)
        return NULL;
    int members[8], n = 0, me = 0;
    for (int r = test_size - 1; r >= 0; r--) {
        if (r % 2 == test_rank % 2) {
            if (r == test_rank)
                me = n;
            members[n++] = r;
        }
    }
    check_child(c, members, n, me, "parity child");
    return c;
}

static void test_dup_and_concurrent(terse_comm_h comm, terse_comm_h odd_even)
{
    terse_comm_h d = NULL;
    int members[8];
    for (int i = 0; i < test_size; i++)
        members[i] = i;
    CHECK(terse_comm_dup(comm, &d) == TERSE_OK && d, "dup: %s", terse_comm_last_error(comm));
    if (!d)
        return;
    check_child(d, members, test_size, test_rank, "dup");
    /* collectives in flight on the parent and both children at once */
    float a[1000], b[1000], p[1000], oa[1000], ob[1000], op[1000];
    for (int i = 0; i < 1000; i++)
        a[i] = b[i] = p[i] = (float)test_rank;
    terse_request_h ra, rb, rp;
    CHECK(terse_iallreduce(d, a, oa, 1000, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM, &ra) == TERSE_OK &&
              terse_iallreduce(odd_even, b, ob, 1000, TERSE_DTYPE_FLOAT32, TERSE_OP_MAX, &rb) == TERSE_OK &&
              terse_iallreduce(comm, p, op, 1000, TERSE_DTYPE_FLOAT32, TERSE_OP_MIN, &rp) == TERSE_OK,
          "posting concurrent calls");
    CHECK(terse_wait(rp) == TERSE_OK && terse_wait(rb) == TERSE_OK && terse_wait(ra) == TERSE_OK,
          "concurrent calls: %s / %s", terse_comm_last_error(d), terse_comm_last_error(odd_even));
    int top = test_size - 1 - ((test_size - 1 - test_rank) % 2);
    CHECK(oa[999] == (float)(test_size * (test_size - 1) / 2) && ob[0] == (float)top && op[5] == 0.0f,
          "concurrent results %g %g %g", oa[999], ob[0], op[5]);
    terse_request_free(ra);
    terse_request_free(rb);
    terse_request_free(rp);
    /* a child of the dup outlives the dup */
    terse_comm_h e = NULL;
    CHECK(terse_comm_split(d, 0, test_rank, &e) == TERSE_OK && e, "split of dup: %s",
          terse_comm_last_error(d));
    terse_comm_destroy(d);
    if (e) {
        check_child(e, members, test_size, test_rank, "child of a destroyed dup");
        terse_comm_destroy(e);
    }
}

static void test_nested_and_undefined(terse_comm_h comm, terse_comm_h odd_even)
{
    /* nested: the first half of the parity child, the others undefined */
    int n = terse_comm_size(odd_even), me = terse_comm_rank(odd_even), members[8], k = 0;
    terse_comm_h g = NULL;
    int in_half = me < (n + 1) / 2;
    terse_status_t st = terse_comm_split(odd_even, in_half ? 5 : TERSE_UNDEFINED, me, &g);
    CHECK(st == TERSE_OK && (g != NULL) == in_half, "nested split: %s %p", terse_status_name(st),
          (void *)g);
    for (int r = test_size - 1; r >= 0 && k < (n + 1) / 2; r--)
        if (r % 2 == test_rank % 2)
            members[k++] = r;
    if (g) {
        check_child(g, members, k, me, "nested child");
        terse_comm_destroy(g);
    }
    /* the last parent rank opts out */
    terse_comm_h h = (terse_comm_h)1;
    st = terse_comm_split(comm, test_rank == test_size - 1 ? TERSE_UNDEFINED : 0, 0, &h);
    CHECK(st == TERSE_OK, "split with an undefined rank: %s", terse_comm_last_error(comm));
    CHECK((h == NULL) == (test_rank == test_size - 1), "undefined rank's communicator %p", (void *)h);
    if (h && st == TERSE_OK) {
        for (int i = 0; i < test_size - 1; i++)
            members[i] = i;
        check_child(h, members, test_size - 1, test_rank, "all but the last");
        terse_comm_destroy(h);
    }
    /* a bad pointer on one rank: every rank fails, nobody hangs */
    terse_comm_h bad = NULL;
    st = terse_comm_split(comm, 0, 0, test_rank == 0 ? NULL : &bad);
    int ok = st != TERSE_OK && bad == NULL, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    CHECK(all || test_size == 1, "split with a NULL pointer on rank 0: %s", terse_status_name(st));
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    const char *rph = getenv("TERSE_TEST_RANKS_PER_HOST");
    ranks_per_host = rph ? atoi(rph) : test_size;
    terse_comm_h odd_even = split_parity(comm);
    if (odd_even) {
        test_dup_and_concurrent(comm, odd_even);
        test_nested_and_undefined(comm, odd_even);
        terse_comm_destroy(odd_even);
    }
    /* the parent after its children are gone */
    int members[8];
    for (int i = 0; i < test_size; i++)
        members[i] = i;
    check_child(comm, members, test_size, test_rank, "parent after destroying children");
    return test_finish(comm);
}
