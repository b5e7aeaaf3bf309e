#!/usr/bin/env bash
# Stop the emulated multi-node cluster of scripts/cluster-up.sh and remove everything it made.
#
# Cancels its jobs, sends TERM to every slurmd and the slurmctld by the PIDs recorded in
# /run/stretto-cluster/*.pid (never by process name), waits (bounded; KILL after 15 s), ends any
# process still inside a node's network namespace (`ip netns pids`: only tasks of this cluster
# live there), deletes the namespaces stretto-node* (which removes their veth pairs), the bridge
# stretto-br0, the configuration, state and spool directories. munged is stopped only if
# cluster-up.sh started it and the one-node cluster of scripts/slurm-up.sh is not running;
# --keep-munge leaves it running (cluster-up.sh uses it to restart). Idempotent: exit 0 when
# nothing is left; exit 1 if something could not be removed, naming it.
set -euo pipefail

if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "cluster-down: must run as root" >&2; exit 1; }
  exec sudo "$0" "$@"
fi

RUNDIR=/run/stretto-cluster
STATE=/var/lib/slurm/stretto-cluster
BRIDGE=stretto-br0
export SLURM_CONF=$RUNDIR/slurm.conf
keep_munge=0
[[ ${1:-} == --keep-munge ]] && keep_munge=1

pid_of() {
  local pid comm=${2:-$1}
  pid=$(cat "$RUNDIR/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
  local st=Z
  read -r _ _ st _ <"/proc/$pid/stat" 2>/dev/null || true
  [[ $st != Z ]] || return 1
  echo "$pid"
}

# stop NAME COMM: TERM by recorded PID, wait up to 15 s, then KILL and wait up to 5 s.
status=0
stop() {
  local name=$1 comm=$2 pid deadline
  if pid=$(pid_of "$name" "$comm"); then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while pid_of "$name" "$comm" >/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if pid_of "$name" "$comm" >/dev/null; then
      echo "cluster-down: $name (PID $pid) ignored TERM for 15 s; sending KILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while pid_of "$name" "$comm" >/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
      if pid_of "$name" "$comm" >/dev/null; then
        echo "cluster-down: $name (PID $pid) is still running" >&2
        status=1
        return
      fi
    fi
  fi
  rm -f "$RUNDIR/$name.pid"
}

# 1. Cancel every job while the controller still answers.
if pid_of slurmctld >/dev/null && timeout 5 scontrol ping 2>/dev/null | grep -q ' is UP'; then
  jobs=$(timeout 5 squeue -h -o %A 2>/dev/null || true)
  if [[ -n $jobs ]]; then
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs || true
    deadline=$((SECONDS + 15))
    while [[ -n $(timeout 5 squeue -h -o %A 2>/dev/null || true) ]] && ((SECONDS < deadline)); do sleep 0.2; done
  fi
fi

# 2. The daemons: every slurmd, then the controller.
for f in "$RUNDIR"/slurmd-node*.pid; do
  [[ -e $f ]] || continue
  name=$(basename "$f" .pid)
  [[ $name == *-daemon ]] && continue  # Slurm's own pid files (same PIDs)
  stop "$name" slurmd
done
stop slurmctld slurmctld

# 3. Whatever still runs in a node's namespace (a task that outlived its slurmd), then the
#    namespaces (deleting one destroys its veth pair), then the bridge.
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^stretto-node[0-9]+$/ {print $1}'); do
  for sig in TERM KILL; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] && break
    # shellcheck disable=SC2086  # one PID per word
    kill -"$sig" $pids 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while [[ -n $(ip netns pids "$ns" 2>/dev/null || true) ]] && ((SECONDS < deadline)); do sleep 0.1; done
  done
  ip netns del "$ns" 2>/dev/null || { echo "cluster-down: cannot delete namespace $ns" >&2; status=1; }
done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^st-node[0-9]+$' || true); do
  ip link del "$link" 2>/dev/null || true
done
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link del "$BRIDGE" || { echo "cluster-down: cannot delete bridge $BRIDGE" >&2; status=1; }
fi

# 4. munged, if we started it and the one-node cluster does not use it.
if ((keep_munge == 0)) && pid=$(pid_of munged); then
  one_node=0
  for d in slurmctld slurmd; do
    p=$(cat "/run/stretto-slurm/$d.pid" 2>/dev/null || true)
    [[ $p =~ ^[0-9]+$ && $(cat "/proc/$p/comm" 2>/dev/null) == "$d" ]] && one_node=1
  done
  if ((one_node == 0)); then
    stop munged munged
  fi
fi
((keep_munge == 1)) || rm -f "$RUNDIR/munged.pid"

# 5. Configuration and state.
if ((status == 0)); then
  if ((keep_munge == 0)); then rm -rf "$RUNDIR"; else rm -f "$RUNDIR"/slurmd-* "$RUNDIR"/slurmctld*; fi
  rm -rf "$STATE"
  echo "cluster: down"
fi
exit "$status"
