#!/usr/bin/env bash
# srun -N 2 -n 8 hostname on the emulated cluster: two host names, four tasks each.
set -euo pipefail
out=$(timeout 60 srun -N 2 -n 8 hostname)
echo "$out"
counts=$(sort <<<"$out" | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')
echo "check_hostnames: $counts"
[[ $counts == "node1=4 node2=4 " ]] || { echo "check_hostnames: expected node1=4 node2=4" >&2; exit 1; }
