#!/bin/sh
# usage: emulate_hosts.sh RANKS_PER_HOST COMMAND...
# Runs COMMAND as if rank r of Open MPI's mpirun were on host r / RANKS_PER_HOST, for tests of
# the hierarchical mode on one machine.
L=$1
shift
r=${OMPI_COMM_WORLD_RANK:?run me under Open MPI mpirun}
TERSE_HOST_ID=emulated-host-$((r / L))
export TERSE_HOST_ID
exec "$@"
