#!/bin/sh
# Builds (if needed) and runs every decoder fuzzer for a short while over its seed corpus.
# Usage: tests/fuzz/run_fuzzers.sh <clang-build-dir> [seconds per fuzzer, default 20]
# The build dir is configured with clang and TERSE_BUILD_FUZZERS=ON when it has no cache yet.
# Exit status 0 when no fuzzer found a problem; crash inputs and logs stay in
# <build-dir>/tests/fuzz/.
set -eu
if [ $# -lt 1 ]; then
    echo "usage: $0 <clang-build-dir> [seconds]" >&2
    exit 2
fi
build=$1
secs=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
if [ ! -f "$build/CMakeCache.txt" ]; then
    CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S "$src" -B "$build" -DTERSE_BUILD_FUZZERS=ON
fi
build=$(cd "$build" && pwd)
# the codec names of the "codec@spec" pairs in CMakeLists.txt
targets=$(grep -v '^ *#' "$here/CMakeLists.txt" | grep -o '"[a-z0-9]*@' | tr -d '"@' | tr '\n' ' ')
for t in $targets; do
    cmake --build "$build" --target "fuzz_decode_$t" -j "$(nproc)"
done
status=0
for t in $targets; do
    bin="$build/tests/fuzz/fuzz_decode_$t"
    work="$build/tests/fuzz/work/$t"
    log="$build/tests/fuzz/fuzz_decode_$t.log"
    mkdir -p "$work"
    printf 'fuzz_decode_%-8s %ss ... ' "$t" "$secs"
    if (cd "$build/tests/fuzz" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        "$work" "$here/corpus/$t") >"$log" 2>&1; then
        echo "ok ($(grep -c . "$log") log lines, corpus $(ls "$work" | wc -l) new inputs)"
    else
        echo "FAILED (see $log)"
        tail -n 30 "$log"
        status=1
    fi
done
exit $status
