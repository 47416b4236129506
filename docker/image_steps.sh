#!/usr/bin/env bash
# The install check (CTest install.package, also run inside terse:dev by docker/test.sh):
#   image_steps.sh <build-dir> <prefix>
# Installs terse from <build-dir> into <prefix>, then builds examples/allreduce.c against the
# installed CMake package (find_package(terse)) and against pkg-config, and runs it.
set -euo pipefail
build=${1:?build dir}
prefix=${2:?install prefix}
src=$(cd "$(dirname "$0")/.." && pwd)
cmake --install "$build" --prefix "$prefix" >/dev/null
# The Python package's _libpath.py lands under <prefix> and names <prefix>'s library (it once
# went to the configured prefix: harmless as root, "Permission denied" for anyone else).
for lp in "$prefix"/lib/python3*/dist-packages/terse/_libpath.py; do
    [ -f "$lp" ] || continue
    grep -q "LIBRARY = '$prefix/" "$lp" || { echo "$lp does not point into $prefix" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(terse REQUIRED)
find_package(MPI REQUIRED COMPONENTS C)
add_executable(allreduce_example $src/examples/allreduce.c)
target_link_libraries(allreduce_example terse::terse terse::terse_mpi MPI::MPI_C)
CM
cmake -S "$work" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/build" >/dev/null
PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" \
    mpicc "$src/examples/allreduce.c" -o "$work/pc_example" $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" pkg-config --cflags --libs terse) -lterse_mpi
export LD_LIBRARY_PATH="$prefix/lib:$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe -np 2 "$work/build/allreduce_example"
mpirun --oversubscribe -np 2 "$work/pc_example"
echo "installed terse at $prefix works from find_package and pkg-config"
