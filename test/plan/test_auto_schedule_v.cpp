// The V-shaped automatic scheduler (schedules.md §7.7): ZB-V planned from the costs under a
// memory limit.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <stretto/plan/auto_schedule_v.hpp>
#include <stretto/stretto.hpp>

namespace {

double max_of(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

}  // namespace

TEST_CASE("sim.auto_v.equal_times_give_zb_v_zero_bubble" * doctest::timeout(30)) {
  // Chunk costs 1, 1, 1 (stage costs 2), limit p·M_B: ZB-V's zero bubble, span 6m chunk units,
  // peak p·M_B (reference-numbers.md, "Equal times", ZB-V row).
  const stretto::sim::uniform_costs chunk_units{2.0, 2.0, 2.0, 0.0};
  for (const auto& [p, m] : {std::pair{4, 8}, {4, 12}, {8, 16}, {8, 24}}) {
    CAPTURE(p);
    CAPTURE(m);
    const auto plan = stretto::plan::auto_schedule_v({p, m, 2}, chunk_units, p);
    CHECK(stretto::validate(plan).ok());
    const auto result = stretto::sim::simulate(plan, chunk_units);
    CHECK(result.metrics.span == 6.0 * m);
    CHECK(max_of(result.peak_memory) == p);
  }
}

TEST_CASE("sim.auto_v.plans_with_message_delays_within_the_limit" * doctest::timeout(30)) {
  // The 1.5B row of Zero Bubble Table 9 (p = 8, m = 24). Planning with the costs beats the
  // shape-only ZB-V (planned at equal times, 0.1735 here) and ZB-1p (0.1585) at the same
  // memory p·M_B, and every plan keeps within its limit.
  const stretto::sim::uniform_costs costs{18.522, 18.086, 9.337, 0.601};
  const double shape_only =
      stretto::sim::simulate(stretto::make_schedule<stretto::policies::zb_v>({8, 24, 2}), costs).metrics.bubble_rate;
  double previous = 1.0;
  for (const double limit : {8.0, 12.0, 16.0}) {
    CAPTURE(limit);
    const auto result = stretto::sim::simulate(stretto::plan::auto_schedule_v({8, 24, 2}, costs, limit), costs);
    CHECK(max_of(result.peak_memory) <= limit);
    CHECK(result.metrics.bubble_rate < shape_only);
    CHECK(result.metrics.bubble_rate <= previous);  // more memory never hurts here
    previous = result.metrics.bubble_rate;
  }
  CHECK(stretto::sim::simulate(stretto::plan::auto_schedule_v({8, 24, 2}, costs, 8.0), costs).metrics.bubble_rate <
        0.1585);
}

TEST_CASE("sim.auto_v.rejects_what_it_cannot_plan" * doctest::timeout(10)) {
  const stretto::sim::uniform_costs costs{};
  CHECK_THROWS_WITH_AS(stretto::plan::auto_schedule_v({4, 8, 1}, costs, 4.0), doctest::Contains("2 chunks per rank"),
                       stretto::shape_error);
  CHECK_THROWS_WITH_AS(stretto::plan::auto_schedule_v({4, 8, 2}, costs, 0.5),
                       doctest::Contains("the memory limit 0.5 is below one microbatch's activations on a rank (its "
                                         "two chunks' F: 1)"),
                       stretto::argument_error);
  // Per-stage activation memory: the plan could not keep the limit, so it is refused (a run that
  // planned with stage 0's size peaked at 12 under a limit of 4).
  stretto::sim::stage_costs uneven;
  uneven.forward = uneven.backward_input = uneven.backward_weight = std::vector<double>(8, 1.0);
  uneven.activation_memory = {0.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5};
  uneven.weight_gradient_memory = std::vector<double>(8, 0.25);
  CHECK_THROWS_WITH_AS(stretto::plan::auto_schedule_v({4, 8, 2}, uneven, 4.0),
                       doctest::Contains("same activation memory on every stage, but stage 1's F holds 1.5"),
                       stretto::argument_error);
  // Per-stage times are fine: planned with stage 0's, within the limit.
  stretto::sim::stage_costs slower_last = uneven;
  slower_last.activation_memory = std::vector<double>(8, 0.5);
  slower_last.forward.back() = 3.0;
  const auto plan = stretto::sim::simulate(stretto::plan::auto_schedule_v({4, 8, 2}, slower_last, 4.0), slower_last);
  CHECK(max_of(plan.peak_memory) <= 4.0);
  // A negative message delay is not a cost (uniform_costs::check would refuse it too).
  CHECK_THROWS_WITH_AS(stretto::plan::auto_schedule_v({2, 4, 2}, stretto::sim::uniform_costs{1, 1, 1, -0.5}, 2.0),
                       doctest::Contains("must be >= 0 (got F 0.5, B 0.5, W 0.5, comm -0.5)"), stretto::argument_error);
}
