// stage_costs: per-stage times, latency + bytes / bandwidth, memory per stage, and the optimizer
// step with and without cross-rank synchronisation. Every expected value is worked out by hand in
// the comment above it.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <stretto/stretto.hpp>

namespace {

using stretto::op;
using stretto::op_kind;
using stretto::pipeline_shape;
using stretto::schedule;
using stretto::sim::interval;
using stretto::sim::stage_costs;

/// 1F1B (fused BW) on p = 2, m = 1: rank 0 runs F0 BW0, rank 1 runs F0 BW0.
schedule one_microbatch_two_ranks() { return stretto::make_schedule<stretto::policies::one_f_one_b>({2, 1, 1}); }

/// Stage 0: T_F 1, T_B 2, T_W 1; stage 1: T_F 3, T_B 1, T_W 2; latency 0.5.
stage_costs two_unequal_stages() {
  stage_costs c;
  c.forward = {1.0, 3.0};
  c.backward_input = {2.0, 1.0};
  c.backward_weight = {1.0, 2.0};
  c.latency = 0.5;
  return c;
}

}  // namespace

TEST_CASE("stage_costs.from_uniform_reproduces_uniform_costs" * doctest::timeout(5)) {
  // docs/reference-numbers.md, equal times: ZB-H1, p = 4, m = 8: span 27, peaks 4, 3.5, 3, 2.5.
  const pipeline_shape shape{4, 8, 1};
  const stretto::sim::uniform_costs uniform{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};
  const stage_costs costs = stage_costs::from(uniform, shape);
  CHECK_NOTHROW(costs.check(shape));
  const auto run = stretto::sim::simulate(stretto::make_schedule<stretto::policies::zb_h1>(shape), costs);
  CHECK(run.metrics.span == 27.0);
  CHECK(run.peak_memory == std::vector<double>{4.0, 3.5, 3.0, 2.5});
}

TEST_CASE("stage_costs.from_uniform_divides_by_chunks" * doctest::timeout(5)) {
  // With v = 2 chunks per rank, each of the 8 stages of p = 4 costs half a full stage.
  const stage_costs c = stage_costs::from(stretto::sim::uniform_costs{2.0, 4.0, 1.0, 0.25, 1.0, 0.5}, {4, 3, 2});
  REQUIRE(c.forward.size() == 8);
  CHECK(c.forward[7] == 1.0);
  CHECK(c.backward_input[0] == 2.0);
  CHECK(c.backward_weight[3] == 0.5);
  CHECK(c.latency == 0.25);
  CHECK(c.activation_memory[5] == 0.5);
  CHECK(c.weight_gradient_memory[5] == 0.25);
}

TEST_CASE("stage_costs.per_stage_times" * doctest::timeout(5)) {
  // F(0) 0 → 1; F(1) starts 1 + 0.5 = 1.5, ends 4.5; BW(1) = T_B + T_W = 3: 4.5 → 7.5;
  // BW(0) starts 7.5 + 0.5 = 8, takes 3: ends 11. Rank spans 11 and 6; busy 4 and 6;
  // bubble rate (2·11 − 10) / 22 = 12/22.
  const auto run = stretto::sim::simulate(one_microbatch_two_ranks(), two_unequal_stages());
  REQUIRE(run.events.num_ranks() == 2);
  CHECK(run.events.ops(1)[0].start == 1.5);
  CHECK(run.events.ops(1)[1].end == 7.5);
  CHECK(run.events.ops(0)[1].start == 8.0);
  CHECK(run.metrics.span == 11.0);
  CHECK(run.metrics.busy == std::vector<double>{4.0, 6.0});
  CHECK(run.metrics.bubble_rate == doctest::Approx(12.0 / 22.0));
  CHECK(run.metrics.bubble_overhead == doctest::Approx(12.0 / 10.0));
}

TEST_CASE("stage_costs.latency_plus_bytes_over_bandwidth" * doctest::timeout(5)) {
  // Bandwidth 4 bytes per time unit. F(0)'s 8 activation bytes add 2, B(1)'s 2 gradient bytes
  // add 0.5: F(1) starts 1 + 0.5 + 2 = 3.5, ends 6.5; BW(1) 6.5 → 9.5; BW(0) starts
  // 9.5 + 0.5 + 0.5 = 10.5, ends 13.5.
  stage_costs c = two_unequal_stages();
  c.bandwidth = 4.0;
  c.activation_bytes = {8.0, 100.0};  // stage 1's activations go nowhere
  c.gradient_bytes = {100.0, 2.0};    // stage 0's input gradient goes nowhere
  CHECK(c.comm_delay(0, 1, {2, 1, 1}) == 2.5);
  CHECK(c.comm_delay(1, 0, {2, 1, 1}) == 1.0);
  const auto run = stretto::sim::simulate(one_microbatch_two_ranks(), c);
  CHECK(run.events.ops(1)[0].start == 3.5);
  CHECK(run.events.ops(0)[1].start == 10.5);
  CHECK(run.metrics.span == 13.5);
}

TEST_CASE("stage_costs.memory_per_stage" * doctest::timeout(5)) {
  // GPipe p = 2, m = 3 holds all 3 microbatches: stage 0 with M_B = 2 peaks at 6, stage 1 with
  // M_B = 1 at 3. In ZB-H1 (p = 2, m = 3) rank 1 runs F0 B0 F1 B1 W0 ...: it peaks after F1 at
  // M_B + M_W = 1.25 (Zero Bubble §3.1: rank i peaks at (p − i + 1)·M_B + (i − 1)·M_W, 1-based).
  stage_costs c;
  c.forward = {1.0, 1.0};
  c.backward_input = {1.0, 1.0};
  c.backward_weight = {1.0, 1.0};
  c.activation_memory = {2.0, 1.0};
  c.weight_gradient_memory = {0.5, 0.25};
  CHECK(c.memory_delta(op{op_kind::backward_input, 0, 0}, {2, 3, 1}) == -1.5);
  CHECK(c.memory_delta(op{op_kind::backward_weight, 1, 0}, {2, 3, 1}) == -0.25);
  CHECK(stretto::sim::simulate(stretto::make_schedule<stretto::policies::gpipe>({2, 3, 1}), c).peak_memory ==
        std::vector<double>{6.0, 3.0});
  CHECK(stretto::sim::simulate(stretto::make_schedule<stretto::policies::zb_h1>({2, 3, 1}), c).peak_memory[1] == 1.25);
}

TEST_CASE("stage_costs.optimizer_post_validation" * doctest::timeout(5)) {
  // Optimizer 1 on rank 0 and 2 on rank 1, no synchronisation (post-validation, Zero Bubble
  // §4): each rank steps right after its last op. Rank 0: 11 → 12 (period 12); rank 1:
  // 7.5 → 9.5 (period 9.5 − 1.5 = 8). Step time 12.
  stage_costs c = two_unequal_stages();
  c.optimizer_time = {1.0, 2.0};
  const auto run = stretto::sim::simulate(one_microbatch_two_ranks(), c);
  CHECK(run.optimizer == std::vector<interval>{{11.0, 12.0}, {7.5, 9.5}});
  CHECK(run.step_time == 12.0);
  CHECK(run.metrics.span == 11.0);  // the span is the ops' alone
}

TEST_CASE("stage_costs.optimizer_synchronised" * doctest::timeout(5)) {
  // Synchronised with an all-reduce of 0.5: both ranks wait until 11 + 0.5 = 11.5; rank 0 steps
  // 11.5 → 12.5, rank 1 11.5 → 13.5. Step time from 0 to 13.5.
  stage_costs c = two_unequal_stages();
  c.optimizer_time = {1.0, 2.0};
  c.synchronised_optimizer = true;
  c.sync_latency = 0.5;
  const auto run = stretto::sim::simulate(one_microbatch_two_ranks(), c);
  CHECK(run.optimizer == std::vector<interval>{{11.5, 12.5}, {11.5, 13.5}});
  CHECK(run.step_time == 13.5);
}

TEST_CASE("stage_costs.no_optimizer_model_step_time_is_span" * doctest::timeout(5)) {
  const auto run = stretto::sim::simulate(one_microbatch_two_ranks(), stretto::sim::uniform_costs{});
  CHECK(run.optimizer.empty());
  CHECK(run.step_time == run.metrics.span);
}

TEST_CASE("stage_costs.check_names_the_field" * doctest::timeout(5)) {
  const pipeline_shape shape{2, 1, 1};
  auto message = [&](const stage_costs& c) {
    try {
      c.check(shape);
    } catch (const stretto::argument_error& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  stage_costs ok = two_unequal_stages();
  CHECK(message(ok) == "no exception");

  stage_costs short_forward = ok;
  short_forward.forward = {1.0};
  CHECK(message(short_forward) == "cost model: forward must have 2 entries (got 1)");

  stage_costs negative = ok;
  negative.backward_weight[1] = -1.0;
  CHECK(message(negative) == "cost model: backward_weight must be finite numbers >= 0");

  stage_costs bad_latency = ok;
  bad_latency.latency = -0.1;
  CHECK(message(bad_latency) == "cost model: latency, bandwidth and sync_latency must be finite numbers >= 0");

  // M_W above M_B is a valid model (B allocates M_W − M_B); a negative M_W is not.
  stage_costs memory = ok;
  memory.activation_memory = {1.0, 1.0};
  memory.weight_gradient_memory = {0.5, 2.0};
  CHECK_NOTHROW(memory.check({2, 1, 1}));
  CHECK(memory.memory_delta(stretto::op{stretto::op_kind::backward_input, 1, 0}, {2, 1, 1}) == 1.0);
  memory.weight_gradient_memory = {0.5, -2.0};
  CHECK(message(memory) == "cost model: weight_gradient_memory must be finite numbers >= 0");

  stage_costs optimizer = ok;
  optimizer.optimizer_time = {1.0, 1.0, 1.0};
  CHECK(message(optimizer) == "cost model: optimizer_time must have 2 entries (got 3)");
}
