#!/usr/bin/env bash
# Start an emulated multi-node Slurm cluster on this machine (docs/cluster.md), idempotently.
#
#   scripts/cluster-up.sh [--nodes N] [--cpus C]      (defaults: N = 2, C = 4 CPUs per node)
#
# Every node is a network namespace "stretto-nodeI" with its own host name "nodeI" (a UTS
# namespace) and its own address 10.213.77.(10+I) on a private bridge "stretto-br0"
# (10.213.77.1/24) that this script creates; the bridge has no route out, so the cluster's
# traffic never leaves these namespaces. Each node runs its own slurmd (NodeName=nodeI, NodeAddr
# its address) under one slurmctld on the host side of the bridge, with one munged for all.
# Each node also has its own /tmp (a mount namespace; $STATE/nodeI/tmp below).
# Tasks run inside their node's namespaces, so `hostname` prints nodeI, and MPI between nodes
# goes over TCP on the bridge: the task environment sets OMPI_MCA_btl=tcp,self,vader (vader,
# shared memory, only between the tasks of one node: OpenMPI uses it for peers with the same
# host name) and restricts TCP to the namespace's interface "stretto0".
#
# This cluster runs ALONGSIDE the one-node cluster of scripts/slurm-up.sh, not instead of it:
# its own configuration (/run/stretto-cluster/slurm.conf, ClusterName=stretto-cluster), its own
# controller port (6827; the one-node controller keeps 6817), state and logs; munged is shared.
# Slurm commands talk to it when SLURM_CONF points at its configuration:
#
#   export SLURM_CONF=/run/stretto-cluster/slurm.conf
#   srun -N 2 -n 8 hostname          # node1 and node2, four times each
#
# scripts/cluster-down.sh stops the daemons by their recorded PIDs and removes every namespace,
# veth, the bridge and the state. Re-running with another --nodes or --cpus restarts the cluster.
# Every wait has a deadline; on timeout we say what did not come up, show its log and exit 1.
# Logs: /var/log/slurm/stretto-cluster-{slurmctld,nodeI}.log (+ .out for stdout/stderr).
set -euo pipefail

if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "cluster-up: must run as root" >&2; exit 1; }
  exec sudo "$0" "$@"
fi

usage() { echo "usage: $0 [--nodes N] [--cpus C]   (N in 1..32, C in 1..256)" >&2; exit 2; }
NODES=2
NCPUS=4
while (($#)); do
  case $1 in
    --nodes) (($# >= 2)) || usage; NODES=$2; shift 2 ;;
    --nodes=*) NODES=${1#--nodes=}; shift ;;
    --cpus) (($# >= 2)) || usage; NCPUS=$2; shift 2 ;;
    --cpus=*) NCPUS=${1#--cpus=}; shift ;;
    -h | --help) usage ;;
    *) echo "cluster-up: unknown option '$1'" >&2; usage ;;
  esac
done
if ! [[ $NODES =~ ^[1-9][0-9]*$ ]] || ((NODES > 32)); then
  echo "cluster-up: --nodes must be 1..32 (got '$NODES')" >&2; exit 2
fi
if ! [[ $NCPUS =~ ^[1-9][0-9]*$ ]] || ((NCPUS > 256)); then
  echo "cluster-up: --cpus must be 1..256 (got '$NCPUS')" >&2; exit 2
fi

for tool in ip unshare munged munge unmunge slurmctld slurmd scontrol sinfo runuser setsid; do
  command -v "$tool" >/dev/null ||
    { echo "cluster-up: '$tool' not found; run scripts/install-deps.sh (and apt-get install iproute2 util-linux)" >&2; exit 1; }
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/slurm-common.sh
. "$HERE/lib/slurm-common.sh"
PROJECT=$(cd "$HERE/.." && pwd)  # the checkout these scripts belong to
RUNDIR=/run/stretto-cluster
CONF=$RUNDIR/slurm.conf
PROLOG=$RUNDIR/task-prolog.sh
STATE=/var/lib/slurm/stretto-cluster
LOGDIR=/var/log/slurm
BRIDGE=stretto-br0
NET=10.213.77
CTLD_PORT=6827
export SLURM_CONF=$CONF
mkdir -p "$RUNDIR" "$STATE/slurmctld" "$LOGDIR"

# alive NAME: the PID recorded for NAME is a running (non-zombie) process whose command is COMM
# (slurmctld, slurmd).
alive() {
  local pid comm=${2:-$1}
  pid=$(cat "$RUNDIR/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
  local st=Z
  read -r _ _ st _ <"/proc/$pid/stat" 2>/dev/null || true
  [[ $st != Z ]]
}

fail() {
  echo "cluster-up: $1" >&2
  [[ -n ${2:-} && -f $2 ]] && { echo "--- tail of $2:" >&2; tail -n 20 "$2" >&2; }
  exit 1
}

LAST_STATE=
wait_for() {
  local secs=$1 what=$2 log=$3 daemon=$4 comm=$5; shift 5
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $daemon ]] && ! alive "$daemon" "$comm"; then
      fail "$daemon exited while waiting for $what" "$log"
    fi
    ((SECONDS < deadline)) ||
      fail "TIMEOUT after ${secs}s: $what did not come up${LAST_STATE:+ (last state: $LAST_STATE)}" "$log"
    sleep 0.2
  done
}

munge_ok() { munge -n | unmunge; }
ctld_ok() { timeout 5 scontrol ping | grep -q ' is UP'; }

# ---- 1. munge (shared with scripts/slurm-up.sh) --------------------------------------------------
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge /etc/munge
KEY=/etc/munge/munge.key
if [[ ! -s $KEY ]] || (($(stat -c %s "$KEY") < 32)); then
  (umask 077; dd if=/dev/urandom of="$KEY" bs=1024 count=1 status=none)
fi
chown munge:munge "$KEY"; chmod 0400 "$KEY"
if ! munge_ok >/dev/null 2>&1; then
  setsid runuser -u munge -- munged </dev/null >>/var/log/munge/munged.out 2>&1 ||
    fail "munged failed to start" /var/log/munge/munged.log
  wait_for 15 "munged ('munge -n | unmunge')" /var/log/munge/munged.log "" "" munge_ok
  # Ours to stop in cluster-down.sh (unless the one-node cluster uses it by then).
  cp /run/munge/munged.pid "$RUNDIR/munged.pid"
fi

# ---- 2. configuration ---------------------------------------------------------------------------
mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
node_mb=$((mem_kb * 9 / 10 / 1024 / NODES))
host=$(hostname -s)
addrs=$(seq 1 "$NODES" | awk -v net="$NET" '{printf "%s%s.%d", (NR > 1 ? "," : ""), net, 10 + $1}')

cat >"$RUNDIR/task-prolog.new" <<'EOF'
#!/bin/sh
# Slurm TaskProlog of the emulated cluster (written by scripts/cluster-up.sh): "export X=Y"
# lines land in every task's environment. MPI between nodes over TCP on the bridge only.
echo "export OMPI_MCA_mpi_yield_when_idle=1"
echo "export OMPI_ALLOW_RUN_AS_ROOT=1"
echo "export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
echo "export OMPI_MCA_btl_vader_single_copy_mechanism=none"
echo "export OMPI_MCA_btl=tcp,self,vader"
echo "export OMPI_MCA_btl_tcp_if_include=stretto0"
echo "export OMPI_MCA_oob_tcp_if_include=stretto0"
echo "export OMPI_MCA_pml=ob1"
echo "export OPENBLAS_NUM_THREADS=1"
EOF
cmp -s "$RUNDIR/task-prolog.new" "$PROLOG" || install -m 0755 "$RUNDIR/task-prolog.new" "$PROLOG"
rm -f "$RUNDIR/task-prolog.new"

cat >"$RUNDIR/slurm.conf.new" <<EOF
# Emulated ${NODES}-node Slurm cluster for Stretto, written by scripts/cluster-up.sh
# (docs/cluster.md). Differs from the one-node /etc/slurm/slurm.conf of scripts/slurm-up.sh in:
# ClusterName, SlurmctldHost (this host, reached at the bridge address), SlurmctldPort, the
# per-node slurmd paths (%n = node name), the TaskProlog (MPI over TCP) and the node lines.
ClusterName=stretto-cluster
SlurmctldHost=${host}(${NET}.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=6818
$(slurm_common_settings "$PROLOG")
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/%n
SlurmctldPidFile=$RUNDIR/slurmctld-daemon.pid
SlurmdPidFile=$RUNDIR/slurmd-%n-daemon.pid
SlurmctldLogFile=$LOGDIR/stretto-cluster-slurmctld.log
SlurmdLogFile=$LOGDIR/stretto-cluster-%n.log
NodeName=node[1-$NODES] NodeAddr=$addrs CPUs=$NCPUS RealMemory=$node_mb State=UNKNOWN
PartitionName=cluster Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
if ! cmp -s "$RUNDIR/slurm.conf.new" "$CONF"; then
  if alive slurmctld || compgen -G "$RUNDIR/slurmd-node*.pid" >/dev/null; then
    echo "cluster-up: $CONF changed; restarting the emulated cluster" >&2
    "$HERE/cluster-down.sh" --keep-munge
    mkdir -p "$RUNDIR" "$STATE/slurmctld"
  fi
  install -m 0644 "$RUNDIR/slurm.conf.new" "$CONF"
fi
rm -f "$RUNDIR/slurm.conf.new"

# ---- 3. network: bridge, one namespace + veth per node ------------------------------------------
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add "$BRIDGE" type bridge
  ip addr add "$NET.1/24" dev "$BRIDGE"
fi
ip link set "$BRIDGE" up
for ((i = 1; i <= NODES; ++i)); do
  ns=stretto-node$i
  if ! ip netns list | grep -qw "$ns"; then ip netns add "$ns"; fi
  if ! ip link show "st-node$i" >/dev/null 2>&1; then
    ip link add "st-node$i" type veth peer name "st-peer$i"
    ip link set "st-peer$i" netns "$ns"
    ip -n "$ns" link set "st-peer$i" name stretto0
    ip -n "$ns" addr add "$NET.$((10 + i))/24" dev stretto0
    ip link set "st-node$i" master "$BRIDGE"
  fi
  ip link set "st-node$i" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set stretto0 up
done

# ---- 4. daemons ---------------------------------------------------------------------------------
# start NAME COMM CMD...: run CMD (which execs the daemon in the foreground) in a new session and
# record its PID: the shell writes its own PID, then execs, so it is the daemon's PID.
start() {
  local name=$1 comm=$2; shift 2
  rm -f "$RUNDIR/$name.pid"
  # shellcheck disable=SC2016  # expanded by the inner sh
  setsid -f sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$RUNDIR/$name.pid" "$@" \
    </dev/null >>"$LOGDIR/stretto-cluster-$name.out" 2>&1
  local deadline=$((SECONDS + 10))
  until alive "$name" "$comm"; do
    ((SECONDS < deadline)) || fail "TIMEOUT after 10s: $name did not start" "$LOGDIR/stretto-cluster-$name.out"
    sleep 0.05
  done
}

alive slurmctld || start slurmctld slurmctld slurmctld -D -f "$CONF"
wait_for 30 "slurmctld ('scontrol ping' UP)" "$LOGDIR/stretto-cluster-slurmctld.out" slurmctld slurmctld ctld_ok

for ((i = 1; i <= NODES; ++i)); do
  mkdir -p "$STATE/node$i"
  # In node i's network namespace, in new UTS and mount namespaces: the host name node$i and a
  # /tmp of its own (Slurm's PMIx plugin and MPI keep per-step files there, named by job and step,
  # which would collide between the nodes of one machine). nsenter and unshare exec, sh sets up
  # and execs slurmd, so the recorded PID is slurmd's. (nsenter rather than `ip netns exec`,
  # which remounts /sys and hides the cgroup file system that slurmd needs.)
  mkdir -p "$STATE/node$i/tmp"
  chmod 1777 "$STATE/node$i/tmp"
  # A checkout (and its build) under /tmp stays visible on every node: it is bound into the
  # node's own /tmp at the same path before that /tmp replaces the machine's.
  keep=
  if [[ $PROJECT == /tmp/* ]]; then keep=${PROJECT#/tmp/}; mkdir -p "$STATE/node$i/tmp/$keep"; fi
  # A slurmd started from another checkout does not show this one under /tmp: restart it.
  if alive "slurmd-node$i" slurmd && [[ $(cat "$RUNDIR/slurmd-node$i.project" 2>/dev/null) != "$PROJECT" ]]; then
    echo "cluster-up: node$i was started from $(cat "$RUNDIR/slurmd-node$i.project" 2>/dev/null || echo 'another checkout'); restarting it for $PROJECT" >&2
    kill "$(cat "$RUNDIR/slurmd-node$i.pid")" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while alive "slurmd-node$i" slurmd; do
      ((SECONDS < deadline)) || fail "TIMEOUT after 15s: slurmd of node$i did not stop" "$LOGDIR/stretto-cluster-slurmd-node$i.out"
      sleep 0.1
    done
  fi
  # shellcheck disable=SC2016
  alive "slurmd-node$i" slurmd || start "slurmd-node$i" slurmd nsenter --net="/run/netns/stretto-node$i" \
    unshare --uts --mount sh -c 'hostname "$0" && { [ -z "$3" ] || mount --bind "/tmp/$3" "$2/$3"; } &&
      mount --rbind "$2" /tmp && exec slurmd -D -N "$0" -f "$1"' \
    "node$i" "$CONF" "$STATE/node$i/tmp" "$keep"
  echo "$PROJECT" >"$RUNDIR/slurmd-node$i.project"
done

# ---- 5. nodes ready -----------------------------------------------------------------------------
nodes_usable() {
  local states bad=0
  states=$(timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null) || return 1
  LAST_STATE=$(echo "$states" | tr '\n' ' ')
  [[ $(echo "$states" | grep -cE ' (idle|mixed|allocated|completing)') -eq $NODES ]] && return 0
  while read -r name state; do
    case $state in
      down* | drain* | fail*) scontrol update NodeName="$name" State=RESUME >/dev/null 2>&1 || true ;;
    esac
  done <<<"$states"
  return $((bad + 1))
}
wait_for 30 "$NODES nodes (slurmd registration)" "$LOGDIR/stretto-cluster-slurmd-node1.out" slurmd-node1 slurmd nodes_usable
LAST_STATE=
echo "cluster: up ($NODES nodes node[1-$NODES], $NCPUS CPUs each, bridge $BRIDGE $NET.0/24)"
echo "cluster: export SLURM_CONF=$CONF   # then: srun -N $NODES -n $((NODES * NCPUS)) hostname"
