#!/usr/bin/env bash
# The emulated multi-node cluster tests (ctest label "cluster", docs/cluster.md): start two
# nodes (scripts/cluster-up.sh --nodes 2), run Slurm and MPI across them, stop and check that
# nothing is left (scripts/cluster-down.sh). Needs root and a build (scripts/build.sh); about
# 2 minutes on 2 cores. Runs alongside the one-node Slurm of scripts/slurm-up.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d build ]] || scripts/build.sh
ctest --test-dir build -L cluster --output-on-failure --timeout 600
