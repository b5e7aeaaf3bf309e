#!/usr/bin/env bash
# Runs an MPI test program through srun with N tasks: the same test as under mpirun, started by
# Slurm. Exit 77 (skipped) when no Slurm controller answers, unless STRETTO_REQUIRE_SRUN=1.
#   run_srun.sh N program [args...]
set -euo pipefail
n=$1
shift
if ! timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
  if [[ ${STRETTO_REQUIRE_SRUN:-0} == 1 ]]; then
    echo "run_srun: no Slurm controller answers and STRETTO_REQUIRE_SRUN=1 (start it: scripts/slurm-up.sh)" >&2
    exit 1
  fi
  echo "run_srun: no Slurm controller answers; skipped (scripts/slurm-up.sh starts one)"
  exit 77
fi
exec srun -n "$n" --overcommit "$@"
