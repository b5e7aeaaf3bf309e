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
"Zero Bubble Pipeline Parallelism", ICLR 2024, §3.1 and Figure 3; docs/schedules.md §7.2).

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

/**
@brief ZB-H2, the zero-bubble handcrafted schedule (Qi et al., ICLR 2024, §3.1 and Figure 3;
docs/schedules.md §7.3).

**Shape.** Linear placement. Rank r (0-based) runs a warm-up of 2(p−r)−1 forwards before its
first B, then B and F alternate; W(j) runs right after B(j + 2r), so W trails B by 2r
microbatches; leftover W's go at the end.

**Invariants.** Bubble (p−1)(T_F + T_B − 2T_W): zero at equal times for m ≥ 2p − 1 (without the
optimizer-step synchronisation, §7.8); rank r peaks at (2p−2r−1)·M_B + 2r·M_W, (2p−1)·M_B on rank 0.

**Errors.** `check` rejects p < 1, m < 1 and v ≠ 1. Smaller m is accepted; the warm-up is then
cut to m forwards and the bubble is no longer zero.
*/
struct zb_h2 {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "zb-h2";
  static constexpr placement_kind placement = placement_kind::linear;

  static constexpr std::string check(const pipeline_shape& s) { return detail::check_linear(name, s); }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    for (std::int32_t r = 0; r < s.num_ranks; ++r)
      detail::append_one_f_one_b(out, r, r, s.num_microbatches, 2 * (s.num_ranks - r) - 1, true, 2 * r);
    return out;
  }
};

static_assert(schedule_policy<zb_h1>);
static_assert(schedule_policy<zb_h2>);

}  // namespace stretto::policies
