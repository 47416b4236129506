#!/bin/bash
# perf/netcluster.sh - emulate an N-host cluster on one Linux box with network namespaces,
# so terse's compressed allreduce can be benchmarked on bandwidth-limited "links" (needs root).
# terse's own copy, adapted from a workspace tool; the project does not depend on anything
# outside this repository.
#
#   perf/netcluster.sh up [N=4] [RATE=1gbit]  create tnode1..tnodeN (netns), bridge, shape links
#   perf/netcluster.sh rate RATE              re-shape all links (e.g. 10gbit, 500mbit, off)
#   perf/netcluster.sh status                 namespaces, addresses, byte counters, qdiscs
#   perf/netcluster.sh bytes                  one line per host: "<host> <tx_bytes> <rx_bytes>"
#   perf/netcluster.sh mpirun <mpirun args>   mpirun from the root ns onto the hosts
#   perf/netcluster.sh down                   delete everything this script created
#
# Topology (private to this machine: ip_forward untouched, no default route in the namespaces):
#
#   root ns: bridge $NC_BRIDGE ($NC_NET.254/24; mpirun/HNP lives here, control traffic only)
#     +-- ncv-tnode1 ==veth== [netns tnode1] veth0 $NC_NET.1/24   (tbf RATE on both ends)
#     +-- ncv-tnode2 ==veth== [netns tnode2] veth0 $NC_NET.2/24
#     ...
# Each link is shaped with tc tbf on BOTH veth ends (egress of the host and egress of the bridge
# port towards it): a full-duplex "NIC" of RATE per direction. No delay emulation (netem may be
# missing from the kernel); messages no larger than the tbf burst sent after an idle gap pass at
# unshaped speed.
#
# Open MPI starts orted in a namespace through the rsh agent $NETCLUSTER_DIR/nsexec.sh, which runs
# "ip netns exec <host> unshare --uts sh -c 'hostname <host>; <orted cmd>'": every host has its
# own hostname, so terse sees N hosts (leave TERSE_HOST_ID unset).
#
# Defaults differ from the workspace tool so both can coexist:
#   NETCLUSTER_DIR=/tmp/terse-netcluster NC_BRIDGE=tncbr0 NC_NET=10.78.0 NC_PREFIX=tnode
#   BURST=<bytes> overrides the tbf burst (default 200 us of bytes, at least 128 KiB).
set -euo pipefail
BASE=${NETCLUSTER_DIR:-/tmp/terse-netcluster}
BR=${NC_BRIDGE:-tncbr0}
NET=${NC_NET:-10.78.0}
PFX=${NC_PREFIX:-tnode}
mkdir -p "$BASE"; STATE=$BASE/netcluster.state
HOSTFILE=$BASE/netcluster.hosts
AGENT=$BASE/nsexec.sh

die() { echo "netcluster: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tc)"

rate_bps() {  # 10gbit / 500mbit -> bits per second
    local r=$1
    case "$r" in
        *gbit) echo $(( ${r%gbit} * 1000000000 ));;
        *mbit) echo $(( ${r%mbit} * 1000000 ));;
        *) die "rate must look like 10gbit or 500mbit";;
    esac
}

tbf_args() {  # RATE -> tbf parameters
    local r=$1 bps
    bps=$(rate_bps "$r")
    # burst = 200 us worth of bytes, at least 128 KiB. Measured (TCP, 1gbit, tbf on both ends):
    # 64 KiB collapses to ~0.4 Gbit/s per flow in a 4-flow ring; 128-256 KiB gives 0.94-0.95.
    local burst=${BURST:-$(( bps / 8 / 5000 ))}
    (( burst < 131072 )) && burst=131072
    echo "rate $r burst $burst latency 20ms"
}

hosts() { awk '$1=="ns"{print $2}' "$STATE"; }

shape() {
    local r=$1
    for h in $(hosts); do
        if [ "$r" = off ]; then
            tc qdisc del dev ncv-$h root 2>/dev/null || true
            ip netns exec $h tc qdisc del dev veth0 root 2>/dev/null || true
        else
            tc qdisc replace dev ncv-$h root tbf $(tbf_args $r)
            ip netns exec $h tc qdisc replace dev veth0 root tbf $(tbf_args $r)
        fi
    done
    sed -i '/^rate /d' "$STATE"; echo "rate $r" >> "$STATE"
}

up() {
    local n=${1:-4} r=${2:-1gbit}
    [ -e "$STATE" ] && die "already up (state file $STATE); run '$0 down' first"
    ip link show $BR >/dev/null 2>&1 && die "bridge $BR already exists"
    ip route show | grep -q "^$NET\." && die "route to $NET.0/24 already exists"
    : > "$STATE"
    ip link add $BR type bridge;  echo "bridge $BR" >> "$STATE"
    sysctl -qw net.ipv6.conf.$BR.disable_ipv6=1 || true
    ip addr add $NET.254/24 dev $BR
    ip link set $BR up
    : > "$HOSTFILE"
    for i in $(seq 1 "$n"); do
        local h=$PFX$i
        ip netns list | grep -qw "^$h" && die "netns $h already exists"
        ip netns add $h;                    echo "ns $h" >> "$STATE"
        ip link add ncv-$h type veth peer name veth0 netns $h
        sysctl -qw net.ipv6.conf.ncv-$h.disable_ipv6=1 || true
        ip link set ncv-$h master $BR
        ip link set ncv-$h up
        ip netns exec $h sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
        ip -n $h link set lo up
        ip -n $h addr add $NET.$i/24 dev veth0
        ip -n $h link set veth0 up
        echo "$h slots=1" >> "$HOSTFILE"
    done
    cat > "$AGENT" <<EOF
#!/bin/sh
# rsh agent for Open MPI: nsexec.sh <host> <command...>  (host = $PFX<i> or $NET.<i>)
h=\$1; shift
case "\$h" in $NET.*) h=$PFX\${h##*.};; esac
exec ip netns exec "\$h" unshare --uts /bin/sh -c "hostname \$h; \$*"
EOF
    chmod +x "$AGENT"
    mkdir -p $BASE/ompitmp
    [ "$r" = off ] || shape "$r"
    status
}

down() {
    [ -e "$STATE" ] || { echo "netcluster: not up (no $STATE)"; return 0; }
    for h in $(hosts); do
        ip netns del $h 2>/dev/null || echo "warn: netns $h missing"   # also destroys the veth pair
    done
    ip link show $BR >/dev/null 2>&1 && ip link del $BR
    rm -f "$STATE" "$HOSTFILE" "$AGENT"
    echo "netcluster: down"
}

bytes() {
    [ -e "$STATE" ] || die "not up"
    for h in $(hosts); do
        ip -n $h -s link show veth0 | awk -v h=$h '/RX:/{getline; rx=$1} /TX:/{getline; tx=$1} END{print h, tx, rx}'
    done
}

status() {
    [ -e "$STATE" ] || { echo "netcluster: down"; return 0; }
    echo "# state: $(tr '\n' ' ' < "$STATE")"
    ip -br addr show $BR
    for h in $(hosts); do
        echo "[$h] $(ip -n $h -br addr show veth0 | tr -s ' ') $(ip -n $h -s link show veth0 | awk '/RX:/{getline; rx=$1} /TX:/{getline; tx=$1} END{printf "rx_bytes=%s tx_bytes=%s", rx, tx}')"
        ip netns exec $h tc -s qdisc show dev veth0 | sed -n '1,2p' | sed "s/^/   $h out: /"
        tc -s qdisc show dev ncv-$h | sed -n '1,2p' | sed "s/^/   $h in : /"
    done
}

# Common mpirun flags (mpirun runs in the root ns, the "login node").
#  - mpi_yield_when_idle 1: each orted sees free cores and 1 rank, so Open MPI does not know the
#    box is oversubscribed; busy-polling ranks would make small-message latency milliseconds.
#  - orte_tmpdir_base keeps session dirs under $BASE.
#  - MALLOC_*: stop glibc from mmap'ing Open MPI's >32 MiB per-call temporary buffers afresh
#    (page faults are expensive in VMs; without this MPI_Allreduce >= 64 MiB drops ~10x).
# Add per run, for UCX: --mca pml ucx --mca pml_ucx_tls any --mca pml_ucx_devices any
#                       -x UCX_TLS=tcp -x UCX_NET_DEVICES=veth0
MPI_BASE=(--allow-run-as-root --hostfile "$HOSTFILE" --map-by node
          --mca plm_rsh_agent "$AGENT" --mca plm_rsh_no_tree_spawn 1
          --mca oob_tcp_if_include $NET.0/24
          --mca orte_tmpdir_base $BASE/ompitmp
          --mca mpi_yield_when_idle 1
          -x MALLOC_MMAP_MAX_=0 -x MALLOC_TRIM_THRESHOLD_=17179869184)

case "${1:-}" in
    up) shift; up "$@";;
    down) down;;
    rate) [ -e "$STATE" ] || die "not up"; shape "${2:?rate}"; status;;
    status) status;;
    bytes) bytes;;
    mpirun) shift; [ -e "$STATE" ] || die "not up"; exec mpirun "${MPI_BASE[@]}" "$@";;
    *) sed -n '2,13p' "$0"; exit 1;;
esac
