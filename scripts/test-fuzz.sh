#!/usr/bin/env bash
# Builds the libFuzzer harnesses of the file readers with clang (ASan + UBSan) in build-fuzz/ and
# lets each explore from its seed corpus for STRETTO_FUZZ_SECONDS (default 60) seconds.
#   scripts/test-fuzz.sh                       (after scripts/install-deps.sh)
#   STRETTO_FUZZ_SECONDS=600 scripts/test-fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTRETTO_BUILD_FUZZERS=ON -DSTRETTO_FUZZ_SECONDS="${STRETTO_FUZZ_SECONDS:-60}" \
  -DSTRETTO_ENABLE_MPI=OFF -DSTRETTO_ENABLE_KOKKOS=OFF -DSTRETTO_ENABLE_CBC=OFF \
  -DSTRETTO_BUILD_EXAMPLES=OFF -DSTRETTO_BUILD_BENCHMARKS=OFF -DSTRETTO_INSTALL=OFF "$@"
targets=$(cmake --build build-fuzz --target help | sed -n 's/^\(fuzz_[^:]*\):.*/\1/p')
cmake --build build-fuzz --parallel "$(nproc)" --target $targets
ctest --test-dir build-fuzz -L fuzz --output-on-failure
