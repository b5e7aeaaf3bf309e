#pragma once
/**
@file
@brief CUDA's `stretto::kokkos::blas_stream_guard`: while it lives, the cuBLAS handle that Kokkos
Kernels' `KokkosBlas::gemm` uses (`KokkosBlas::Impl::CudaBlasSingleton`, Kokkos Kernels 3.4)
runs on the instance's stream. Empty unless Kokkos was built with CUDA and Kokkos Kernels with
cuBLAS (`KOKKOSKERNELS_ENABLE_TPL_CUBLAS`); then `<stretto/kokkos/blas_stream.hpp>`'s fences
apply. The HIP twin is `<stretto/hip/blas_stream.hpp>`; keep the two alike.
*/

#include <Kokkos_Core.hpp>

#if defined(KOKKOS_ENABLE_CUDA) && __has_include(<KokkosKernels_config.h>)
#include <KokkosKernels_config.h>
#if defined(KOKKOSKERNELS_ENABLE_TPL_CUBLAS)
#include <cublas_v2.h>

#include <KokkosBlas_tpl_spec.hpp>

#include <stretto/kokkos/blas_stream.hpp>

namespace stretto::kokkos {

template <>
class blas_stream_guard<Kokkos::Cuda> {
 public:
  static constexpr bool runs_on_host = false;
  static constexpr bool binds_stream = true;

  explicit blas_stream_guard(const Kokkos::Cuda& space)
      : handle_(KokkosBlas::Impl::CudaBlasSingleton::singleton().handle) {
    if (cublasGetStream(handle_, &previous_) != CUBLAS_STATUS_SUCCESS) previous_ = nullptr;
    cublasSetStream(handle_, space.cuda_stream());
  }
  ~blas_stream_guard() { cublasSetStream(handle_, previous_); }
  blas_stream_guard(const blas_stream_guard&) = delete;
  blas_stream_guard& operator=(const blas_stream_guard&) = delete;

 private:
  cublasHandle_t handle_;
  cudaStream_t previous_{nullptr};
};

}  // namespace stretto::kokkos
#endif
#endif
