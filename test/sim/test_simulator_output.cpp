// The simulator's output beyond the metrics: the memory curve, and its agreement with a plain
// sweep simulator kept here as an oracle (the simulator was rewritten to visit every op once;
// its results must not change).
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <stretto/stretto.hpp>

namespace {

using stretto::pipeline_shape;
using stretto::schedule;

/**
The timing model of docs/timing-model.md written the plainest way: sweep the ranks again and again, each
running its ops in order while their inputs exist. Returns per rank the (start, end) pairs.
*/
template <class Costs>
std::vector<std::vector<std::pair<double, double>>> sweep_oracle(const schedule& s, const Costs& costs) {
  const pipeline_shape& shape = s.shape();
  const auto m = static_cast<std::size_t>(shape.num_microbatches);
  std::vector<double> f_end(static_cast<std::size_t>(shape.num_stages()) * m, -1.0), g_end(f_end);
  std::vector<std::vector<std::pair<double, double>>> out(static_cast<std::size_t>(s.num_ranks()));
  std::vector<std::size_t> cursor(out.size(), 0);
  std::vector<double> free_at(out.size(), 0.0);
  bool progress = true;
  while (progress) {
    progress = false;
    for (std::int32_t r = 0; r < s.num_ranks(); ++r) {
      const auto list = s.ops(r);
      auto& c = cursor[static_cast<std::size_t>(r)];
      while (c < list.size()) {
        // An overlapped F&B pair (op::overlapped on its first op) is one unit: it waits for the
        // inputs of both ops, takes the cost model's overlap time, and both of its ops end together.
        const std::size_t width = list[c].overlapped ? 2 : 1;
        double ready = free_at[static_cast<std::size_t>(r)];
        bool blocked = false;
        for (std::size_t k = 0; k < width && !blocked; ++k) {
          const stretto::op& o = list[c + k];
          for (const auto& d : stretto::dependencies_of(o, shape)) {
            const std::size_t cell = static_cast<std::size_t>(d.stage) * m + static_cast<std::size_t>(d.microbatch);
            const double end = d.kind == stretto::dependency_kind::forward ? f_end[cell] : g_end[cell];
            if (end < 0.0) {
              blocked = true;
              break;
            }
            const double delay = s.rank_of(d.stage, d.microbatch) != r ? costs.comm_delay(d.stage, o.stage, shape) : 0.0;
            ready = end + delay > ready ? end + delay : ready;
          }
        }
        if (blocked) break;
        const double end =
            ready + (width == 2 ? costs.overlap_time(list[c], list[c + 1], shape) : costs.duration(list[c], shape));
        for (std::size_t k = 0; k < width; ++k) {
          const stretto::op& o = list[c + k];
          out[static_cast<std::size_t>(r)].emplace_back(ready, end);
          const std::size_t cell = static_cast<std::size_t>(o.stage) * m + static_cast<std::size_t>(o.microbatch);
          if (o.kind == stretto::op_kind::forward) f_end[cell] = end;
          if (stretto::produces_input_gradient(o.kind)) g_end[cell] = end;
        }
        free_at[static_cast<std::size_t>(r)] = end;
        c += width;
        progress = true;
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("simulator.agrees_with_sweep_oracle_on_every_policy" * doctest::timeout(60)) {
  // Zero Bubble Table 9 times (1.5B row) and equal times, on a grid of shapes, every policy that
  // accepts the shape: identical start and end times, op by op.
  const stretto::sim::uniform_costs table9{18.522, 18.086, 9.337, 0.601, 1.0, 0.5};
  const stretto::sim::uniform_costs equal{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};
  for (const auto& policy : stretto::policies::all_policies)
    for (std::int32_t p : {1, 2, 3, 4, 8})
      for (std::int32_t v : {1, 2})
        for (std::int32_t m : {1, 2, p, p + 1, 2 * p, 3 * p + 1}) {
          const pipeline_shape shape{p, m, v};
          if (!policy.check(shape).empty()) continue;
          const schedule s = policy.generate(shape);
          for (const auto* costs : {&table9, &equal}) {
            CAPTURE(policy.name);
            CAPTURE(p);
            CAPTURE(m);
            CAPTURE(v);
            const auto run = stretto::sim::simulate(s, *costs);
            const auto expected = sweep_oracle(s, *costs);
            REQUIRE(static_cast<std::size_t>(run.events.num_ranks()) == expected.size());
            for (std::size_t r = 0; r < expected.size(); ++r) {
              const auto events = run.events.ops(static_cast<std::int32_t>(r));
              REQUIRE(events.size() == expected[r].size());
              for (std::size_t k = 0; k < expected[r].size(); ++k) {
                CHECK(events[k].start == expected[r][k].first);
                CHECK(events[k].end == expected[r][k].second);
              }
            }
          }
        }
}

TEST_CASE("simulator.memory_curve_zb_h1_p4_m8" * doctest::timeout(5)) {
  // docs/reference-numbers.md, equal times: ZB-H1 p = 4, m = 8 peaks at 4, 3.5, 3, 2.5 M_B. The curve
  // starts at {first start, 0}, has one point per op, reaches the peak, and ends at 0 when the
  // last W ends (rank 0: at 27, the span).
  const auto s = stretto::make_schedule<stretto::policies::zb_h1>({4, 8, 1});
  const auto run =
      stretto::sim::simulate(s, stretto::sim::uniform_costs{1.0, 1.0, 1.0, 0.0, 1.0, 0.5}, {.record_memory = true});
  REQUIRE(run.memory.size() == 4);
  const std::vector<double> peak{4.0, 3.5, 3.0, 2.5};
  for (std::size_t r = 0; r < 4; ++r) {
    CAPTURE(r);
    const auto& curve = run.memory[r];
    REQUIRE(curve.size() == s.ops(static_cast<std::int32_t>(r)).size() + 1);
    CHECK(curve.front().held == 0.0);
    CHECK(curve.front().time == run.events.ops(static_cast<std::int32_t>(r)).front().start);
    CHECK(curve.back().held == 0.0);
    CHECK(curve.back().time == run.events.ops(static_cast<std::int32_t>(r)).back().end);
    double highest = 0.0;
    for (std::size_t k = 1; k < curve.size(); ++k) {
      highest = curve[k].held > highest ? curve[k].held : highest;
      CHECK(curve[k].time >= curve[k - 1].time);
    }
    CHECK(highest == peak[r]);
  }
  CHECK(run.memory[0].back().time == 27.0);
  // Rank 3 runs F0 first: its activation is held from F0's start (time 3), not its end.
  CHECK(run.memory[3][1] == stretto::sim::memory_sample{3.0, 1.0});
}

TEST_CASE("simulator.memory_curve_is_opt_in" * doctest::timeout(5)) {
  const auto s = stretto::make_schedule<stretto::policies::one_f_one_b>({4, 8, 1});
  const auto run = stretto::sim::simulate(s, stretto::sim::uniform_costs{});
  CHECK(run.memory.empty());
  CHECK(run.peak_memory == std::vector<double>{4.0, 3.0, 2.0, 1.0});
}

namespace {

// uniform_costs that counts the delays it is asked for, and can throw on one op's duration.
struct probing_costs {
  stretto::sim::uniform_costs base{1.0, 1.0, 1.0, 0.5};
  mutable int same_stage_delays = 0;
  mutable int delays = 0;
  bool throw_on_first_forward = false;
  constexpr double duration(const stretto::op& o, const stretto::pipeline_shape& s) const {
    if (throw_on_first_forward && o.kind == stretto::op_kind::forward && o.stage == 0 && o.microbatch == 0)
      throw std::runtime_error("probing_costs: no time for F(0, 0)");
    return base.duration(o, s);
  }
  constexpr double comm_delay(std::int32_t from, std::int32_t to, const stretto::pipeline_shape& s) const {
    ++delays;
    if (from == to) ++same_stage_delays;
    return base.comm_delay(from, to, s);
  }
  constexpr double memory_delta(const stretto::op& o, const stretto::pipeline_shape& s) const {
    return base.memory_delta(o, s);
  }
};

}  // namespace

TEST_CASE("simulator.asks_for_delays_only_between_ranks" * doctest::timeout(5)) {
  // cost_model's contract: comm_delay(a, b) is the delay between two stages on different ranks.
  // 1F1B at p = 4, m = 8: each microbatch crosses 3 boundaries forward and 3 backward.
  const auto s = stretto::make_schedule<stretto::policies::one_f_one_b>({4, 8, 1});
  const probing_costs costs;
  const auto run = stretto::sim::simulate(s, costs);
  CHECK(costs.same_stage_delays == 0);
  CHECK(costs.delays == 8 * 3 * 2);
  CHECK(run.metrics.span == stretto::sim::simulate(s, costs.base).metrics.span);
}

TEST_CASE("simulator.rejects_a_deadlocked_schedule" * doctest::timeout(5)) {
  // Rank 1 runs F(1, 1) before BW(1, 0); F(1, 1) needs F(0, 1), which rank 0 runs after
  // BW(0, 0), which needs BW(1, 0): a cycle.
  schedule s({2, 2, 1}, stretto::placement_kind::linear);
  using stretto::op;
  using stretto::op_kind;
  for (op o : {op{op_kind::forward, 0, 0}, op{op_kind::backward, 0, 0}, op{op_kind::forward, 0, 1},
               op{op_kind::backward, 0, 1}})
    s.push_back(0, o);
  for (op o : {op{op_kind::forward, 1, 0}, op{op_kind::forward, 1, 1}, op{op_kind::backward, 1, 0},
               op{op_kind::backward, 1, 1}})
    s.push_back(1, o);
  CHECK_THROWS_AS(stretto::sim::simulate(s, stretto::sim::uniform_costs{}), stretto::validation_error);
  // simulate checks only the structural rules up front and lets the run find the deadlock; the
  // error it then throws is still validate's, naming each stuck rank and what it waits for.
  const stretto::validation_result expected = stretto::validate(s);
  REQUIRE(expected.rule == stretto::schedule_rule::deadlock);
  try {
    (void)stretto::sim::simulate(s, stretto::sim::uniform_costs{});
    FAIL("simulate accepted a deadlocked schedule");
  } catch (const stretto::validation_error& e) {
    CHECK(std::string(e.what()) == expected.message);
    CHECK(std::string(e.what()).find("rank 1 is stuck at F(stage 1, mb 1)") != std::string::npos);
  }
  // A cost model that throws while the deadlocked schedule runs: still the deadlock error, as
  // when validation ran first.
  probing_costs throwing;
  throwing.throw_on_first_forward = true;
  CHECK_THROWS_WITH_AS(stretto::sim::simulate(s, throwing), expected.message.c_str(), stretto::validation_error);
  // On a valid schedule the cost model's own error reaches the caller.
  const auto valid = stretto::make_schedule<stretto::policies::one_f_one_b>({2, 2, 1});
  CHECK_THROWS_WITH_AS(stretto::sim::simulate(valid, throwing), "probing_costs: no time for F(0, 0)", std::runtime_error);
}
