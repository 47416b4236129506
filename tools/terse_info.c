/* terse_info: version, configuration in effect, UCX devices, and this rank's placement.
 * Run alone, or under mpirun to see every local rank's plan (TERSE_LOG_LEVEL=info shows the
 * per-rank placement lines from communicator creation). */
#include <terse/terse.h>

#include "topo/topo.h"
#include "transport/ucx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    char devs[16][64];
    const char *names[16];
    printf("terse %s\n\n# configuration (TERSE_* variables)\n", terse_version());
    terse_config_print(stdout);

    unsigned major, minor, release;
    ucp_get_version(&major, &minor, &release);
    size_t n = terse__tp_net_devices(devs, 16);
    printf("\n# UCX %u.%u.%u network devices:", major, minor, release);
    for (size_t i = 0; i < n; i++) {
        names[i] = devs[i];
        printf(" %s", devs[i]);
    }
    printf("%s\n\n# topology and placement\n", n ? "" : " none (shared memory / loopback only)");

    const char *xml = argc > 2 && !strcmp(argv[1], "--xml") ? argv[2] : NULL;
    terse__topo_t *t = terse__topo_load(xml);
    int local_size = 1;
    if (argc > 3 && !strcmp(argv[3], "--local-size"))
        local_size = argc > 4 ? atoi(argv[4]) : 1;
    for (int lr = 0; lr < local_size; lr++) {
        terse__topo_request_t req = {.nics = names, .num_nics = n, .local_rank = lr,
                                     .local_size = local_size, .bind = "auto"};
        terse__topo_plan_t plan;
        if (terse__topo_plan(t, &req, &plan) == TERSE_OK) {
            if (lr == 0)
                terse__topo_print(t, &plan, stdout);
            char line[256];
            terse__topo_plan_string(&plan, line, sizeof(line));
            printf("local rank %d: %s\n", lr, line);
            terse__topo_plan_release(&plan);
        }
    }
    terse__topo_release(t);
    return 0;
}
