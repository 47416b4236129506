#!/usr/bin/env bash
# Launches N copies of a program as ranks of the environment rendezvous (no MPI):
#   run_local_ranks.sh N program [args...]   -> exit 0 iff every rank that returns exits 0
set -u
n=$1; shift
port=$(( 20000 + ($$ % 20000) ))
pids=()
for ((r = 0; r < n; r++)); do
    TERSE_RANK=$r TERSE_SIZE=$n TERSE_ROOT_ADDR=127.0.0.1:$port "$@" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do
    wait "$p" || rc=1
done
exit $rc
