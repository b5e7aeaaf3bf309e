#!/usr/bin/env bash
# Runs its arguments when a GPU is visible; otherwise prints why not and exits 77, which the
# device tests (ctest label gpu) declare as their skip code.
#   with_device.sh COMMAND [ARGS...]
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  exec "$@"
fi
if command -v rocm-smi >/dev/null 2>&1 && rocm-smi --showid 2>/dev/null | grep -q '^GPU\['; then
  exec "$@"
fi
echo "no GPU device visible (nvidia-smi / rocm-smi list none): skipped"
exit 77
