// Profile-guided planning: measured op times → stage_costs → the automatic scheduler.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include <stretto/sim/profile.hpp>
#include <stretto/stretto.hpp>

namespace {

using stretto::op_kind;
using stretto::pipeline_shape;

}  // namespace

TEST_CASE("profile.means_of_a_simulated_run_are_the_costs" * doctest::timeout(10)) {
  // A ZB-H1 step "measured" by the simulator under per-stage costs: the profile's means are
  // exactly those costs.
  const pipeline_shape shape{3, 5, 1};
  stretto::sim::stage_costs truth;
  truth.forward = {1.0, 2.0, 1.5};
  truth.backward_input = {2.0, 1.0, 3.0};
  truth.backward_weight = {0.5, 0.25, 1.0};
  truth.latency = 0.125;
  const auto run = stretto::sim::simulate(stretto::make_schedule<stretto::policies::zb_h1>(shape), truth);
  stretto::sim::op_time_profile profile(3);
  profile.add(run.events);
  CHECK(profile.samples(1, op_kind::forward) == 5.0);
  CHECK(profile.mean(2, op_kind::backward_input) == 3.0);
  const auto measured = profile.costs(0.125);
  CHECK(measured.forward == truth.forward);
  CHECK(measured.backward_input == truth.backward_input);
  CHECK(measured.backward_weight == truth.backward_weight);
  CHECK(measured.latency == 0.125);
  CHECK(measured.activation_memory == std::vector<double>{1.0, 1.0, 1.0});
}

TEST_CASE("profile.fused_backward_is_split_in_halves" * doctest::timeout(5)) {
  // 1F1B measures BW = T_B + T_W = 3 on every stage: without a split measurement T_B = T_W = 1.5.
  const pipeline_shape shape{2, 4, 1};
  const auto run = stretto::sim::simulate(stretto::make_schedule<stretto::policies::one_f_one_b>(shape),
                                          stretto::sim::uniform_costs{1.0, 2.0, 1.0, 0.0});
  stretto::sim::op_time_profile profile(2);
  for (std::int32_t r = 0; r < run.events.num_ranks(); ++r) profile.add(run.events.ops(r));
  const auto measured = profile.costs();
  CHECK(measured.backward_input == std::vector<double>{1.5, 1.5});
  CHECK(measured.backward_weight == std::vector<double>{1.5, 1.5});
}

TEST_CASE("profile.sums_and_counts_reduce_across_ranks" * doctest::timeout(5)) {
  // Two ranks' profiles summed element-wise (as MPI_Allreduce does) equal one profile of both.
  const pipeline_shape shape{2, 3, 1};
  const auto run = stretto::sim::simulate(stretto::make_schedule<stretto::policies::zb_h1>(shape),
                                          stretto::sim::uniform_costs{1.0, 2.0, 0.5, 0.0});
  stretto::sim::op_time_profile rank0(2), rank1(2), both(2);
  rank0.add(run.events.ops(0));
  rank1.add(run.events.ops(1));
  both.add(run.events);
  for (std::size_t k = 0; k < rank0.sums().size(); ++k) {
    rank0.sums()[k] += rank1.sums()[k];
    rank0.counts()[k] += rank1.counts()[k];
  }
  CHECK(rank0.costs().forward == both.costs().forward);
  CHECK(rank0.costs().backward_weight == std::vector<double>{0.5, 0.5});
  CHECK_THROWS_AS(stretto::sim::op_time_profile(0), stretto::argument_error);
}

TEST_CASE("profile.replan_1_5b_row_from_zb_h1_measurements" * doctest::timeout(30)) {
  // As the Zero Bubble runtime does: run ZB-H1 (split backward) while profiling, then plan ZB-2p
  // from the measurements. With the 1.5B row's Table 9 times (p = 8, m = 24) ZB-H1's bubble rate is
  // 0.1585 and ZB-2p's 0.0433 (Table 5).
  const pipeline_shape shape{8, 24, 1};
  const stretto::sim::uniform_costs table9{18.522, 18.086, 9.337, 0.601, 1.0, 0.5};
  const auto measured_run = stretto::sim::simulate(stretto::make_schedule<stretto::policies::zb_h1>(shape), table9);
  CHECK(measured_run.metrics.bubble_rate == doctest::Approx(0.1585).epsilon(0.0005));
  stretto::sim::op_time_profile profile(8);
  profile.add(measured_run.events);
  const auto costs = profile.costs(0.601);
  const auto plan = stretto::plan::auto_schedule(shape, costs, stretto::plan::zb_memory_limit(shape, costs, 2.0));
  const double bubble = stretto::sim::simulate(plan, table9).metrics.bubble_rate;
  CHECK(bubble <= 0.0433 + 0.002);
}
