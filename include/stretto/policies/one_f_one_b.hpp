#pragma once
/**
@file
@brief 1F1B (PipeDream-Flush, DAPPLE): one forward, one backward in the steady state.
*/

#include <string>
#include <string_view>

#include "../core/concepts.hpp"
#include "common.hpp"

namespace stretto::policies {

/**
@brief 1F1B with a fused backward (Narayanan et al., PipeDream-2BW/Flush, ICML 2021 §3;
Fan et al., DAPPLE, PPoPP 2021; Megatron-LM's order; docs/schedules.md §2).

**Shape.** Linear placement. Rank r (0-based) runs a warm-up of w_r = min(p−r−1, m) forwards,
then for k = 0..m−w_r−1 the pair F(w_r+k), BW(k), then the cool-down BW(m−w_r..m−1).

**Invariants.** Bubble rate (p−1)/(m+p−1) at equal times without communication cost; rank r
holds at most min(p−r, m) microbatches of activations, so the peak is min(p, m)·M_B on rank 0.

**Errors.** `check` rejects p < 1, m < 1 and v ≠ 1. Any m ≥ 1 is accepted (m ≥ p fills the
pipeline).
*/
struct one_f_one_b {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "1f1b";
  static constexpr placement_kind placement = placement_kind::linear;

  static constexpr std::string check(const pipeline_shape& s) { return detail::check_linear(name, s); }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    for (std::int32_t r = 0; r < s.num_ranks; ++r)
      detail::append_one_f_one_b(out, r, r, s.num_microbatches, s.num_ranks - r, false, 0);
    return out;
  }
};

static_assert(schedule_policy<one_f_one_b>);

}  // namespace stretto::policies
