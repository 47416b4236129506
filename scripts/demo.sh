#!/usr/bin/env bash
# One command: install what is missing, build, run the demo on 4 local ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
. scripts/env.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "== allreduce example, 4 ranks"
mpirun -np 4 build/examples/allreduce_example
echo "== terse_bench, 4 ranks, 1 MiB .. 16 MiB"
mpirun -np 4 build/perf/terse_bench --min-bytes 1M --max-bytes 16M --iters 5
