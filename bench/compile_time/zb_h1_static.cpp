/**
@file
@brief A translation unit that makes ZB-H1 at (p, m) = (STRETTO_BENCH_P, STRETTO_BENCH_M) a
compile-time constant (`stretto::compile_time::static_schedule`) and uses its op table at run
time, so that the table is emitted. With STRETTO_BENCH_BASELINE it includes the same headers
and instantiates nothing: the difference between the two is the cost of the compile-time
schedule. Measured by `measure.sh`; results in README.md ("Compile-time schedules").
*/

#include <span>

#include <stretto/compile_time/static_schedule.hpp>
#include <stretto/policies/zero_bubble.hpp>

#ifndef STRETTO_BENCH_P
#define STRETTO_BENCH_P 8
#endif
#ifndef STRETTO_BENCH_M
#define STRETTO_BENCH_M 64
#endif

/** @brief Rank `rank`'s ops, read from the table generated while compiling (empty in the baseline). */
std::span<const stretto::op> static_ops(std::int32_t rank) {
#ifdef STRETTO_BENCH_BASELINE
  (void)rank;
  return {};
#else
  using plan = stretto::compile_time::static_schedule<stretto::policies::zb_h1,
                                                      stretto::pipeline_shape{STRETTO_BENCH_P, STRETTO_BENCH_M, 1}>;
  static_assert(plan::num_ops() == 3 * STRETTO_BENCH_P * STRETTO_BENCH_M);
  return plan::ops(rank);
#endif
}
