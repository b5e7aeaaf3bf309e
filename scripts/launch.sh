#!/usr/bin/env bash
# Run an MPI program on N ranks: through Slurm (srun) when a controller answers, else mpirun.
#
#   scripts/launch.sh -n N [--] program [args...]
#
# STRETTO_LAUNCHER=srun|mpirun forces a launcher. Prints the command it runs to stderr
# ("launch: srun -n 4 ..."), then execs it, so the exit code is the launcher's (= the program's).
# Both launchers get the environment below (OpenMPI as root, oversubscription, no busy-polling,
# no CMA single-copy, one BLAS thread per rank); srun passes the caller's environment to tasks.
set -euo pipefail

usage() { echo "usage: $0 -n N [--] program [args...]" >&2; exit 2; }

np=
while (($#)); do
  case $1 in
    -n | -np | --np) (($# >= 2)) || usage; np=$2; shift 2 ;;
    -n?*) np=${1#-n}; shift ;;
    --) shift; break ;;
    -*) echo "launch: unknown option '$1'" >&2; usage ;;
    *) break ;;
  esac
done
[[ $np =~ ^[1-9][0-9]*$ ]] || usage
(($#)) || usage

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1

launcher=${STRETTO_LAUNCHER:-}
if [[ -z $launcher ]]; then
  launcher=mpirun
  if command -v srun >/dev/null && timeout 5 scontrol ping 2>/dev/null | grep -q ' is UP'; then
    launcher=srun
  fi
fi

case $launcher in
  srun)
    # --kill-on-bad-exit: one failing rank ends the step instead of leaving the others hanging.
    # More ranks than the partition has CPUs: --overcommit lets tasks share CPUs.
    cmd=(srun -n "$np" --mpi=pmix --kill-on-bad-exit=1)
    total=$(timeout 5 sinfo -h -o %C 2>/dev/null | awk -F/ '{print $4; exit}' || true)
    if [[ $total =~ ^[0-9]+$ ]] && ((np > total)); then cmd+=(--overcommit); fi
    ;;
  mpirun)
    cmd=(mpirun -n "$np" --oversubscribe)
    ;;
  *)
    echo "launch: STRETTO_LAUNCHER must be srun or mpirun, not '$launcher'" >&2
    exit 2
    ;;
esac

echo "launch: ${cmd[*]} $*" >&2
exec "${cmd[@]}" "$@"
