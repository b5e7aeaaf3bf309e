#!/usr/bin/env bash
# README command 2: sets up everything on a fresh Debian 12 machine (packages, a one-node Slurm,
# the build) and runs every test that needs no GPU: unit, MPI at 2, 3 and 4 ranks, packaging,
# tools, the demo through srun, and a short benchmark run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/slurm-up.sh
scripts/build.sh
ctest --test-dir build -LE 'gpu|cluster' --output-on-failure --parallel 2 --timeout 900
