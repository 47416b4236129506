#!/bin/bash
# expect_log.sh PATTERN... -- COMMAND...: runs COMMAND; passes if it succeeds and its output
# (stdout and stderr) contains every PATTERN (fixed strings).
pats=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do pats+=("$1"); shift; done
shift
out=$(mktemp); trap 'rm -f "$out"' EXIT
"$@" > "$out" 2>&1; rc=$?
cat "$out"
[ "$rc" = 0 ] || { echo "expect_log: command failed (rc $rc)"; exit 1; }
for p in "${pats[@]}"; do
    n=$(grep -cF -- "$p" "$out")
    [ "$n" -ge 1 ] || { echo "expect_log: missing '$p'"; exit 1; }
    [ "$n" = 1 ] || { echo "expect_log: '$p' printed $n times, want once"; exit 1; }
done
