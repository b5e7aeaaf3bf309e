#pragma once
/**
@file
@brief What the executor needs of an execution space beyond Kokkos' portable interface, as a
trait with a host default: where messages are staged on the host (pinned memory on a GPU), how
to make an instance with its own queue (a CUDA or HIP stream), how many devices a node has.

The primary template (`device_traits<E>`) serves every host backend (Serial, OpenMP, Threads)
and any backend without a twin: staging in `Kokkos::HostSpace`, the default instance, no
device. A GPU backend's specialisation lives under `backends/<vendor>/` (`backends/cuda/`,
`backends/hip/`), is included at the end of this header when its folder is on the include path
(the `stretto::kokkos` target puts it there), and is empty unless Kokkos was built with that
backend. Nothing here names a vendor (docs/gpu.md, "Vendor twins").
*/

#include <Kokkos_Core.hpp>

#include <utility>

namespace stretto::kokkos {

/**
@brief The executor's view of an execution space `E` (specialised per GPU vendor).

| Member | Meaning |
|---|---|
| `staging_space` | the host memory space that messages are staged through when `E`'s memory is not host-accessible and the transport cannot read device memory (pinned memory on a GPU: the copies run asynchronously on a stream) |
| `create(E& out)` | sets `out` to a new instance with its own queue and returns `true` (the caller then owns it and calls `destroy`), or leaves the default instance and returns `false` |
| `destroy(E& space)` | releases what `create` made (after a fence) |
| `device_count()` | the devices of this node that `E` can use (0 for a host space); callable before `Kokkos::initialize` |
*/
template <class ExecutionSpace>
struct device_traits {
  using staging_space = Kokkos::HostSpace;
  static bool create(ExecutionSpace& /*out*/) { return false; }
  static void destroy(ExecutionSpace& /*space*/) noexcept {}
  static int device_count() { return 0; }
};

/** @brief Where messages of `E`'s views are staged on the host: `device_traits<E>::staging_space`. */
template <class ExecutionSpace>
using staging_space_t = typename device_traits<ExecutionSpace>::staging_space;

/**
@brief An execution-space instance with its own queue where the backend has them (a CUDA or
HIP stream), owned: released when this object dies. On a host backend it is the default
instance and owns nothing.

Work submitted to different instances may run concurrently; `fence()` waits for this instance's
work only. With CUDA the stream is a blocking one, so work that Kokkos Kernels 3.4 submits to the
default stream (cuBLAS calls) stays ordered with it.

@pre constructed after `Kokkos::initialize` and destroyed before `Kokkos::finalize`; copies of
`space()` are not used after this object dies.
*/
template <class ExecutionSpace>
class execution_instance {
 public:
  execution_instance() : owned_(device_traits<ExecutionSpace>::create(space_)) {}
  execution_instance(const execution_instance&) = delete;
  execution_instance& operator=(const execution_instance&) = delete;
  execution_instance(execution_instance&& other) noexcept
      : space_(std::move(other.space_)), owned_(std::exchange(other.owned_, false)) {}
  execution_instance& operator=(execution_instance&& other) noexcept {
    if (this != &other) {
      release();
      space_ = std::move(other.space_);
      owned_ = std::exchange(other.owned_, false);
    }
    return *this;
  }
  ~execution_instance() { release(); }

  /** @brief The instance (a handle: copies share its queue). */
  const ExecutionSpace& space() const noexcept { return space_; }
  /** @brief Whether this object made its own queue (false: the default instance). */
  bool owns_queue() const noexcept { return owned_; }
  /** @brief Waits for the work submitted to this instance. */
  void fence() const { space_.fence(); }

 private:
  void release() noexcept {
    if (owned_) device_traits<ExecutionSpace>::destroy(space_);
    owned_ = false;
  }
  ExecutionSpace space_{};
  bool owned_{false};
};

}  // namespace stretto::kokkos

// The vendor twins: each specialises device_traits for its backend when Kokkos enables it.
#if __has_include(<stretto/cuda/device_traits.hpp>)
#include <stretto/cuda/device_traits.hpp>
#endif
#if __has_include(<stretto/hip/device_traits.hpp>)
#include <stretto/hip/device_traits.hpp>
#endif
