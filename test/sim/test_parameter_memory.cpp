// Parameter memory per rank (M_θ summed over the (stage, replica) pairs a rank holds): one
// stage's M_θ on every rank for one-replica schedules, twice that for the schedules that hold two
// model replicas (Chimera, BitPipe, DualPipe), and 0 when the cost model gives no M_θ.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <stretto/policies/registry.hpp>
#include <stretto/stretto.hpp>

namespace {

using stretto::pipeline_shape;
using stretto::sim::uniform_costs;

std::vector<double> params_of(const char* name, const pipeline_shape& shape, const uniform_costs& costs) {
  const auto s = stretto::policies::make_schedule(name, shape);
  const auto run = stretto::sim::simulate(s, costs);
  CHECK(run.parameter_memory == stretto::sim::parameter_memory(s, costs));
  return run.parameter_memory;
}

}  // namespace

TEST_CASE("sim.parameter_memory.one_and_two_replicas" * doctest::timeout(10)) {
  uniform_costs costs{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};
  costs.parameter_memory = 3.0;
  struct row {
    const char* name;
    pipeline_shape shape;
    double per_rank;  // M_θ · (replicas the schedule holds)
  };
  for (const row& x : {row{"1f1b", {4, 8, 1}, 3.0}, row{"zb-h1", {3, 2, 1}, 3.0}, row{"interleaved-1f1b", {4, 8, 2}, 3.0},
                       row{"zb-v", {5, 10, 2}, 3.0}, row{"chimera", {4, 8, 1}, 6.0}, row{"chimera", {2, 2, 1}, 6.0},
                       row{"bitpipe", {4, 8, 2}, 6.0}, row{"dualpipe", {4, 8, 1}, 6.0}, row{"dualpipe", {8, 16, 1}, 6.0}}) {
    CAPTURE(x.name);
    CAPTURE(x.shape.num_ranks);
    const auto params = params_of(x.name, x.shape, costs);
    REQUIRE(params.size() == static_cast<std::size_t>(x.shape.num_ranks));
    for (double p : params) CHECK(p == doctest::Approx(x.per_rank));
  }
  // No M_θ given: 0 everywhere, also for two replicas (unknown, not free).
  for (double p : params_of("chimera", {4, 8, 1}, uniform_costs{})) CHECK(p == 0.0);
}

TEST_CASE("sim.parameter_memory.per_stage_costs" * doctest::timeout(10)) {
  // Stages of unequal size: M_θ = 1, 2, 3, 4. 1F1B holds stage r on rank r; Chimera's second
  // replica puts stage s on rank p − 1 − s, so every rank holds M_θ[r] + M_θ[p − 1 − r] = 5.
  const pipeline_shape shape{4, 8, 1};
  auto costs = stretto::sim::stage_costs::from(uniform_costs{}, shape);
  costs.parameter_memory = {1.0, 2.0, 3.0, 4.0};
  costs.check(shape);
  const auto one = stretto::sim::simulate(stretto::policies::make_schedule("1f1b", shape), costs);
  CHECK(one.parameter_memory == std::vector<double>{1.0, 2.0, 3.0, 4.0});
  const auto two = stretto::sim::simulate(stretto::policies::make_schedule("chimera", shape), costs);
  CHECK(two.parameter_memory == std::vector<double>{5.0, 5.0, 5.0, 5.0});
  // A negative or wrongly sized vector is refused by name.
  costs.parameter_memory = {1.0, -2.0, 3.0, 4.0};
  CHECK_THROWS_WITH_AS(costs.check(shape), doctest::Contains("parameter_memory"), stretto::argument_error);
  costs.parameter_memory = {1.0};
  CHECK_THROWS_WITH_AS(costs.check(shape), doctest::Contains("parameter_memory must have 4 entries"),
                       stretto::argument_error);
  uniform_costs bad{};
  bad.parameter_memory = -1.0;
  CHECK_THROWS_AS(bad.check(), stretto::argument_error);
  // stage_costs::from divides M_θ by v like the other memories.
  uniform_costs u{};
  u.parameter_memory = 4.0;
  CHECK(stretto::sim::stage_costs::from(u, {2, 4, 2}).parameter_memory == std::vector<double>{2.0, 2.0, 2.0, 2.0});
}
