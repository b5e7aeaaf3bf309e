#!/usr/bin/env bash
# scripts/cluster-down.sh, then nothing of the emulated cluster may be left: no namespace
# stretto-node*, no bridge stretto-br0 or veth st-node*, no slurmd or slurmctld reading its
# configuration, no /run/stretto-cluster.
set -euo pipefail
"$1"
left=()
ns=$(ip netns list 2>/dev/null | awk '$1 ~ /^stretto-node/ {print $1}')
[[ -z $ns ]] || left+=("namespaces: $ns")
links=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^(stretto-br0|st-node[0-9]+)$' || true)
[[ -z $links ]] || left+=("links: $links")
daemons=$(pgrep -a -f 'slurm(ctld|d) .*/run/stretto-cluster/slurm.conf' || true)
[[ -z $daemons ]] || left+=("daemons: $daemons")
[[ ! -e /run/stretto-cluster ]] || left+=("directory /run/stretto-cluster")
if ((${#left[@]})); then
  printf 'check_down: left behind: %s\n' "${left[@]}" >&2
  exit 1
fi
echo "check_down: no namespace, bridge, veth or daemon of the emulated cluster is left"
