#!/bin/bash
# perf/linkbound_bench.sh - the compressed allreduce where the wire, not the shared CPU, is the
# limit: 4 emulated hosts (perf/netcluster.sh) at 100 Mbit/s per direction, dense, Top-K 1% and
# sign, blocked and single-block, against MPI_Allreduce (Open MPI's ring, so its link bytes are
# known) in the same run. Runs perf/netcluster_bench.sh under `flock /tmp/netcluster.lock` (the
# namespaces have machine-wide names) and summarizes its CSVs with link utilization:
#   util = wire bytes per rank / time / link rate   (terse: what it counted it sent;
#          MPI ring: 2 (P-1)/P x bytes, every hop crossing a link)
#   util_measured = terse's share of the bytes each host's veth0 sent (Ethernet frames, so
#          ~3-4% TCP/IP headers included) / time / rate
# Needs root and a build with perf/terse_bench (BUILD, default build).
# Environment (defaults): HOSTS=4 RATE=100mbit SIZES=16M ITERS=3 WARMUP=1 BLOCK=262144
#   COMPRESSORS (';'-separated terse_bench args; default: the six cases above)
# Output: perf/results/linkbound_<rate>.md and .csv (one row per case), and netcluster_bench's
# per-case CSVs perf/results/netcluster_<rate>_*.csv.
set -uo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-4}; RATE=${RATE:-100mbit}; SIZES=${SIZES:-16M}; BLOCK=${BLOCK:-262144}
ITERS=${ITERS:-3}; WARMUP=${WARMUP:-1}; BUILD=${BUILD:-build}
COMPRESSORS=${COMPRESSORS:-"none;topk:0.01 --double-way;topk:0.01,block=$BLOCK --double-way;sign --double-way;sign,block=$BLOCK --double-way"}
RES=perf/results
rm -f $RES/netcluster_${RATE}_*.csv
echo "== linkbound: $HOSTS hosts at $RATE, $(nproc) cores, load before $(cut -d' ' -f1-3 /proc/loadavg)"
HOSTS=$HOSTS ITERS=$ITERS WARMUP=$WARMUP SIZES="$SIZES" COMPRESSORS="$COMPRESSORS" \
    MPI_VARIANTS=ring BUILD=$BUILD flock /tmp/netcluster.lock perf/netcluster_bench.sh "$RATE" \
    > $RES/linkbound_${RATE}.log 2>&1
rc=$?
echo "   netcluster_bench rc $rc, load after $(cut -d' ' -f1-3 /proc/loadavg) (log $RES/linkbound_${RATE}.log)"
out=$RES/linkbound_${RATE}.csv md=$RES/linkbound_${RATE}.md
echo "compressor,algorithm,ranks,bytes,terse_s,mpi_ring_s,speedup_vs_mpi,terse_wire_bytes_per_rank,terse_util,terse_util_measured,mpi_wire_bytes_per_rank,mpi_util" > "$out"
for f in $RES/netcluster_${RATE}_*.csv; do
    [ -e "$f" ] || continue
    # columns: 2 compressor 3 algorithm 4 ranks 5 bytes 6 terse_s 7 mpi_s 8 speedup 9 wire
    #          13 rate_bps 15 terse_util 16 terse_util_measured
    awk -F, -v OFS=, 'NR>1 { P=$4; mw = 2*(P-1)/P*$5
        print $2, $3, P, $5, $6, $7, $8, $9, $15, $16, sprintf("%.0f", mw), sprintf("%.3f", mw/$7*8/$13) }' "$f" >> "$out"
done
{
    echo "$HOSTS emulated hosts at $RATE per direction (tbf both ends), one rank per host, UCX TCP;"
    echo "MPI_Allreduce = Open MPI ring (coll_tuned algorithm 4) in the same mpirun; median of $ITERS iterations of the slowest rank."
    echo
    echo "| compressor | algorithm | MiB | terse s | MPI s | × vs MPI | terse wire MiB/rank | terse util | terse util (measured) | MPI util |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    tail -n +2 "$out" | awk -F, '{ printf "| %s | %s | %d | %.3f | %.3f | %.1f | %.2f | %s | %s | %s |\n", $1, $2, $4/1048576, $5, $6, $7, $8/1048576, $9, $10, $12 }'
} > "$md"
cat "$md"
exit $rc
