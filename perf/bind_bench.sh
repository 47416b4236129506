#!/bin/bash
# perf/bind_bench.sh - does topology placement pay? terse_bench with TERSE_BIND=auto against
# TERSE_BIND=none on this machine, everything else equal.
#
# For each configuration (dense allreduce and one compressed allreduce) and each repeat, runs
# perf/terse_bench under mpirun twice, once per binding mode, alternating which goes first so
# slow drifts of a shared machine hit both equally. With auto the progress thread is bound
# near the NIC and scratch, RMA slabs and error-feedback buffers are bound to its NUMA node;
# with none nothing is. terse_bench also times MPI_Allreduce in the same run, which no terse
# setting touches: its none/auto ratio is the noise floor of the measurement.
# Build first (any build dir with terse_bench):
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j2 --target terse_bench
#
# Environment (defaults):
#   BUILD=build  NP=4  ITERS=10  WARMUP=2  MIN=1M  MAX=16M (sizes MIN, 4*MIN, ... up to MAX)
#   REPEATS=5  PROGRESS="0 1" (TERSE_PROGRESS_THREAD values; thread binding acts on the thread)
#   CONFIGS="none;topk:0.01 --double-way"  (';'-separated terse_bench arguments)
#   TAG=np4  TIMEOUT=300 (seconds per mpirun)
#
# Output: perf/results/bind_<TAG>.csv, one row per run and size:
#   config,progress_thread,repeat,bind,bytes,algorithm,terse_s,mpi_s
# and perf/results/bind_<TAG>.md, the table printed at the end: per config and size the
# median over repeats of terse's time with auto and with none, ratio = none_s / auto_s
# (> 1: binding is faster), the same ratio for MPI_Allreduce (control), and terse's ratio
# divided by the control's (load that hit one mode's runs cancels out to first order).
# "perf/bind_bench.sh --summary" only rewrites the .md from the CSV.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh 2>/dev/null || true
BUILD=${BUILD:-build}; NP=${NP:-4}; ITERS=${ITERS:-10}; WARMUP=${WARMUP:-2}
MIN=${MIN:-1M}; MAX=${MAX:-16M}; REPEATS=${REPEATS:-5}; PROGRESS=${PROGRESS:-"0 1"}
CONFIGS=${CONFIGS:-"none;topk:0.01 --double-way"}
TAG=${TAG:-np4}; TIMEOUT=${TIMEOUT:-300}
BENCH=$BUILD/perf/terse_bench
RES=perf/results; TMP=$(mktemp -d /tmp/terse-bind-bench.XXXXXX)
CSV=$RES/bind_$TAG.csv; MD=$RES/bind_$TAG.md
trap 'rm -rf "$TMP"' EXIT
SUMMARY_ONLY=0; [ "${1:-}" = --summary ] && SUMMARY_ONLY=1

[ -x "$BENCH" ] || { echo "bind_bench: build $BENCH first (see header)" >&2; exit 1; }
mkdir -p "$RES"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --mca mpi_yield_when_idle 1
        --mca btl self,vader,tcp --bind-to none -np "$NP")

start=$(date +%s)
IFS=';' read -r -a CFGS <<< "$CONFIGS"
[ "$SUMMARY_ONLY" = 1 ] && { [ -f "$CSV" ] || { echo "bind_bench: no $CSV" >&2; exit 1; }; PROGRESS=""; }
[ "$SUMMARY_ONLY" = 1 ] || echo "config,progress_thread,repeat,bind,bytes,algorithm,terse_s,mpi_s" > "$CSV"
for prog in $PROGRESS; do
  for cfg in "${CFGS[@]}"; do
    read -r -a args <<< "$cfg"
    comp=${args[0]}; extra=("${args[@]:1}")
    name=$comp; [ ${#extra[@]} -gt 0 ] && name="$comp ${extra[*]}"
    for ((rep = 1; rep <= REPEATS; rep++)); do
      order="auto none"; (( rep % 2 == 0 )) && order="none auto"
      for bind in $order; do
        out=$TMP/run.csv; rm -f "$out"
        if ! timeout "$TIMEOUT" "${MPIRUN[@]}" -x TERSE_BIND="$bind" -x TERSE_PROGRESS_THREAD="$prog" \
              "$BENCH" --compressor "$comp" "${extra[@]}" --min-bytes "$MIN" --max-bytes "$MAX" \
              --iters "$ITERS" --warmup "$WARMUP" --csv "$out" > "$TMP/log" 2>&1; then
          echo "bind_bench: run failed ($name, bind $bind):" >&2; tail -20 "$TMP/log" >&2; exit 1
        fi
        # terse_bench CSV: op,compressor,algorithm,ranks,bytes,terse_s,mpi_s,...
        awk -F, -v c="$name" -v p="$prog" -v r="$rep" -v b="$bind" \
            'NR>1 { printf "%s,%s,%s,%s,%s,%s,%s,%s\n", c, p, r, b, $5, $3, $6, $7 }' "$out" >> "$CSV"
        printf '  %-28s progress %s  repeat %d  %-4s  done (%ds)\n' "$name" "$prog" "$rep" "$bind" \
               $(( $(date +%s) - start )) >&2
      done
    done
  done
done

# One placement line per mode, for the record (rank 0's plan, as the communicator logs it).
placement() {
  timeout 60 "${MPIRUN[@]}" -x TERSE_BIND="$1" -x TERSE_LOG_LEVEL=info "$BENCH" --min-bytes 4K \
      --max-bytes 4K --iters 1 --warmup 0 2>&1 | grep -m1 'rank 0 placement' | sed 's/^.*placement: //'
}

{
  reps=$(awk -F, 'NR > 1 && $3 > r { r = $3 } END { print r + 0 }' "$CSV")
  echo "terse_bench, $NP ranks on $(nproc) cores of $(hostname) (mpirun --bind-to none), $ITERS iterations"
  echo "(median of the slowest rank), median over $reps alternating repeats per mode; load average"
  echo "$(cut -d' ' -f1-3 /proc/loadavg) when the table was written."
  echo "ratio = none_s / auto_s: above 1 binding is faster. MPI ratio: the same for MPI_Allreduce in"
  echo "the same runs, which TERSE_BIND does not touch (the noise floor). normalized = ratio / MPI ratio."
  echo
  echo "- TERSE_BIND=auto: $(placement auto)"
  echo "- TERSE_BIND=none: $(placement none)"
  echo
  echo "| config | progress thread | KiB | algorithm | auto ms | none ms | ratio none/auto | MPI ratio | normalized |"
  echo "|---|---:|---:|---|---:|---:|---:|---:|---:|"
  awk -F, 'function med(s,   a, n, i, j, t) { n = split(s, a, " ")
              for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
              return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
           NR > 1 { k = $1 SUBSEP $2 SUBSEP $5; if (!(k in seen)) { seen[k] = 1; ord[++n] = k }
                    alg[k] = $6; t[k, $4] = t[k, $4] " " $7; m[k, $4] = m[k, $4] " " $8 }
           END { for (i = 1; i <= n; i++) { k = ord[i]; split(k, f, SUBSEP)
                   ta = med(t[k, "auto"]); tn = med(t[k, "none"]); ma = med(m[k, "auto"]); mn = med(m[k, "none"])
                   printf "| %s | %s | %d | %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", f[1], f[2] ? "on" : "off",
                          f[3] / 1024, alg[k], ta * 1e3, tn * 1e3, tn / ta, mn / ma, (tn / ta) / (mn / ma) } }' "$CSV"
} > "$MD"
cat "$MD"
echo "bind_bench: $CSV, $MD ($(( $(date +%s) - start )) s)" >&2
