#pragma once
/**
@file
@brief HIP's `stretto::kokkos::blas_stream_guard`, the twin of `<stretto/cuda/blas_stream.hpp>`:
while it lives, the rocBLAS handle of Kokkos Kernels' BLAS (`KokkosBlas::Impl::RocBlasSingleton`)
runs on the instance's stream. Empty unless Kokkos was built with HIP and Kokkos Kernels with
rocBLAS (`KOKKOSKERNELS_ENABLE_TPL_ROCBLAS`, which Kokkos Kernels 3.4 does not have: there its own
GEMM kernels run and `<stretto/kokkos/blas_stream.hpp>`'s fences apply). Never compiled: no HIP
toolchain was available (docs/gpu.md, section 6).
*/

#include <Kokkos_Core.hpp>

#if defined(KOKKOS_ENABLE_HIP) && __has_include(<KokkosKernels_config.h>)
#include <KokkosKernels_config.h>
#if defined(KOKKOSKERNELS_ENABLE_TPL_ROCBLAS)
#include <KokkosBlas_tpl_spec.hpp>

#include <stretto/kokkos/blas_stream.hpp>

namespace stretto::kokkos {

template <>
class blas_stream_guard<Kokkos::Experimental::HIP> {
 public:
  static constexpr bool runs_on_host = false;
  static constexpr bool binds_stream = true;

  explicit blas_stream_guard(const Kokkos::Experimental::HIP& space)
      : handle_(KokkosBlas::Impl::RocBlasSingleton::singleton().handle) {
    if (rocblas_get_stream(handle_, &previous_) != rocblas_status_success) previous_ = nullptr;
    rocblas_set_stream(handle_, space.hip_stream());
  }
  ~blas_stream_guard() { rocblas_set_stream(handle_, previous_); }
  blas_stream_guard(const blas_stream_guard&) = delete;
  blas_stream_guard& operator=(const blas_stream_guard&) = delete;

 private:
  rocblas_handle handle_;
  hipStream_t previous_{nullptr};
};

}  // namespace stretto::kokkos
#endif
#endif
