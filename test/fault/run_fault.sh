#!/usr/bin/env bash
# One fault case of the Fashion-MNIST demo: runs it through a launcher, and checks that it ends
# within a limit, with the expected exit (non-zero for a fault) and a line matching a regex;
# prints the time to failure.
#
#   run_fault.sh NAME LAUNCHER LIMIT_S EXIT REGEX -- command...
#
# LAUNCHER: mpirun or srun (exported as STRETTO_LAUNCHER for scripts/launch.sh); with srun and no
# Slurm controller answering: exit 77 (skipped), unless STRETTO_REQUIRE_SRUN=1. EXIT: "nonzero"
# or a number. REGEX: an extended regex (grep -E) that a line of stdout + stderr must match (or
# several, separated by " @@ ", each matching some line). The command is
# killed at LIMIT_S + 30 s so that the test itself cannot hang.
set -uo pipefail
(($# >= 7)) || { echo "usage: $0 NAME LAUNCHER LIMIT_S EXIT REGEX -- command..." >&2; exit 2; }
name=$1 launcher=$2 limit=$3 expect_exit=$4 regex=$5
shift 5
[[ $1 == -- ]] && shift
if [[ $launcher == srun ]] && ! timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
  if [[ ${STRETTO_REQUIRE_SRUN:-0} == 1 ]]; then
    echo "fault $name: no Slurm controller answers and STRETTO_REQUIRE_SRUN=1 (start it: scripts/slurm-up.sh)" >&2
    exit 1
  fi
  echo "fault $name: no Slurm controller answers; skipped (scripts/slurm-up.sh starts one)"
  exit 77
fi
export STRETTO_LAUNCHER=$launcher
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s.%N)
timeout -k 5 $((limit + 30)) "$@" >"$out" 2>&1
status=$?
end=$(date +%s.%N)
total=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
cat "$out"
# Time to failure: from the injected fault (the demo prints "fault injection: ... (t = SECONDS)"),
# else from the launch (faults present from the start: ranks that disagree).
injected=$(grep -oE '^fault injection: .*\(t = [0-9.]+\)' "$out" | head -n 1 | sed -E 's/.*\(t = ([0-9.]+)\)$/\1/')
from=launch
if [[ -n $injected ]]; then start=$injected from="the injected fault"; fi
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
echo "fault $name ($launcher): time to failure ${elapsed} s from ${from} (run ${total} s), exit $status (limit ${limit} s)"
failed=0
if [[ $expect_exit == nonzero ]]; then
  ((status != 0)) || { echo "fault $name: FAILED: exit 0, expected non-zero" >&2; failed=1; }
elif ((status != expect_exit)); then
  echo "fault $name: FAILED: exit $status, expected $expect_exit" >&2
  failed=1
fi
awk -v e="$total" -v l="$limit" 'BEGIN { exit !(e < l + 30) }' || { echo "fault $name: FAILED: killed at the hard limit" >&2; failed=1; }
awk -v e="$elapsed" -v l="$limit" 'BEGIN { exit !(e <= l) }' ||
  { echo "fault $name: FAILED: took ${elapsed} s, more than ${limit} s" >&2; failed=1; }
# Several regexes, each to match some line: separated by " @@ ".
while [[ -n $regex ]]; do
  one=${regex%% @@ *}
  [[ $one == "$regex" ]] && regex= || regex=${regex#* @@ }
  grep -Eq -- "$one" "$out" || { echo "fault $name: FAILED: no line matches '$one'" >&2; failed=1; }
done
exit $failed
