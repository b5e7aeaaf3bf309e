#!/usr/bin/env bash
# Draws the gallery of docs/gallery/: the SVG timeline of every schedule of `stretto-plan list` at
# p = 4, m = 8 with T_F = T_B = T_W = 1 and no communication time (the Zero Bubble paper's
# Figure 3 setting), and zb-1p, zb-2p and auto-v on the paper's 1.5B row (p = 8, m = 24,
# T_F 18.522, T_B 18.086, T_W 9.337, T_comm 0.601 ms), then writes docs/gallery/README.md.
#   scripts/gallery.sh [path/to/stretto-plan]     (default: build/tools/stretto-plan/stretto-plan)
set -euo pipefail
cd "$(dirname "$0")/.."
plan=${1:-build/tools/stretto-plan/stretto-plan}
out=docs/gallery
mkdir -p "$out"
rm -f "$out"/*.svg
equal=(--t-forward 1 --t-backward 1 --t-weight 1 --t-comm 0)
row_1_5b=(--ranks 8 --microbatches 24 --t-forward 18.522 --t-backward 18.086 --t-weight 9.337 --t-comm 0.601)

readme="$out/README.md"
{
  echo "# Gallery"
  echo
  echo "Every schedule Stretto generates, drawn by \`stretto-plan export --svg\` (regenerate with"
  echo "\`scripts/gallery.sh\`). One row per rank; F blue, B (input backward) green, W (weight backward)"
  echo "orange, fused BW purple; the number in a box is its microbatch; a lighter tint marks the second"
  echo "chunk of a looped or V-shaped placement, hatching the second replica of a bidirectional"
  echo "schedule; an overlapped F&B pair is one box split in two; grey is idle time."
  echo
  echo "## p = 4, m = 8, T_F = T_B = T_W = 1, no communication time"
  echo
} > "$readme"

draw() {  # draw FILE TITLE ARGS...
  local file=$1 title=$2
  shift 2
  if "$plan" export "$@" --svg "$out/$file" > /dev/null 2> "$out/.error"; then
    printf '### %s\n\n![%s](%s)\n\n' "$title" "$title" "$file" >> "$readme"
  else
    printf '### %s\n\nNot drawn: %s\n\n' "$title" "$(sed 's/^stretto-plan: error: //' "$out/.error")" >> "$readme"
  fi
  rm -f "$out/.error"
}

for name in $("$plan" list | awk '{print $1}'); do
  extra=()
  case $name in auto | auto-v) extra=(--memory-limit 4) ;; esac
  draw "$name.svg" "$name" --schedule "$name" --ranks 4 --microbatches 8 "${equal[@]}" "${extra[@]}"
done

printf '## The Zero Bubble paper'"'"'s 1.5B row: p = 8, m = 24, T_F 18.522, T_B 18.086, T_W 9.337, T_comm 0.601 (ms)\n\n' >> "$readme"
draw zb-1p-1.5b.svg "zb-1p, 1.5B row" --schedule zb-1p "${row_1_5b[@]}"
draw zb-2p-1.5b.svg "zb-2p, 1.5B row" --schedule zb-2p "${row_1_5b[@]}"
draw auto-v-1.5b.svg "auto-v at 8 M_B (1F1B's memory), 1.5B row" --schedule auto-v "${row_1_5b[@]}" --memory-limit 8
echo "wrote $(ls "$out"/*.svg | wc -l) pictures and $readme"
