#!/usr/bin/env bash
# Configures and builds Stretto in build/ (Release, tests, tools, examples and benchmarks).
#   scripts/build.sh [extra cmake -D options...]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRETTO_BUILD_BENCHMARKS=ON "$@"
cmake --build build --parallel "$(nproc)"
