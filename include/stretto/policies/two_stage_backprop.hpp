#pragma once
/**
@file
@brief 2BP, two-stage backpropagation as a transform of any schedule, and GPipe-2BP / 1F1B-2BP.
*/

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/concepts.hpp"
#include "common.hpp"
#include "gpipe.hpp"
#include "one_f_one_b.hpp"

namespace stretto::policies {

/**
@brief Applies 2BP (Rae, Lee, Richings, "2BP: 2-Stage Backpropagation", arXiv 2405.18047, §3;
docs/schedules.md §6) to a schedule: every fused BW becomes its input-gradient part B
(backward-p1) in place, and the weight-gradient parts W (backward-p2) are deferred to the end of
the rank's list, in the order of their B's, where they fill the cool-down bubble. Ops that are
already split (B, W) and forwards are kept where they are.

**Invariants.** At equal times T_F = T_B = T_W the per-rank bubble drops from (p−1)(T_F+T_B+T_W)
to (p−1)(T_F+T_B) for GPipe and 1F1B; the cost is up to m·M_W more memory held until the end.
*/
constexpr schedule two_stage_backprop(const schedule& in) {
  schedule out(in.shape(), in.placement());
  for (std::int32_t j = 0; j < in.num_microbatches(); ++j) out.set_replica(j, in.replica_of(j));
  for (std::int32_t r = 0; r < in.num_ranks(); ++r) {
    std::vector<op> deferred;
    for (const op& o : in.ops(r)) {
      if (o.kind == op_kind::backward) {
        out.push_back(r, op{op_kind::backward_input, o.stage, o.microbatch});
        deferred.push_back(op{op_kind::backward_weight, o.stage, o.microbatch});
      } else {
        out.push_back(r, o);
      }
    }
    for (const op& w : deferred) out.push_back(r, w);
  }
  return out;
}

/**
@brief A policy `Base` with 2BP applied (see `two_stage_backprop`); same shape rules as `Base`.
*/
template <schedule_policy Base>
struct with_2bp {
  using policy_concept = schedule_policy_tag;
  static constexpr placement_kind placement = Base::placement;
  static constexpr std::string check(const pipeline_shape& s) { return Base::check(s); }
  static constexpr schedule generate(const pipeline_shape& s) { return two_stage_backprop(Base::generate(s)); }
};

/** @brief GPipe with 2BP: all F, all B, then all W. Same shape rules as GPipe. */
struct gpipe_2bp : with_2bp<gpipe> {
  static constexpr std::string_view name = "gpipe-2bp";
  static constexpr std::string check(const pipeline_shape& s) { return detail::check_linear(name, s); }
};
/** @brief 1F1B with 2BP: the 1F1B order with B, then all W at the end. Same shape rules as 1F1B. */
struct one_f_one_b_2bp : with_2bp<one_f_one_b> {
  static constexpr std::string_view name = "1f1b-2bp";
  static constexpr std::string check(const pipeline_shape& s) { return detail::check_linear(name, s); }
};

static_assert(schedule_policy<gpipe_2bp>);
static_assert(schedule_policy<one_f_one_b_2bp>);

}  // namespace stretto::policies
