#!/usr/bin/env bash
# Install Stretto's build/test dependencies from Debian 12's archive.
#
# Idempotent and non-interactive. If every package is already installed it does not touch apt
# at all (fast reruns). Runs as root, or through sudo otherwise. While apt runs, a temporary
# /usr/sbin/policy-rc.d (exit 101) keeps packages (munge, slurm*) from starting daemons; it is
# removed again on exit. Start Slurm afterwards with scripts/slurm-up.sh.
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build
  libopenmpi-dev openmpi-bin
  libtrilinos-kokkos-dev libtrilinos-kokkos-kernels-dev
  libboost-graph-dev doctest-dev libbenchmark-dev zlib1g-dev
  dataset-fashion-mnist libcli11-dev nlohmann-json3-dev coinor-libcbc-dev
  libopenblas0-pthread
  slurm-wlm slurmctld slurmd slurm-client munge libpmix-dev
  iproute2  # scripts/cluster-up.sh: network namespaces, veth, bridge
  clang libclang-rt-14-dev
  chromium
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  # "ii " = desired install, currently installed.
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
  [[ $status == ii* ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi
echo "install-deps: missing: ${missing[*]}"

SUDO=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo" >&2; exit 1; }
  SUDO=(sudo)
fi

POLICY=/usr/sbin/policy-rc.d
if [[ ! -e $POLICY ]]; then
  # Only remove what we created; an existing policy-rc.d is left alone.
  trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
fi

APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q
     -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
# A package run that was interrupted earlier (a killed apt) blocks every install until finished.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive dpkg --configure -a
"${APT[@]}" update
# Install the whole list (not just the missing ones) so apt also fixes half-configured packages.
"${APT[@]}" install -y --no-install-recommends "${PACKAGES[@]}"
echo "install-deps: done"
