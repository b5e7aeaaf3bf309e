// The predicted peak with the executor's buffers (off by default): receive buffers posted ahead
// and the gradient buffers of a running backward; and M_W above M_B (B allocates).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include <stretto/plan/auto_schedule.hpp>
#include <stretto/policies/registry.hpp>
#include <stretto/stretto.hpp>

namespace {

using stretto::pipeline_shape;
using stretto::sim::simulate_options;
using stretto::sim::uniform_costs;

const uniform_costs equal{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};

}  // namespace

TEST_CASE("sim.memory_buffers.off_by_default" * doctest::timeout(10)) {
  // 1F1B at p = 4: rank r holds p − r microbatches at its peak, with or without empty options.
  const auto s = stretto::policies::make_schedule("1f1b", {4, 8, 1});
  const auto plain = stretto::sim::simulate(s, equal);
  CHECK(plain.peak_memory == std::vector<double>{4.0, 3.0, 2.0, 1.0});
  CHECK(stretto::sim::peak_memory(s, equal, simulate_options{}) == plain.peak_memory);
  simulate_options no_size;
  no_size.receive_lookahead = 3;  // buffers of size 0 add nothing
  CHECK(stretto::sim::simulate(s, equal, no_size).peak_memory == plain.peak_memory);
}

TEST_CASE("sim.memory_buffers.closed_forms" * doctest::timeout(10)) {
  simulate_options backward;
  backward.backward_buffer_memory = 0.25;
  simulate_options receive;
  receive.receive_lookahead = 2;
  receive.receive_buffer_memory = 0.5;
  // 1F1B, p = 4: rank r reaches p − r just before each of its fused BW's, which then holds the
  // buffer too: p − r + G. Every rank receives (from r − 1 or r + 1): + 2 · 0.5 = 1.
  const auto s = stretto::policies::make_schedule("1f1b", {4, 8, 1});
  CHECK(stretto::sim::simulate(s, equal, backward).peak_memory == std::vector<double>{4.25, 3.25, 2.25, 1.25});
  CHECK(stretto::sim::simulate(s, equal, receive).peak_memory == std::vector<double>{5.0, 4.0, 3.0, 2.0});
  simulate_options both = backward;
  both.receive_lookahead = 2;
  both.receive_buffer_memory = 0.5;
  CHECK(stretto::sim::peak_memory(s, equal, both) == std::vector<double>{5.25, 4.25, 3.25, 2.25});
  // ZB-H1's B keeps M_W = 0.5 after it ends, so the running B is at most held + G: rank 0 holds
  // p = 4 before its first B, 4.25 while it runs.
  const auto h1 = stretto::policies::make_schedule("zb-h1", {4, 8, 1});
  CHECK(stretto::sim::simulate(h1, equal, backward).peak_memory[0] == 4.25);
  // One rank receives nothing: no receive buffers.
  const auto alone = stretto::policies::make_schedule("1f1b", {1, 3, 1});
  CHECK(stretto::sim::simulate(alone, equal, receive).peak_memory == std::vector<double>{1.0});
  // The curve keeps the activations only; record_memory leaves the buffered peak as it is.
  simulate_options curve = backward;
  curve.record_memory = true;
  const auto run = stretto::sim::simulate(s, equal, curve);
  CHECK(run.peak_memory == std::vector<double>{4.25, 3.25, 2.25, 1.25});
  double top = 0.0;
  for (const auto& sample : run.memory[0]) top = std::max(top, sample.held);
  CHECK(top == 4.0);
  // Bad options are refused by name.
  simulate_options bad;
  bad.receive_lookahead = -1;
  bad.receive_buffer_memory = 1.0;
  CHECK_THROWS_AS(stretto::sim::peak_memory(s, equal, bad), stretto::argument_error);
}

TEST_CASE("sim.memory_buffers.weight_memory_above_activations" * doctest::timeout(20)) {
  // M_B = 1, M_W = 1.5: B allocates 0.5 and W frees 1.5, so a microbatch holds at most 1.5.
  const uniform_costs heavy_w{1.0, 1.0, 1.0, 0.0, 1.0, 1.5};
  CHECK_NOTHROW(heavy_w.check());
  CHECK(heavy_w.memory_delta({stretto::op_kind::backward_input, 0, 0}, {1, 1, 1}) == 0.5);
  // One rank, F B W: 1 after F, 1.5 after B (1.75 while B runs with G = 0.25), 0 after W.
  const auto one = stretto::policies::make_schedule("zb-h1", {1, 1, 1});
  CHECK(stretto::sim::simulate(one, heavy_w).peak_memory == std::vector<double>{1.5});
  simulate_options backward;
  backward.backward_buffer_memory = 0.25;
  CHECK(stretto::sim::simulate(one, heavy_w, backward).peak_memory == std::vector<double>{1.75});
  // GPipe-2BP (all F's, all B's, all W's): m·M_W = 6 on every rank, more than the m·M_B = 4 of
  // the activations alone.
  const auto gpipe = stretto::policies::make_schedule("gpipe-2bp", {2, 4, 1});
  CHECK(stretto::sim::simulate(gpipe, heavy_w).peak_memory == std::vector<double>{6.0, 6.0});
  // The Zero Bubble heuristic counts a microbatch as max(M_B, M_W): ZB-1p's limit is p · 1.5, and
  // every rank keeps to it (p = 4 and the odd p = 3; m = 1, m < p, m = p, m > p).
  for (const std::int32_t p : {3, 4})
    for (const std::int32_t m : {1, 2, p, 3 * p}) {
      CAPTURE(p);
      CAPTURE(m);
      const pipeline_shape shape{p, m, 1};
      const double limit = stretto::plan::zb_memory_limit(shape, heavy_w, 1.0);
      CHECK(limit == 1.5 * p);
      const auto plan = stretto::plan::auto_schedule(shape, heavy_w, limit);
      CHECK(stretto::validate(plan).ok());
      const auto run = stretto::sim::simulate(plan, heavy_w);
      CHECK(*std::max_element(run.peak_memory.begin(), run.peak_memory.end()) <= limit);
    }
  // Below one microbatch's 1.5 the heuristic refuses, naming the rule.
  CHECK_THROWS_AS(stretto::plan::auto_schedule({2, 2, 1}, heavy_w, 1.2), stretto::argument_error);
}
