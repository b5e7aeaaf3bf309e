#!/usr/bin/env bash
# Runs the Fashion-MNIST demo for one epoch on a subset, with 4 tasks through srun, and checks
# that it prints the test accuracy and both bubble rates and learns (accuracy above chance by far).
# Exit 77 (skipped) when no Slurm controller answers, unless STRETTO_REQUIRE_SRUN=1 (CI).
set -euo pipefail
launch=$1 demo=$2
if ! timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
  if [[ ${STRETTO_REQUIRE_SRUN:-0} == 1 ]]; then
    echo "run_demo_srun: no Slurm controller answers and STRETTO_REQUIRE_SRUN=1 (start it: scripts/slurm-up.sh)" >&2
    exit 1
  fi
  echo "run_demo_srun: no Slurm controller answers; skipped (scripts/slurm-up.sh starts one)"
  exit 77
fi
out=$(STRETTO_LAUNCHER=srun "$launch" -n 4 "$demo" --epochs 1 --train-samples 6400 2>&1)
echo "$out"
grep -q '^launch: srun -n 4' <<<"$out" || { echo "run_demo_srun: not launched through srun" >&2; exit 1; }
line=$(grep '^epoch 1/1' <<<"$out") || { echo "run_demo_srun: no epoch line" >&2; exit 1; }
[[ $line =~ test\ accuracy\ ([0-9.]+) ]] || { echo "run_demo_srun: no test accuracy" >&2; exit 1; }
accuracy=${BASH_REMATCH[1]}
[[ $line =~ bubble\ rate\ measured\ [0-9.]+\ simulated\ [0-9.]+ ]] || { echo "run_demo_srun: no bubble rates" >&2; exit 1; }
# 6400 samples of one epoch reach about 0.77 here; ten classes give 0.10 by chance.
awk -v a="$accuracy" 'BEGIN { exit !(a >= 0.70) }' || { echo "run_demo_srun: accuracy $accuracy < 0.70" >&2; exit 1; }
echo "run_demo_srun: ok (accuracy $accuracy)"
