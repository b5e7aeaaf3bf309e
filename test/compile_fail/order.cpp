// Stage 1 runs its W before its B.
//
// Instantiating static_schedule runs every invariant of stretto::validate while compiling. With
// STRETTO_COMPILE_FAIL_TWIN defined the schedule is valid (the twin, which must compile); without,
// compilation must fail with a diagnostic matching:
//
// expected-error: stretto invariant violated: order
#include <stretto/compile_time/static_schedule.hpp>

#include "rows_policy.hpp"

namespace {

using stretto::op;
using stretto::op_kind;

struct rows {
  static constexpr void fill(stretto::schedule& s) {
    s.push_back(0, op{op_kind::forward, 0, 0});
    s.push_back(0, op{op_kind::backward, 0, 0});
    s.push_back(1, op{op_kind::forward, 1, 0});
#ifdef STRETTO_COMPILE_FAIL_TWIN
    s.push_back(1, op{op_kind::backward_input, 1, 0});
    s.push_back(1, op{op_kind::backward_weight, 1, 0});
#else
    s.push_back(1, op{op_kind::backward_weight, 1, 0});  // W before its B
    s.push_back(1, op{op_kind::backward_input, 1, 0});
#endif
  }
};

}  // namespace

op first_op() {
  return stretto::compile_time::static_schedule<stretto::testing::rows_policy<rows>, stretto::pipeline_shape{2, 1, 1}>::ops(0).front();
}
