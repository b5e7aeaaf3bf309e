#!/usr/bin/env bash
# README command 1: sets up everything on a fresh Debian 12 machine (packages, a one-node Slurm,
# the build) and trains Fashion-MNIST pipeline-parallel on 4 MPI ranks, launched with srun.
#   scripts/demo.sh [demo flags, e.g. --schedule zb-h1 --epochs 2]
# STRETTO_RANKS=N changes the number of ranks (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/slurm-up.sh
scripts/build.sh >/dev/null
exec scripts/launch.sh -n "${STRETTO_RANKS:-4}" build/examples/fashion_mnist/stretto.example.fashion_mnist "$@"
