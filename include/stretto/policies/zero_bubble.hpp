#pragma once
/**
@file
@brief The handcrafted Zero Bubble schedules, which split the backward into B and W.
*/

#include <string>
#include <string_view>

#include "../core/concepts.hpp"
#include "common.hpp"

namespace stretto::policies {

/**
@brief ZB-H1, the memory-efficient handcrafted zero-bubble schedule (Qi, Wan, Huang, Lin,
"Zero Bubble Pipeline Parallelism", ICLR 2024, §3.1 and Figure 3; schedules.md §7.2).

**Shape.** Linear placement. On rank r (0-based) the F/B order is the 1F1B order with BW
replaced by B (p−r forwards before the first B, then B and F alternate); W(j) runs right after
B(j + r), so W trails B by r microbatches; the W's left over go at the end in order. The
steady state is "B W F".

**Invariants.** At equal times T_F = T_B = T_W = T and no communication cost the bubble is
(p−1)(T_F + T_B − T_W), a third of 1F1B's; rank r peaks at (p−r)·M_B + r·M_W (for m ≥ p).

**Errors.** `check` rejects p < 1, m < 1 and v ≠ 1. m < p is accepted (the pattern is then
only partly formed, as in the paper).
*/
struct zb_h1 {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "zb-h1";
  static constexpr placement_kind placement = placement_kind::linear;

  static constexpr std::string check(const pipeline_shape& s) { return detail::check_linear(name, s); }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    for (std::int32_t r = 0; r < s.num_ranks; ++r)
      detail::append_one_f_one_b(out, r, r, s.num_microbatches, s.num_ranks - r, true, r);
    return out;
  }
};

static_assert(schedule_policy<zb_h1>);

}  // namespace stretto::policies
