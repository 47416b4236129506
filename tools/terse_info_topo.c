/*
 * terse_info_topo: show where terse would place each local rank's progress thread and buffers,
 * on this machine or on a recorded topology, before a run.
 *
 *   terse_info_topo [--xml FILE] [--nics NAME,...] [--local-size N] [--bind auto|none|LIST]
 *                   [--allowed CPULIST]
 *
 * Defaults: this machine; every network device of the topology (UCX would pick among them, or
 * UCX_NET_DEVICES names them); local size 1; TERSE_BIND from the environment; the allowed
 * cpuset of this process (or of the XML).
 */
#include "core/config.h"
#include "topo/topo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--xml FILE] [--nics NAME,...] [--local-size N] [--bind auto|none|LIST] "
            "[--allowed CPULIST]\n",
            prog);
    return 2;
}

int main(int argc, char **argv)
{
    const char *xml = NULL, *bind = NULL, *allowed_s = NULL;
    char *nic_list = NULL;
    int local_size = 1;

    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return usage(argv[0]);
        if (!strcmp(argv[i], "--xml"))
            xml = argv[++i];
        else if (!strcmp(argv[i], "--nics"))
            nic_list = argv[++i];
        else if (!strcmp(argv[i], "--local-size"))
            local_size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bind"))
            bind = argv[++i];
        else if (!strcmp(argv[i], "--allowed"))
            allowed_s = argv[++i];
        else
            return usage(argv[0]);
    }
    if (local_size < 1 || local_size > 4096)
        return usage(argv[0]);
    if (!bind)
        bind = terse__config()->bind;

    terse__topo_t *t = terse__topo_load(xml);
    hwloc_bitmap_t allowed = NULL;
    if (allowed_s) {
        allowed = hwloc_bitmap_alloc();
        if (!allowed || hwloc_bitmap_list_sscanf(allowed, allowed_s) != 0) {
            fprintf(stderr, "invalid --allowed cpu list '%s'\n", allowed_s);
            return 2;
        }
    }

    const char *names[64];
    size_t n = 0;
    if (nic_list) {
        for (char *tok = strtok(nic_list, ","); tok && n < 64; tok = strtok(NULL, ","))
            names[n++] = tok;
    } else {
        n = terse__topo_nic_names(t, names, 64);
        n = n < 64 ? n : 64;
    }

    terse__topo_print(t, NULL, stdout);
    printf("placement for %d local rank%s (TERSE_BIND=%s):\n", local_size,
           local_size == 1 ? "" : "s", bind);
    int rc = 0;
    for (int r = 0; r < local_size; r++) {
        terse__topo_request_t req = {0};
        terse__topo_plan_t plan;
        char line[512];
        req.allowed = allowed;
        req.nics = names;
        req.num_nics = n;
        req.local_rank = r;
        req.local_size = local_size;
        req.bind = bind;
        if (terse__topo_plan(t, &req, &plan) != TERSE_OK) {
            rc = 1;
            continue;
        }
        terse__topo_plan_string(&plan, line, sizeof(line));
        printf("  local rank %d: %s\n", r, line);
        terse__topo_plan_release(&plan);
    }
    hwloc_bitmap_free(allowed);
    terse__topo_release(t);
    return rc;
}
