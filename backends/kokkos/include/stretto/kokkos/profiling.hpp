#pragma once
/**
@file
@brief Kokkos Tools profiling regions per op: an executor observer that names each op's compute
in the tools (Kokkos Tools' NVTX connector shows them in Nsight Systems; the space-time stack
and the kernel timer print them), so that a profile shows the schedule.
*/

#include <Kokkos_Core.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <stretto/core/op.hpp>
#include <stretto/kokkos/executor.hpp>

namespace stretto::kokkos {

/**
@brief Opens a Kokkos Tools region around each step and around each op's compute.

Regions, outermost first: `<prefix>step` from `on_step_begin` to `on_step_end`, and inside it one
region per op from `on_compute_begin` to `on_compute_end`, named `<prefix>` + `to_string(op)`,
e.g. `"F(stage 2, mb 5)"` (kind F/B/W/BW, stage, microbatch). The op regions are disjoint
and nested in the step's, as Kokkos Tools requires (push and pop in stack order). Waiting for
input and sends in flight are outside the op regions.

Usage: `stretto::kokkos::profiling_regions regions; ex.add_observer(regions);` then run under a
Kokkos Tools library (`KOKKOS_PROFILE_LIBRARY=...`); with no tool loaded the calls do nothing.

**Cost.** The names are formatted in `on_step_begin`, into strings that keep their capacity, so
after the first step a step with the same op list allocates nothing here; each event is one
call into Kokkos Tools.
*/
class profiling_regions final : public observer {
 public:
  /// `prefix` starts every region name (e.g. `"rank 3 "`); empty by default.
  explicit profiling_regions(std::string prefix = {}) : prefix_(std::move(prefix)), step_name_(prefix_ + "step") {}

  void on_step_begin(std::span<const op> ops, clock::time_point) override {
    if (names_.size() < ops.size()) names_.resize(ops.size());
    if (named_.size() < ops.size()) named_.resize(ops.size());
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (named_[i].second && named_[i].first == ops[i]) continue;  // same op as the last step
      format(names_[i], ops[i]);
      named_[i] = {ops[i], true};
    }
    Kokkos::Profiling::pushRegion(step_name_);
  }
  void on_compute_begin(std::size_t index, const op&, clock::time_point) override {
    Kokkos::Profiling::pushRegion(names_[index]);
  }
  void on_compute_end(std::size_t, const op&, clock::time_point) override { Kokkos::Profiling::popRegion(); }
  void on_step_end(clock::time_point) override { Kokkos::Profiling::popRegion(); }

  /// The region name of op `o` (what `on_compute_begin` pushes for it).
  std::string name_of(const op& o) const {
    std::string s;
    format(s, o);
    return s;
  }

 private:
  // `<prefix>K(stage S, mb M)` written into `out` without a temporary (to_string's format).
  void format(std::string& out, const op& o) const {
    out.assign(prefix_);
    out.append(short_name(o.kind));
    out.append("(stage ");
    append_int(out, o.stage);
    out.append(", mb ");
    append_int(out, o.microbatch);
    out.push_back(')');
  }
  static void append_int(std::string& out, std::int32_t v) {
    char digits[16];
    const auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
    out.append(digits, static_cast<std::size_t>(end - digits));
  }

  std::string prefix_;
  std::string step_name_;
  std::vector<std::string> names_;              // [i]: op i's region name
  std::vector<std::pair<op, bool>> named_;      // [i]: the op names_[i] was formatted for
};

}  // namespace stretto::kokkos
