/* terse_info: version, configuration in effect, UCX devices, and the placement of each local
 * rank: NIC (rail), progress-thread cores, buffers' NUMA node and the UCX network devices the
 * rank is restricted to.
 *
 *   terse_info [--xml FILE] [--local-size N]
 *
 * --xml plans on a recorded topology instead of this machine (nothing is bound); --local-size
 * shows N ranks per host (default 1). TERSE_BIND and UCX_NET_DEVICES are taken from the
 * environment as a communicator would. Under mpirun with TERSE_LOG_LEVEL=info every rank also
 * logs its placement line at communicator creation. */
#include <terse/terse.h>

#include "topo/topo.h"
#include "transport/ucx.h"
#include "core/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--xml FILE] [--local-size N]\n", prog);
    return 2;
}

int main(int argc, char **argv)
{
    const char *xml = NULL;
    int local_size = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return usage(argv[0]);
        if (!strcmp(argv[i], "--xml"))
            xml = argv[++i];
        else if (!strcmp(argv[i], "--local-size"))
            local_size = atoi(argv[++i]);
        else
            return usage(argv[0]);
    }
    if (local_size < 1 || local_size > 4096)
        return usage(argv[0]);

    char devs[16][64];
    const char *names[16];
    printf("terse %s\n\n# configuration (TERSE_* variables)\n", terse_version());
    terse_config_print(stdout);

    char ucx_version[32];
    terse__tp_version(ucx_version, sizeof(ucx_version));
    int from_user = 0;
    size_t n = terse__tp_planning_devices(devs, 16, &from_user);
    printf("\n# UCX %s network devices%s:", ucx_version,
           from_user ? " (UCX_NET_DEVICES)" : "");
    for (size_t i = 0; i < n; i++) {
        names[i] = devs[i];
        printf(" %s", devs[i]);
    }
    printf("%s\n\n# topology and placement (TERSE_BIND=%s)\n",
           n ? "" : " none (shared memory / loopback only)", terse__config()->bind);

    terse__topo_t *t = terse__topo_load(xml);
    int rc = 0;
    for (int lr = 0; lr < local_size; lr++) {
        terse__topo_request_t req = {.nics = names,
                                     .num_nics = n,
                                     .nics_from_user = from_user,
                                     .local_rank = lr,
                                     .local_size = local_size,
                                     .bind = terse__config()->bind};
        terse__topo_plan_t plan;
        if (terse__topo_plan(t, &req, &plan) != TERSE_OK) {
            rc = 1;
            continue;
        }
        if (lr == 0)
            terse__topo_print(t, &plan, stdout);
        char line[512];
        terse__topo_plan_string(&plan, line, sizeof(line));
        printf("local rank %d: %s\n", lr, line);
        /* What the communicator would hand UCX (see terse__tp_init). */
        if (from_user)
            printf("  ucx network devices: %s (UCX_NET_DEVICES, kept)\n",
                   getenv("UCX_NET_DEVICES"));
        else if (plan.ucx_net_devices[0])
            printf("  ucx network devices: %s (this rank's rail)\n", plan.ucx_net_devices);
        else
            printf("  ucx network devices: all (UCX's choice)\n");
        terse__topo_plan_release(&plan);
    }
    terse__topo_release(t);
    return rc;
}
