#pragma once
/**
@file
@brief Profile-guided planning: per-stage mean op times measured by an executor, as a cost model
the schedulers can plan from (Zero Bubble, Qi et al. 2024, §3.1: the runtime profiles T_F, T_B,
T_W during the first iterations and then schedules with them).
*/

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/errors.hpp"
#include "../core/op.hpp"
#include "cost_model.hpp"
#include "timeline.hpp"

namespace stretto::sim {

/**
@brief Sums and counts of measured op durations per (stage, kind).

Feed it the `op_timing`s an executor records (`stretto::kokkos::step_record::ops`, one rank's
ops of one step) with `add`; on several ranks, reduce `sums()` and `counts()` element-wise (e.g.
`MPI_Allreduce` with `MPI_SUM`) so that every stage is covered; then `costs()` gives the means as
a `stage_costs`.

**Units.** Whatever the timings are in (the Kokkos executor: seconds); `costs` keeps that unit.
*/
class op_time_profile {
 public:
  /** @brief An empty profile of `num_stages` stages. @throws argument_error if `num_stages < 1`. */
  explicit op_time_profile(std::int32_t num_stages)
      : stages_(num_stages),
        sums_(static_cast<std::size_t>(num_stages > 0 ? num_stages : 0) * kinds, 0.0),
        counts_(sums_.size(), 0.0) {
    if (num_stages < 1) throw argument_error("op_time_profile: the number of stages must be at least 1");
  }

  /** @brief Adds the durations (end − start) of `ops`. Ops naming a stage outside the profile are ignored. */
  void add(std::span<const op_timing> ops) {
    for (const op_timing& t : ops) {
      if (t.what.stage < 0 || t.what.stage >= stages_) continue;
      const std::size_t k = index(t.what.stage, t.what.kind);
      sums_[k] += t.end - t.start;
      counts_[k] += 1.0;
    }
  }

  /** @brief Adds every rank's ops of `t`. */
  void add(const timeline& t) {
    for (std::int32_t r = 0; r < t.num_ranks(); ++r) add(t.ops(r));
  }

  /** @brief Number of stages profiled. */
  std::int32_t num_stages() const noexcept { return stages_; }

  /** @brief Summed durations, indexed `stage * 4 + kind` (kind as `op_kind`'s value), for reductions. */
  std::span<double> sums() noexcept { return sums_; }
  /** @brief Counts, indexed as `sums()` (doubles, so that both reduce with one MPI datatype). */
  std::span<double> counts() noexcept { return counts_; }

  /** @brief Number of timings of `kind` on `stage`. */
  double samples(std::int32_t stage, op_kind kind) const { return counts_[index(stage, kind)]; }

  /** @brief Mean duration of `kind` on `stage`, 0 when none was measured. */
  double mean(std::int32_t stage, op_kind kind) const {
    const std::size_t k = index(stage, kind);
    return counts_[k] > 0.0 ? sums_[k] / counts_[k] : 0.0;
  }

  /**
  @brief The measured means as a cost model, for `auto_schedule` or `simulate`.

  Per stage: T_F is the mean F; T_B and T_W are the means of B and W when the profiled schedule
  split the backward; a stage measured only with fused BW's gets T_B = T_W = BW / 2 (the split is
  then a guess: profile with a split-backward schedule, e.g. ZB-H1, to plan zero-bubble
  schedules). Messages cost `latency`; memory is `activation_memory` / `weight_gradient_memory`
  per stage (default M_B = 1, M_W = 0.5, the Zero Bubble code's units).
  */
  stage_costs costs(double latency = 0.0, double activation_memory = 1.0, double weight_gradient_memory = 0.5) const {
    stage_costs out;
    const auto n = static_cast<std::size_t>(stages_);
    out.forward.resize(n);
    out.backward_input.resize(n);
    out.backward_weight.resize(n);
    for (std::int32_t s = 0; s < stages_; ++s) {
      const auto i = static_cast<std::size_t>(s);
      out.forward[i] = mean(s, op_kind::forward);
      if (samples(s, op_kind::backward_input) > 0.0 || samples(s, op_kind::backward_weight) > 0.0) {
        out.backward_input[i] = mean(s, op_kind::backward_input);
        out.backward_weight[i] = mean(s, op_kind::backward_weight);
      } else {
        out.backward_input[i] = out.backward_weight[i] = mean(s, op_kind::backward) / 2.0;
      }
    }
    out.latency = latency;
    out.activation_memory.assign(n, activation_memory);
    out.weight_gradient_memory.assign(n, weight_gradient_memory);
    return out;
  }

 private:
  static constexpr std::size_t kinds = 4;
  std::size_t index(std::int32_t stage, op_kind kind) const noexcept {
    return static_cast<std::size_t>(stage) * kinds + static_cast<std::size_t>(kind);
  }

  std::int32_t stages_;
  std::vector<double> sums_;
  std::vector<double> counts_;
};

}  // namespace stretto::sim
