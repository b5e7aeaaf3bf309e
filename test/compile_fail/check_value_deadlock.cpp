// The value path: static_assert(compile_time::check(s)) on a schedule built by hand in a
// constexpr function. Rank 0 runs F0 BW0 F1 BW1 and rank 1 runs microbatch 1 first, so rank 0
// waits in BW(0, 0) for rank 1, which waits in F(1, 1) for rank 0. Constant evaluation stops
// at the deadlock rule's own failure site, which the diagnostic names. With
// STRETTO_COMPILE_FAIL_TWIN defined rank 1 runs microbatch 0 first (the twin, which must
// compile); without, compilation must fail with a diagnostic matching:
//
// expected-error: non-.*constexpr.* function .*stretto::compile_time::diag::invariant_violated_deadlock
#include <stretto/compile_time/static_validate.hpp>

namespace {

constexpr stretto::schedule hand_written() {
  using stretto::op_kind;
  stretto::schedule s({2, 2, 1}, stretto::placement_kind::linear);
  for (int j : {0, 1}) {
    s.push_back(0, {op_kind::forward, 0, j});
    s.push_back(0, {op_kind::backward, 0, j});
  }
#ifdef STRETTO_COMPILE_FAIL_TWIN
  for (int j : {0, 1}) {
#else
  for (int j : {1, 0}) {
#endif
    s.push_back(1, {op_kind::forward, 1, j});
    s.push_back(1, {op_kind::backward, 1, j});
  }
  return s;
}

static_assert(stretto::compile_time::check(hand_written()));

}  // namespace
