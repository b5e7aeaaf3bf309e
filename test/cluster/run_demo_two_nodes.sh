#!/usr/bin/env bash
# The Fashion-MNIST demo, 4 pipeline stages over the two emulated nodes (2 per node, so the
# activations between stages 1 and 2 cross the bridge over TCP), one epoch on a subset: it must
# print a test accuracy well above chance (as run_demo_srun.sh on one node).
set -euo pipefail
demo=$1
out=$(timeout 280 srun -N 2 -n 4 --ntasks-per-node 2 --mpi=pmix --kill-on-bad-exit=1 "$demo" --epochs 1 --train-samples 6400 2>&1)
echo "$out"
line=$(grep '^epoch 1/1' <<<"$out") || { echo "run_demo_two_nodes: no epoch line" >&2; exit 1; }
[[ $line =~ test\ accuracy\ ([0-9.]+) ]] || { echo "run_demo_two_nodes: no test accuracy" >&2; exit 1; }
accuracy=${BASH_REMATCH[1]}
awk -v a="$accuracy" 'BEGIN { exit !(a >= 0.70) }' || { echo "run_demo_two_nodes: accuracy $accuracy < 0.70" >&2; exit 1; }
echo "run_demo_two_nodes: ok (accuracy $accuracy)"
