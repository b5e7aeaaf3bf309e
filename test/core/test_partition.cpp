// stretto::partition against brute force: every cut of random small chains (costs and memory
// drawn from a fixed seed) into every feasible number of stages; the optimum, the feasibility
// under a memory cap and the errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <stretto/partition.hpp>

namespace {

struct brute_result {
  double best{std::numeric_limits<double>::infinity()};  // least largest stage cost; inf: infeasible
};

// Tries every choice of k − 1 cut points among the L − 1 gaps.
brute_result brute_force(const std::vector<double>& costs, const std::vector<double>& memory, int k, double cap) {
  const int n = static_cast<int>(costs.size());
  brute_result out;
  for (std::uint32_t mask = 0; mask < (1u << (n - 1)); ++mask) {
    if (std::popcount(mask) != k - 1) continue;
    double worst = 0.0, stage = 0.0, mem = 0.0;
    bool fits = true;
    for (int l = 0; l < n; ++l) {
      stage += costs[static_cast<std::size_t>(l)];
      mem += memory.empty() ? 0.0 : memory[static_cast<std::size_t>(l)];
      if (l == n - 1 || (mask >> l & 1u)) {
        worst = std::max(worst, stage);
        fits = fits && mem <= cap;
        stage = mem = 0.0;
      }
    }
    if (fits) out.best = std::min(out.best, worst);
  }
  return out;
}

// The result is a valid cut whose stated maxima are its own.
void check_cut(const stretto::partition_result& r, const std::vector<double>& costs, const std::vector<double>& memory,
               int k, double cap) {
  REQUIRE(r.num_stages() == k);
  CHECK(r.boundaries.front() == 0);
  CHECK(r.boundaries.back() == static_cast<std::int32_t>(costs.size()));
  double worst = 0.0;
  for (int s = 0; s < k; ++s) {
    CHECK(r.first_layer(s) < r.first_layer(s + 1));
    double c = 0.0, m = 0.0;
    for (std::int32_t l = r.first_layer(s); l < r.first_layer(s + 1); ++l) {
      c += costs[static_cast<std::size_t>(l)];
      m += memory.empty() ? 0.0 : memory[static_cast<std::size_t>(l)];
    }
    worst = std::max(worst, c);
    CHECK(m <= cap * (1 + 1e-12));
  }
  CHECK(r.max_cost == doctest::Approx(worst).epsilon(1e-12));
}

}  // namespace

TEST_CASE("partition.matches_brute_force_on_random_chains" * doctest::timeout(30)) {
  std::mt19937_64 engine(20240);
  std::uniform_real_distribution<double> cost(0.0, 10.0);
  std::uniform_int_distribution<int> integer(0, 4);  // small integers make ties common
  int compared = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + static_cast<int>(engine() % 10);
    std::vector<double> costs(static_cast<std::size_t>(n));
    for (auto& c : costs) c = trial % 2 ? cost(engine) : integer(engine);
    for (int k = 1; k <= n; ++k) {
      CAPTURE(trial);
      CAPTURE(k);
      const auto r = stretto::partition(costs, k);
      check_cut(r, costs, {}, k, std::numeric_limits<double>::infinity());
      CHECK(r.max_cost == doctest::Approx(brute_force(costs, {}, k, std::numeric_limits<double>::infinity()).best).epsilon(1e-12));
      ++compared;
    }
  }
  CHECK(compared > 1000);
}

TEST_CASE("partition.with_a_memory_cap_matches_brute_force" * doctest::timeout(30)) {
  std::mt19937_64 engine(7);
  std::uniform_real_distribution<double> value(0.0, 10.0);
  int feasible = 0, infeasible = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + static_cast<int>(engine() % 9);
    std::vector<double> costs(static_cast<std::size_t>(n)), memory(static_cast<std::size_t>(n));
    for (auto& c : costs) c = value(engine);
    for (auto& m : memory) m = value(engine);
    const double total = [&] { double t = 0; for (double m : memory) t += m; return t; }();
    for (int k = 1; k <= n; ++k) {
      const double cap = value(engine) / 10.0 * total;
      CAPTURE(trial);
      CAPTURE(k);
      CAPTURE(cap);
      const brute_result want = brute_force(costs, memory, k, cap);
      if (want.best == std::numeric_limits<double>::infinity()) {
        CHECK_THROWS_WITH_AS(stretto::partition(costs, k, memory, cap),
                             doctest::Contains("keeps every stage within the memory cap"), stretto::argument_error);
        ++infeasible;
      } else {
        const auto r = stretto::partition(costs, k, memory, cap);
        check_cut(r, costs, memory, k, cap);
        CHECK(r.max_cost == doctest::Approx(want.best).epsilon(1e-12));
        CHECK(r.max_memory <= cap * (1 + 1e-12));
        ++feasible;
      }
    }
  }
  CHECK(feasible > 200);
  CHECK(infeasible > 200);
}

TEST_CASE("partition.hand_worked_chains" * doctest::timeout(5)) {
  // The Fashion-MNIST demo's MLP 784-512-512-256-256-128-128-64-10, cost in·out per layer: at 2
  // stages layer 0 alone (401 408) against the rest (516 736), not 4 layers each (860 160).
  const std::vector<double> mlp{784.0 * 512, 512.0 * 512, 512.0 * 256, 256.0 * 256, 256.0 * 128, 128.0 * 128,
                                128.0 * 64, 64.0 * 10};
  const auto two = stretto::partition(mlp, 2);
  CHECK(two.boundaries == std::vector<std::int32_t>{0, 1, 8});
  CHECK(two.max_cost == 516736.0);
  // Equal layers split evenly; one stage takes everything; as many stages as layers, one each.
  const std::vector<double> flat(6, 1.0);
  CHECK(stretto::partition(flat, 3).boundaries == std::vector<std::int32_t>{0, 2, 4, 6});
  CHECK(stretto::partition(flat, 1).max_cost == 6.0);
  CHECK(stretto::partition(flat, 6).max_cost == 1.0);
  // A memory cap forces a worse cost: {5, 1, 1, 5} in 2 stages is 6 (cut in the middle); with
  // memory {1, 1, 1, 3} and cap 3 the last stage must be layer 3 alone: max(7, 5) = 7.
  const std::vector<double> costs{5, 1, 1, 5}, memory{1, 1, 1, 3};
  CHECK(stretto::partition(costs, 2).max_cost == 6.0);
  const auto capped = stretto::partition(costs, 2, memory, 3.0);
  CHECK(capped.boundaries == std::vector<std::int32_t>{0, 3, 4});
  CHECK(capped.max_cost == 7.0);
  CHECK(capped.max_memory == 3.0);
  // Of the cuts reaching the optimum 4, the most even: [4] [1 1] [1 1], not [4] [1] [1 1 1].
  CHECK(stretto::partition(std::vector<double>{4, 1, 1, 1, 1}, 3).boundaries == std::vector<std::int32_t>{0, 1, 3, 5});
  // Computed at compile time.
  static_assert([] {
    const double c[] = {1, 2, 3, 4};
    return stretto::partition(c, 2).boundaries[1];
  }() == 3);
}

TEST_CASE("partition.errors_name_the_rule" * doctest::timeout(5)) {
  const std::vector<double> costs{1, 2, 3};
  CHECK_THROWS_WITH_AS(stretto::partition(costs, 0), "stretto::partition: stages must be at least 1 (got 0)",
                       stretto::argument_error);
  CHECK_THROWS_WITH_AS(stretto::partition(costs, 4),
                       "stretto::partition: 3 layers cannot form 4 stages of at least one layer each; use at most 3 stages",
                       stretto::argument_error);
  CHECK_THROWS_WITH_AS(stretto::partition(std::vector<double>{1, -1}, 1),
                       "stretto::partition: the cost of layer 1 must be finite and >= 0 (got -1)", stretto::argument_error);
  CHECK_THROWS_WITH_AS(stretto::partition(costs, 2, std::vector<double>{1, 1}, 5.0),
                       "stretto::partition: 3 costs but 2 memory values; give one memory value per layer",
                       stretto::argument_error);
  // Memory {4, 1, 4} in 2 stages: the best cut holds 5, so cap 4 fails and says 5.
  CHECK_THROWS_WITH_AS(stretto::partition(costs, 2, std::vector<double>{4, 1, 4}, 4.0),
                       "stretto::partition: no cut of 3 layers into 2 stages keeps every stage within the memory cap 4; "
                       "the smallest cap that 2 stages can meet is 5 (raise the cap, or use more stages)",
                       stretto::argument_error);
}
