#!/usr/bin/env bash
# One command: install what is missing, build with -Werror, run every test (unit, mpi,
# python, fuzz), then build the container images and run them (docker/test.sh, about 14
# minutes cold on 2 cores; TERSE_DOCKER_TEST=0 skips it). Used by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
. scripts/env.sh
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERSE_WERROR=ON >/dev/null
cmake --build build-test -j"$(nproc)"
# mpi and python tests oversubscribe the cores themselves: run them one at a time.
ctest --test-dir build-test --output-on-failure -j"$(nproc)" -L unit
ctest --test-dir build-test --output-on-failure -LE 'unit|fuzz'
if [ -x tests/fuzz/run_fuzzers.sh ] && command -v clang >/dev/null; then
    CC=clang CXX=clang++ cmake -S . -B build-fuzz -DTERSE_BUILD_FUZZERS=ON -DTERSE_BUILD_PYTHON=OFF \
        -DTERSE_BUILD_PERF=OFF >/dev/null
    tests/fuzz/run_fuzzers.sh build-fuzz 15
fi
if [ "${TERSE_DOCKER_TEST:-1}" != 0 ]; then
    docker/test.sh
fi
echo "all tests passed"
