#pragma once
/**
@file
@brief HIP's `stretto::kokkos::device_traits` (the twin of `<stretto/cuda/device_traits.hpp>`):
messages staged in HIP's pinned host space, an instance per executor on its own HIP stream, the
node's device count. Empty unless Kokkos was built with HIP. Not compiled so far (no HIP
toolchain was at hand; docs/gpu.md says how to build it).
*/

#include <Kokkos_Core.hpp>

#if defined(KOKKOS_ENABLE_HIP)
#include <hip/hip_runtime.h>

#include <stretto/kokkos/execution_instance.hpp>

namespace stretto::kokkos {

template <>
struct device_traits<Kokkos::Experimental::HIP> {
  using staging_space = Kokkos::Experimental::HIPHostPinnedSpace;
  // A blocking stream, as CUDA's twin: Kokkos Kernels' rocBLAS calls on the null stream stay ordered with it.
  static bool create(Kokkos::Experimental::HIP& out) {
    hipStream_t stream = nullptr;
    if (hipStreamCreate(&stream) != hipSuccess) return false;  // keeps the default instance
    out = Kokkos::Experimental::HIP(stream);
    return true;
  }
  static void destroy(Kokkos::Experimental::HIP& space) noexcept {
    space.fence();
    hipStream_t stream = space.hip_stream();
    space = Kokkos::Experimental::HIP();
    (void)hipStreamDestroy(stream);
  }
  static int device_count() {
    int n = 0;
    return hipGetDeviceCount(&n) == hipSuccess ? n : 0;
  }
};

}  // namespace stretto::kokkos
#endif
