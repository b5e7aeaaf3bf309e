#!/usr/bin/env bash
# The emulated-time benchmark's README table (README, "Message progress"): every policy's
# measured / simulated span at p = 4, 8 and 16 ranks with 1 KiB, 64 KiB, 512 KiB and 4 MiB
# messages (sleep mode, Open MPI's single copy off), whether the measured ranking of the policies
# is the simulated one, and, with --data-parallel, the pp = 4 x dp = 2 table (measured / simulated
# step, the reductions and how much of them the pipeline hides). Markdown on stdout (or --out),
# progress on stderr.
#
#   scripts/bench-runtime-table.sh [--build DIR] [--ranks "4 8 16"] [--bytes 1024,65536,524288,4194304]
#                                  [--steps N] [--data-parallel] [--only-data-parallel] [--out FILE]
#                                  [--raw DIR] [--timeout S] [--op-ms MS] [--from-raw DIR]
#
# Op times (T_F = T_B = T_W): 20 ms at p <= 8, 10 ms at p = 16 (so that the whole table takes
# about 12 minutes on 2 cores; --data-parallel adds about 2; --op-ms sets one time for all); m = 2p; the span of each policy is
# the median of --steps (2) steps after a warm-up step. Each run of the benchmark (one per p) is
# limited to --timeout seconds (default 900); a run cut short leaves its missing cells empty and
# is named under the table. Ranks are started by scripts/launch.sh (srun when a Slurm controller
# answers, else mpirun; STRETTO_LAUNCHER=mpirun forces mpirun), which sets the environment
# (single copy off, oversubscription allowed, no busy polling). Measure on a quiet machine: a
# sleeping rank woken late by other work cannot catch up (the "op late" row shows how late).
# --from-raw DIR prints the tables again from the outputs a run left in DIR (its --raw), without
# running anything.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
ranks="4 8 16"
bytes=1024,65536,524288,4194304
steps=2
dp=0
table=1
out=
raw=
limit=900
op_ms=
from_raw=
usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while (($#)); do
  case $1 in
    --build) build=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --bytes) bytes=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --data-parallel) dp=1; shift ;;
    --only-data-parallel) dp=1; table=0; shift ;;
    --out) out=$2; shift 2 ;;
    --raw) raw=$2; shift 2 ;;
    --timeout) limit=$2; shift 2 ;;
    --op-ms) op_ms=$2; shift 2 ;;
    --from-raw) from_raw=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "bench-runtime-table: unknown option '$1'" >&2; usage ;;
  esac
done
bench=$build/bench/stretto.bench.emulated_pipeline
if [[ -n $from_raw ]]; then
  [[ -d $from_raw ]] || { echo "bench-runtime-table: --from-raw $from_raw: no such directory" >&2; exit 2; }
  raw=$from_raw
elif [[ ! -x $bench ]]; then
  echo "bench-runtime-table: $bench not found; build it with" >&2
  echo "  cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRETTO_BUILD_BENCHMARKS=ON && cmake --build $build --target stretto.bench.emulated_pipeline" >&2
  exit 2
fi
[[ -n $raw ]] || raw=$(mktemp -d -t stretto-bench-table.XXXXXX)
mkdir -p "$raw"
start=$(date +%s)
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }
elapsed() { echo "$(($(date +%s) - start)) s"; }
loads=()
failed=()
stamp=$(date -u +'%Y-%m-%d %H:%M UTC')

# run NAME RANKS ARGS...: the benchmark's text output in $raw/NAME.txt; false if it failed.
run() {
  local name=$1 n=$2
  shift 2
  if [[ -n $from_raw ]]; then
    if [[ -s $raw/$name.txt ]]; then
      [[ -s $raw/loads.txt ]] && loads+=("$(grep "^$name: " "$raw/loads.txt" | tail -1)")
      stamp=$(date -u -r "$raw/$name.txt" +'%Y-%m-%d %H:%M UTC')
      return 0
    fi
    failed+=("$name (no $raw/$name.txt)")
    return 1
  fi
  local before after status=0
  before=$(load)
  echo "bench-runtime-table: [$(elapsed)] $name: $n ranks, $* (load $before)" >&2
  timeout --kill-after=20 "$limit" scripts/launch.sh -n "$n" "$bench" "$@" >"$raw/$name.txt" 2>"$raw/$name.err" || status=$?
  after=$(load)
  loads+=("$name: load $before before, $after after")
  echo "$name: load $before before, $after after" >>"$raw/loads.txt"
  if ((status != 0)); then
    local why="exit status $status"
    ((status == 124 || status == 137)) && why="timed out after $limit s"
    failed+=("$name ($why; stderr: $raw/$name.err)")
    echo "bench-runtime-table: [$(elapsed)] $name FAILED: $why (see $raw/$name.err)" >&2
    return 1
  fi
  echo "bench-runtime-table: [$(elapsed)] $name done" >&2
}

emit() {
  if [[ -n $out ]]; then cat >>"$out"; else cat; fi
}
[[ -z $out ]] || : >"$out"
mpi_version=$( (mpirun --version 2>/dev/null || true) | head -1)

if ((table)); then
  names=()
  for p in $ranks; do
    t=20
    ((p > 8)) && t=10
    [[ -z $op_ms ]] || t=$op_ms
    run "p$p" "$p" --bytes "$bytes" --steps "$steps" --t-f "$t" --t-b "$t" --t-w "$t" --mode sleep || true
    names+=("$raw/p$p.txt")
  done
  {
    if [[ -n $op_ms ]]; then times="T_F = T_B = T_W = $op_ms ms"; else times="T_F = T_B = T_W = 20 ms at p ≤ 8, 10 ms at p = 16"; fi
    echo "Measured / simulated span per policy (emulated ops that sleep, $times,"
    echo "m = 2p, median of $steps steps after a warm-up, Open MPI's single"
    echo "copy off; $(nproc) cores, $mpi_version, $stamp; produced by"
    echo "\`scripts/bench-runtime-table.sh\`). A cell above 1.05 misses the target; – : the policy rejects the shape."
    echo
    awk '
      function label(b) { b += 0; return b >= 1048576 ? b / 1048576 " MiB" : (b >= 1024 ? b / 1024 " KiB" : b " B") }
      /^p = [0-9]+, m = / {
        split($0, a, /[ ,]+/); p = a[3]
        match($0, /messages [0-9]+ B/); b = substr($0, RSTART + 9, RLENGTH - 11)
        match($0, /message delay [0-9.]+ ms/); d = substr($0, RSTART + 14, RLENGTH - 17)
        col = "p=" p ", " label(b); cols[++ncols] = col; delay[col] = d; worst_late[col] = 0; next
      }
      /^[a-z0-9-]+ +[0-9]+ +skipped:/ { if (!($1 in seen)) { seen[$1] = 1; rows[++nrows] = $1 } cell[$1, col] = "–"; next }
      /^[a-z0-9-]+ +[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+/ {
        if (!($1 in seen)) { seen[$1] = 1; rows[++nrows] = $1 }
        cell[$1, col] = sprintf("%.3f", $6); measured[$1, col] = $4; simulated[$1, col] = $3
        total[col]++; if ($6 <= 1.05) within[col]++
        if ($7 > worst_late[col]) worst_late[col] = $7
        next
      }
      /^worst measured\/simulated:/ { w = $3; sub(/;$/, "", w); worst[col] = w; rank[col] = ($0 ~ /same as simulated/) ? "yes" : "**no**"; next }
      END {
        if (ncols == 0) { print "(no results: every run failed)"; exit }
        line = "| policy |"; sep = "|---|"
        for (c = 1; c <= ncols; c++) { line = line " " cols[c] " |"; sep = sep "---|" }
        print line; print sep
        for (r = 1; r <= nrows; r++) {
          line = "| " rows[r] " |"
          for (c = 1; c <= ncols; c++) { v = cell[rows[r], cols[c]]; if (v == "") v = " "; else if (v != "–" && v + 0 > 1.05) v = "**" v "**"; line = line " " v " |" }
          print line
        }
        line = "| within 1.05 |"; for (c = 1; c <= ncols; c++) line = line " " within[cols[c]] + 0 "/" total[cols[c]] + 0 " |"; print line
        line = "| ranking as simulated (pairs > 1 % apart) |"; for (c = 1; c <= ncols; c++) line = line " " (cols[c] in rank ? rank[cols[c]] : " ") " |"; print line
        # The same check for the pairs the simulator separates by more than the 5 % that a
        # measured span may exceed its simulated one: discordant pairs / pairs compared.
        line = "| ranking as simulated (pairs > 5 % apart) |"
        for (c = 1; c <= ncols; c++) {
          col = cols[c]; pairs = 0; wrong = 0
          for (ia = 1; ia <= nrows; ia++) for (ib = 1; ib <= nrows; ib++) {
            sa = simulated[rows[ia], col]; sb = simulated[rows[ib], col]
            if (sa == "" || sb == "" || sa + 0 >= 0.95 * sb) continue
            pairs++; if (measured[rows[ia], col] + 0 >= measured[rows[ib], col] + 0) wrong++
          }
          line = line " " (wrong ? "**no** (" wrong "/" pairs ")" : "yes (" pairs ")") " |"
        }
        print line
        line = "| ZB-H1 / 1F1B measured |"
        for (c = 1; c <= ncols; c++) { h = measured["zb-h1", cols[c]]; f = measured["1f1b", cols[c]]; line = line " " (h != "" && f > 0 ? sprintf("%.2f", h / f) : " ") " |" }
        print line
        line = "| message delay (ms) |"; for (c = 1; c <= ncols; c++) line = line " " delay[cols[c]] " |"; print line
        line = "| mean op late (ms), worst |"; for (c = 1; c <= ncols; c++) line = line " " sprintf("%.3f", worst_late[cols[c]]) " |"; print line
      }' "${names[@]}"
    echo
  } | emit
fi

if ((dp)); then
  t=${op_ms:-20}
  run dp2 8 --data-parallel 2 --gradient-bytes 1048576 --bytes 524288 --steps "$steps" --t-f "$t" --t-b "$t" --t-w "$t" --mode sleep || true
  {
    echo "pp = 4 × dp = 2 (8 ranks), 512 KiB messages, 1 MiB of gradients per stage all-reduced after"
    echo "its last W (by \`stretto::mpi::gradient_reduction\`), T_F = T_B = T_W = $t ms, m = 8. Simulated"
    echo "with the all-reduce time measured on each stage's group (T_ring, n ranks); \"hidden\" is the"
    echo "part of the reductions' simulated time behind compute, \"exposed\" the longest measured wait"
    echo "for them after a rank's last op."
    echo
    echo "| policy | simulated (ms) | measured (ms) | measured / simulated | T_ring (ms), n | reductions (ms) | hidden (simulated) | exposed, measured (ms) |"
    echo "|---|---|---|---|---|---|---|---|"
    awk '
      /^[a-z0-9-]+ +[0-9]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9]+ +[0-9.]+\/[0-9.]+/ {
        split($10, rh, "/"); hid = rh[1] > 0 ? sprintf("%.0f %%", 100 * rh[2] / rh[1]) : "–"
        r = sprintf("%.3f", $6); if ($6 > 1.05) r = "**" r "**"
        printf "| %s | %.1f | %.1f | %s | %.2f, %d | %.1f | %s | %.1f |\n", $1, $3, $4, r, $8, $9, rh[1], hid, $11
      }
      /^worst measured\/simulated:/ { tail = $0 }
      END { if (tail != "") { print ""; print tail } }' "$raw/dp2.txt"
    echo
  } | emit
fi

{
  printf 'Load (1, 5, 15 min) around each run: '
  printf '%s; ' "${loads[@]}"
  echo
  ((${#failed[@]} == 0)) || echo "Runs that failed: $(IFS=';'; echo "${failed[*]}")."
  if [[ -n $from_raw ]]; then echo "Printed from the outputs in $raw."; else echo "Raw outputs: $raw. Total time: $(elapsed)."; fi
} | emit
echo "bench-runtime-table: [$(elapsed)] done; raw outputs in $raw" >&2
((${#failed[@]} == 0))
