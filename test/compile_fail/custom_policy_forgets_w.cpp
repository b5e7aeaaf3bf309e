// A user's policy with a bug: the example's 1F1B-with-W-lag (examples/custom_policy), but its
// generator forgets each rank's last W. Naming its compile-time schedule is enough for the
// compiler to reject it, naming the rule (missing_op) and, in the Message template argument,
// the op: "W(stage 0, mb 7) is missing from rank 0". With STRETTO_COMPILE_FAIL_TWIN defined the
// example's correct policy is used (the twin, which must compile); without, compilation must
// fail with a diagnostic matching:
//
// expected-error: stretto invariant violated: missing_op
#include <string_view>

#include <stretto/compile_time/static_schedule.hpp>

#include "custom_policy/one_f_one_b_w_lag.hpp"

namespace {

struct forgets_last_w : stretto::examples::one_f_one_b_w_lag {
  static constexpr std::string_view name = "1f1b-w-lag without its last W";

  static constexpr stretto::schedule generate(const stretto::pipeline_shape& shape) {
    const stretto::schedule full = one_f_one_b_w_lag::generate(shape);
    stretto::schedule out(shape, placement);
    for (std::int32_t r = 0; r < shape.num_ranks; ++r) {
      const auto ops = full.ops(r);
      for (std::size_t i = 0; i + 1 < ops.size(); ++i) out.push_back(r, ops[i]);  // the bug: drops W(m - 1)
    }
    return out;
  }
};

#ifdef STRETTO_COMPILE_FAIL_TWIN
using tested = stretto::examples::one_f_one_b_w_lag;
#else
using tested = forgets_last_w;
#endif

}  // namespace

stretto::op first_op() {
  return stretto::compile_time::static_schedule<tested, stretto::pipeline_shape{4, 8, 1}>::ops(0).front();
}
