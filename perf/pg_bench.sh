#!/bin/bash
# perf/pg_bench.sh [modes...] - perf/pg_bench.py (torch.distributed all_reduce over terse vs
# gloo, DDP step of the 20M MLP) with 4 ranks: "unshaped" on this machine, or <rate> (e.g.
# 1gbit) on 4 emulated hosts of perf/netcluster.sh (needs root; wrap in flock
# /tmp/netcluster.lock), UCX TCP and gloo over veth0.
# Environment: BUILD=build ARGS (extra pg_bench.py arguments, e.g. "--iters 3").
# Output: perf/results/pg_bench_<mode>.csv and .md (with the load before and after).
set -uo pipefail
cd "$(dirname "$0")/.."
NC=perf/netcluster.sh
BUILD=${BUILD:-build}; ARGS=${ARGS:-}
LIB=$(readlink -f "$BUILD/src/libterse.so")
C10D=$(ls "$BUILD"/bindings/torch/_c10d*.so 2>/dev/null | head -1)
[ -n "$C10D" ] || { echo "pg_bench: build terse_c10d first" >&2; exit 1; }
RES=perf/results; mkdir -p "$RES"
. scripts/env.sh
unset TERSE_HOST_ID
ENVS=(-x PYTHONPATH="$PWD/bindings/python" -x TERSE_LIBRARY="$LIB" -x TERSE_C10D_MODULE="$C10D"
      -x OMP_NUM_THREADS=1)
cluster_up=0
trap '[ $cluster_up = 1 ] && $NC down >/dev/null 2>&1; true' EXIT
MODES=("$@"); [ ${#MODES[@]} -gt 0 ] || MODES=(unshaped 1gbit)
for mode in "${MODES[@]}"; do
    if [ "$mode" = unshaped ]; then
        LAUNCH=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 4 "${ENVS[@]}")
        where="4 ranks on this machine ($(nproc) cores)"
    else
        $NC down >/dev/null 2>&1 || true
        $NC up 4 "$mode" >/dev/null || { echo "pg_bench: netcluster up failed" >&2; exit 1; }
        cluster_up=1
        LAUNCH=($NC mpirun -np 4 "${ENVS[@]}" --mca pml ucx --mca pml_ucx_tls any
                --mca pml_ucx_devices any -x UCX_TLS=tcp,sm,self -x UCX_NET_DEVICES=veth0
                -x GLOO_SOCKET_IFNAME=veth0 -x MASTER_ADDR=10.78.0.1)
        where="4 emulated hosts at $mode per direction (perf/netcluster.sh), UCX TCP and gloo over veth0"
    fi
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    out=$RES/pg_bench_$mode
    echo "== $mode: $where; load $load0"
    timeout 1200 "${LAUNCH[@]}" /usr/bin/python3 perf/pg_bench.py --csv "$out.csv" $ARGS \
        2> >(grep -v 'topo_plan\|placement' >&2) | tee "$out.txt"
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    { echo "# pg_bench $mode: $where"; echo; echo "load before $load0, after $load1"; echo
      grep '^|' "$out.txt"; } > "$out.md"
    rm -f "$out.txt"
    [ "$mode" != unshaped ] && { $NC down >/dev/null 2>&1; cluster_up=0; }
done
