#pragma once
/**
@file
@brief GPipe: all forwards, then all backwards.
*/

#include <string>
#include <string_view>

#include "../core/concepts.hpp"
#include "common.hpp"

namespace stretto::policies {

/**
@brief GPipe (Huang et al., NeurIPS 2019, §2.2; docs/schedules.md §1).

**Shape.** Linear placement, p stages on p ranks. Rank r runs F(r, 0..m−1), then BW(r, m−1..0)
(backwards in reverse microbatch order, as in the GPipe paper).

**Invariants.** Bubble rate (p−1)/(m+p−1) at equal times without communication cost; peak
activation memory m·M_B on every rank.

**Errors.** `check` rejects p < 1, m < 1 and v ≠ 1. Any m ≥ 1 is accepted, m < p included.
*/
struct gpipe {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "gpipe";
  static constexpr placement_kind placement = placement_kind::linear;

  static constexpr std::string check(const pipeline_shape& s) { return detail::check_linear(name, s); }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    for (std::int32_t r = 0; r < s.num_ranks; ++r) {
      for (std::int32_t j = 0; j < s.num_microbatches; ++j) out.push_back(r, op{op_kind::forward, r, j});
      for (std::int32_t j = s.num_microbatches - 1; j >= 0; --j)
        out.push_back(r, op{op_kind::backward, r, j});
    }
    return out;
  }
};

static_assert(schedule_policy<gpipe>);

}  // namespace stretto::policies
