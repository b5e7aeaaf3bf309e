// Each rank is in order, but rank 0 waits in BW(0, 0) for rank 1, which waits in F(1, 1) for rank 0.
//
// Instantiating static_schedule runs every invariant of stretto::validate while compiling. With
// STRETTO_COMPILE_FAIL_TWIN defined the schedule is valid (the twin, which must compile); without,
// compilation must fail with a diagnostic matching:
//
// expected-error: stretto invariant violated: deadlock
#include <stretto/compile_time/static_schedule.hpp>

#include "rows_policy.hpp"

namespace {

using stretto::op;
using stretto::op_kind;

struct rows {
  static constexpr void fill(stretto::schedule& s) {
    for (int j : {0, 1}) {
      s.push_back(0, op{op_kind::forward, 0, j});
      s.push_back(0, op{op_kind::backward, 0, j});
    }
#ifdef STRETTO_COMPILE_FAIL_TWIN
    for (int j : {0, 1}) {
#else
    for (int j : {1, 0}) {  // microbatch 1 first: its F(0, 1) comes after BW(0, 0) on rank 0
#endif
      s.push_back(1, op{op_kind::forward, 1, j});
      s.push_back(1, op{op_kind::backward, 1, j});
    }
  }
};

}  // namespace

op first_op() {
  return stretto::compile_time::static_schedule<stretto::testing::rows_policy<rows>, stretto::pipeline_shape{2, 2, 1}>::ops(0).front();
}
