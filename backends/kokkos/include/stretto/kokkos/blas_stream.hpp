#pragma once
/**
@file
@brief `stretto::kokkos::blas_stream_guard<E>`: keeps the BLAS calls of Kokkos Kernels
(`KokkosBlas::gemm`) in order with the kernels queued on an execution-space instance.

Kokkos Kernels 3.4's `KokkosBlas::gemm` takes no execution-space instance: with a vendor BLAS
(cuBLAS) it calls it through one process-wide handle on that handle's stream, else it runs its
own kernels on the default instance. A model whose kernels run on another instance (its
`compute_space()`, e.g. an `execution_instance`'s stream) puts a guard around each GEMM:

```cpp
{
  const stretto::kokkos::blas_stream_guard<ExecutionSpace> on_stream(space_);
  KokkosBlas::gemm("N", "T", 1.0, x, w, 0.0, y);
}
```

**What the guard does** (selected by the execution space's type, through Kokkos only):
- a host execution space: nothing (its kernels and BLAS calls run in program order);
- a device with a vendor binding (`backends/cuda/`: cuBLAS when Kokkos Kernels was built with
  it; `backends/hip/`: rocBLAS, for a Kokkos Kernels that has that TPL): while the guard lives,
  the BLAS handle's stream is the instance's, so the GEMM is queued behind the instance's kernels
  and before the next ones, without a wait; the handle's previous stream is restored at the end;
- any other device (Kokkos Kernels' own GEMM kernels, which run on the default instance): fences
  `space` at the start (its queued kernels are done before the GEMM reads their output) and the
  default instance at the end (the GEMM is done before later kernels on `space` read it).

@pre one thread issues the GEMMs of the process while a guard lives (the handle is shared).
*/

#include <Kokkos_Core.hpp>

namespace stretto::kokkos {

/** @brief See the file: binds Kokkos Kernels' BLAS calls to `space`'s stream, or fences around them. */
template <class ExecutionSpace>
class blas_stream_guard {
 public:
  /// Whether `ExecutionSpace` runs on the host (nothing to order).
  static constexpr bool runs_on_host =
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename ExecutionSpace::memory_space>::accessible;
  /// Whether the guard binds a vendor BLAS handle to the instance's stream (false: it fences).
  static constexpr bool binds_stream = false;

  explicit blas_stream_guard(const ExecutionSpace& space) {
    if constexpr (!runs_on_host) space.fence();
  }
  ~blas_stream_guard() {
    if constexpr (!runs_on_host) ExecutionSpace().fence();
  }
  blas_stream_guard(const blas_stream_guard&) = delete;
  blas_stream_guard& operator=(const blas_stream_guard&) = delete;
};

}  // namespace stretto::kokkos

// The vendors' bindings, where their folders are on the include path (each is empty unless
// Kokkos was built with its backend and Kokkos Kernels with its BLAS).
#if __has_include(<stretto/cuda/blas_stream.hpp>)
#include <stretto/cuda/blas_stream.hpp>
#endif
#if __has_include(<stretto/hip/blas_stream.hpp>)
#include <stretto/hip/blas_stream.hpp>
#endif
