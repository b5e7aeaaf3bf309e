#pragma once
/**
@file
@brief CUDA's `stretto::kokkos::device_traits`: messages staged in `Kokkos::CudaHostPinnedSpace`,
an instance per executor on its own CUDA stream, the node's device count. Empty unless Kokkos
was built with CUDA. The HIP twin is `<stretto/hip/device_traits.hpp>`; keep the two alike.
*/

#include <Kokkos_Core.hpp>

#if defined(KOKKOS_ENABLE_CUDA)
#include <cuda_runtime.h>

#include <stretto/kokkos/execution_instance.hpp>

namespace stretto::kokkos {

template <>
struct device_traits<Kokkos::Cuda> {
  using staging_space = Kokkos::CudaHostPinnedSpace;
  // A blocking stream (not cudaStreamNonBlocking): Kokkos Kernels 3.4 calls cuBLAS on the legacy
  // default stream, which then stays ordered with the work on this one.
  static bool create(Kokkos::Cuda& out) {
    cudaStream_t stream = nullptr;
    if (cudaStreamCreate(&stream) != cudaSuccess) return false;  // keeps the default instance
    out = Kokkos::Cuda(stream);
    return true;
  }
  static void destroy(Kokkos::Cuda& space) noexcept {
    space.fence();
    cudaStream_t stream = space.cuda_stream();
    space = Kokkos::Cuda();  // drops Kokkos' handle on the stream before it goes
    cudaStreamDestroy(stream);
  }
  static int device_count() { return static_cast<int>(Kokkos::Cuda::detect_device_count()); }
};

}  // namespace stretto::kokkos
#endif
