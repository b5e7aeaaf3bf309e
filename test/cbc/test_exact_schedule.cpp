// The exact scheduler (docs/schedules.md §7.6, CBC): it proves optima on small shapes, is never worse
// than the heuristic, and reports a lower bound when time runs out.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include <stretto/cbc/exact_schedule.hpp>
#include <stretto/stretto.hpp>

#include "common/invariants.hpp"

namespace {

using stretto::pipeline_shape;
using stretto::sim::uniform_costs;

/// Checks what every result must satisfy: a valid plan that keeps to the limit, whose simulated
/// span is `span`, no longer than the heuristic's and no shorter than the lower bound.
template <class Costs>
void check_result(const stretto::cbc::exact_result& r, const Costs& costs, double limit) {
  stretto::testing::check_schedule_invariants(r.plan);
  REQUIRE(stretto::validate(r.plan).ok());
  const auto run = stretto::sim::simulate(r.plan, costs);
  CHECK(run.metrics.span == doctest::Approx(r.span).epsilon(1e-12));
  CHECK(r.span <= r.heuristic_span);
  CHECK(r.lower_bound <= r.span + 1e-9);
  CHECK(*std::max_element(run.peak_memory.begin(), run.peak_memory.end()) <= limit + 1e-12);
}

}  // namespace

TEST_CASE("exact.proves_zb_1p_optimum_p4_m8_equal_times" * doctest::timeout(120)) {
  // Equal times, p = 4, m = 8, memory p·M_B: ZB-H1 takes 27 at that peak (docs/reference-numbers.md);
  // the program proves that nothing shorter exists, within its time limit.
  const pipeline_shape shape{4, 8, 1};
  const uniform_costs equal{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};
  stretto::cbc::exact_options options;
  options.time_limit_seconds = 60;
  const auto r = stretto::cbc::exact_schedule(shape, equal, 4.0, options);
  check_result(r, equal, 4.0);
  CHECK(r.optimal);
  CHECK_FALSE(r.time_limit_reached);
  CHECK(r.span == 27.0);
  CHECK(r.lower_bound == 27.0);
  CHECK(r.gap() == 0.0);
  CHECK(r.binaries == 336);  // 4 stages × 3 pair kinds × C(8, 2)
}

TEST_CASE("exact.proves_zb_1p_optimum_p4_m8_table9_costs" * doctest::timeout(120)) {
  // The 1.5B model's Table 9 costs (ms) on 4 ranks, 8 microbatches, memory p·M_B.
  const pipeline_shape shape{4, 8, 1};
  const uniform_costs table9{18.522, 18.086, 9.337, 0.601, 1.0, 0.5};
  stretto::cbc::exact_options options;
  options.time_limit_seconds = 60;
  const auto r = stretto::cbc::exact_schedule(shape, table9, 4.0, options);
  check_result(r, table9, 4.0);
  CHECK(r.optimal);
  CHECK(r.span == doctest::Approx(r.lower_bound));
}

TEST_CASE("exact.improves_on_the_heuristic" * doctest::timeout(120)) {
  // T_F = 3, T_B = 1, T_W = 2, p = 4, m = 7, memory p·M_B: the heuristic's schedule takes 48;
  // the program finds (and proves) one of 47.
  const pipeline_shape shape{4, 7, 1};
  const uniform_costs costs{3.0, 1.0, 2.0, 0.0, 1.0, 0.5};
  stretto::cbc::exact_options options;
  options.time_limit_seconds = 60;
  const auto r = stretto::cbc::exact_schedule(shape, costs, 4.0, options);
  check_result(r, costs, 4.0);
  CHECK(r.heuristic_span == 48.0);
  CHECK(r.span == 47.0);
  CHECK(r.optimal);
}

TEST_CASE("exact.zero_bubble_needs_no_solver" * doctest::timeout(30)) {
  // ZB-2p of the 1.5B row (p = 8, m = 24): the heuristic meets the critical-path bound
  // (1152599 µs, see test_refine.cpp), so it is optimal without building the program.
  const pipeline_shape shape{8, 24, 1};
  const uniform_costs us{18522, 18086, 9337, 601, 1.0, 0.5};
  const auto r = stretto::cbc::exact_schedule(shape, us, 16.0);
  CHECK(r.optimal);
  CHECK(r.span == 1152599.0);
  CHECK(r.lower_bound == 1152599.0);
  CHECK(r.binaries == 0);
}

TEST_CASE("exact.never_worse_than_heuristic_small_grid" * doctest::timeout(300)) {
  // p ≤ 4, m ≤ 8, unequal times with communication, limits p·M_B and 1.5p·M_B, 5 s each.
  const uniform_costs costs{1.0, 2.0, 1.0, 0.3, 1.0, 0.5};
  for (std::int32_t p = 1; p <= 4; ++p)
    for (std::int32_t m : {1, 2, p, p + 1, 2 * p}) {
      if (m > 8) continue;
      for (const double factor : {1.0, 1.5}) {
        CAPTURE(p);
        CAPTURE(m);
        CAPTURE(factor);
        const pipeline_shape shape{p, m, 1};
        const double limit = std::max(1.0, factor * p);
        stretto::cbc::exact_options options;
        options.time_limit_seconds = 5;
        const auto r = stretto::cbc::exact_schedule(shape, costs, limit, options);
        check_result(r, costs, limit);
        const auto heuristic = stretto::plan::auto_schedule(shape, costs, limit);
        CHECK(r.span <= stretto::sim::simulate(heuristic, costs).metrics.span);
      }
    }
}

TEST_CASE("exact.time_limit_reports_a_gap" * doctest::timeout(120)) {
  // p = 6, m = 12 with ZB-1p memory is not closed in 1 s: the heuristic's schedule comes back
  // with a lower bound below it (at least the busiest stage's work, 12 × 4 = 48).
  const pipeline_shape shape{6, 12, 1};
  const uniform_costs costs{1.0, 2.0, 1.0, 0.3, 1.0, 0.5};
  stretto::cbc::exact_options options;
  options.time_limit_seconds = 1;
  const auto r = stretto::cbc::exact_schedule(shape, costs, 6.0, options);
  check_result(r, costs, 6.0);
  CHECK_FALSE(r.optimal);
  CHECK(r.time_limit_reached);
  CHECK(r.lower_bound >= 48.0);
  CHECK(r.gap() > 0.0);
}
