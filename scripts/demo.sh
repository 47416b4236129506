#!/usr/bin/env bash
# One command: install what is missing, build, then show what terse is for: the same training
# dense and compressed (SAEF Top-K 1%) on 4 ranks, side by side. As root the ranks run on 4
# emulated hosts linked at 1 Gbit/s (perf/netcluster.sh); otherwise on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
. scripts/env.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "== allreduce example, 4 ranks"
mpirun -np 4 build/examples/allreduce_example
ENVS=(-x PYTHONPATH="$PWD/bindings/python" -x TERSE_LIBRARY="$PWD/build/src/libterse.so"
      -x OMP_NUM_THREADS=1)
DEMO=(/usr/bin/python3 examples/demo_compare.py --steps "${DEMO_STEPS:-200}")
if [ "$(id -u)" = 0 ] && perf/netcluster.sh up 4 1gbit >/dev/null 2>&1; then
    trap 'perf/netcluster.sh down >/dev/null 2>&1 || true' EXIT
    echo "== training, dense vs SAEF Top-K 1%, 4 emulated hosts at 1 Gbit/s"
    perf/netcluster.sh mpirun -np 4 "${ENVS[@]}" -x UCX_TLS=tcp,sm,self -x UCX_NET_DEVICES=veth0 \
        "${DEMO[@]}" --network "4 emulated hosts at 1 Gbit/s" 2>&1 | grep -v "UCX  WARN"
else
    echo "== training, dense vs SAEF Top-K 1%, 4 local ranks"
    mpirun -np 4 "${ENVS[@]}" "${DEMO[@]}" --network "this machine" 2>&1 | grep -v "UCX  WARN"
fi
