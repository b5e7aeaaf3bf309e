#!/usr/bin/env bash
# CI stage "cuda": builds Stretto with nvcc against a CUDA Kokkos, compile and link only (the CI
# machines have the CUDA toolkit but no GPU; scripts/gpu-check.sh runs the result on one).
#
#   scripts/test-cuda-build.sh [--arch sm_90] [--build-dir build-cuda] [--all] [extra cmake -D options...]
#
# 1. scripts/build-kokkos-cuda.sh: Kokkos and Kokkos Kernels with CUDA from Debian's sources
#    (cached in its prefix: a second run takes a second);
# 2. configures build-cuda/ with that Kokkos's nvcc_wrapper as the C++ compiler (C++20) and
#    builds what runs on a device in scripts/gpu-check.sh: the executor's MPI gradient and
#    message-staging tests, the Kokkos tests, the demo, the step-API example (the training layer) and the emulated-time
#    benchmark. nvcc compiles every file as CUDA, several times slower than g++, so the CI builds
#    only these (CI time); --all builds every test, example and tool too (the compile-time
#    schedule tests, the other MPI suites, the compile-fail twins, stretto-plan, the fuzz
#    replays; the Google Benchmark microbenchmarks are always left out). Any compile or link
#    error fails the stage.
# 3. scripts/gpu-check.sh --no-device: the GPU check in the mode for a machine without a GPU
#    (the build is complete, the binaries hold code for the arch).
# Needs: scripts/install-deps.sh's packages and the CUDA toolkit in $CUDA_ROOT or /usr/local/cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=sm_90
build=build-cuda
all=0
while (($#)); do
  case $1 in
    --arch) arch=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --all) all=1; shift ;;
    *) break ;;
  esac
done
jobs=${STRETTO_JOBS:-$(nproc)}

# Its log goes to our stderr through the descriptor (not by opening /dev/stderr, which would
# truncate a log file that stderr is redirected to); its last line is the prefix.
kokkos_out=$(mktemp)
bash scripts/build-kokkos-cuda.sh --arch "$arch" --jobs "$jobs" | tee "$kokkos_out" >&2
prefix=$(tail -n 1 "$kokkos_out")
rm -f "$kokkos_out"

t0=$(date +%s)
mkdir -p "$build"
# The front end of nvcc (EDG) stops constant evaluation far earlier than GCC and Clang do; the
# compile-time schedules (static_schedule) need a higher limit (docs/gpu.md).
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$prefix/bin/nvcc_wrapper" -DKokkos_ROOT="$prefix" -DKokkosKernels_ROOT="$prefix" \
  -DCMAKE_CXX_FLAGS="-Xcudafe --max_cost_constexpr_call=1000000000" \
  -DSTRETTO_ENABLE_KOKKOS=ON -DSTRETTO_ENABLE_MPI=ON -DSTRETTO_BUILD_BENCHMARKS=ON \
  -DSTRETTO_BUILD_FUZZERS=OFF -DSTRETTO_INSTALL=OFF -DSTRETTO_WERROR=OFF \
  -DSTRETTO_GPU_ARCH="$arch" "$@" >"$build/stretto-configure.log" || { cat "$build/stretto-configure.log"; exit 1; }
if ((all)); then
  pattern='^stretto\.(test|example|compile_fail|fuzz_replay|bench\.emulated_pipeline|bench\.mpi_pingpong)|^stretto-plan$'
else
  pattern='^stretto\.(test\.(mpi\.(pipeline|staging)|kokkos)|example\.(fashion_mnist|step_api)|bench\.emulated_pipeline)$'
fi
targets=$(cmake --build "$build" --target help | sed -n 's/^\([^ :]*\): .*/\1/p' | grep -E "$pattern" |
  grep -v -E '^stretto\.compile_fail\.[^.]*$' || true)  # compile-fail cases fail by design; their twins build
[[ -n $targets ]] || { echo "test-cuda-build: no targets found in $build" >&2; exit 1; }
echo "test-cuda-build: building $(wc -w <<<"$targets") targets with nvcc for $arch"
cmake --build "$build" --parallel "$jobs" --target $targets
echo "test-cuda-build: Stretto built with nvcc in $(( $(date +%s) - t0 )) s"

bash scripts/gpu-check.sh --build-dir "$build" --no-device --report "$build/gpu-check.json"
