#!/usr/bin/env bash
# Builds a runtime-focused set of the unit and MPI tests (below; --all for every one) with AddressSanitizer + UndefinedBehaviorSanitizer in
# build-sanitize/ and runs them. Leaks that the MPI library keeps until exit are suppressed
# (test/sanitize/lsan.supp); any report from Stretto's code fails the run. Warnings are not
# errors here: GCC's flow analysis under the sanitizers reports false (maybe-)uninitialized uses
# inside Boost's optional; the regular build keeps -Werror.
#   scripts/test-sanitize.sh [--all] [cmake -D options]   (after scripts/install-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == --all ]]; then
  shift
  keep='^stretto\.(test|fuzz_replay)\.'
  unit_tests='.' mpi_tests='.'
else
  keep='^stretto\.(fuzz_replay\..*|test\.(io|kokkos|executor_timing|skippipe|mpi\.(pipeline|allocations|reliability|data_parallel|skippipe)))$'
  unit_tests='^(io|kokkos|executor|fuzz|skippipe)\.' mpi_tests='^mpi\.(pipeline|allocations|reliability|data_parallel|skippipe)\.'
fi
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DSTRETTO_SANITIZE=address,undefined -DSTRETTO_BUILD_EXAMPLES=OFF -DSTRETTO_BUILD_BENCHMARKS=OFF \
  -DSTRETTO_ENABLE_CBC=OFF -DSTRETTO_INSTALL=OFF -DSTRETTO_WERROR=OFF "$@"
# Only the test executables: the unit suites, the MPI suites and the fuzz corpus replays.
# What runs here is the code that handles memory at run time: the readers of user files (the
# fuzz corpus replays and the I/O suite), the executor, its buffer pool and observers (kokkos,
# executor_timing), the MPI communicator, bounded collectives, agreement, process grid and
# gradient reduction (mpi.pipeline, allocations, reliability, data_parallel) and the SkipPipe
# planner and runner (mpi.skippipe). The schedule-generation suites (core, sim, plan, graph, regressions: about 20 minutes
# of instrumented compilation on 2 cores) and the timing-bound MPI suites run with `--all`
# (`scripts/test-sanitize.sh --all`), not in CI. Line tables only (-g1): reports keep file and line.
targets=$(cmake --build build-sanitize --target help | sed -n 's/^\(stretto\.\(test\|fuzz_replay\)\.[^:]*\):.*/\1/p' |
  grep -E "$keep" | grep -Ev '^stretto\.test\.(mpi\.(activation_memory|runtime)|compile_time)$')
cmake --build build-sanitize --parallel "$(nproc)" --target $targets
asan=abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export LSAN_OPTIONS=suppressions=$PWD/test/sanitize/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Unit tests: every check, leaks included.
ASAN_OPTIONS=detect_leaks=1:$asan ctest --test-dir build-sanitize -L unit -LE gpu -R "$unit_tests" -E "^compile_time\." --output-on-failure --parallel "$(nproc)" --timeout 900
# MPI tests: every check but leaks. Open MPI's plugins allocate at start-up and are unloaded
# (dlclose) before the leak check runs, so their allocations show as "<unknown module>" frames
# that no suppression can name; a leak of Stretto's own would be caught by the unit tests.
# mpi.runtime is left out: it bounds the executor's own time per op to 1 % of the stage
# functions', which the sanitizers' instrumentation does not keep (it passes in the regular build).
ASAN_OPTIONS=detect_leaks=0:$asan ctest --test-dir build-sanitize -L mpi -LE "gpu|regression" -R "$mpi_tests" -E "^mpi\.(runtime|activation_memory)\." --output-on-failure \
  --parallel "$(nproc)" --timeout 900
