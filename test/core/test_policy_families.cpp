// The schedules beyond 1F1B: looped (interleaved 1F1B, breadth-first), ZB-H2, ZB-V, 2BP,
// Chimera and BitPipe. Values are the written-down ones of docs/reference-numbers.md and the closed
// forms of docs/schedules.md; the grid covers every policy with the chunk counts it takes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <stretto/stretto.hpp>

#include "common/invariants.hpp"
#include "support.hpp"

using stretto::op;
using stretto::op_kind;
using stretto::pipeline_shape;
using stretto::schedule;
using stretto::sim::uniform_costs;

namespace {

// Stage costs F = 1, B = 1, W = 1 (BW = 2), no communication: a chunk costs 1/v of that.
constexpr uniform_costs equal{1.0, 1.0, 1.0, 0.0};

std::vector<std::int32_t> chunk_counts(std::string_view name) {
  if (name == "interleaved-1f1b" || name == "breadth-first" || name == "interleaved-zb") return {1, 2, 3, 4};
  if (name == "zb-v" || name == "bitpipe" || name == "v-half" || name == "v-min") return {1, 2, 3};
  return {1, 2};
}

// Checks, from the simulated timeline, that every microbatch's forward visits stages 0..S−1 in
// order and its backward (B or BW) the exact reverse (docs/failure-kinds.md, item 3).
bool backward_reverses_forward(const schedule& s) {
  const auto sim = stretto::sim::simulate(s, equal);
  for (std::int32_t j = 0; j < s.num_microbatches(); ++j) {
    std::vector<std::pair<double, std::int32_t>> forward, backward;
    for (std::int32_t r = 0; r < sim.events.num_ranks(); ++r)
      for (const auto& t : sim.events.ops(r)) {
        if (t.what.microbatch != j) continue;
        if (t.what.kind == op_kind::forward) forward.push_back({t.start, t.what.stage});
        if (stretto::produces_input_gradient(t.what.kind)) backward.push_back({t.start, t.what.stage});
      }
    std::sort(forward.begin(), forward.end());
    std::sort(backward.begin(), backward.end());
    if (forward.size() != static_cast<std::size_t>(s.num_stages()) || backward.size() != forward.size()) return false;
    for (std::size_t k = 0; k < forward.size(); ++k) {
      if (forward[k].second != static_cast<std::int32_t>(k)) return false;
      if (backward[k].second != s.num_stages() - 1 - static_cast<std::int32_t>(k)) return false;
    }
  }
  return true;
}

double span_of(std::string_view name, pipeline_shape shape, uniform_costs costs = equal) {
  return stretto::sim::simulate(stretto::policies::make_schedule(name, shape), costs).metrics.span;
}

std::vector<double> peak_of(std::string_view name, pipeline_shape shape) {
  return stretto::sim::simulate(stretto::policies::make_schedule(name, shape), equal).peak_memory;
}

}  // namespace

TEST_CASE("policies.families.grid_valid_or_rejected_by_name" * doctest::timeout(60)) {
  for (const auto& policy : stretto::policies::all_policies) {
    for (std::int32_t p = 1; p <= 8; ++p) {
      for (std::int32_t v : chunk_counts(policy.name)) {
        for (std::int32_t m : {1, p - 1, p, p + 1, 2 * p - 1, 2 * p, 3 * p + 1}) {
          if (m < 1) continue;
          const std::string name(policy.name);
          CAPTURE(name);
          CAPTURE(p);
          CAPTURE(v);
          CAPTURE(m);
          const pipeline_shape shape{p, m, v};
          const std::string problem = policy.check(shape);
          if (!problem.empty()) {
            CHECK(problem.starts_with(name + ": "));
            continue;
          }
          const schedule s = policy.generate(shape);
          CHECK(stretto::testing::check_schedule_invariants(s));
          CHECK(backward_reverses_forward(s));
          // Every rank does one full stage's worth of work per microbatch: 3m at equal times.
          const auto sim = stretto::sim::simulate(s, equal);
          for (double busy : sim.metrics.busy) CHECK(busy == doctest::Approx(3.0 * m));
        }
      }
    }
  }
}

TEST_CASE("policies.families.each_policy_accepts_its_home_shapes" * doctest::timeout(10)) {
  // A constraint written for one schedule must not leak to others (docs/failure-kinds.md, item 1).
  for (const auto& policy : stretto::policies::all_policies) {
    const std::string name(policy.name);
    CAPTURE(name);
    for (std::int32_t p : {2, 4})
      for (std::int32_t m : {p, 2 * p}) {
        // DualPipe and DualPipeV need m >= 2p (docs/schedules.md §9): m = p is not one of their home shapes.
        if (m == p && (name == "dualpipe" || name == "dualpipev")) continue;
        CHECK(policy.check({p, m, policy.default_chunks}).empty());
      }
  }
  for (const char* linear : {"gpipe", "1f1b", "zb-h1", "zb-h2", "gpipe-2bp", "1f1b-2bp"})
    for (std::int32_t p : {1, 3, 8})
      for (std::int32_t m : {1, p - 1, p}) CHECK(stretto::policies::find_policy(linear).check({p, m > 0 ? m : 1, 1}).empty());
}

TEST_CASE("policies.looped.reference_spans_and_memory" * doctest::timeout(10)) {
  // docs/reference-numbers.md, "Looped placements": stage F = 1, BW = 2, a chunk costs 1/v.
  CHECK(span_of("interleaved-1f1b", {4, 8, 2}) == 28.5);
  CHECK(span_of("interleaved-1f1b", {4, 4, 2}) == 16.5);
  CHECK(span_of("breadth-first", {4, 8, 2}) == 28.5);
  CHECK(span_of("breadth-first", {4, 4, 2}) == 16.5);
  CHECK(span_of("breadth-first", {4, 2, 2}) == 13.5);
  CHECK(peak_of("interleaved-1f1b", {4, 8, 2}) == std::vector<double>{5.5, 4.5, 3.5, 2.5});
  CHECK(peak_of("breadth-first", {4, 8, 2}) == std::vector<double>{8, 8, 8, 8});
  // Any m: p = 4, m = 2 runs one group of 2 (PyTorch's m < p), m = 6 one group of 6 (test_peer_orders.cpp).
  CHECK(stretto::policies::find_policy("interleaved-1f1b").check({4, 2, 2}).empty());
  CHECK(stretto::policies::find_policy("interleaved-1f1b").check({4, 6, 2}).empty());
  // A fixed group size N keeps Megatron-LM's rule, naming it and the valid alternatives.
  const std::string why = stretto::policies::interleaved_1f1b_group<4>::check({4, 2, 2});
  CHECK(why.find("p <= N <= m") != std::string::npos);
  CHECK(why.find("breadth-first") != std::string::npos);
  const std::string why6 = stretto::policies::interleaved_1f1b_group<6>::check({6, 3, 2});
  CHECK(why6.find("use m >= 6") != std::string::npos);
  const std::string why_mod = stretto::policies::interleaved_1f1b_group<4>::check({4, 6, 2});
  CHECK(why_mod.find("m mod N = 2, must be 0 or at least p = 4") != std::string::npos);
  CHECK(why_mod.find("use m = 4 or 8") != std::string::npos);
}

TEST_CASE("policies.looped.closed_forms" * doctest::timeout(20)) {
  for (std::int32_t p = 1; p <= 8; ++p)
    for (std::int32_t v = 2; v <= 4; ++v)
      for (std::int32_t m : {1, p - 1, p, 2 * p, 3 * p}) {
        if (m < 1) continue;
        CAPTURE(p);
        CAPTURE(v);
        CAPTURE(m);
        const double stage = 3.0;  // T_F + T_BW of a full stage
        // Breadth-first (docs/schedules.md §4.3): (p−1)·3/v of bubble for m ≥ p; each loop boundary
        // adds (p−m)·3/v when m < p. Peak m·M_B everywhere (§4.4).
        const double bf_bubble = m >= p ? (p - 1) * stage / v : ((p - 1) + (v - 1) * (p - m)) * stage / v;
        CHECK(span_of("breadth-first", {p, m, v}) == doctest::Approx(stage * m + bf_bubble));
        for (double peak : peak_of("breadth-first", {p, m, v})) CHECK(peak == doctest::Approx(m));
        if (m % p != 0 || m < p) continue;
        // Interleaved 1F1B (§3): bubble (p−1)·3/v; rank r peaks at (w_r + 1)/v M_B, or m·M_B
        // when the warm-up already holds every forward (w_r = m·v).
        CHECK(span_of("interleaved-1f1b", {p, m, v}) == doctest::Approx(stage * m + (p - 1) * stage / v));
        const auto peak = peak_of("interleaved-1f1b", {p, m, v});
        for (std::int32_t r = 0; r < p; ++r) {
          const std::int32_t w = std::min(2 * (p - r - 1) + (v - 1) * p, m * v);
          CHECK(peak[static_cast<std::size_t>(r)] == doctest::Approx(std::min(w + 1, m * v) / double(v)));
        }
      }
}

TEST_CASE("policies.zb_h2.zero_bubble_and_memory" * doctest::timeout(10)) {
  // docs/reference-numbers.md: ZB-H2 p = 4, m = 8: span 24, bubble 0, peak 7, 6, 5, 4.
  CHECK(span_of("zb-h2", {4, 8, 1}) == 24.0);
  CHECK(peak_of("zb-h2", {4, 8, 1}) == std::vector<double>{7, 6, 5, 4});
  // docs/schedules.md §7.3: zero bubble for m ≥ 2p − 1; rank r peaks at (2p−2r−1) + 2r·M_W.
  for (std::int32_t p = 1; p <= 8; ++p)
    for (std::int32_t m : {2 * p - 1, 2 * p, 3 * p + 1}) {
      CAPTURE(p);
      CAPTURE(m);
      CHECK(span_of("zb-h2", {p, m, 1}) == 3.0 * m);
      const auto peak = peak_of("zb-h2", {p, m, 1});
      for (std::int32_t r = 0; r < p; ++r) CHECK(peak[static_cast<std::size_t>(r)] == (2 * p - 2 * r - 1) + 2 * r * 0.5);
    }
  // Rank 1 (0-based 0) and rank 4 of §7.3's example.
  const schedule s = stretto::make_schedule<stretto::policies::zb_h2>({4, 8, 1});
  CHECK(stretto::testing::row_text(s.ops(0), true) ==
        stretto::testing::row_text(stretto::testing::parse_row("F1 F2 F3 F4 F5 F6 F7 B1 W1 F8 B2 W2 B3 W3 B4 W4 B5 W5 B6 W6 B7 W7 B8 W8", 0, 1), true));
  CHECK(stretto::testing::row_text(s.ops(3), true) ==
        stretto::testing::row_text(stretto::testing::parse_row("F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7 W1 F8 B8 W2 W3 W4 W5 W6 W7 W8", 3, 1), true));
}

TEST_CASE("policies.two_stage_backprop.reference_spans" * doctest::timeout(10)) {
  // docs/reference-numbers.md, 2BP table (equal times, W deferred to the end of the step).
  const std::pair<pipeline_shape, std::pair<double, double>> rows[] = {
      {{4, 1, 1}, {12, 9}}, {{4, 4, 1}, {21, 18}}, {{4, 8, 1}, {33, 30}}, {{8, 8, 1}, {45, 38}}};
  for (const auto& [shape, spans] : rows) {
    CAPTURE(shape.num_ranks);
    CAPTURE(shape.num_microbatches);
    for (const char* base : {"gpipe", "1f1b"}) {
      CHECK(span_of(base, shape) == spans.first);
      CHECK(span_of(std::string(base) + "-2bp", shape) == spans.second);
    }
  }
  // The transform applies to any schedule: interleaved 1F1B with 2BP is valid and not slower.
  const schedule looped = stretto::make_schedule<stretto::policies::interleaved_1f1b>({4, 8, 2});
  const schedule split = stretto::policies::two_stage_backprop(looped);
  CHECK(stretto::validate(split).ok());
  CHECK(split.num_ops() == looped.num_ops() / 2 * 3);
  CHECK(stretto::sim::simulate(split, equal).metrics.span <= stretto::sim::simulate(looped, equal).metrics.span);
}

TEST_CASE("policies.bitpipe.paper_orders_span_and_memory" * doctest::timeout(10)) {
  // docs/schedules.md §8.3, D = 4, N = 4 (1-based microbatches and stages of the microbatch's replica).
  const char* rows[] = {
      "F1s1 F2s1 F3s4 F3s5 F4s4 F4s5 F1s8 B1s8 F2s8 B2s8 B3s5 B3s4 B4s5 B4s4 B1s1 B2s1",
      "F1s2 F3s3 F2s2 F4s3 F3s6 F1s7 F4s6 F2s7 B1s7 B3s6 B2s7 B4s6 B3s3 B1s2 B4s3 B2s2",
      "F3s2 F1s3 F4s2 F2s3 F1s6 F3s7 F2s6 F4s7 B3s7 B1s6 B4s7 B2s6 B1s3 B3s2 B2s3 B4s2",
      "F3s1 F4s1 F1s4 F1s5 F2s4 F2s5 F3s8 B3s8 F4s8 B4s8 B1s5 B1s4 B2s5 B2s4 B3s1 B4s1",
  };
  const schedule s = stretto::make_schedule<stretto::policies::bitpipe>({4, 4, 2});
  for (std::int32_t r = 0; r < 4; ++r) {
    std::string got;
    for (const op& o : s.ops(r))
      got += stretto::detail::cat(got.empty() ? "" : " ", o.kind == op_kind::forward ? "F" : "B", o.microbatch + 1, "s",
                                  o.stage + 1);
    CHECK(got == rows[r]);
  }
  CHECK(s.replica_of(0) == 0);
  CHECK(s.replica_of(1) == 0);
  CHECK(s.replica_of(2) == 1);
  CHECK(s.replica_of(3) == 1);
  // docs/reference-numbers.md: chunk F = 1, chunk BW = 2: span 28, bubble 4 of 28 per device (1/7).
  const auto chunk_units = stretto::sim::simulate(s, uniform_costs{2.0, 2.0, 2.0, 0.0});
  CHECK(chunk_units.metrics.span == 28.0);
  CHECK(chunk_units.metrics.bubble_rate == doctest::Approx(1.0 / 7.0));
  CHECK(span_of("bitpipe", {4, 4, 2}) == 14.0);  // stage units, as stretto-plan reports it
  // §8.4: rank r peaks at (D + D/2 + min(r, D−1−r) + 1)·M_B/2.
  for (std::int32_t d : {2, 4, 6, 8}) {
    const auto peak = peak_of("bitpipe", {d, d, 2});
    for (std::int32_t r = 0; r < d; ++r)
      CHECK(peak[static_cast<std::size_t>(r)] == (d + d / 2 + std::min(r, d - 1 - r) + 1) / 2.0);
  }
  CHECK(stretto::policies::find_policy("bitpipe").check({4, 6, 2}).find("use m = 8") != std::string::npos);
  CHECK(stretto::policies::find_policy("bitpipe").check({3, 6, 2}).find("even") != std::string::npos);
}

TEST_CASE("policies.zb_v.zero_bubble_at_one_f_one_b_memory" * doctest::timeout(30)) {
  // docs/reference-numbers.md: chunk costs 1, 1, 1 with memory limit p·M_B: span 6m, bubble 0,
  // peak p·M_B; checked here for every m from 2p − 1 to 4p and p up to 16.
  for (std::int32_t p = 1; p <= 16; p += (p < 8 ? 1 : 8)) {
    for (std::int32_t m = std::max(1, 2 * p - 1); m <= 4 * p; ++m) {
      CAPTURE(p);
      CAPTURE(m);
      const auto sim = stretto::sim::simulate(stretto::make_schedule<stretto::policies::zb_v>({p, m, 2}),
                                              uniform_costs{2.0, 2.0, 2.0, 0.0});
      CHECK(sim.metrics.span == 6.0 * m);
      for (double peak : sim.peak_memory) CHECK(peak <= p);
      CHECK(sim.peak_memory.front() == p);
    }
  }
}

TEST_CASE("policies.chimera.two_replicas_beat_one_direction" * doctest::timeout(10)) {
  for (std::int32_t d : {2, 4, 6, 8}) {
    CAPTURE(d);
    const schedule s = stretto::make_schedule<stretto::policies::chimera>({d, 2 * d, 1});
    CHECK(s.num_replicas() == 2);
    for (std::int32_t r = 0; r < d; ++r)  // each rank holds one stage of each replica
      CHECK(s.stages_on_rank(r) == std::vector<std::int32_t>{std::min(r, d - 1 - r), std::max(r, d - 1 - r)});
    const auto unit = stretto::sim::simulate(stretto::make_schedule<stretto::policies::chimera>({d, d, 1}), equal);
    const auto one_f_one_b = stretto::sim::simulate(stretto::make_schedule<stretto::policies::one_f_one_b>({d, d, 1}), equal);
    CHECK(unit.metrics.span < one_f_one_b.metrics.span);
    // Direct concatenation: two units take exactly twice one unit.
    CHECK(stretto::sim::simulate(s, equal).metrics.span == 2 * unit.metrics.span);
  }
  CHECK(span_of("chimera", {4, 4, 1}) == 17.0);  // this construction's D = 4 unit (1F1B: 21)
}
