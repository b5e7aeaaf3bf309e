// ZB-H1 places one stage per rank, so it rejects two chunks per rank: the policy's own check
// fails while compiling, and the diagnostic carries its message ("chunks must be 1 (got 2)").
// With STRETTO_COMPILE_FAIL_TWIN defined the shape is valid (the twin, which must compile);
// without, compilation must fail with a diagnostic matching:
//
// expected-error: stretto policy rejected the shape.*chunks must be 1 \(got 2\)
#include <stretto/compile_time/static_schedule.hpp>
#include <stretto/policies/zero_bubble.hpp>

#ifdef STRETTO_COMPILE_FAIL_TWIN
constexpr stretto::pipeline_shape shape{4, 8, 1};
#else
constexpr stretto::pipeline_shape shape{4, 8, 2};  // two chunks per rank
#endif

stretto::op first_op() {
  return stretto::compile_time::static_schedule<stretto::policies::zb_h1, shape>::ops(0).front();
}
