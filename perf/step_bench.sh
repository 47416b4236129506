#!/bin/bash
# perf/step_bench.sh [networks...] - perf/step_bench.py (seconds per training step of terse's
# stacks and torch DDP, in one run) on 4 ranks: "local" (one machine, unshaped) and/or on 4
# emulated hosts of perf/netcluster.sh at each rate given (e.g. 1gbit 10gbit; needs root).
#
#   perf/step_bench.sh local 1gbit 10gbit
#
# Environment (defaults): BUILD=build (libterse.so from there), MODELS="mlp20m mlp814k",
#   BATCHES="4 32", ROUNDS=3, STEPS=4, STACKS="" (all), OUT=perf/results/step_bench,
#   TIMEOUT=1800 (seconds per mpirun). Writes OUT/step_<network>_<model>_b<batch>.{csv,json,png}.
set -uo pipefail
cd "$(dirname "$0")/.."
NC=perf/netcluster.sh
BUILD=${BUILD:-build}; MODELS=${MODELS:-"mlp20m mlp814k"}; BATCHES=${BATCHES:-"4 32"}
ROUNDS=${ROUNDS:-3}; STEPS=${STEPS:-4}; STACKS=${STACKS:-}; OUT=${OUT:-perf/results/step_bench}
TIMEOUT=${TIMEOUT:-1800}
NETS=("$@"); [ ${#NETS[@]} -gt 0 ] || NETS=(local 1gbit)
LIB=$(readlink -f "$BUILD/src/libterse.so")
[ -e "$LIB" ] || { echo "step_bench: build $BUILD first" >&2; exit 1; }
. scripts/env.sh
ENVS=(-x PYTHONPATH="$PWD/bindings/python" -x TERSE_LIBRARY="$LIB" -x OMP_NUM_THREADS=1)
trap '$NC down >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT TERM
bench() {  # network, then mpirun's launcher
    local net=$1; shift
    for m in $MODELS; do
        for b in $BATCHES; do
            timeout "$TIMEOUT" "$@" /usr/bin/python3 perf/step_bench.py --model "$m" --batch "$b" \
                --rounds "$ROUNDS" --steps "$STEPS" --network "$net" --out "$OUT" \
                ${STACKS:+--stacks "$STACKS"} 2>&1 | grep -v "UCX  WARN"
        done
    done
}
for net in "${NETS[@]}"; do
    uptime
    if [ "$net" = local ]; then
        bench local mpirun -np 4 "${ENVS[@]}"
    else
        $NC down >/dev/null 2>&1 || true
        $NC up 4 "$net" >/dev/null || { echo "step_bench: netcluster up failed" >&2; exit 1; }
        bench "$net" $NC mpirun -np 4 "${ENVS[@]}" --mca pml ucx --mca pml_ucx_tls any \
            --mca pml_ucx_devices any -x UCX_TLS=tcp,sm,self -x UCX_NET_DEVICES=veth0 \
            -x GLOO_SOCKET_IFNAME=veth0 -x MASTER_ADDR=10.78.0.1 -x MASTER_PORT=29511
        $NC down >/dev/null 2>&1
    fi
done
