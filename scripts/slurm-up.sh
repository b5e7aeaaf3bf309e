#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine (recipe: docs/setup.md), idempotently.
#
#   munged (as user munge) -> slurmctld -> slurmd -N localhost, node "localhost" with CPUs=16
#   (more than the machine has; SlurmdParameters=config_overrides allows it), partition "debug".
#
# slurmctld/slurmd run in the foreground (-D) in their own session (munged daemonizes itself);
# their PIDs are recorded in /run/stretto-slurm/*.pid and scripts/slurm-down.sh stops them by
# those PIDs. If slurm.conf has to change while Slurm runs, the daemons are restarted (running
# jobs are cancelled). Every wait has a
# deadline; on timeout we say what did not come up, show its log tail and exit non-zero.
# If everything is already up (and slurm.conf unchanged) this does nothing and exits 0.
# Logs: /var/log/slurm/{slurmctld,slurmd}.log (+ .out for stdout/stderr), /var/log/munge/.
set -euo pipefail

if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "slurm-up: must run as root" >&2; exit 1; }
  exec sudo "$0" "$@"
fi

for tool in munged munge unmunge slurmctld slurmd scontrol sinfo runuser setsid; do
  command -v "$tool" >/dev/null ||
    { echo "slurm-up: '$tool' not found; run scripts/install-deps.sh" >&2; exit 1; }
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/slurm-common.sh
. "$HERE/lib/slurm-common.sh"
RUNDIR=/run/stretto-slurm
CONF=/etc/slurm/slurm.conf
PROLOG=/etc/slurm/stretto-task-prolog.sh
NCPUS=16
mkdir -p "$RUNDIR" /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm

# alive NAME: the PID recorded for NAME is a running (non-zombie) process called NAME.
alive() {
  local pid
  pid=$(cat "$RUNDIR/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1
  local st=Z
  read -r _ _ st _ <"/proc/$pid/stat" 2>/dev/null || true
  [[ $st != Z ]]  # an unreaped zombie has exited
}

# fail WHAT LOG: report what did not come up, show the tail of its log, exit non-zero.
fail() {
  echo "slurm-up: $1" >&2
  [[ -n $2 && -f $2 ]] && { echo "--- tail of $2:" >&2; tail -n 20 "$2" >&2; }
  exit 1
}

# wait_for SECONDS WHAT LOG DAEMON CMD...: poll CMD every 0.2 s until it succeeds; give up at
# the deadline, or at once if DAEMON (if not empty) has died. CMD runs in this shell, so it may
# set LAST_STATE for the message.
LAST_STATE=
wait_for() {
  local secs=$1 what=$2 log=$3 daemon=$4; shift 4
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $daemon ]] && ! alive "$daemon"; then
      fail "$daemon exited while waiting for $what" "$log"
    fi
    if ((SECONDS >= deadline)); then
      fail "TIMEOUT after ${secs}s: $what did not come up${LAST_STATE:+ (last state: $LAST_STATE)}" "$log"
    fi
    sleep 0.2
  done
}

munge_ok() { munge -n | unmunge; }
ctld_ok() { timeout 5 scontrol ping | grep -q ' is UP'; }
node_state() { timeout 5 sinfo -h -N -o %T 2>/dev/null | head -n 1; }

# ---- 1. munge -----------------------------------------------------------------------------------
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge /etc/munge
KEY=/etc/munge/munge.key
if [[ ! -s $KEY ]] || (($(stat -c %s "$KEY") < 32)); then  # munged rejects keys < 32 bytes
  (umask 077; dd if=/dev/urandom of="$KEY" bs=1024 count=1 status=none)
fi
chown munge:munge "$KEY"; chmod 0400 "$KEY"

if ! munge_ok >/dev/null 2>&1; then
  rm -f "$RUNDIR/munged.pid"
  setsid runuser -u munge -- munged </dev/null >>/var/log/munge/munged.out 2>&1 ||
    fail "munged failed to start" /var/log/munge/munged.log
  wait_for 15 "munged ('munge -n | unmunge')" /var/log/munge/munged.log "" munge_ok
fi
# munged daemonizes itself; record the PID it wrote (also adopts a munged started elsewhere).
[[ -s /run/munge/munged.pid ]] && cp /run/munge/munged.pid "$RUNDIR/munged.pid"

# ---- 2. configuration ---------------------------------------------------------------------------
mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
real_mb=$((mem_kb * 9 / 10 / 1024))

cat >"$RUNDIR/task-prolog.new" <<'EOF'
#!/bin/sh
# Slurm TaskProlog (written by scripts/slurm-up.sh): "export X=Y" lines land in every task's env.
echo "export OMPI_MCA_mpi_yield_when_idle=1"
echo "export OMPI_ALLOW_RUN_AS_ROOT=1"
echo "export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
echo "export OMPI_MCA_btl_vader_single_copy_mechanism=none"
EOF
if ! cmp -s "$RUNDIR/task-prolog.new" "$PROLOG"; then
  install -m 0755 "$RUNDIR/task-prolog.new" "$PROLOG"
fi
rm -f "$RUNDIR/task-prolog.new"

cat >"$RUNDIR/slurm.conf.new" <<EOF
# One-node Slurm cluster for Stretto, written by scripts/slurm-up.sh (see docs/setup.md).
ClusterName=stretto
SlurmctldHost=localhost
$(slurm_common_settings "$PROLOG")
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$NCPUS RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
if ! cmp -s "$RUNDIR/slurm.conf.new" "$CONF"; then
  if alive slurmctld || alive slurmd; then
    echo "slurm-up: $CONF changed; restarting Slurm daemons" >&2
    "$HERE/slurm-down.sh" --keep-munge
  fi
  install -m 0644 "$RUNDIR/slurm.conf.new" "$CONF"
fi
rm -f "$RUNDIR/slurm.conf.new"

# ---- 3. daemons ---------------------------------------------------------------------------------
# start NAME ARGS...: run the daemon in the foreground (-D) in a new session and record its PID
# (the shell writes its own PID, then execs the daemon in place, so it is the daemon's PID).
start() {
  local name=$1; shift
  rm -f "$RUNDIR/$name.pid"
  # shellcheck disable=SC2016  # expanded by the inner sh
  setsid -f sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$RUNDIR/$name.pid" \
    "$name" -D "$@" </dev/null >>"/var/log/slurm/$name.out" 2>&1
  local pid='' deadline=$((SECONDS + 10))
  # Wait until the shell has written the PID and exec'd the daemon (or the daemon has died).
  until pid=$(cat "$RUNDIR/$name.pid" 2>/dev/null) &&
      [[ $(cat "/proc/$pid/comm" 2>/dev/null || echo gone) != sh ]]; do
    ((SECONDS < deadline)) || fail "TIMEOUT after 10s: $name did not start" "/var/log/slurm/$name.out"
    sleep 0.05
  done
  alive "$name" || fail "$name exited at once" "/var/log/slurm/$name.out"
  # (Later deaths, e.g. a port already in use, are caught by wait_for below.)
}

if ! alive slurmctld; then
  start slurmctld
fi
wait_for 30 "slurmctld ('scontrol ping' UP)" /var/log/slurm/slurmctld.out slurmctld ctld_ok

if ! alive slurmd; then
  start slurmd -N localhost
fi

# ---- 4. node ready ------------------------------------------------------------------------------
node_usable() {
  local s
  s=$(node_state)
  LAST_STATE=${s:-none}
  case $s in
    idle | mixed | allocated | completing) return 0 ;;
    down* | drain* | fail*)  # left over from an earlier run: put it back in service
      scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
  esac
  return 1
}
wait_for 30 "node localhost (slurmd registration)" /var/log/slurm/slurmd.out slurmd node_usable
LAST_STATE=

cpus=$(timeout 5 sinfo -h -N -o %c | head -n 1)
echo "slurm: up (1 node, ${cpus} CPUs)"
