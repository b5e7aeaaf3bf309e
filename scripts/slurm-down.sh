#!/usr/bin/env bash
# Stop the one-node Slurm cluster started by scripts/slurm-up.sh.
#
# Cancels all jobs, then sends TERM to slurmd, slurmctld and munged by the PIDs recorded in
# /run/stretto-slurm/*.pid (never by process name) and waits, bounded, for each to exit; a
# daemon still alive after 15 s gets KILL. --keep-munge leaves munged running (used by
# slurm-up.sh when it restarts Slurm after a config change). Idempotent: nothing running, exit 0.
set -euo pipefail

if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "slurm-down: must run as root" >&2; exit 1; }
  exec sudo "$0" "$@"
fi

RUNDIR=/run/stretto-slurm
DAEMONS=(slurmd slurmctld munged)
[[ ${1:-} == --keep-munge ]] && DAEMONS=(slurmd slurmctld)

# pid_of NAME: the recorded PID, if that process is still running (not a zombie) and is NAME.
pid_of() {
  local pid
  pid=$(cat "$RUNDIR/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1
  local st=Z
  read -r _ _ st _ <"/proc/$pid/stat" 2>/dev/null || true
  [[ $st != Z ]] || return 1  # an unreaped zombie has exited
  echo "$pid"
}

# 1. Cancel every job while the controller still answers, and give slurmd time to reap them.
if pid_of slurmctld >/dev/null && timeout 5 scontrol ping 2>/dev/null | grep -q ' is UP'; then
  jobs=$(timeout 5 squeue -h -o %A 2>/dev/null || true)
  if [[ -n $jobs ]]; then
    # shellcheck disable=SC2086  # one job id per word
    timeout 10 scancel $jobs || true
    deadline=$((SECONDS + 15))
    while [[ -n $(timeout 5 squeue -h -o %A 2>/dev/null || true) ]] && ((SECONDS < deadline)); do
      sleep 0.2
    done
  fi
fi

# 2. TERM each daemon by its recorded PID; wait up to 15 s, then KILL and wait up to 5 s more.
status=0
for name in "${DAEMONS[@]}"; do
  if pid=$(pid_of "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while pid_of "$name" >/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if pid_of "$name" >/dev/null; then
      echo "slurm-down: $name (PID $pid) ignored TERM for 15 s; sending KILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while pid_of "$name" >/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
      if pid_of "$name" >/dev/null; then
        echo "slurm-down: $name (PID $pid) is still running" >&2
        status=1
        continue
      fi
    fi
  fi
  rm -f "$RUNDIR/$name.pid"
done
((status == 0)) && echo "slurm: down"
exit "$status"
