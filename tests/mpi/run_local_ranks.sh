#!/usr/bin/env bash
# Launches N copies of a program as ranks of the environment rendezvous (no MPI):
#   run_local_ranks.sh N program [args...]   -> exit 0 iff every rank that returns exits 0
# TERSE_TEST_MAY_DIE=r[,r...]: those ranks are meant to kill themselves (SIGKILL); their
# death is expected, any other end of theirs is a failure.
set -u
n=$1; shift
# a port the kernel says is free (a pid-derived one can collide with other runs on this machine)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null) ||
    port=$(( 20000 + ($$ % 20000) ))
may_die=",${TERSE_TEST_MAY_DIE:-},"
# where ranks may leave files to wait for each other (see test_peer_death.c)
TERSE_TEST_SYNC_DIR=$(mktemp -d)
export TERSE_TEST_SYNC_DIR
trap 'rm -rf "$TERSE_TEST_SYNC_DIR"' EXIT
pids=()
for ((r = 0; r < n; r++)); do
    TERSE_RANK=$r TERSE_SIZE=$n TERSE_ROOT_ADDR=127.0.0.1:$port "$@" &
    pids+=($!)
done
rc=0
for ((r = 0; r < n; r++)); do
    wait "${pids[$r]}"
    st=$?
    if [[ $may_die == *",$r,"* ]]; then
        if ((st == 128 + 9)); then
            echo "rank $r: killed itself as planned"
        else
            echo "rank $r: meant to die by SIGKILL, ended with status $st" >&2
            rc=1
        fi
    elif ((st != 0)); then
        echo "rank $r: exit status $st" >&2
        rc=1
    fi
done
exit $rc
