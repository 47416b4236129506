#!/bin/bash
# perf/tta_bench.sh [RATE=1gbit] - measured time to 0.85 test accuracy on Fashion-MNIST of the
# 20M-parameter MLP, dense vs SAEF Top-K 1%, on 4 emulated hosts (perf/netcluster.sh; root).
# Environment: BUILD=build, OUT=perf/results/tta_<rate>, ARGS (extra train_bench.py arguments).
set -uo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-1gbit}; BUILD=${BUILD:-build}; OUT=${OUT:-perf/results/tta_$RATE}
LIB=$(readlink -f "$BUILD/src/libterse.so")
[ -e "$LIB" ] || { echo "tta_bench: build $BUILD first" >&2; exit 1; }
. scripts/env.sh
trap 'perf/netcluster.sh down >/dev/null 2>&1 || true' EXIT
perf/netcluster.sh down >/dev/null 2>&1 || true
perf/netcluster.sh up 4 "$RATE" >/dev/null
uptime
perf/netcluster.sh mpirun -np 4 -x PYTHONPATH="$PWD/bindings/python" -x TERSE_LIBRARY="$LIB" \
    -x OMP_NUM_THREADS=1 -x UCX_TLS=tcp,sm,self -x UCX_NET_DEVICES=veth0 \
    /usr/bin/python3 perf/train_bench.py --tta --out "$OUT" ${ARGS:-} 2>&1 | grep -v "UCX  WARN"
