#!/usr/bin/env bash
# The Fashion-MNIST demo at pp = 4 x dp = 2 over the two emulated nodes (8 ranks, 4 per node:
# one pipeline copy per node, so the data-parallel gradient reductions cross the bridge over TCP),
# one epoch on a subset. It must
# learn (test accuracy >= 0.70; ten classes give 0.10 by chance) and end with the same loss and
# test accuracy as the same run on one node (8 ranks under mpirun, no Slurm): the pipeline's
# arithmetic does not depend on where its stages run.
set -euo pipefail
demo=$1
args=(--epochs 1 --train-samples 6400 --data-parallel 2)
out=$(timeout 250 srun -N 2 -n 8 --ntasks-per-node 4 --mpi=pmix --kill-on-bad-exit=1 "$demo" "${args[@]}" 2>&1)
echo "$out"
line=$(grep '^epoch 1/1' <<<"$out") || { echo "run_demo_two_nodes: no epoch line" >&2; exit 1; }
[[ $line =~ (loss\ [0-9.]+\ +test\ accuracy\ ([0-9.]+)) ]] || { echo "run_demo_two_nodes: no test accuracy" >&2; exit 1; }
two_nodes=${BASH_REMATCH[1]} accuracy=${BASH_REMATCH[2]}
awk -v a="$accuracy" 'BEGIN { exit !(a >= 0.70) }' || { echo "run_demo_two_nodes: accuracy $accuracy < 0.70" >&2; exit 1; }
one=$(env -u SLURM_CONF OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1 \
  OMPI_MCA_btl_vader_single_copy_mechanism=none OPENBLAS_NUM_THREADS=1 \
  timeout 250 mpirun -n 8 --oversubscribe "$demo" "${args[@]}" 2>&1)
line=$(grep '^epoch 1/1' <<<"$one") || { echo "$one" | tail -20; echo "run_demo_two_nodes: no epoch line on one node" >&2; exit 1; }
[[ $line =~ (loss\ [0-9.]+\ +test\ accuracy\ [0-9.]+) ]] || { echo "run_demo_two_nodes: no accuracy on one node" >&2; exit 1; }
one_node=${BASH_REMATCH[1]}
echo "run_demo_two_nodes: two nodes '$two_nodes', one node '$one_node'"
[[ $two_nodes == "$one_node" ]] || { echo "run_demo_two_nodes: the two-node run differs from the one-node run" >&2; exit 1; }
echo "run_demo_two_nodes: ok (accuracy $accuracy, as on one node)"
