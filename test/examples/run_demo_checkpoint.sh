#!/usr/bin/env bash
# The demo's checkpoints (--save, --resume; docs/checkpoints.md), end to end through the launcher:
# 2 epochs straight equal 1 epoch + --save + --resume + 1 epoch bit for bit (epoch 2's loss sum in
# hexadecimal, and the manifest and every rank file of the final checkpoint byte for byte) at 1
# rank, 2 ranks (1F1B and ZB-V) and 4 ranks as 2 data-parallel copies of 2; then a checkpoint is
# refused with exit 2 and one line naming what differs: another model, schedule, placement or
# number of pipeline ranks, a truncated rank file, a flipped byte, a directory without a checkpoint.
#   run_demo_checkpoint.sh LAUNCH DEMO WORKDIR
set -euo pipefail
launch=$1 demo=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
common=(--train-samples 1280 --exact-loss)
hidden=64,64,32
fail() { echo "run_demo_checkpoint: $*" >&2; exit 1; }
run() {  # ranks args... -> stdout
  local n=$1
  shift
  STRETTO_LAUNCHER=mpirun "$launch" -n "$n" "$demo" "${common[@]}" --hidden "$hidden" "$@" 2>"$work/run.err" ||
    { cat "$work/run.err" >&2; fail "-n $n $* failed"; }
}
loss_sum() {  # stdout of a run -> epoch 2's loss sum
  sed -n 's/^epoch 2\/2  loss sum \(.*\)$/\1/p' <<<"$1"
}

for spec in "1 1f1b 1" "2 1f1b 1" "2 zb-v 1" "4 1f1b 2"; do
  read -r n schedule dp <<<"$spec"
  args=(--schedule "$schedule" --data-parallel "$dp")
  a=$work/$n-$schedule-$dp/straight b=$work/$n-$schedule-$dp/resumed
  straight=$(run "$n" "${args[@]}" --epochs 2 --save "$a")
  half=$(run "$n" "${args[@]}" --epochs 1 --save "$b")
  grep -q "^checkpoint: epoch 1 saved to $b/step-000000000010$" <<<"$half" || fail "$spec: no save line: $half"
  resumed=$(run "$n" "${args[@]}" --epochs 2 --resume "$b" --save "$b")
  grep -q "^checkpoint: resumed from $b after epoch 1 (10 steps)$" <<<"$resumed" || fail "$spec: no resume line: $resumed"
  grep -q "^epoch 1/" <<<"$resumed" && fail "$spec: the resumed run trained epoch 1 again"
  want=$(loss_sum "$straight") got=$(loss_sum "$resumed")
  [[ -n $want && $want == "$got" ]] || fail "$spec: epoch 2's loss sum $got after resuming, $want straight"
  [[ $(cat "$a/latest") == step-000000000020 && $(cat "$b/latest") == step-000000000020 ]] || fail "$spec: latest"
  files=0
  for f in "$a"/step-000000000020/*; do
    cmp -s "$f" "$b/step-000000000020/${f##*/}" || fail "$spec: ${f##*/} differs between the straight and the resumed run"
    files=$((files + 1))
  done
  ((files == n / dp + 1)) || fail "$spec: $files files in the checkpoint, expected $((n / dp)) rank files and a manifest"
  echo "run_demo_checkpoint: $spec: epoch 2 loss sum $got straight and resumed, $files files identical"
done

refusals=0
refused() {  # ranks regex args...: exit 2, the regex on stderr, one error line
  local n=$1 regex=$2 rc=0
  shift 2
  # A file per run: output of a finished job's ranks may still arrive after the launcher returns.
  refusals=$((refusals + 1))
  local out=$work/refused-$refusals.out err=$work/refused-$refusals.err
  STRETTO_LAUNCHER=mpirun "$launch" -n "$n" "$demo" "${common[@]}" --hidden "$hidden" --epochs 2 "$@" >"$out" 2>"$err" || rc=$?
  ((rc == 2)) || { cat "$err" >&2; fail "exit $rc (not 2) for -n $n $*"; }
  grep -Eq "^fashion_mnist: error: $regex" "$err" || { cat "$err" >&2; fail "no '$regex' for -n $n $*"; }
  (($(grep -c "fashion_mnist: error" "$err") == 1)) || fail "the error is not printed once for -n $n $*"
  echo "run_demo_checkpoint: refused -n $n $*"
}
c=$work/2-1f1b-1/resumed
hidden=64,64,16 refused 2 "checkpoint $c/step-000000000020/manifest does not fit this run: checkpoint has model '784-64-64-32-10 f64', this run has '784-64-64-16-10 f64'$" \
  --resume "$c"
refused 2 "checkpoint .* does not fit this run: checkpoint has schedule '1f1b', this run has 'gpipe'$" --resume "$c" --schedule gpipe
refused 2 "checkpoint .* does not fit this run: checkpoint has v = 1 chunks per rank, this run has v = 2; checkpoint has schedule '1f1b', this run has 'interleaved-1f1b'; checkpoint has placement linear, this run has looped; checkpoint places stages 0 on pipeline rank 0, this run places 0,2$" \
  --resume "$c" --schedule interleaved-1f1b
refused 1 "checkpoint .* does not fit this run: checkpoint has p = 2 pipeline ranks, this run has p = 1$" --resume "$c"
refused 4 "checkpoint .* does not fit this run: checkpoint has data-parallel size 1, this run has 2$" --resume "$c" --data-parallel 2
d=$work/damaged
cp -r "$c" "$d"
rank1=$d/step-000000000020/rank-00001.bin
size=$(stat -c %s "$rank1")
truncate -s $((size - 100)) "$rank1"
refused 2 "rank 1: checkpoint file $rank1 has $((size - 100)) bytes, the manifest records $size \\(the file is truncated\\)$" --resume "$d"
cp "$c/step-000000000020/rank-00001.bin" "$rank1"
printf '\x55' | dd of="$rank1" bs=1 seek=$((size - 1000)) conv=notrunc status=none
refused 2 "rank 1: checkpoint file $rank1 has CRC-32 [0-9a-f]{8}, the manifest records [0-9a-f]{8} \\(the file is corrupted\\)$" --resume "$d"
refused 2 "checkpoint directory $work/none holds neither a manifest nor a 'latest' file" --resume "$work/none"
rm -rf "$work"
echo "run_demo_checkpoint: ok"
