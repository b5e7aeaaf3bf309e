#pragma once
/**
@file
@brief Hand-written policies for the compile-time tests: one valid p = 2, m = 2 schedule, and
the same schedule edited to break exactly one `schedule_rule`.
*/

#include <cstdint>
#include <string>
#include <string_view>

#include <stretto/core/concepts.hpp>
#include <stretto/validate/validate.hpp>

namespace stretto::testing {

/**
@brief A schedule policy that accepts any shape and generates, for p = 2 and m = 2, the schedule

    rank 0: F0 F1 BW1 BW0          (stage 0, fused backward)
    rank 1: F0 F1 B1 W1 B0 W0      (stage 1, split backward)

edited so that it breaks `Break` (and nothing earlier in `validate`'s order); `valid` leaves it
as it is. For `bad_shape`, instantiate it with m = 0: the generator then emits nothing.
*/
template <schedule_rule Break>
struct hand_policy {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "hand";
  static constexpr placement_kind placement = placement_kind::linear;

  static constexpr std::string check(const pipeline_shape&) { return {}; }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    if (s.num_ranks != 2 || s.num_microbatches != 2 || s.num_chunks != 1) return out;
    using k = op_kind;
    auto f = [](std::int32_t stage, std::int32_t j) { return op{k::forward, stage, j}; };
    switch (Break) {
      case schedule_rule::deadlock:  // rank 0 waits in BW0 for rank 1, which waits in F1 for rank 0
        for (op o : {f(0, 0), op{k::backward, 0, 0}, f(0, 1), op{k::backward, 0, 1}}) out.push_back(0, o);
        for (op o : {f(1, 1), op{k::backward_input, 1, 1}, op{k::backward_weight, 1, 1}, f(1, 0),
                     op{k::backward_input, 1, 0}, op{k::backward_weight, 1, 0}})
          out.push_back(1, o);
        return out;
      case schedule_rule::order:  // BW1 before F1 on rank 0
        for (op o : {f(0, 0), op{k::backward, 0, 1}, f(0, 1), op{k::backward, 0, 0}}) out.push_back(0, o);
        break;
      case schedule_rule::wrong_rank:  // F(stage 1) on rank 0
        for (op o : {f(0, 0), f(0, 1), f(1, 0), op{k::backward, 0, 1}, op{k::backward, 0, 0}}) out.push_back(0, o);
        break;
      default:
        for (op o : {f(0, 0), f(0, 1), op{k::backward, 0, 1}, op{k::backward, 0, 0}}) out.push_back(0, o);
        break;
    }
    for (op o : {f(1, 0), f(1, 1), op{k::backward_input, 1, 1}, op{k::backward_weight, 1, 1},
                 op{k::backward_input, 1, 0}})
      out.push_back(1, o);
    switch (Break) {
      case schedule_rule::missing_op: break;  // no W0 on rank 1
      case schedule_rule::mixed_backward: out.push_back(1, op{k::backward, 1, 0}); break;  // BW0 beside B0
      default: out.push_back(1, op{k::backward_weight, 1, 0}); break;
    }
    if (Break == schedule_rule::stage_out_of_range) out.push_back(1, op{k::forward, 5, 0});
    if (Break == schedule_rule::microbatch_out_of_range) out.push_back(1, op{k::forward, 1, 7});
    if (Break == schedule_rule::duplicate_op) out.push_back(1, f(1, 1));
    return out;
  }
};

}  // namespace stretto::testing
