// The test vectors of docs/reference-numbers.md, each value written down as published.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <stretto/stretto.hpp>

#include "common/invariants.hpp"

namespace {

using stretto::sim::uniform_costs;

constexpr uniform_costs equal_times{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};

}  // namespace

TEST_CASE("reference.equal_times.one_f_one_b_p4_m8" * doctest::timeout(5)) {
  // docs/reference-numbers.md, "Equal times": 1F1B (BW = 2), p, m = 4, 8: span 33, bubble 9,
  // peak memory 4, 3, 2, 1.
  const auto s = stretto::make_schedule<stretto::policies::one_f_one_b>({4, 8, 1});
  stretto::testing::check_schedule_invariants(s);
  const auto result = stretto::sim::simulate(s, equal_times);
  CHECK(result.metrics.span == 33.0);
  const std::vector<double> peak{4.0, 3.0, 2.0, 1.0};
  CHECK(result.peak_memory == peak);
  for (std::size_t r = 0; r < 4; ++r) {
    CAPTURE(r);
    CHECK(result.metrics.span - result.metrics.busy[r] == 9.0);
  }
  CHECK(result.metrics.bubble_rate == doctest::Approx(9.0 / 33.0));
}

TEST_CASE("reference.equal_times.zb_h1_p4_m8" * doctest::timeout(5)) {
  // docs/reference-numbers.md, "Equal times": ZB-H1, p, m = 4, 8: span 27, bubble 3,
  // peak memory 4, 3.5, 3, 2.5 (M_W = 0.5 M_B).
  const auto s = stretto::make_schedule<stretto::policies::zb_h1>({4, 8, 1});
  stretto::testing::check_schedule_invariants(s);
  const auto result = stretto::sim::simulate(s, equal_times);
  CHECK(result.metrics.span == 27.0);
  const std::vector<double> peak{4.0, 3.5, 3.0, 2.5};
  CHECK(result.peak_memory == peak);
  for (std::size_t r = 0; r < 4; ++r) {
    CAPTURE(r);
    CHECK(result.metrics.span - result.metrics.busy[r] == 3.0);
  }
  CHECK(result.metrics.bubble_rate == doctest::Approx(3.0 / 27.0));
}

TEST_CASE("reference.zero_bubble.table5_1_5b_p8" * doctest::timeout(5)) {
  // Zero Bubble (Qi et al. 2024) Table 9 timings (ms) and Table 5 bubble rates, as transcribed
  // in docs/reference-numbers.md; 1F1B and ZB-H1 are exact to 1e-4.
  struct row {
    std::int32_t m;
    double t_f, t_b, t_w, t_comm;
    double one_f_one_b, zb_h1;
  };
  const row rows[] = {
      {24, 18.522, 18.086, 9.337, 0.601, 0.2431, 0.1585},
      {32, 18.513, 18.086, 9.331, 0.626, 0.1985, 0.1242},
      {64, 18.546, 18.097, 9.321, 0.762, 0.1240, 0.0674},
  };
  for (const row& x : rows) {
    CAPTURE(x.m);
    const stretto::pipeline_shape shape{8, x.m, 1};
    const uniform_costs costs{x.t_f, x.t_b, x.t_w, x.t_comm};
    const double got_1f1b =
        stretto::sim::simulate(stretto::make_schedule<stretto::policies::one_f_one_b>(shape), costs)
            .metrics.bubble_rate;
    const double got_zb_h1 =
        stretto::sim::simulate(stretto::make_schedule<stretto::policies::zb_h1>(shape), costs)
            .metrics.bubble_rate;
    CAPTURE(got_1f1b);
    CAPTURE(got_zb_h1);
    CHECK(std::abs(got_1f1b - x.one_f_one_b) <= 1e-4);
    CHECK(std::abs(got_zb_h1 - x.zb_h1) <= 1e-4);
  }
}
