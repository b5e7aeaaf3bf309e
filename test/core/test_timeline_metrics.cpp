// Timeline metrics on hand-written timelines (docs/schedules.md §0 items 5-7): span is the longest
// rank's first start to last end, not the latest end; bubble rate and bubble overhead differ by
// their denominator.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>
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
  const timeline t{
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
  const timeline t{{op_timing{op{op_kind::forward, 0, 0}, 1.0, 4.0}}, {}};
  const auto metrics = stretto::sim::measure(t);
  CHECK(metrics.span == 3.0);
  CHECK(metrics.busy == std::vector<double>{3.0, 0.0});
  CHECK(metrics.bubble_rate == 0.5);
  CHECK(metrics.bubble_overhead == 1.0);
}

namespace {

// Rank r's k-th interval in the storage tests: [10r + k, 10r + k + 1), stage r, microbatch k.
constexpr op_timing nth(std::int32_t r, std::int32_t k) {
  return op_timing{op{op_kind::forward, r, k}, 10.0 * r + k, 10.0 * r + k + 1.0};
}

// Appends `count` intervals to each of `ranks` ranks, round robin (as the simulator interleaves
// ranks), into a timeline that reserved `room` per rank; true if every rank reads back in order.
constexpr bool round_robin_reads_back(std::int32_t ranks, std::int32_t count, std::size_t room) {
  std::vector<std::size_t> capacity(static_cast<std::size_t>(ranks), room);
  timeline t(capacity);
  for (std::int32_t k = 0; k < count; ++k)
    for (std::int32_t r = 0; r < ranks; ++r) t.push_back(r, nth(r, k));
  if (t.num_ranks() != ranks || t.num_ops() != static_cast<std::size_t>(ranks * count)) return false;
  for (std::int32_t r = 0; r < ranks; ++r) {
    const auto ops = t.ops(r);
    if (ops.size() != static_cast<std::size_t>(count)) return false;
    for (std::int32_t k = 0; k < count; ++k)
      if (ops[static_cast<std::size_t>(k)].what != nth(r, k).what || ops[static_cast<std::size_t>(k)].start != nth(r, k).start)
        return false;
  }
  return true;
}

}  // namespace

TEST_CASE("sim.timeline.storage" * doctest::timeout(5)) {
  // Exact room, too little room (every rank's segment grows while the others hold data) and no
  // room at all; one rank and several.
  CHECK(round_robin_reads_back(3, 5, 5));
  CHECK(round_robin_reads_back(3, 5, 2));
  CHECK(round_robin_reads_back(4, 9, 0));
  CHECK(round_robin_reads_back(1, 7, 3));
  static_assert(round_robin_reads_back(3, 5, 1), "the timeline works in constant evaluation, growth included");

  // Reset keeps nothing of the old intervals and takes the new rank count.
  timeline t{{nth(0, 0), nth(0, 1)}, {nth(1, 0)}};
  CHECK(t.num_ops() == 3);
  const std::vector<std::size_t> room{1, 1, 1};
  t.reset(room);
  CHECK(t.num_ranks() == 3);
  CHECK(t.num_ops() == 0);
  for (std::int32_t r = 0; r < 3; ++r) CHECK(t.ops(r).empty());
  t.push_back(2, nth(2, 0));
  t.push_back(2, nth(2, 1));
  CHECK(t.ops(2).size() == 2);
  CHECK(t.ops(2)[1].start == 21.0);
  CHECK(t.ops(0).empty());

  // Copies are independent; a move leaves the source empty.
  timeline copy = t;
  copy.push_back(0, nth(0, 0));
  CHECK(copy.ops(0).size() == 1);
  CHECK(t.ops(0).empty());
  CHECK(copy.ops(2)[1].start == 21.0);
  copy = t;
  CHECK(copy.num_ops() == 2);
  const timeline moved = std::move(copy);
  CHECK(moved.ops(2)[0].start == 20.0);
  CHECK(copy.num_ranks() == 0);  // NOLINT(bugprone-use-after-move): the moved-from state is documented
}

TEST_CASE("sim.timeline.push_back_own_interval" * doctest::timeout(5)) {
  // Pushing one of the timeline's own intervals while the segment is full: the rebuild must not
  // free the interval before it is copied.
  timeline t{{nth(0, 0)}, {}};
  t.push_back(0, t.ops(0)[0]);
  t.push_back(1, t.ops(0)[1]);
  REQUIRE(t.ops(0).size() == 2);
  CHECK(t.ops(0)[1] == nth(0, 0));
  CHECK(t.ops(1)[0] == nth(0, 0));
}

TEST_CASE("sim.timeline.reset_errors_leave_it_unchanged" * doctest::timeout(5)) {
  timeline t{{nth(0, 0)}, {nth(1, 0)}};
  const timeline before = t;
  // Capacities whose sum does not fit: a length_error naming the rule, and nothing changed.
  const std::vector<std::size_t> wraps{std::numeric_limits<std::size_t>::max(), 2};
  CHECK_THROWS_WITH_AS(t.reset(wraps), doctest::Contains("capacities add up to more intervals than fit in memory"),
                       std::length_error);
  CHECK(t == before);
  // Too large to allocate: the allocator's error, and still nothing changed.
  const std::vector<std::size_t> huge{1, std::size_t{1} << 58};
  CHECK_THROWS(t.reset(huge));
  CHECK(t == before);
  t.push_back(1, nth(1, 1));
  CHECK(t.ops(1).size() == 2);
  CHECK(t.ops(0)[0] == nth(0, 0));
}

TEST_CASE("sim.timeline.equality_swap_and_per_rank_lists" * doctest::timeout(5)) {
  const std::vector<std::vector<op_timing>> lists{{nth(0, 0), nth(0, 1)}, {}, {nth(2, 0)}};
  const timeline a(lists);
  REQUIRE(a.num_ranks() == 3);
  CHECK(a.ops(0).size() == 2);
  CHECK(a.ops(1).empty());
  CHECK(a.ops(2)[0] == nth(2, 0));
  // Equal intervals compare equal whatever the capacities.
  timeline b(std::vector<std::size_t>{8, 8, 8});
  b.push_back(2, nth(2, 0));
  b.push_back(0, nth(0, 0));
  CHECK(a != b);
  b.push_back(0, nth(0, 1));
  CHECK(a == b);
  CHECK(a != timeline{{nth(0, 0), nth(0, 1)}, {}});  // a rank fewer
  timeline c;
  swap(b, c);
  CHECK(b.num_ranks() == 0);
  CHECK(c == a);
}
