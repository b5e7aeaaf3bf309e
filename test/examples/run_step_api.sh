#!/usr/bin/env bash
# The step API example at 1, 2 and 4 ranks: for each pipeline size pp, every data-parallel size
# dp (ranks = pp × dp ≤ 4) trains the same network on the same global batches, so the final mean
# loss after 60 steps must agree with dp = 1 up to the order of floating-point sums (relative
# 1e-9: 60 SGD steps of 96-sample sums amplify 1e-16 roundings by far less), and the network
# must learn (final loss below a quarter of the first).
#   run_step_api.sh MPIEXEC EXAMPLE
set -euo pipefail
mpiexec=$1 example=$2
run() {  # ranks pp schedule -> "first final"
  local out
  out=$("$mpiexec" -n "$1" --oversubscribe "$example" --pipeline "$2" --schedule "$3" 2>&1) ||
    { echo "$out" >&2; echo "run_step_api: -n $1 --pipeline $2 --schedule $3 failed" >&2; exit 1; }
  [[ $out =~ pp=$2\ dp=$(($1 / $2))\ first\ loss\ ([0-9.e+-]+)\ final\ loss\ ([0-9.e+-]+) ]] ||
    { echo "$out" >&2; echo "run_step_api: no final loss line" >&2; exit 1; }
  echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}
check() {  # label reference-final got-final
  awk -v a="$2" -v b="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-9 * a) }' ||
    { echo "run_step_api: $1: final loss $3 differs from dp = 1's $2" >&2; exit 1; }
  echo "run_step_api: $1: final loss $3 (dp = 1: $2)"
}
for spec in "1 1f1b 1 2 4" "2 zb-h1 2 4" "2 chimera 4" "4 1f1b 4"; do
  read -r pp schedule ranks <<<"$spec"
  read -r first reference <<<"$(run "$pp" "$pp" "$schedule")"
  awk -v f="$first" -v l="$reference" 'BEGIN { exit !(l < f / 4) }' ||
    { echo "run_step_api: pp = $pp did not learn: $first -> $reference" >&2; exit 1; }
  for n in $ranks; do
    [[ $n == "$pp" ]] && continue
    read -r _ got <<<"$(run "$n" "$pp" "$schedule")"
    check "$schedule pp=$pp dp=$((n / pp))" "$reference" "$got"
  done
done
echo "run_step_api: ok"
