/* Internals shared by the files of src/topo. */
#ifndef TERSE_TOPO_TOPO_PRIV_H
#define TERSE_TOPO_TOPO_PRIV_H

#include "topo/topo.h"

struct terse__topo {
    hwloc_topology_t hwloc;
    int refs;         /* references from terse__topo_load() */
    int shared;       /* 1: the process-wide topology of this machine */
    int this_system;  /* bindings apply to the machine we run on */
    char source[256]; /* "this machine" or the XML path, for messages */
};

/* Fills @nic from the OS device @o (network or OpenFabrics). */
void terse__topo_nic_fill(const terse__topo_t *t, hwloc_obj_t o, terse__topo_nic_t *nic);

#endif
