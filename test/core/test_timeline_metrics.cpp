// Timeline metrics on hand-written timelines (schedules.md §0 items 5-7): span is the longest
// rank's first start to last end, not the latest end; bubble rate and bubble overhead differ by
// their denominator.
#include <doctest/doctest.h>

#include <vector>

#include <stretto/stretto.hpp>

namespace {

using stretto::op;
using stretto::op_kind;
using stretto::sim::op_timing;
using stretto::sim::timeline;

}  // namespace

TEST_CASE("sim.measure.empty_timeline" * doctest::timeout(5)) {
  const auto metrics = stretto::sim::measure(timeline{});
  CHECK(metrics.span == 0.0);
  CHECK(metrics.bubble_rate == 0.0);
  CHECK(metrics.bubble_overhead == 0.0);
  CHECK(metrics.busy.empty());
}

TEST_CASE("sim.measure.span_is_per_rank" * doctest::timeout(5)) {
  // Rank 0 runs [0, 1] and [1, 2]: span 2. Rank 1 starts late and runs [5, 6] and [8, 9]:
  // span 4. The pipeline's span is 4 (not the latest end, 9). Busy 2 + 2 of 2·4:
  // bubble rate (8 − 4) / 8 = 0.5, overhead (8 − 4) / 4 = 1.
  timeline t;
  t.ranks = {
      {op_timing{op{op_kind::forward, 0, 0}, 0.0, 1.0}, op_timing{op{op_kind::backward, 0, 0}, 1.0, 2.0}},
      {op_timing{op{op_kind::forward, 1, 0}, 5.0, 6.0}, op_timing{op{op_kind::backward, 1, 0}, 8.0, 9.0}},
  };
  CHECK(t.num_ranks() == 2);
  const auto metrics = stretto::sim::measure(t);
  CHECK(metrics.span == 4.0);
  CHECK(metrics.busy == std::vector<double>{2.0, 2.0});
  CHECK(metrics.bubble_rate == 0.5);
  CHECK(metrics.bubble_overhead == 1.0);
}

TEST_CASE("sim.measure.idle_rank_counts_in_capacity" * doctest::timeout(5)) {
  // A rank with no ops adds capacity but no work: span 3, busy 3 + 0, rate (6 − 3) / 6.
  timeline t;
  t.ranks = {{op_timing{op{op_kind::forward, 0, 0}, 1.0, 4.0}}, {}};
  const auto metrics = stretto::sim::measure(t);
  CHECK(metrics.span == 3.0);
  CHECK(metrics.busy == std::vector<double>{3.0, 0.0});
  CHECK(metrics.bubble_rate == 0.5);
  CHECK(metrics.bubble_overhead == 1.0);
}
