// The runtime-inclusive peak (sim::runtime_peak_memory): the memory model's activations plus
// the receive buffers the executor posts ahead and the gradient buffers of a running backward,
// walked op by op as the executor runs the list; M_W above M_B inside a BW.
#include <doctest/doctest.h>

#include <vector>

#include <stretto/policies/registry.hpp>
#include <stretto/stretto.hpp>

namespace {

using stretto::op;
using stretto::op_kind;
using stretto::sim::runtime_buffers;
using stretto::sim::uniform_costs;

}  // namespace

TEST_CASE("sim.runtime_memory.equals_the_activation_peak_without_buffers" * doctest::timeout(10)) {
  // No buffers and M_W <= M_B: the paper-style peak, for every listed schedule at a few shapes.
  const uniform_costs costs{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};
  for (const auto& info : stretto::policies::all_policies)
    for (const stretto::pipeline_shape shape : {stretto::pipeline_shape{2, 4, info.default_chunks},
                                                stretto::pipeline_shape{4, 8, info.default_chunks}}) {
      CAPTURE(info.name);
      if (!info.check(shape).empty()) continue;
      const stretto::schedule s = stretto::policies::make_schedule(info.name, shape);
      CHECK(stretto::sim::runtime_peak_memory(s, costs, runtime_buffers{}) == stretto::sim::peak_memory(s, costs));
    }
}

TEST_CASE("sim.runtime_memory.one_f_one_b_walked_by_hand" * doctest::timeout(10)) {
  // 1F1B at p = 2, m = 4 (fused BW), M_B = 1, M_W = 1.5 > M_B (B allocates 0.5 inside each BW),
  // activation messages 0.1, gradient messages 0.2, 0.25 held while a BW runs, lookahead 2.
  const stretto::schedule s = stretto::policies::make_schedule("1f1b", {2, 4, 1});
  const auto F = [](int st, int mb) { return op{op_kind::forward, st, mb}; };
  const auto BW = [](int st, int mb) { return op{op_kind::backward, st, mb}; };
  REQUIRE(std::vector<op>(s.ops(0).begin(), s.ops(0).end()) ==
          std::vector<op>{F(0, 0), F(0, 1), BW(0, 0), F(0, 2), BW(0, 1), F(0, 3), BW(0, 2), BW(0, 3)});
  REQUIRE(std::vector<op>(s.ops(1).begin(), s.ops(1).end()) ==
          std::vector<op>{F(1, 0), BW(1, 0), F(1, 1), BW(1, 1), F(1, 2), BW(1, 2), F(1, 3), BW(1, 3)});
  const uniform_costs costs{1.0, 1.0, 1.0, 0.0, 1.0, 1.5};
  runtime_buffers buffers;
  buffers.receive_lookahead = 2;
  buffers.activation_message = {0.1, 0.1};
  buffers.gradient_message = {0.2, 0.2};
  buffers.backward_transient = {0.25, 0.25};
  const std::vector<double> peak = stretto::sim::runtime_peak_memory(s, costs, buffers);
  // Rank 0, at BW(0, 0): two F's held (2), B's 0.5, the transient 0.25, and BW(0, 1)'s gradient
  // receive (position 4 <= 2 + 2) posted: 2.95. (F(0, 3) at position 5 holds 2 + two posted
  // gradient receives 0.4 = 2.4; less.)
  CHECK(peak[0] == doctest::Approx(2.95));
  // Rank 1 (last stage: its BW's receive nothing): at BW(1, 0), F(1, 0)'s 1 + 0.5 + 0.25 and the
  // next F's activation receive 0.1: 1.85.
  CHECK(peak[1] == doctest::Approx(1.85));
  // The paper-style peak is unchanged: 2 and 1.
  CHECK(stretto::sim::peak_memory(s, costs) == std::vector<double>{2.0, 1.0});
  // Lookahead 0: only the running op's own buffer, none ahead: 2.75 and 1.75.
  buffers.receive_lookahead = 0;
  const std::vector<double> bare = stretto::sim::runtime_peak_memory(s, costs, buffers);
  CHECK(bare[0] == doctest::Approx(2.75));
  CHECK(bare[1] == doctest::Approx(1.75));
  // A gradient sent to another rank (0.3, only stage 1 has one to send) is held during its BW and
  // the next op: rank 1 at BW(1, 0) 1.85 + 0.3; at F(1, 1) after it 1 + 0.1 + 0.3 = 1.4, less.
  // Rank 0's stage 0 sends no gradient: unchanged.
  buffers.receive_lookahead = 2;
  buffers.gradient_send = {0.3, 0.3};
  const std::vector<double> sending = stretto::sim::runtime_peak_memory(s, costs, buffers);
  CHECK(sending[0] == doctest::Approx(2.95));
  CHECK(sending[1] == doctest::Approx(2.15));
  // With M_B = 0 only buffers count: at F(1, 1) the lingering 0.3 and the posted 0.1 (0.4) are
  // below BW(1, 0)'s 0.5 (its B's allocation) + 0.25 + 0.1 + 0.3 = 1.15.
  const uniform_costs buffers_only{1.0, 1.0, 1.0, 0.0, 0.0, 0.5};
  CHECK(stretto::sim::runtime_peak_memory(s, buffers_only, buffers)[1] == doctest::Approx(1.15));
}

TEST_CASE("sim.runtime_memory.split_backward_with_m_w_above_m_b" * doctest::timeout(10)) {
  // ZB-H1 at p = 2, m = 2 with M_B = 1, M_W = 3: F keeps 1, B allocates 2 more, W frees 3, so a
  // microbatch holds max(M_B, M_W) = 3 from its B to its W. The reference is that running sum
  // taken by hand over each rank's list; the runtime peak without buffers equals it.
  const stretto::schedule s = stretto::policies::make_schedule("zb-h1", {2, 2, 1});
  const uniform_costs costs{1.0, 1.0, 1.0, 0.0, 1.0, 3.0};
  costs.check();
  const std::vector<double> activation = stretto::sim::peak_memory(s, costs);
  CHECK(stretto::sim::runtime_peak_memory(s, costs, runtime_buffers{}) == activation);
  for (std::int32_t r = 0; r < 2; ++r) {
    double held = 0.0, most = 0.0;
    for (const op& o : s.ops(r)) {
      held += o.kind == op_kind::forward ? 1.0 : o.kind == op_kind::backward_input ? 2.0 : -3.0;
      most = held > most ? held : most;
    }
    CHECK(activation[static_cast<std::size_t>(r)] == doctest::Approx(most));
    CHECK(most >= 3.0);  // at least one microbatch at max(M_B, M_W)
  }
  // The simulated memory curve never goes negative and ends at 0 with M_W > M_B.
  stretto::sim::simulate_options record;
  record.record_memory = true;
  const auto sim = stretto::sim::simulate(s, costs, record);
  for (const auto& curve : sim.memory) {
    for (const auto& sample : curve) CHECK(sample.held >= -1e-12);
    CHECK(curve.back().held == doctest::Approx(0.0));
  }
}

TEST_CASE("sim.runtime_memory.rejects_bad_buffers" * doctest::timeout(10)) {
  const stretto::schedule s = stretto::policies::make_schedule("1f1b", {2, 4, 1});
  const uniform_costs costs{};
  runtime_buffers bad;
  bad.receive_lookahead = -1;
  CHECK_THROWS_WITH_AS(stretto::sim::runtime_peak_memory(s, costs, bad),
                       doctest::Contains("receive_lookahead must be >= 0"), stretto::argument_error);
  bad = {};
  bad.gradient_message = {1.0};
  CHECK_THROWS_WITH_AS(stretto::sim::runtime_peak_memory(s, costs, bad),
                       doctest::Contains("gradient_message must be empty or have 2 entries"), stretto::argument_error);
  bad = {};
  bad.backward_transient = {1.0, -1.0};
  CHECK_THROWS_WITH_AS(stretto::sim::runtime_peak_memory(s, costs, bad),
                       doctest::Contains("backward_transient must be finite numbers >= 0"), stretto::argument_error);
}
