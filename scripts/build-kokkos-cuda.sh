#!/usr/bin/env bash
# Build a CUDA-enabled Kokkos and Kokkos Kernels (cuBLAS) from Debian's sources.
#
#   scripts/build-kokkos-cuda.sh [--arch sm_90] [--prefix DIR] [--cuda DIR] [--work DIR] [--jobs N]
#
# Debian 12 ships Kokkos 3.4.01 for the Serial backend only. This script fetches the same sources
# (bookworm's `trilinos` 13.2.0-4 source package: packages/kokkos and packages/kokkos-kernels)
# from Debian's archive with a private apt configuration in --work (the system's apt sources and
# lists are not touched), applies scripts/patches/kokkos-3.4-cuda13-hopper.patch (CUDA 13 and
# Hopper support, see the patch's header) and installs into --prefix:
#   Kokkos         Serial + Cuda, lambdas on the device, one GPU architecture (--arch)
#   Kokkos Kernels no default instantiations, BLAS 3 through cuBLAS
# The installed <prefix>/bin/nvcc_wrapper is the C++ compiler for code that uses this Kokkos
# (docs/gpu.md); it calls <cuda>/bin/nvcc with g++ as the host compiler.
#
# Defaults: --arch sm_90 (H100/H200), --prefix /opt/stretto-kokkos-cuda-3.4.01-<arch>,
# --cuda $CUDA_ROOT or /usr/local/cuda, --work /var/tmp/stretto-kokkos-cuda, --jobs 2.
# Idempotent: <prefix>/.stretto-stamp records the source version, the patch's checksum, the arch
# and the nvcc version; when it matches, the script returns at once. Anything else rebuilds the
# prefix from scratch. Needs: apt-get (Debian's archive reachable), cmake, ninja, g++, nvcc, and
# patch or git.
# Prints the prefix on its last line.
set -euo pipefail

DEB_SOURCE=trilinos
DEB_VERSION=13.2.0-4
KOKKOS_VERSION=3.4.01
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PATCH=$ROOT/scripts/patches/kokkos-3.4-cuda13-hopper.patch

arch=sm_90
prefix=
cuda=${CUDA_ROOT:-/usr/local/cuda}
work=/var/tmp/stretto-kokkos-cuda
jobs=2
while (($#)); do
  case $1 in
    --arch) arch=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --cuda) cuda=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-kokkos-cuda: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# Kokkos 3.4's name for each architecture it can build for (HOPPER90 comes from the patch).
case $arch in
  sm_70) kokkos_arch=VOLTA70 ;;
  sm_75) kokkos_arch=TURING75 ;;
  sm_80) kokkos_arch=AMPERE80 ;;
  sm_86) kokkos_arch=AMPERE86 ;;
  sm_90) kokkos_arch=HOPPER90 ;;
  *) echo "build-kokkos-cuda: --arch $arch is not one of sm_70, sm_75, sm_80, sm_86, sm_90" >&2; exit 2 ;;
esac
prefix=${prefix:-/opt/stretto-kokkos-cuda-$KOKKOS_VERSION-$arch}
nvcc=$cuda/bin/nvcc
[[ -x $nvcc ]] || { echo "build-kokkos-cuda: no nvcc at $nvcc (give --cuda DIR)" >&2; exit 1; }

nvcc_version=$("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
patch_sum=$(sha256sum "$PATCH" | cut -d' ' -f1)
stamp="$DEB_SOURCE $DEB_VERSION kokkos $KOKKOS_VERSION patch $patch_sum arch $arch nvcc $nvcc_version cuda $cuda"
if [[ -f $prefix/.stretto-stamp && $(cat "$prefix/.stretto-stamp") == "$stamp" ]]; then
  echo "build-kokkos-cuda: $prefix is up to date (Kokkos $KOKKOS_VERSION, $arch, nvcc $nvcc_version)"
  echo "$prefix"
  exit 0
fi
t0=$(date +%s)

# ---- fetch: Debian's source package, through a private apt configuration ----------------------
apt_dir=$work/apt
src_dir=$work/src
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$src_dir"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" \
  > "$apt_dir/sources.list"
APT=(apt-get -q -o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
     -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
     -o APT::Sandbox::User=root)
orig=$src_dir/${DEB_SOURCE}_${DEB_VERSION%-*}.orig.tar.gz
if [[ ! -s $orig ]]; then
  echo "build-kokkos-cuda: fetching $DEB_SOURCE $DEB_VERSION from Debian's archive"
  "${APT[@]}" update
  (cd "$src_dir" && "${APT[@]}" source --download-only "$DEB_SOURCE=$DEB_VERSION")
fi
tree=$src_dir/tree
rm -rf "$tree"
mkdir -p "$tree"
tar xzf "$orig" -C "$tree" --strip-components=1 --wildcards \
  '*/packages/kokkos/*' '*/packages/kokkos-kernels/*'
if command -v patch >/dev/null; then patch -d "$tree" -p1 --quiet --forward < "$PATCH"
else (cd "$tree" && git apply -p1 "$PATCH"); fi  # `patch` is not in a minimal Debian

# ---- build and install -------------------------------------------------------------------------
export CUDA_ROOT=$cuda NVCC_WRAPPER_DEFAULT_COMPILER=g++ NVCC_WRAPPER_DEFAULT_ARCH=$arch
rm -rf "$prefix" "$work/build-kokkos" "$work/build-kernels"
common=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix"
        -DCMAKE_CXX_STANDARD=20 -DCMAKE_CXX_EXTENSIONS=OFF)
cmake -S "$tree/packages/kokkos" -B "$work/build-kokkos" "${common[@]}" \
  -DCMAKE_CXX_COMPILER="$tree/packages/kokkos/bin/nvcc_wrapper" \
  -DKokkos_ENABLE_SERIAL=ON -DKokkos_ENABLE_CUDA=ON -DKokkos_ENABLE_CUDA_LAMBDA=ON \
  -DKokkos_ARCH_$kokkos_arch=ON >"$work/kokkos-configure.log"
cmake --build "$work/build-kokkos" -j "$jobs"
cmake --install "$work/build-kokkos" >/dev/null
# The installed wrapper finds this nvcc and defaults to this architecture without environment.
sed -i -e "s|^default_arch=.*|default_arch=\${NVCC_WRAPPER_DEFAULT_ARCH:-\"$arch\"}|" \
       -e "s|^nvcc_compiler=nvcc$|nvcc_compiler=$nvcc|" "$prefix/bin/nvcc_wrapper"

cmake -S "$tree/packages/kokkos-kernels" -B "$work/build-kernels" "${common[@]}" \
  -DCMAKE_CXX_COMPILER="$prefix/bin/nvcc_wrapper" -DKokkos_ROOT="$prefix" \
  -DKokkosKernels_ADD_DEFAULT_ETI=OFF -DKokkosKernels_ENABLE_TPL_CUBLAS=ON \
  -DKokkosKernels_ENABLE_TPL_BLAS=OFF >"$work/kernels-configure.log"
cmake --build "$work/build-kernels" -j "$jobs"
cmake --install "$work/build-kernels" >/dev/null

echo "$stamp" > "$prefix/.stretto-stamp"
echo "build-kokkos-cuda: installed Kokkos $KOKKOS_VERSION for $arch in $prefix in $(( $(date +%s) - t0 )) s"
echo "$prefix"
