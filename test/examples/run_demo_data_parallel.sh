#!/usr/bin/env bash
# The demo with --data-parallel 2 (pp = 2 × dp = 2, 4 ranks) against --data-parallel 1 (pp = 2,
# 2 ranks), one epoch on 6400 samples: the same global batches in the same order, so the epoch
# loss and the test accuracy must agree. Only the order of floating-point sums differs (each
# stage's gradient is a sum of two all-reduced halves instead of one sum), which moves the
# weights by about 1e-16 relative per step: far below the loss's printed 4 decimals (allowed:
# 1e-4, a rounding boundary) and the accuracy's 1e-4 (allowed: 2 of the 10000 test samples, a
# prediction at a near-tie flipping). The dp = 2 line must report samples/s per node and the
# exposed reduction time.
#   run_demo_data_parallel.sh LAUNCH DEMO
set -euo pipefail
launch=$1 demo=$2
epoch() {  # ranks args... -> the epoch line
  local out
  out=$(STRETTO_LAUNCHER=mpirun "$launch" -n "$@" --epochs 1 --train-samples 6400 2>&1) ||
    { echo "$out" >&2; echo "run_demo_data_parallel: -n $* failed" >&2; exit 1; }
  grep '^epoch 1/1' <<<"$out" || { echo "$out" >&2; echo "run_demo_data_parallel: no epoch line" >&2; exit 1; }
}
one=$(epoch 2 "$demo")
two=$(epoch 4 "$demo" --data-parallel 2)
echo "dp = 1: $one"
echo "dp = 2: $two"
values() { [[ $1 =~ loss\ ([0-9.]+)\ +test\ accuracy\ ([0-9.]+) ]] && echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"; }
read -r loss1 acc1 <<<"$(values "$one")"
read -r loss2 acc2 <<<"$(values "$two")"
awk -v a="$loss1" -v b="$loss2" -v c="$acc1" -v d="$acc2" \
  'BEGIN { l = a - b; if (l < 0) l = -l; t = c - d; if (t < 0) t = -t; exit !(l <= 1.0001e-4 && t <= 2.0001e-4) }' ||
  { echo "run_demo_data_parallel: dp = 2 gives loss $loss2, accuracy $acc2; dp = 1 gives $loss1, $acc1" >&2; exit 1; }
[[ $two =~ [0-9]+\ samples/s/node\ \([0-9]+\ nodes?\)\ +reduction\ exposed\ [0-9.]+\ ms/step ]] ||
  { echo "run_demo_data_parallel: no samples/s/node or exposed reduction" >&2; exit 1; }
echo "run_demo_data_parallel: ok"
