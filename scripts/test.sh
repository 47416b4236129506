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
# A test that fails runs once more (its first output stays in the log): rarely, under this
# load, a TCP connection between two local ranks breaks and every rank reports it (a clear
# error, no hang), which says nothing about the code under test. Failing twice fails the run.
ctest --test-dir build-test --output-on-failure --repeat until-pass:2 -LE 'unit|fuzz'
if [ -x tests/fuzz/run_fuzzers.sh ] && command -v clang >/dev/null; then
    CC=clang CXX=clang++ cmake -S . -B build-fuzz -DTERSE_BUILD_FUZZERS=ON -DTERSE_BUILD_PYTHON=OFF \
        -DTERSE_BUILD_PERF=OFF >/dev/null
    tests/fuzz/run_fuzzers.sh build-fuzz 15
fi
if [ "${TERSE_DOCKER_TEST:-1}" != 0 ]; then
    docker/test.sh
fi
echo "all tests passed"
