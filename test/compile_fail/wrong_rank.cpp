// Stage 1's forward sits on rank 0, though the linear placement puts stage 1 on rank 1.
//
// Instantiating static_schedule runs every invariant of stretto::validate while compiling. With
// STRETTO_COMPILE_FAIL_TWIN defined the schedule is valid (the twin, which must compile); without,
// compilation must fail with a diagnostic matching:
//
// expected-error: stretto invariant violated: wrong_rank
#include <stretto/compile_time/static_schedule.hpp>

#include "rows_policy.hpp"

namespace {

using stretto::op;
using stretto::op_kind;

struct rows {
  static constexpr void fill(stretto::schedule& s) {
#ifdef STRETTO_COMPILE_FAIL_TWIN
    const int rank_of_f1 = 1;
#else
    const int rank_of_f1 = 0;  // stage 1 belongs to rank 1
#endif
    s.push_back(0, op{op_kind::forward, 0, 0});
    s.push_back(rank_of_f1, op{op_kind::forward, 1, 0});
    s.push_back(1, op{op_kind::backward, 1, 0});
    s.push_back(0, op{op_kind::backward, 0, 0});
  }
};

}  // namespace

op first_op() {
  return stretto::compile_time::static_schedule<stretto::testing::rows_policy<rows>, stretto::pipeline_shape{2, 1, 1}>::ops(0).front();
}
