// DualPipe and DualPipeV (docs/schedules.md §9; docs/reference-numbers.md, "DualPipe (README formula; F&B
// is a parameter)"), and the overlapped F&B op they are made of: validation, simulation, cost.
//
// "Bubble" here is the README's: the idle time of one device, span − busy[r], in units of F, B,
// W and F&B, taken on the rank where it is largest (max over r). With F&B = F + B (the README's
// example) every rank has the same idle time; with a faster F&B the ranks that run more
// overlapped pairs idle longer, and the maximum is the one the README formula gives.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <stretto/stretto.hpp>

#include "common/invariants.hpp"

using stretto::op;
using stretto::op_kind;
using stretto::pipeline_shape;
using stretto::schedule;
using stretto::sim::uniform_costs;

namespace {

// Stage F = 1, B (input) = 1, W = 1: the README's full backward B is 2. `fb` is F&B per stage.
uniform_costs per_stage(double fb = -1.0) { return uniform_costs{1.0, 1.0, 1.0, 0.0, 1.0, 0.5, fb}; }
// The same per chunk when a rank holds v = 2 chunks (uniform_costs divides by v).
uniform_costs per_chunk_of_two(double fb = -1.0) {
  return uniform_costs{2.0, 2.0, 2.0, 0.0, 1.0, 0.5, fb < 0 ? fb : 2.0 * fb};
}

double bubble(const stretto::sim::simulation& sim) {
  double worst = 0.0;
  for (double busy : sim.metrics.busy) worst = sim.metrics.span - busy > worst ? sim.metrics.span - busy : worst;
  return worst;
}

double bubble_of(const char* name, pipeline_shape shape, const uniform_costs& costs) {
  return bubble(stretto::sim::simulate(stretto::policies::make_schedule(name, shape), costs));
}

// README: bubble = (PP/2 − 1)(F&B + B − 3W), B the full backward (2 here), W = 1.
double readme_formula(std::int32_t stages, double fb) { return (stages / 2 - 1) * (fb + 2.0 - 3.0); }

std::size_t overlapped_ops(const schedule& s, std::int32_t rank) {
  std::size_t n = 0;
  for (const op& o : s.ops(rank)) n += o.overlapped ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("dualpipe.readme_formula_at_pp_8" * doctest::timeout(20)) {
  // docs/reference-numbers.md: PP = 8, F = 1, B = 2, W = 1, F&B = F + B = 3: DualPipe 6, ZB1P 7, 1F1B 21.
  for (std::int32_t m : {16, 24}) {
    CAPTURE(m);
    CHECK(bubble_of("dualpipe", {8, m, 1}, per_stage()) == 6.0);
    CHECK(bubble_of("dualpipe", {8, m, 1}, per_stage(3.0)) == 6.0);  // F&B given explicitly
    CHECK(bubble_of("dualpipev", {4, m, 2}, per_chunk_of_two()) == 6.0);  // PP = 8 stages on 4 devices
    CHECK(bubble_of("zb-h1", {8, m, 1}, per_stage()) == 7.0);
    CHECK(bubble_of("1f1b", {8, m, 1}, per_stage()) == 21.0);
    // F&B is a parameter: a faster overlapped pair shrinks the bubble as the formula says.
    for (double fb : {2.5, 2.0}) {
      CAPTURE(fb);
      CHECK(bubble_of("dualpipe", {8, m, 1}, per_stage(fb)) == readme_formula(8, fb));
      CHECK(bubble_of("dualpipev", {4, m, 2}, per_chunk_of_two(fb)) == readme_formula(8, fb));
    }
  }
  // Every rank idles the same 6 units when F&B = F + B.
  const auto sim = stretto::sim::simulate(stretto::policies::make_schedule("dualpipe", {8, 16, 1}), per_stage());
  CHECK(sim.metrics.span == 54.0);
  for (double busy : sim.metrics.busy) CHECK(busy == 48.0);
}

TEST_CASE("dualpipe.grid_valid_simulated_and_on_the_formula" * doctest::timeout(30)) {
  for (std::int32_t p : {2, 4, 6, 8})
    for (std::int32_t m : {2 * p, 2 * p + 2, 3 * p}) {
      CAPTURE(p);
      CAPTURE(m);
      // DualPipe: p ranks = PP stages. DualPipeV: p ranks hold PP = 2p stages.
      for (const bool v_shaped : {false, true}) {
        CAPTURE(v_shaped);
        const pipeline_shape shape{p, m, v_shaped ? 2 : 1};
        const auto& policy = stretto::policies::find_policy(v_shaped ? "dualpipev" : "dualpipe");
        REQUIRE(policy.check(shape).empty());
        const schedule s = policy.generate(shape);
        CHECK(stretto::testing::check_schedule_invariants(s));
        CHECK(s.num_replicas() == (v_shaped ? 1 : 2));
        const auto costs = v_shaped ? per_chunk_of_two() : per_stage();
        const auto sim = stretto::sim::simulate(s, costs);
        for (double busy : sim.metrics.busy) CHECK(busy == 3.0 * m * shape.num_chunks);  // F + B + W per chunk
        const std::int32_t stages = v_shaped ? 2 * p : p;
        CHECK(bubble(sim) == readme_formula(stages, 3.0));
        CHECK(bubble(stretto::sim::simulate(s, v_shaped ? per_chunk_of_two(2.0) : per_stage(2.0))) ==
              readme_formula(stages, 2.0));
        // Overlapped pairs: steps 4 and 5 of §9, 2(count − 2n + h + 1) + (n − h − 1), less the
        // first pair of step 4 on the middle rank(s) (h = n − 1).
        const std::int32_t n = v_shaped ? p : p / 2, count = v_shaped ? m : m / 2;
        for (std::int32_t r = 0; r < p; ++r) {
          CAPTURE(r);
          const std::int32_t h = v_shaped ? r : (r < p - 1 - r ? r : p - 1 - r);
          const std::int32_t pairs = 2 * (count - 2 * n + h + 1) + (n - h - 1) - (h == n - 1 ? 1 : 0);
          CHECK(overlapped_ops(s, r) == static_cast<std::size_t>(pairs));
        }
      }
    }
}

TEST_CASE("dualpipe.phases_of_the_smallest_case" * doctest::timeout(10)) {
  // p = 2, m = 4: n = 1, both ranks are middle ranks (h = 0): step 2 (F0, F1), step 4 once with its
  // first pair unoverlapped, step 6 (B1, then zero-bubble B0), step 8 (W). Rank 0: own direction
  // down (stage 0, microbatches 0, 1), other up (stage 1 of replica 1, microbatches 2, 3).
  const schedule s = stretto::policies::make_schedule("dualpipe", {2, 4, 1});
  const std::vector<op> rank0{
      {op_kind::forward, 0, 0},          {op_kind::forward, 1, 2},        {op_kind::forward, 0, 1},
      {op_kind::backward, 1, 2},         {op_kind::forward, 1, 3, true},  {op_kind::backward, 0, 0},
      {op_kind::backward, 1, 3},         {op_kind::backward_input, 0, 1}, {op_kind::backward_weight, 0, 1},
  };
  CHECK(std::vector<op>(s.ops(0).begin(), s.ops(0).end()) == rank0);
  CHECK(s.replica_of(0) == 0);
  CHECK(s.replica_of(3) == 1);
}

TEST_CASE("dualpipe.rejections_name_the_rule_and_a_valid_shape" * doctest::timeout(10)) {
  const auto& dp = stretto::policies::find_policy("dualpipe");
  const auto& dpv = stretto::policies::find_policy("dualpipev");
  const std::string odd_p = dp.check({3, 6, 1});
  CHECK(odd_p.starts_with("dualpipe: "));
  CHECK(odd_p.find("must be even") != std::string::npos);
  CHECK(odd_p.find("dualpipev") != std::string::npos);
  const std::string small_m = dp.check({4, 6, 1});
  CHECK(small_m.find("at least 2p = 8") != std::string::npos);
  CHECK(small_m.find("use m = 8") != std::string::npos);
  const std::string odd_m = dp.check({4, 9, 1});
  CHECK(odd_m.find("use m = 10") != std::string::npos);
  CHECK(dp.check({4, 8, 2}).find("chunks must be 1") != std::string::npos);
  CHECK(dp.check({4, 8, 1}).empty());
  CHECK(dp.check({2, 4, 1}).empty());
  const std::string small_v = dpv.check({4, 7, 2});
  CHECK(small_v.starts_with("dualpipev: "));
  CHECK(small_v.find("use m = 8") != std::string::npos);
  CHECK(dpv.check({4, 8, 1}).find("chunks must be 2") != std::string::npos);
  CHECK(dpv.check({3, 6, 2}).empty());  // any p
  CHECK_THROWS_AS(stretto::policies::make_schedule("dualpipe", {3, 6, 1}), stretto::shape_error);
}

TEST_CASE("dualpipe.overlap_rule_and_simulated_pairs" * doctest::timeout(10)) {
  using stretto::placement_kind;
  using stretto::schedule_rule;
  // 1F1B on 2 ranks, 2 microbatches, with rank 1's F(1, 1) overlapped with BW(1, 0).
  auto build = [](bool bad_partner, bool last) {
    schedule s({2, 2, 1}, placement_kind::linear);
    s.push_back(0, {op_kind::forward, 0, 0});
    s.push_back(0, {op_kind::forward, 0, 1});
    s.push_back(0, {op_kind::backward, 0, 0});
    s.push_back(0, {op_kind::backward, 0, 1, last});
    s.push_back(1, {op_kind::forward, 1, 0});
    if (bad_partner) {
      s.push_back(1, {op_kind::forward, 1, 1, true});
      s.push_back(1, {op_kind::backward, 1, 0});
      s.push_back(1, {op_kind::backward, 1, 1});
    } else {
      s.push_back(1, {op_kind::backward, 1, 0, true});
      s.push_back(1, {op_kind::forward, 1, 1});
      s.push_back(1, {op_kind::backward, 1, 1});
    }
    return s;
  };
  CHECK(stretto::validate(build(false, false)).ok());
  const auto last = stretto::validate(build(false, true));
  CHECK(last.rule == schedule_rule::overlap);
  CHECK(last.message.find("[overlap]") != std::string::npos);
  CHECK(last.message.find("last op") != std::string::npos);
  CHECK(stretto::to_string(schedule_rule::overlap) == "overlap");
  // F(1, 1) & BW(1, 0) is fine too: F first.
  CHECK(stretto::validate(build(true, false)).ok());
  schedule same({1, 1, 1}, placement_kind::linear);
  same.push_back(0, {op_kind::forward, 0, 0, true});
  same.push_back(0, {op_kind::backward, 0, 0});
  CHECK(stretto::validate(same).rule == schedule_rule::overlap);  // a pair needs two different (stage, mb)

  // Simulation: BW(1, 0) & F(1, 1) on rank 1 start together at 2 (after F(1, 0) and F(0, 1)); both ops of
  // the pair end at the same time, after overlap_time; busy counts the pair once.
  const schedule s = build(false, false);
  for (double fb : {-1.0, 2.0}) {
    CAPTURE(fb);
    const auto sim = stretto::sim::simulate(s, per_stage(fb));
    const auto r1 = sim.events.ops(1);
    REQUIRE(r1.size() == 4);
    CHECK(r1[1].start == r1[2].start);
    CHECK(r1[1].end == r1[2].end);
    const double pair = fb < 0 ? 3.0 : fb;
    CHECK(r1[1].end - r1[1].start == pair);
    CHECK(sim.metrics.busy[1] == 1.0 + pair + 2.0);
    // stage_costs built from the uniform costs give the same timeline.
    const auto staged = stretto::sim::simulate(s, stretto::sim::stage_costs::from(per_stage(fb), s.shape()));
    CHECK(staged.metrics.span == sim.metrics.span);
  }
}
