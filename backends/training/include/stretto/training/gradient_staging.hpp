#pragma once
/**
@file
@brief Host copies of a model's gradients for `training::pipeline`: the buffers that the
data-parallel all-reduce sums when the gradients live in device memory and MPI cannot read it,
and where the step scales and checks them.
*/

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include <stretto/kokkos/execution_instance.hpp>

namespace stretto::training {

/**
@brief One host buffer per local stage, as large as the stage's gradients, allocated on the first
step (and again only if a stage's gradient count changes): no allocation per step after the first.

**When.** `MemorySpace` is where the model's gradients live (the executor's memory space).
- *Staged* (`configure(…, true)`: `kokkos::executor::stages_messages()`, i.e. the views are not
  host-accessible and the transport is not device-aware, or `kokkos::message_path::staged` was
  forced): the all-reduce sums the host copy. Before a stage's all-reduce starts, the compute
  instance is fenced and the gradients are copied to the host buffer (`to_host`); after the
  all-reduces, the step scales and checks the host copy and copies it back (`to_device`).
- *Direct*, gradients not host-accessible (a device-aware MPI): MPI sums the device buffer in
  place; the step copies it to the host to scale and check it, then back.
- *Direct*, host-accessible gradients (a host backend): no buffer; `active()` is false.

The buffers are in `kokkos::staging_space_t<ExecutionSpace>`: pinned host memory on a GPU
(`device_traits`), `Kokkos::HostSpace` on a host backend. Copies run on the given instance (the
executor's compute instance) and are fenced there, never on the whole device.

@tparam Scalar the gradients' element type (`double` or `float`).
*/
template <class Scalar, class ExecutionSpace, class MemorySpace>
class gradient_staging {
 public:
  using host_vector = Kokkos::View<Scalar*, kokkos::staging_space_t<ExecutionSpace>>;
  using device_vector = Kokkos::View<Scalar*, MemorySpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  /// Whether the host reads `MemorySpace` (a host backend, or unified memory).
  static constexpr bool host_accessible = Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemorySpace>::accessible;

  /** @brief `stages` stages in all; `reduce_on_host`: the all-reduce sums the host copies (staged path). */
  void configure(std::size_t stages, bool reduce_on_host) {
    reduce_on_host_ = reduce_on_host;
    if (buffers_.size() < stages) buffers_.resize(stages);
    copied_.assign(stages, 0);
  }
  /** @brief Whether the all-reduce sums the host copies. */
  bool reduces_on_host() const noexcept { return reduce_on_host_; }
  /** @brief Whether the step works on host copies at all (staged, or gradients the host cannot read). */
  bool active() const noexcept { return reduce_on_host_ || !host_accessible; }

  /** @brief A step begins: no stage's gradients are on the host yet. */
  void begin_step() noexcept {
    for (auto& c : copied_) c = 0;
  }

  /**
  @brief Stage `stage`'s host buffer, `count` values (allocated on first use, or when `count`
  changed). Its contents are those of the last `to_host`.
  */
  std::span<Scalar> host(std::int32_t stage, std::size_t count) {
    host_vector& b = buffers_[static_cast<std::size_t>(stage)];
    if (b.extent(0) != count) {
      b = host_vector(Kokkos::view_alloc(Kokkos::WithoutInitializing, "stretto::grad"), count);  // short label: no heap string
      ++allocations_;
    }
    return {b.data(), count};
  }

  /**
  @brief Copies `gradients` (in `MemorySpace`) to stage `stage`'s host buffer on `space`, and waits
  for the copy (a fence of `space`). @pre the kernels that wrote `gradients` are done or queued on `space`.
  */
  void to_host(std::int32_t stage, std::span<Scalar> gradients, const ExecutionSpace& space) {
    const std::span<Scalar> h = host(stage, gradients.size());
    Kokkos::deep_copy(space, host_view(h), device_view(gradients));
    space.fence();
    copied_[static_cast<std::size_t>(stage)] = 1;
  }
  /** @brief Whether `to_host` ran for `stage` in this step. */
  bool copied(std::int32_t stage) const noexcept { return copied_[static_cast<std::size_t>(stage)] != 0; }

  /** @brief Copies stage `stage`'s host buffer back to `gradients` on `space`, and waits for the copy. */
  void to_device(std::int32_t stage, std::span<Scalar> gradients, const ExecutionSpace& space) {
    const std::span<Scalar> h = host(stage, gradients.size());
    Kokkos::deep_copy(space, device_view(gradients), host_view(h));
    space.fence();
  }

  /** @brief Writes 0 to every value of `gradients` (in `MemorySpace`), on `space` when the host cannot. */
  static void zero(std::span<Scalar> gradients, const ExecutionSpace& space) {
    if constexpr (host_accessible) {
      for (Scalar& g : gradients) g = Scalar(0);
    } else {
      Kokkos::deep_copy(space, device_view(gradients), Scalar(0));
      space.fence();
    }
  }

  /** @brief Host buffers allocated since construction (one per local stage after the first step). */
  std::size_t allocations() const noexcept { return allocations_; }

 private:
  using host_unmanaged = Kokkos::View<Scalar*, kokkos::staging_space_t<ExecutionSpace>, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  static host_unmanaged host_view(std::span<Scalar> s) { return host_unmanaged(s.data(), s.size()); }
  static device_vector device_view(std::span<Scalar> s) { return device_vector(s.data(), s.size()); }

  std::vector<host_vector> buffers_;  // [stage]: empty for stages not on this rank
  std::vector<char> copied_;          // [stage]: to_host ran in this step
  std::size_t allocations_{0};
  bool reduce_on_host_{false};
};

}  // namespace stretto::training
