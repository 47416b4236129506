/* Host grouping unit tests. Usage: test_hostgroup <case> */
#include "topo/hostgroup.h"

#include "topo_test_util.h"

/* Checks every rank's view of @ids against the expected per-rank host, local rank, order. */
static void check_all(const char *const *ids, int n, const int *host, const int *local,
                      const int *order, int nhosts)
{
    for (int r = 0; r < n; r++) {
        terse__hostgroup_t hg;
        CHECK(terse__hostgroup_compute_strv(ids, n, r, &hg) == TERSE_OK);
        CHECK(hg.rank == r && hg.size == n);
        CHECK(hg.cross_size == nhosts && hg.cross_rank == host[r]);
        CHECK(hg.local_rank == local[r]);
        int lsize = 0;
        for (int j = 0; j < n; j++)
            lsize += host[j] == host[r];
        CHECK(hg.local_size == lsize);
        CHECK(hg.local_ranks[hg.local_rank] == r);
        for (int i = 0; i < n; i++) {
            CHECK(hg.order[i] == order[i]);
            CHECK(hg.position[order[i]] == i);
            CHECK(hg.host_of[i] == host[i] && hg.local_of[i] == local[i]);
        }
        for (int h = 0; h < nhosts; h++) {
            for (int i = hg.host_first[h]; i < hg.host_first[h + 1]; i++)
                CHECK(hg.host_of[hg.order[i]] == h);
        }
        CHECK(hg.host_first[nhosts] == n);
        terse__hostgroup_release(&hg);
        CHECK(hg.host_of == NULL);
        terse__hostgroup_release(&hg);
    }
}

static void case_single_host(void)
{
    const char *ids[] = {"a", "a", "a", "a", "a"};
    int host[] = {0, 0, 0, 0, 0}, local[] = {0, 1, 2, 3, 4}, order[] = {0, 1, 2, 3, 4};
    check_all(ids, 5, host, local, order, 1);
    const char *one[] = {"solo"};
    int z[] = {0};
    check_all(one, 1, z, z, z, 1);
}

static void case_all_different(void)
{
    const char *ids[] = {"e", "d", "c", "b", "a", "f", "g"};
    int host[] = {0, 1, 2, 3, 4, 5, 6}, local[] = {0, 0, 0, 0, 0, 0, 0};
    int order[] = {0, 1, 2, 3, 4, 5, 6};
    check_all(ids, 7, host, local, order, 7);
}

/* Round-robin placement (rank r on host r mod 3) with hosts named against sort order. */
static void case_interleaved(void)
{
    const char *ids[] = {"zeta", "alpha", "mid", "zeta", "alpha", "mid", "zeta", "alpha"};
    int host[] = {0, 1, 2, 0, 1, 2, 0, 1}, local[] = {0, 0, 0, 1, 1, 1, 2, 2};
    int order[] = {0, 3, 6, 1, 4, 7, 2, 5};
    check_all(ids, 8, host, local, order, 3);
}

/* Odd counts, uneven hosts, prefixes of one another ("n1" vs "n10"). */
static void case_odd(void)
{
    const char *ids[] = {"n10", "n1", "n10", "n1", "n1", "n2", "n10", "n1", "n2", "n3", "n1"};
    int host[] = {0, 1, 0, 1, 1, 2, 0, 1, 2, 3, 1};
    int local[] = {0, 0, 1, 1, 2, 0, 2, 3, 1, 0, 4};
    int order[] = {0, 2, 6, 1, 3, 4, 7, 10, 5, 8, 9};
    check_all(ids, 11, host, local, order, 4);
}

/* The allgather layout: fixed-size slots, ids not always NUL-terminated inside a slot. */
static void case_flat(void)
{
    char ids[5][4];
    memcpy(ids[0], "abcd", 4);  /* fills the slot: no NUL */
    memcpy(ids[1], "ab\0x", 4); /* garbage after the NUL is ignored */
    memcpy(ids[2], "abcd", 4);
    memcpy(ids[3], "ab\0y", 4);
    memcpy(ids[4], "abc\0", 4);
    terse__hostgroup_t hg;
    CHECK(terse__hostgroup_compute(&ids[0][0], 4, 5, 3, &hg) == TERSE_OK);
    CHECK(hg.cross_size == 3 && hg.cross_rank == 1);
    CHECK(hg.local_rank == 1 && hg.local_size == 2);
    CHECK(hg.local_ranks[0] == 1 && hg.local_ranks[1] == 3);
    int order[] = {0, 2, 1, 3, 4};
    for (int i = 0; i < 5; i++)
        CHECK(hg.order[i] == order[i]);
    terse__hostgroup_release(&hg);
}

static void case_invalid(void)
{
    const char *ids[] = {"a", NULL};
    terse__hostgroup_t hg;
    CHECK(terse__hostgroup_compute_strv(ids, 2, 0, &hg) == TERSE_ERR_INVALID_ARG);
    CHECK(terse__hostgroup_compute_strv(ids, 1, 1, &hg) == TERSE_ERR_INVALID_ARG);
    CHECK(terse__hostgroup_compute_strv(ids, 0, 0, &hg) == TERSE_ERR_INVALID_ARG);
    CHECK(terse__hostgroup_compute("abc", 0, 1, 0, &hg) == TERSE_ERR_INVALID_ARG);
    CHECK(terse__hostgroup_compute(NULL, 4, 1, 0, &hg) == TERSE_ERR_INVALID_ARG);
    CHECK(terse__hostgroup_compute("abc", 4, 1, 0, NULL) == TERSE_ERR_INVALID_ARG);
    terse__hostgroup_release(NULL);
}

/* Many ranks: the sort-based grouping stays fast and consistent. */
static void case_large(void)
{
    enum { N = 20000, H = 997 };
    static char ids[N][16];
    for (int r = 0; r < N; r++)
        snprintf(ids[r], sizeof(ids[r]), "host%d", (r * 7) % H);
    terse__hostgroup_t hg;
    CHECK(terse__hostgroup_compute(&ids[0][0], 16, N, N - 1, &hg) == TERSE_OK);
    CHECK(hg.cross_size == H);
    for (int i = 1; i < N; i++) {
        int a = hg.order[i - 1], b = hg.order[i];
        CHECK(hg.host_of[a] < hg.host_of[b] || (hg.host_of[a] == hg.host_of[b] && a < b));
    }
    terse__hostgroup_release(&hg);
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    {"single_host", case_single_host},
    {"all_different", case_all_different},
    {"interleaved", case_interleaved},
    {"odd", case_odd},
    {"flat", case_flat},
    {"invalid", case_invalid},
    {"large", case_large},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <case>\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!strcmp(argv[1], cases[i].name)) {
            cases[i].fn();
            printf("ok %s\n", cases[i].name);
            return 0;
        }
    }
    fprintf(stderr, "unknown case %s\n", argv[1]);
    return 2;
}
