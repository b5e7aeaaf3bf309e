#!/usr/bin/env bash
# Builds the unit and MPI tests with AddressSanitizer + UndefinedBehaviorSanitizer in
# build-sanitize/ and runs them. Leaks that the MPI library keeps until exit are suppressed
# (test/sanitize/lsan.supp); any report from Stretto's code fails the run. Warnings are not
# errors here: GCC's flow analysis under the sanitizers reports false (maybe-)uninitialized uses
# inside Boost's optional; the regular build keeps -Werror.
#   scripts/test-sanitize.sh            (after scripts/install-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DSTRETTO_SANITIZE=address,undefined -DSTRETTO_BUILD_EXAMPLES=OFF -DSTRETTO_BUILD_BENCHMARKS=OFF \
  -DSTRETTO_ENABLE_CBC=OFF -DSTRETTO_INSTALL=OFF -DSTRETTO_WERROR=OFF "$@"
# Only the test executables: the unit suites and the MPI suites.
targets=$(cmake --build build-sanitize --target help | sed -n 's/^\(stretto\.test\.[^:]*\):.*/\1/p')
cmake --build build-sanitize --parallel "$(nproc)" --target $targets
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export LSAN_OPTIONS=suppressions=$PWD/test/sanitize/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ctest --test-dir build-sanitize -L "unit|mpi" -LE gpu --output-on-failure --parallel "$(nproc)" --timeout 900
