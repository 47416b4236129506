#!/usr/bin/env bash
# Installs terse's Debian 12 dependencies, only those missing. Needs root (or sudo).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libucx-dev ucx-utils libhwloc-dev hwloc
      openmpi-bin libopenmpi-dev clang libclang-rt-14-dev iproute2
      python3 python3-numpy python3-pytest python3-mpi4py python3-torch python3-matplotlib
      python3-dev libtorch-dev pybind11-dev
      dataset-fashion-mnist)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
