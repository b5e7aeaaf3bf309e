// The SkipPipe planner: A* and CBS against exhaustive search on small settings, determinism for
// a seed, the baselines, and the presets' headline (SkipPipe shortest).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include <stretto/skippipe/planner.hpp>
#include <stretto/skippipe/presets.hpp>

#include "common.hpp"

namespace sp = stretto::skippipe;

namespace {

// Every path of length s.path_length from stage-0 node d that keeps the per-path rules.
std::vector<sp::path> all_paths(const sp::setting& s, std::int32_t d) {
  std::vector<sp::path> out;
  sp::path p{d};
  std::function<void()> grow = [&] {
    if (static_cast<std::int32_t>(p.size()) == s.path_length) {
      std::vector<sp::violation> v;
      sp::detail::check_one_path(s, 0, d, p, v);
      if (v.empty()) out.push_back(p);
      return;
    }
    for (std::int32_t n = 0; n < s.num_nodes(); ++n) {
      if (s.stage_of(n) == 0) continue;
      p.push_back(n);
      grow();
      p.pop_back();
    }
  };
  grow();
  return out;
}

// The least makespan (largest agent round trip) over all agent path sets within the caps.
double exhaustive_makespan(const sp::setting& s) {
  const std::int32_t per = s.agents_per_data_node();
  const auto agents = static_cast<std::int32_t>(s.stages[0].size()) * per;
  std::vector<std::vector<sp::path>> options;
  std::vector<double> release;
  for (std::int32_t a = 0; a < agents; ++a) {
    const std::int32_t d = s.stages[0][static_cast<std::size_t>(a / per)];
    options.push_back(all_paths(s, d));
    release.push_back(sp::agent_release(s, d, a % per));
  }
  double best = std::numeric_limits<double>::infinity();
  std::vector<sp::path> chosen(static_cast<std::size_t>(agents));
  std::function<void(std::int32_t, double)> pick = [&](std::int32_t a, double makespan) {
    if (makespan >= best) return;
    if (a == agents) {
      if (sp::find_violations(s, sp::microbatch_paths(s, chosen)).empty()) best = makespan;
      return;
    }
    for (const sp::path& p : options[static_cast<std::size_t>(a)]) {
      chosen[static_cast<std::size_t>(a)] = p;
      pick(a + 1, std::max(makespan, sp::round_trip(s, p, release[static_cast<std::size_t>(a)]).back().end));
    }
  };
  pick(0, 0.0);
  return best;
}

// Stage 0 = {0, 1}, stage 1 = {2, 3}, stage 2 = {4}, stage 3 = {5}; path length 3; random
// compute in [0.5, 2] and asymmetric hops in [0.1, 1.5].
sp::setting small(std::uint64_t seed, std::int32_t memory, std::int32_t microbatches) {
  sp::detail::splitmix rng{seed};
  sp::setting s = skippipe_test::line(std::vector<double>(6, 1.0), 0.0);
  for (auto& w : s.compute) w = 0.5 + 1.5 * rng.unit();
  for (std::size_t a = 0; a < 6; ++a)
    for (std::size_t b = 0; b < 6; ++b) s.latency[a][b] = a == b ? 0.0 : 0.1 + 1.4 * rng.unit();
  s.stages = {{0, 1}, {2, 3}, {4}, {5}};
  s.path_length = 3;
  s.memory = memory;
  s.microbatches = microbatches;
  s.collision_avoidance = false;
  s.check();
  return s;
}

}  // namespace

TEST_CASE("skippipe.planner.astar_is_the_cheapest_single_path") {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const sp::setting s = small(seed, 1, 1);
    for (const std::int32_t d : {0, 1}) {
      double best = std::numeric_limits<double>::infinity();
      for (const sp::path& p : all_paths(s, d)) best = std::min(best, sp::round_trip(s, p, 0.0).back().end);
      const auto r = sp::route_agent(s, d, 0.0, {});
      REQUIRE(r.has_value());
      CHECK(r->cost == doctest::Approx(best).epsilon(1e-12));
    }
  }
}

TEST_CASE("skippipe.planner.astar_respects_its_constraints") {
  const sp::setting s = small(7, 1, 1);
  sp::agent_constraints c;
  c.forbidden_stages = 1u << 1;  // no stage 1: the only stages left are 2 and 3
  const auto r = sp::route_agent(s, 0, 0.0, c);
  REQUIRE(r.has_value());
  CHECK(s.stage_of(r->nodes[1]) != 1);
  CHECK(s.stage_of(r->nodes[2]) != 1);
  // A window on the first node delays the whole trip by its length.
  sp::agent_constraints wait;
  wait.windows.push_back({0, 0.0, 5.0});
  const auto late = sp::route_agent(s, 0, 0.0, wait);
  const auto early = sp::route_agent(s, 0, 0.0, {});
  REQUIRE(late.has_value());
  CHECK(late->trip.front().start == 5.0);
  CHECK(late->cost >= early->cost + 5.0 - 1e-12);
  c.forbidden_stages = (1u << 1) | (1u << 2);  // one stage left, two needed
  CHECK_FALSE(sp::route_agent(s, 0, 0.0, c).has_value());
}

TEST_CASE("skippipe.planner.cbs_finds_the_least_makespan" * doctest::timeout(60)) {
  // Without TC2 the conflict-based search is complete on the caps, so its first conflict-free
  // candidate has the least makespan of all path sets that satisfy them (checked exhaustively:
  // 2 agents with memory 1, 4 agents with memory 2 and two microbatches per data node).
  for (const auto& shape : {std::pair{1, 1}, std::pair{2, 2}}) {
    const std::int32_t memory = shape.first, microbatches = shape.second;
    for (std::uint64_t seed = 1; seed <= 12; ++seed) {
      CAPTURE(memory);
      CAPTURE(seed);
      const sp::setting s = small(seed, memory, microbatches);
      const double best = exhaustive_makespan(s);
      sp::planner_options first;
      first.max_solutions = 1;  // the first conflict-free candidate (later ones are chosen by simulation)
      const sp::plan_result r = sp::plan(s, first);
      CHECK(r.exact);
      CHECK(r.makespan == doctest::Approx(best).epsilon(1e-12));
      CHECK(sp::find_violations(s, r.paths).empty());
    }
  }
}

TEST_CASE("skippipe.planner.deterministic_for_a_seed" * doctest::timeout(60)) {
  const sp::setting s = sp::make_preset("5-clusters", 4);
  sp::planner_options o;
  o.seed = 4;
  const auto a = sp::plan(s, o);
  const auto b = sp::plan(s, o);
  CHECK(a.paths == b.paths);
  CHECK(a.run.iteration_time == b.run.iteration_time);
  CHECK(sp::random_skip_paths(s, 4) == sp::random_skip_paths(s, 4));
  CHECK(sp::random_skip_paths(s, 4) != sp::random_skip_paths(s, 5));
  const sp::setting again = sp::make_preset("5-clusters", 4);
  CHECK(again.compute == s.compute);
  CHECK(again.latency == s.latency);
  CHECK(again.stages == s.stages);
  CHECK(sp::make_preset("5-clusters", 5).compute != s.compute);
}

TEST_CASE("skippipe.planner.baselines") {
  const sp::setting s = sp::make_preset("single-cluster", 1);
  const auto full = sp::full_pipeline_paths(s);
  REQUIRE(full.size() == 30u);
  for (std::size_t j = 0; j < full.size(); ++j) {
    REQUIRE(full[j].size() == 6u);
    for (std::int32_t st = 0; st < 6; ++st) CHECK(s.stage_of(full[j][static_cast<std::size_t>(st)]) == st);
  }
  // Stages 1..5 have 3 nodes: each gets 30 / 3 = 10 microbatches.
  const auto run = sp::simulate(s, full);
  for (std::size_t st = 1; st < 6; ++st)
    for (const std::int32_t n : s.stages[st]) CHECK(run.forwards[static_cast<std::size_t>(n)] == 10);
  // Random skipping: every path keeps the per-path rules, in increasing stage order (no swaps);
  // the caps are preferred, not guaranteed.
  const auto random = sp::random_skip_paths(s, 1);
  REQUIRE(random.size() == 30u);
  for (std::size_t j = 0; j < random.size(); ++j) {
    std::vector<sp::violation> v;
    sp::detail::check_one_path(s, static_cast<std::int32_t>(j), s.data_node(static_cast<std::int32_t>(j)), random[j], v);
    CHECK(v.empty());
    for (std::size_t k = 2; k < random[j].size(); ++k) CHECK(s.stage_of(random[j][k - 1]) < s.stage_of(random[j][k]));
  }
}

TEST_CASE("skippipe.planner.presets_skippipe_is_shortest" * doctest::timeout(120)) {
  // The paper's default configuration (20 nodes, 6 stages of 5,3,3,3,3,3, 6 microbatches per
  // stage-0 node, memory 3, path length 4): SkipPipe's simulated iteration is the shortest of
  // the three on every preset, and at most 0.6 of the full pipeline's (the paper reports up to
  // 55 % shorter).
  for (const auto& name : sp::preset_names()) {
    CAPTURE(name);
    const sp::setting s = sp::make_preset(name, 1);
    CHECK(s.num_nodes() == 20);
    CHECK(s.num_microbatches() == 30);
    sp::planner_options o;
    o.seed = 1;
    const auto r = sp::plan(s, o);
    CHECK_NOTHROW(sp::validate_paths(s, r.paths));
    const double full = sp::simulate(s, sp::full_pipeline_paths(s)).iteration_time;
    const double random = sp::simulate(s, sp::random_skip_paths(s, 1)).iteration_time;
    CHECK(r.run.iteration_time < random);
    CHECK(r.run.iteration_time < 0.6 * full);
  }
}
