#!/bin/bash
# perf/pmpi_bench.sh [modes...] - an unmodified MPI program's collectives with and without
# LD_PRELOAD=libterse_pmpi.so, in the same session, runs alternating.
#
# Modes (default: unshaped 1gbit):
#   unshaped   NP ranks on this machine, Open MPI's defaults
#   <rate>     4 emulated hosts (perf/netcluster.sh, needs root) at e.g. 1gbit, one rank each,
#              UCX TCP over veth0 for both Open MPI and terse (as perf/netcluster_bench.sh)
# The program is perf/pmpi_loop (MPI only). For each mode and op, ROUNDS rounds; each round
# runs it once without and once with the preload (the order flips every round). A row is the
# median over rounds of pmpi_loop's per-size median (the slowest rank's time per call).
#
# Environment (defaults): BUILD=build NP=4 HOSTS=4 ROUNDS=3 OPS=allreduce (or allgather,
#   bcast: then TERSE_PMPI_COLLECTIVES gets that call too) MIN_BYTES=4k MAX_BYTES=256m
#   TIMEOUT=900 (seconds per mpirun) TAG="" (appended to the output names, e.g. _gather);
#   TERSE_PMPI_* settings are passed on to the preloaded runs.
# Output: perf/results/pmpi_<mode><TAG>.csv (mode,op,bytes,ranks,mpi_s,terse_s,speedup,rounds,
#   mpi_runs_s,terse_runs_s) and perf/results/pmpi_<mode><TAG>.md, with the machine's load.
set -uo pipefail
cd "$(dirname "$0")/.."
NC=perf/netcluster.sh
BUILD=${BUILD:-build}; NP=${NP:-4}; HOSTS=${HOSTS:-4}; ROUNDS=${ROUNDS:-3}
OPS=${OPS:-allreduce}; MIN_BYTES=${MIN_BYTES:-4k}; MAX_BYTES=${MAX_BYTES:-256m}
TIMEOUT=${TIMEOUT:-900}; TAG=${TAG:-}
LOOP=$BUILD/perf/pmpi_loop
LIB=$(readlink -f "$BUILD/bindings/pmpi/libterse_pmpi.so" 2>/dev/null)
RES=perf/results; TMP=$RES/tmp
MODES=("$@"); [ ${#MODES[@]} -gt 0 ] || MODES=(unshaped 1gbit)

[ -x "$LOOP" ] && [ -n "$LIB" ] || { echo "pmpi_bench: build $LOOP and libterse_pmpi first" >&2; exit 1; }
mkdir -p "$RES" "$TMP"
. scripts/env.sh
unset TERSE_HOST_ID
cluster_up=0
trap '[ $cluster_up = 1 ] && $NC down >/dev/null 2>&1; true' EXIT
trap 'exit 130' INT TERM

# Open MPI's big temporaries: without these glibc mmaps them afresh every call (see netcluster.sh)
MALLOC=(-x MALLOC_MMAP_MAX_=0 -x MALLOC_TRIM_THRESHOLD_=17179869184)
UCX=(--mca pml ucx --mca pml_ucx_tls any --mca pml_ucx_devices any
     -x UCX_TLS=tcp,sm,self -x UCX_NET_DEVICES=veth0)
PMPI_ENV=(); for v in $(env | grep -o '^TERSE_PMPI_[A-Z_]*' | grep -v COLLECTIVES); do PMPI_ENV+=(-x "$v"); done

for mode in "${MODES[@]}"; do
    if [ "$mode" = unshaped ]; then
        LAUNCH=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1
                "${MALLOC[@]}" -np "$NP")
        ranks=$NP; where="$NP ranks on this machine ($(nproc) cores), Open MPI's default transports"
    else
        [ "$(id -u)" = 0 ] || { echo "pmpi_bench: $mode needs root" >&2; exit 1; }
        $NC down >/dev/null 2>&1 || true
        $NC up "$HOSTS" "$mode" >/dev/null || { echo "netcluster up failed" >&2; exit 1; }
        cluster_up=1
        LAUNCH=($NC mpirun -np "$HOSTS" --oversubscribe "${UCX[@]}")
        ranks=$HOSTS; where="$HOSTS emulated hosts at $mode per direction (perf/netcluster.sh), one rank each, UCX TCP over veth0"
    fi
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "== $mode: $where; load $load0"
    for op in $OPS; do rm -f "$TMP"/pmpi_"${mode}"_"${op}"_*.csv; done
    for op in $OPS; do
        colls=allreduce,iallreduce
        case $op in allgather) colls=$colls,allgather,allgatherv;; bcast) colls=$colls,bcast;; esac
        for r in $(seq 1 "$ROUNDS"); do
            order="mpi terse"; [ $((r % 2)) = 0 ] && order="terse mpi"
            for v in $order; do
                extra=(); [ "$v" = terse ] && extra=(-x LD_PRELOAD="$LIB" -x TERSE_PMPI_COLLECTIVES=$colls "${PMPI_ENV[@]}")
                out=$TMP/pmpi_${mode}_${op}_${v}_r${r}.csv
                timeout "$TIMEOUT" "${LAUNCH[@]}" "${extra[@]}" "$LOOP" --op "$op" \
                    --min-bytes "$MIN_BYTES" --max-bytes "$MAX_BYTES" --csv "$out" 2> >(grep -v 'topo_plan\|placement' >&2) \
                    | sed "s/^/[$mode round $r $v] /"
                [ "${PIPESTATUS[0]}" = 0 ] || echo "   FAILED: $mode $op $v round $r" >&2
            done
        done
    done
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    csv=$RES/pmpi_${mode}${TAG}.csv; md=$RES/pmpi_${mode}${TAG}.md
    echo "mode,op,bytes,ranks,mpi_s,terse_s,speedup,rounds,mpi_runs_s,terse_runs_s" > "$csv"
    # per (op, bytes): every round's median of each variant, then their median
    for f in $(for op in $OPS; do ls "$TMP"/pmpi_"${mode}"_"${op}"_*.csv 2>/dev/null; done); do
        v=$(basename "$f" | sed 's/.*_\(mpi\|terse\)_r[0-9]*\.csv/\1/')
        tail -n +2 "$f" | awk -F, -v v="$v" '{print $1, $2, $3, v, $5}'
    done | sort -k1,1 -k2,2n -k4,4 -k5,5g | awk -v mode="$mode" '
        function med(s,   a, n) { n = split(s, a, " "); return a[int((n + 1) / 2)] }
        { k = $1 "," $2 "," $3; if (!(k in seen)) { seen[k] = 1; ord[++n] = k }
          t[k "," $4] = t[k "," $4] (t[k "," $4] == "" ? "" : " ") $5; c[k "," $4]++ }
        END { for (i = 1; i <= n; i++) { k = ord[i]; m = t[k ",mpi"]; s = t[k ",terse"]
              if (m == "" || s == "") continue
              printf "%s,%s,%.6f,%.6f,%.2f,%d,%s,%s\n", mode, k, med(m), med(s), med(m) / med(s),
                     c[k ",mpi"], m, s } }' >> "$csv"
    {
        echo "MPI_Allreduce & co. of an unmodified program (perf/pmpi_loop), without and with"
        echo "LD_PRELOAD=libterse_pmpi.so: $where. $ROUNDS alternating rounds, median over rounds of the"
        echo "per-size median of the slowest rank. Load average $load0 before, $load1 after."
        echo
        echo "| op | bytes | MPI s | preloaded s | × (MPI / preloaded) |"
        echo "|---|---:|---:|---:|---:|"
        tail -n +2 "$csv" | awk -F, '{ b = $3; u = "B"
            if (b >= 1048576) { b /= 1048576; u = " MiB" } else if (b >= 1024) { b /= 1024; u = " KiB" }
            printf "| %s | %d%s | %.4f | %.4f | %.2f |\n", $2, b, u, $5, $6, $7 }'
    } > "$md"
    cat "$md"
    if [ "$mode" != unshaped ]; then $NC down >/dev/null; cluster_up=0; fi
done
