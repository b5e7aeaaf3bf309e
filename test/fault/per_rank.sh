#!/usr/bin/env bash
# Starts one rank of an MPI job with its own arguments, to test ranks that disagree:
#
#   per_rank.sh RANK "ARGS FOR THAT RANK" program [args for every other rank...]
#
# The rank comes from the launcher's environment (Open MPI, PMIx or Slurm); the rank RANK runs
# `program ARGS FOR THAT RANK` (split at spaces), every other rank `program args...`.
set -euo pipefail
(($# >= 3)) || { echo "usage: $0 RANK \"ARGS\" program [args...]" >&2; exit 2; }
which=$1 alternative=$2 program=$3
shift 3
me=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${SLURM_PROCID:-}}}
[[ -n $me ]] || { echo "per_rank: no rank in the environment (OMPI_COMM_WORLD_RANK, PMIX_RANK, SLURM_PROCID)" >&2; exit 2; }
if [[ $me == "$which" ]]; then
  read -r -a args <<<"$alternative"
  exec "$program" "${args[@]}"
fi
exec "$program" "$@"
