#!/usr/bin/env bash
# scripts/stretto.sbatch on the emulated cluster: it parses (bash -n), and `sbatch --wait` runs it
# on two nodes x 4 tasks with `hostname` as the program: the job succeeds and its output holds the
# template's banner and node1, node2 four times each. $1: the template, $2: a directory for the
# job's output file.
set -euo pipefail
template=$1 outdir=$2
bash -n "$template"
mkdir -p "$outdir"
out="$outdir/sbatch-check.out"
rm -f "$out"
timeout 120 sbatch --wait --nodes=2 --ntasks-per-node=4 --output="$out" "$template" hostname
cat "$out"
grep -q '^stretto.sbatch: job [0-9]* on 2 nodes (node\[1-2\])' "$out" || { echo "check_sbatch: no banner" >&2; exit 1; }
counts=$(grep -E '^node[0-9]+$' "$out" | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')
[[ $counts == "node1=4 node2=4 " ]] || { echo "check_sbatch: expected node1=4 node2=4, got '$counts'" >&2; exit 1; }
echo "check_sbatch: ok ($counts)"
