#pragma once
/**
@file
@brief A user's own schedule policy, in one header: 1F1B with the backward split into B and W,
and each W run one B later ("W lag 1").

Satisfying `stretto::schedule_policy` is all it takes: Stretto then validates it, simulates it,
generates it at compile time (`stretto::compile_time::static_schedule`), lowers it to messages,
and the Kokkos executor runs it over MPI. Nothing in Stretto has to know about it.
*/

#include <cstdint>
#include <string>
#include <string_view>

#include <stretto/core/concepts.hpp>
#include <stretto/detail/text.hpp>

namespace stretto::examples {

/**
@brief 1F1B with a split backward whose W trails its B by one microbatch.

**Shape.** Linear placement, stage r on rank r. Rank r runs w = min(p − r, m) forwards, then
for j = 0, 1, ..., m − 1: B(j), then W(j − 1) (from j = 1), then the next forward if any; W(m − 1)
last. With p = 4, m = 6 (F, B, W and microbatch numbers):

    rank 0: F0 F1 F2 F3 B0 F4 B1 W0 F5 B2 W1 B3 W2 B4 W3 B5 W4 W5
    rank 3: F0 B0 F1 B1 W0 F2 B2 W1 F3 B3 W2 F4 B4 W3 F5 B5 W4 W5

The B of the next stage up no longer waits for this stage's W, as it does with a fused BW, so
the gradient reaches rank 0 sooner than in 1F1B (Zero Bubble, Qi et al. 2024, §2; ZB-H1 lags
rank r's W by r instead of 1).

**Invariants.** Every (stage, microbatch) has one F, one B and one W, in that order; rank r holds
at most min(p − r, m) + 1 microbatches of state (those awaiting B, and one awaiting W).

**Errors.** `check` rejects p < 1, m < 1 and v ≠ 1, naming the rule and a valid alternative.
*/
struct one_f_one_b_w_lag {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "1f1b-w-lag";
  static constexpr placement_kind placement = placement_kind::linear;

  static constexpr std::string check(const pipeline_shape& s) {
    using stretto::detail::cat;
    if (s.num_ranks < 1) return cat(name, ": needs at least 1 rank (got ", s.num_ranks, ")");
    if (s.num_microbatches < 1) return cat(name, ": needs at least 1 microbatch (got ", s.num_microbatches, ")");
    if (s.num_chunks != 1)
      return cat(name, ": places one stage per rank, so chunks must be 1 (got ", s.num_chunks, ")");
    return {};
  }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    const std::int32_t m = s.num_microbatches;
    for (std::int32_t r = 0; r < s.num_ranks; ++r) {
      const std::int32_t warmup = s.num_ranks - r < m ? s.num_ranks - r : m;
      std::int32_t next_forward = 0;
      for (; next_forward < warmup; ++next_forward) out.push_back(r, op{op_kind::forward, r, next_forward});
      for (std::int32_t j = 0; j < m; ++j) {
        out.push_back(r, op{op_kind::backward_input, r, j});
        if (j >= 1) out.push_back(r, op{op_kind::backward_weight, r, j - 1});
        if (next_forward < m) out.push_back(r, op{op_kind::forward, r, next_forward++});
      }
      out.push_back(r, op{op_kind::backward_weight, r, m - 1});
    }
    return out;
  }
};

static_assert(schedule_policy<one_f_one_b_w_lag>);

}  // namespace stretto::examples
