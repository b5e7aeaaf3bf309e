#!/usr/bin/env bash
# Random stalls change timing, never results: runs the demo twice with one schedule policy, once
# unperturbed and once with random stalls of 0-200 ms on random ranks (--fault-stall-ms: at each
# step each rank stalls with probability 1/8, before one random op), and checks that the two
# epochs' loss sums are bit-identical (printed in hexadecimal by --exact-loss).
#
#   run_stalls.sh LAUNCH_SCRIPT DEMO POLICY [demo args...]
#
# The stall seed is printed, so that a failure can be replayed (STALL_SEED=N).
set -uo pipefail
(($# >= 3)) || { echo "usage: $0 LAUNCH_SCRIPT DEMO POLICY [demo args...]" >&2; exit 2; }
launch=$1 demo=$2 policy=$3
shift 3
export STRETTO_LAUNCHER=${STRETTO_LAUNCHER:-mpirun}
seed=${STALL_SEED:-$(( $(date +%s) % 100000 ))}
run() { timeout -k 5 300 "$launch" -n 2 "$demo" --schedule "$policy" --exact-loss "$@" 2>&1; }
# Both runs at once (the stalled one mostly sleeps): half the wall time of one after the other.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
start=$(date +%s.%N)
run "$@" >"$dir/plain" &
plain_pid=$!
run "$@" --fault-stall-ms 200 --fault-stall-seed "$seed" >"$dir/stalled"
stalled_status=$?
end=$(date +%s.%N)
wait "$plain_pid"
plain_status=$?
plain=$(<"$dir/plain") stalled=$(<"$dir/stalled")
((plain_status == 0)) || { echo "$plain"; echo "stalls $policy: FAILED: the unperturbed run failed" >&2; exit 1; }
((stalled_status == 0)) || { echo "$stalled"; echo "stalls $policy: FAILED: the run with stalls failed (seed $seed)" >&2; exit 1; }
a=$(grep -E '^epoch [0-9]+/[0-9]+  loss sum ' <<<"$plain")
b=$(grep -E '^epoch [0-9]+/[0-9]+  loss sum ' <<<"$stalled")
echo "$plain" | grep -E '^(fashion_mnist|epoch)'
echo "unperturbed: $a"
echo "with stalls: $b (seed $seed)"
grep -E '^epoch' <<<"$stalled"
awk -v a="$start" -v b="$end" 'BEGIN { printf "stalls: both runs (at once) took %.1f s\n", b - a }'
[[ -n $a ]] || { echo "stalls $policy: FAILED: no loss sum printed" >&2; exit 1; }
[[ $a == "$b" ]] || { echo "stalls $policy: FAILED: the loss differs with stalls (seed $seed)" >&2; exit 1; }
echo "stalls $policy: ok, bit-identical"
