#!/bin/bash
# perf/netcluster_bench.sh [rates...] - terse_bench on 4 emulated hosts (perf/netcluster.sh).
#
# For each rate (default: 1gbit 10gbit) brings up 4 hosts (network namespaces, tbf-shaped veth
# links, own hostname each, so terse sees 4 hosts), then runs build-net/perf/terse_bench over UCX
# TCP on veth0 for each compressor and each size, twice: once against Open MPI's default
# MPI_Allreduce and once against its forced ring (coll_tuned algorithm 4). Always tears down.
# Needs root. Build first:
#   cmake -S . -B build-net -DCMAKE_BUILD_TYPE=Release && make -C build-net -j2 terse_bench
#
# Environment (defaults):
#   HOSTS=4  ITERS=3  WARMUP=1  SIZES="64M 256M" (bytes of float32: 16M and 64M floats)
#   COMPRESSORS="none;topk:0.01 --double-way;sign --double-way"  (';'-separated terse_bench args)
#   MPI_VARIANTS="default ring"  BUILD=build-net  TIMEOUT=600 (seconds per mpirun)
#   RANKS_PER_HOST=1  HIERARCHIES="none"  (with RANKS_PER_HOST > 1, e.g. HIERARCHIES="none node"
#                   runs every case flat and with TERSE_HIERARCHY=node; ranks are placed
#                   round-robin over the hosts, UCX uses shared memory inside a host)
#
# Output: perf/results/netcluster_<rate>_<compressor>.csv, terse_bench's columns plus
#   mpi_allreduce   default | ring
#   rate_bps        link rate per direction
#   host_tx_bytes_per_iter  bytes each host's veth0 sent per (terse + MPI) iteration, from
#                   "netcluster.sh bytes" (Ethernet frames: includes ~3-4% TCP/IP headers)
#   terse_util      wire_bytes_per_rank / terse_s / link rate (what terse_bench counts)
#   terse_util_measured  (ring runs only) terse's share of the measured bytes, i.e.
#                   host_tx_bytes_per_iter - R * 2(P-1)/P * bytes (ring MPI_Allreduce over P
#                   ranks, R per host, every ring hop between hosts), / terse_s / rate
#   hierarchy, ranks_per_host
#   terse_host_tx_bytes_per_iter  (ring runs only) the same share in bytes: what terse sent
#                   over each host's link per call
# and a summary perf/results/netcluster_<rate>.md (files get a _r<R>_<hierarchy> suffix when
# RANKS_PER_HOST > 1). "netcluster_bench.sh --summary RATE..." only rewrites the summaries.
# Compressor specs appear in the CSVs with ';' for ',' ("topk:0.01;block=262144+double").
set -uo pipefail
cd "$(dirname "$0")/.."
NC=perf/netcluster.sh
HOSTS=${HOSTS:-4}; ITERS=${ITERS:-3}; WARMUP=${WARMUP:-1}
SIZES=${SIZES:-"64M 256M"}
COMPRESSORS=${COMPRESSORS:-"none;topk:0.01 --double-way;sign --double-way"}
MPI_VARIANTS=${MPI_VARIANTS:-"default ring"}
BUILD=${BUILD:-build-net}; TIMEOUT=${TIMEOUT:-600}
RPH=${RANKS_PER_HOST:-1}; HIERARCHIES=${HIERARCHIES:-none}
BENCH=$BUILD/perf/terse_bench
RES=perf/results; TMP=$RES/tmp
SUMMARY_ONLY=0; [ "${1:-}" = --summary ] && { SUMMARY_ONLY=1; shift; }
RATES=("$@"); [ ${#RATES[@]} -gt 0 ] || RATES=(1gbit 10gbit)

[ "$(id -u)" = 0 ] || { echo "netcluster_bench: needs root" >&2; exit 1; }
[ -x "$BENCH" ] || { echo "netcluster_bench: build $BENCH first (see header)" >&2; exit 1; }
mkdir -p "$RES" "$TMP"
trap '$NC down >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT TERM

UCX=(--mca pml ucx --mca pml_ucx_tls any --mca pml_ucx_devices any
     -x UCX_TLS=tcp,sm,self -x UCX_NET_DEVICES=veth0)
RING=(--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4)

rate_bps() { case "$1" in *gbit) echo $(( ${1%gbit} * 1000000000 ));; *mbit) echo $(( ${1%mbit} * 1000000 ));; esac; }
tx_avg() { $NC bytes | awk '{s+=$2; n++} END{printf "%.0f", s/n}'; }   # mean tx bytes per host

# summary table (markdown) of rate $1 from the CSVs
summary() {
    local rate=$1 md f
    md=$RES/netcluster_${rate}$([ "$RPH" -gt 1 ] && echo "_r${RPH}").md
    {
        echo "$HOSTS emulated hosts at $rate per direction, $((HOSTS * RPH)) ranks ($RPH per host), UCX TCP between hosts, iters $ITERS (median of the slowest rank)."
        echo
        echo "| compressor | hierarchy | algorithm | MiB | terse s | MPI default s | × vs default | MPI ring s | × vs ring | wire MiB/rank | util (counted) | util (measured) | terse MiB/host on the link |"
        echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for f in $RES/netcluster_${rate}_*.csv; do
            [ "$RPH" -gt 1 ] && [[ "$f" != *_r${RPH}_* ]] && continue
            [ "$RPH" = 1 ] && [[ "$f" == *_r[0-9]*_* ]] && continue
            awk -F, 'NR>1 { k=$2 SUBSEP $5 SUBSEP $17; alg[k]=$3; c[k]=$2; b[k]=$5; w[k]=$9; u[k]=$15
                  hy[k]=($17 == "" ? "none" : $17); if ($19 != "") tb[k]=$19
                  if ($12=="default") { td[k]=$6; md[k]=$7 } else { tr[k]=$6; mr[k]=$7; um[k]=$16 }
                  if (!(k in seen)) { seen[k]=1; ord[++n]=k } }
                END { for (i=1;i<=n;i++) { k=ord[i]
                  ts = (k in td) ? td[k] : tr[k]
                  printf "| %s | %s | %s | %d | %.2f | %s | %s | %s | %s | %.1f | %s | %s | %s |\n", c[k], hy[k], alg[k], b[k]/1048576, ts,
                    (k in md) ? sprintf("%.2f", md[k]) : "-", (k in md) ? sprintf("%.1f", md[k]/td[k]) : "-",
                    (k in mr) ? sprintf("%.2f", mr[k]) : "-", (k in mr) ? sprintf("%.1f", mr[k]/tr[k]) : "-",
                    w[k]/1048576, u[k], (k in um) ? um[k] : "-", (k in tb) ? sprintf("%.1f", tb[k]/1048576) : "-" } }' "$f"
        done
    } > "$md"
    cat "$md"
}

if [ "$SUMMARY_ONLY" = 1 ]; then
    for rate in "${RATES[@]}"; do summary "$rate"; done
    exit 0
fi
unset TERSE_HOST_ID
HDR="op,compressor,algorithm,ranks,bytes,terse_s,mpi_s,speedup_vs_mpi,wire_bytes_per_rank,algbw_gbps,busbw_gbps"
for rate in "${RATES[@]}"; do
    bps=$(rate_bps "$rate")
    $NC down >/dev/null 2>&1 || true
    $NC up "$HOSTS" "$rate" >/dev/null || { echo "netcluster up failed" >&2; exit 1; }
    echo "== $rate: $HOSTS hosts, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    IFS=';' read -ra COMPS <<< "$COMPRESSORS"
    for hier in $HIERARCHIES; do
    sfx=""; [ "$RPH" -gt 1 ] && sfx="_r${RPH}_${hier}"
    for comp in "${COMPS[@]}"; do
        read -ra CARGS <<< "$comp"
        tag=$(echo "$comp" | sed 's/--double-way/dw/; s/[ :,=]\+/-/g; s/-$//')
        out=$RES/netcluster_${rate}_${tag}${sfx}.csv
        echo "$HDR,mpi_allreduce,rate_bps,host_tx_bytes_per_iter,terse_util,terse_util_measured,hierarchy,ranks_per_host,terse_host_tx_bytes_per_iter" > "$out"
        for mv in $MPI_VARIANTS; do
            extra=(); [ "$mv" = ring ] && extra=("${RING[@]}")
            for sz in $SIZES; do
                t=$TMP/nc_${rate}_${tag}_${mv}_${sz}.csv; rm -f "$t"
                b0=$(tx_avg); s0=$(date +%s.%N)
                timeout "$TIMEOUT" $NC mpirun -np $((HOSTS * RPH)) --oversubscribe \
                    -x TERSE_HIERARCHY="$hier" "${UCX[@]}" "${extra[@]}" \
                    "$BENCH" --compressor "${CARGS[0]}" "${CARGS[@]:1}" \
                    --min-bytes "$sz" --max-bytes "$sz" --iters "$ITERS" --warmup "$WARMUP" --csv "$t" 2> >(grep -v topo_plan >&2) \
                    | grep -v '^#' | sed "s/^/[$rate $comp hierarchy=$hier mpi=$mv] /"
                rc=${PIPESTATUS[0]}
                b1=$(tx_avg); s1=$(date +%s.%N)
                printf '   (rc %s, %.0f s wall)\n' "$rc" "$(echo "$s1 - $s0" | bc)"
                [ "$rc" = 0 ] && [ -s "$t" ] || { echo "   FAILED: $comp $mv $sz" >&2; continue; }
                tail -n +2 "$t" | awk -F, -v OFS=, -v mv=$mv -v bps=$bps -v d=$((b1 - b0)) \
                    -v n=$((ITERS + WARMUP)) -v P=$((HOSTS * RPH)) -v R=$RPH -v h=$hier '{
                    per = d / n; util = $9 / $6 * 8 / bps; meas = ""; tb = "";
                    if (mv == "ring") { tb = per - R*2*(P-1)/P*$5; meas = sprintf("%.3f", tb / $6 * 8 / bps)
                                        tb = sprintf("%.0f", tb) }
                    print $0, mv, bps, sprintf("%.0f", per), sprintf("%.3f", util), meas, h, R, tb }' >> "$out"
            done
        done
    done
    done
    $NC down >/dev/null
    summary "$rate"
done
