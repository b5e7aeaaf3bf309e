// An op names stage 2 of a two-stage pipeline.
//
// Instantiating static_schedule runs every invariant of stretto::validate while compiling. With
// STRETTO_COMPILE_FAIL_TWIN defined the schedule is valid (the twin, which must compile); without,
// compilation must fail with a diagnostic matching:
//
// expected-error: stretto invariant violated: stage_out_of_range
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
    s.push_back(1, op{op_kind::backward, 1, 0});
#ifndef STRETTO_COMPILE_FAIL_TWIN
    s.push_back(1, op{op_kind::forward, 2, 0});  // there is no stage 2
#endif
  }
};

}  // namespace

op first_op() {
  return stretto::compile_time::static_schedule<stretto::testing::rows_policy<rows>, stretto::pipeline_shape{2, 1, 1}>::ops(0).front();
}
