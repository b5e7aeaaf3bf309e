// A policy that accepts every shape, asked for a step of zero microbatches.
//
// Instantiating static_schedule runs every invariant of stretto::validate while compiling. With
// STRETTO_COMPILE_FAIL_TWIN defined the schedule is valid (the twin, which must compile); without,
// compilation must fail with a diagnostic matching:
//
// expected-error: stretto invariant violated: bad_shape
#include <stretto/compile_time/static_schedule.hpp>

#include "rows_policy.hpp"

#ifdef STRETTO_COMPILE_FAIL_TWIN
#define STRETTO_CASE_MICROBATCHES 1
#else
#define STRETTO_CASE_MICROBATCHES 0  // no microbatches
#endif

namespace {

using stretto::op;
using stretto::op_kind;

struct rows {
  static constexpr void fill(stretto::schedule& s) {
    for (int j = 0; j < s.num_microbatches(); ++j)
      for (int r = 0; r < 2; ++r) {
        s.push_back(r, op{op_kind::forward, r, j});
        s.push_back(r, op{op_kind::backward, r, j});
      }
  }
};

}  // namespace

op first_op() {
  return stretto::compile_time::static_schedule<stretto::testing::rows_policy<rows>, stretto::pipeline_shape{2, STRETTO_CASE_MICROBATCHES, 1}>::ops(0).front();
}
