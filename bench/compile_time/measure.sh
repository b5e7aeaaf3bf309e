#!/usr/bin/env bash
# Measures the compile-time cost of ZB-H1 schedules as compile-time constants: for each
# (p, m), the time to compile zb_h1_static.cpp and the size of its object file, beside the same
# file compiled without the schedule (the baseline: same headers, nothing instantiated).
#
#   bench/compile_time/measure.sh [compiler] [repetitions]      (defaults: c++, 5)
#
# Prints a Markdown table: the best (minimum) wall time of the repetitions, user+sys CPU time of
# that run, and the object's text + data bytes (`size`). Flags: -std=c++20 -O2, as a consumer
# would compile; GCC's default constexpr limits.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cxx=${1:-c++}
reps=${2:-5}
include=$here/../../include
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

measure() {  # name, flags... -> "best_wall cpu bytes"
  local name=$1; shift
  local best=999999 best_cpu=0
  for _ in $(seq "$reps"); do
    local start end wall
    start=$(date +%s.%N)
    /usr/bin/time -o "$work/time" -f "%U %S" "$cxx" -std=c++20 -O2 -I"$include" "$@" -c "$here/zb_h1_static.cpp" -o "$work/$name.o"
    end=$(date +%s.%N)
    wall=$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')
    if awk -v w="$wall" -v b="$best" 'BEGIN {exit !(w < b)}'; then
      best=$wall
      best_cpu=$(awk '{print $1 + $2}' "$work/time")
    fi
  done
  local bytes
  bytes=$(size "$work/$name.o" | awk 'NR == 2 {print $1 + $2}')
  printf '%.2f %.2f %d\n' "$best" "$best_cpu" "$bytes"
}

read -r base_wall base_cpu base_bytes < <(measure baseline -DSTRETTO_BENCH_BASELINE)
echo "compiler: $("$cxx" --version | head -1); $reps repetitions, best wall time"
echo
echo "| ZB-H1 (p, m) | ops | compile time (s) | CPU (s) | extra time (s) | object text+data (bytes) | extra size (bytes) |"
echo "|---|---|---|---|---|---|---|"
printf '| baseline (headers only) | 0 | %.2f | %.2f | 0 | %d | 0 |\n' "$base_wall" "$base_cpu" "$base_bytes"
for pm in "8 64" "16 256"; do
  set -- $pm
  read -r wall cpu bytes < <(measure "p$1_m$2" -DSTRETTO_BENCH_P="$1" -DSTRETTO_BENCH_M="$2")
  printf '| (%d, %d) | %d | %.2f | %.2f | %.2f | %d | %d |\n' "$1" "$2" $((3 * $1 * $2)) "$wall" "$cpu" \
    "$(awk -v a="$wall" -v b="$base_wall" 'BEGIN {print a - b}')" "$bytes" $((bytes - base_bytes))
done
