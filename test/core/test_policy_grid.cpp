// Every registered policy over the shape grid p = 1..8, m in {1, 2, p−1, p, p+1, 2p, 3p+1}
// (docs/failure-kinds.md 1, 7, 8): accepted, valid, simulated; op counts, equal-time spans and
// peak memory against the closed forms of docs/schedules.md §1, §2 and §7.2.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <stretto/stretto.hpp>

#include "common/invariants.hpp"
#include "core/support.hpp"

namespace {

using stretto::pipeline_shape;
using stretto::schedule;
using stretto::sim::uniform_costs;
using stretto::testing::grid_max_ranks;
using stretto::testing::grid_microbatches;

// T_F = T_B = T_W = 1, T_comm = 0, M_B = 1, M_W = 0.5 (docs/reference-numbers.md, "Equal times").
constexpr uniform_costs equal_times{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};

enum class backward_form { fused, split };

// What the papers say about each policy of the registry; a policy not listed here still gets
// the generic checks, and a message asks for its expectations.
std::optional<backward_form> known_backward_form(std::string_view name) {
  if (name == "gpipe" || name == "1f1b") return backward_form::fused;
  if (name == "zb-h1") return backward_form::split;
  return std::nullopt;
}

// (m + p − 1)(T_F + T_B + T_W) at equal times: docs/schedules.md §1 (GPipe) and §2 (1F1B).
double one_f_one_b_span(std::int32_t p, std::int32_t m) { return 3.0 * (m + p - 1); }

}  // namespace

TEST_CASE("policies.grid.accepted_valid_and_simulated" * doctest::timeout(10)) {
  for (const auto& policy : stretto::policies::all_policies) {
    for (std::int32_t p = 1; p <= grid_max_ranks; ++p) {
      for (std::int32_t m : grid_microbatches(p)) {
        const std::string name(policy.name);
        CAPTURE(name);
        CAPTURE(p);
        CAPTURE(m);
        const pipeline_shape shape{p, m, 1};
        const std::string problem = policy.check(shape);
        const auto form = known_backward_form(policy.name);
        if (!form) {
          MESSAGE("policy '" << name << "' has no expectations in test_policy_grid.cpp yet");
          if (!problem.empty()) continue;
        }
        CHECK_MESSAGE(problem.empty(), problem);
        if (!problem.empty()) continue;

        const schedule s = policy.generate(shape);
        CHECK(s.shape() == shape);
        CHECK(s.placement() == policy.placement);
        CHECK(stretto::testing::check_schedule_invariants(s));

        const auto expected_ops = static_cast<std::size_t>(p) * static_cast<std::size_t>(m);
        if (form == backward_form::fused) CHECK(s.num_ops() == expected_ops * 2);
        if (form == backward_form::split) CHECK(s.num_ops() == expected_ops * 3);
        // DualPipe fuses most backwards and splits a few (docs/schedules.md §9): between the two.
        if (!form && name == "dualpipe") CHECK((s.num_ops() > expected_ops * 2 && s.num_ops() < expected_ops * 3));
        else if (!form) CHECK((s.num_ops() == expected_ops * 2 || s.num_ops() == expected_ops * 3));

        const auto result = stretto::sim::simulate(s, equal_times);
        REQUIRE(result.events.num_ranks() == p);
        REQUIRE(result.peak_memory.size() == static_cast<std::size_t>(p));
        std::size_t simulated = 0;
        for (std::int32_t r = 0; r < p; ++r) simulated += result.events.ops(r).size();
        CHECK(simulated == s.num_ops());
        // Each rank does m·(T_F + T_B + T_W) = 3m of work (one stage per rank).
        for (std::int32_t r = 0; r < p; ++r) {
          CAPTURE(r);
          CHECK(result.metrics.busy[static_cast<std::size_t>(r)] == doctest::Approx(3.0 * m));
        }
      }
    }
  }
}

TEST_CASE("policies.grid.equal_time_span" * doctest::timeout(10)) {
  for (const char* name : {"gpipe", "1f1b"}) {
    for (std::int32_t p = 1; p <= grid_max_ranks; ++p) {
      for (std::int32_t m : grid_microbatches(p)) {
        CAPTURE(name);
        CAPTURE(p);
        CAPTURE(m);
        const auto result =
            stretto::sim::simulate(stretto::policies::make_schedule(name, {p, m, 1}), equal_times);
        // docs/schedules.md §1/§2: span (m+p−1)(T_F+T_BW), bubble rate (p−1)/(m+p−1), overhead (p−1)/m.
        CHECK(result.metrics.span == one_f_one_b_span(p, m));
        CHECK(result.metrics.bubble_rate == doctest::Approx(double(p - 1) / double(m + p - 1)));
        CHECK(result.metrics.bubble_overhead == doctest::Approx(double(p - 1) / double(m)));
      }
    }
  }
}

TEST_CASE("policies.grid.zb_h1_equal_time_span" * doctest::timeout(10)) {
  for (std::int32_t p = 1; p <= grid_max_ranks; ++p) {
    for (std::int32_t m : grid_microbatches(p)) {
      CAPTURE(p);
      CAPTURE(m);
      const auto span = stretto::sim::simulate(
                            stretto::make_schedule<stretto::policies::zb_h1>({p, m, 1}), equal_times)
                            .metrics.span;
      if (m >= p) {
        // docs/schedules.md §7.2: bubble (p−1)(T_F+T_B−T_W) on top of 3m of work, once the
        // pattern is fully formed (m ≥ p).
        CHECK(span == 3.0 * m + (p - 1) * (1.0 + 1.0 - 1.0));
        CHECK(span == 3.0 * m + p - 1);
      } else {
        // The paper gives no closed form for m < p ("degrades gracefully"): only bounds.
        // Lower: 3m of work per rank; and rank 0 starts with F(0, 0) and ends no earlier than
        // W(0, 0), which follows the whole F chain and B chain of microbatch 0 (§0 dependencies):
        // p·T_F + p·T_B + T_W = 2p + 1. Upper: never worse than 1F1B.
        CHECK(span >= 3.0 * m);
        CHECK(span >= 2.0 * p + 1.0);
        CHECK(span <= one_f_one_b_span(p, m));
      }
    }
  }
}

TEST_CASE("policies.grid.peak_memory" * doctest::timeout(10)) {
  for (std::int32_t p = 1; p <= grid_max_ranks; ++p) {
    for (std::int32_t m : grid_microbatches(p)) {
      CAPTURE(p);
      CAPTURE(m);
      const auto gpipe = stretto::sim::peak_memory(
          stretto::make_schedule<stretto::policies::gpipe>({p, m, 1}), equal_times);
      const auto one_f_one_b = stretto::sim::peak_memory(
          stretto::make_schedule<stretto::policies::one_f_one_b>({p, m, 1}), equal_times);
      const auto zb_h1 = stretto::sim::peak_memory(
          stretto::make_schedule<stretto::policies::zb_h1>({p, m, 1}), equal_times);
      REQUIRE(gpipe.size() == static_cast<std::size_t>(p));
      REQUIRE(one_f_one_b.size() == static_cast<std::size_t>(p));
      REQUIRE(zb_h1.size() == static_cast<std::size_t>(p));
      for (std::int32_t r = 0; r < p; ++r) {
        CAPTURE(r);
        const auto i = static_cast<std::size_t>(r);
        // §1: GPipe holds all m microbatches' activations on every rank.
        CHECK(gpipe[i] == double(m));
        // §2: 1F1B rank r holds min(p − r, m)·M_B.
        CHECK(one_f_one_b[i] == double(std::min(p - r, m)));
        if (m >= p) {
          // §7.2 (1-based device i = r + 1): (p − i + 1)·M_B + (i − 1)·M_W, M_W = 0.5.
          CHECK(zb_h1[i] == (p - r) * 1.0 + r * 0.5);
        } else {
          // No closed form for m < p; bounds only. The F/B order is 1F1B's (§7.2 rule 1) and
          // deferring W only delays frees, so at least 1F1B's min(p − r, m). At most m·M_B
          // (only m microbatches exist), and at most (p − r)·M_B + r·M_W: at most p − r
          // microbatches are between F and B (1F1B order) and at most r between B and W
          // while F's remain (W lags B by r, rule 2).
          CHECK(zb_h1[i] >= double(std::min(p - r, m)));
          CHECK(zb_h1[i] <= double(m));
          CHECK(zb_h1[i] <= (p - r) * 1.0 + r * 0.5);
        }
      }
    }
  }
}

TEST_CASE("policies.grid.unequal_time_span" * doctest::timeout(10)) {
  // T_comm = 0, times in the order of the paper's FLOPs model (docs/schedules.md §0: T_W < T_F, and
  // T_B + T_W ≈ 2·T_F), plus the 1.5B timings of Zero Bubble Table 9.
  // GPipe and 1F1B: span (m + p − 1)(T_F + T_B + T_W) (§1, §2: bubble (p−1)(T_F+T_BW)).
  // ZB-H1 (m ≥ p): m(T_F + T_B + T_W) + (p − 1)(T_F + T_B − T_W) (§7.2, ZB Table 2).
  struct times {
    double t_f, t_b, t_w;
  };
  for (const times& t : {times{1.0, 2.0, 1.0}, times{2.0, 2.0, 1.0}, times{2.0, 3.0, 1.0},
                         times{1.0, 1.0, 0.5}, times{18.522, 18.086, 9.337}}) {
    const uniform_costs costs{t.t_f, t.t_b, t.t_w, 0.0};
    const double step = t.t_f + t.t_b + t.t_w;
    for (std::int32_t p = 1; p <= grid_max_ranks; ++p) {
      for (std::int32_t m : grid_microbatches(p)) {
        CAPTURE(t.t_f);
        CAPTURE(t.t_b);
        CAPTURE(t.t_w);
        CAPTURE(p);
        CAPTURE(m);
        for (const char* name : {"gpipe", "1f1b"}) {
          CAPTURE(name);
          const auto span =
              stretto::sim::simulate(stretto::policies::make_schedule(name, {p, m, 1}), costs).metrics.span;
          CHECK(span == doctest::Approx((m + p - 1) * step));
        }
        if (m >= p) {
          const auto span = stretto::sim::simulate(
                                stretto::make_schedule<stretto::policies::zb_h1>({p, m, 1}), costs)
                                .metrics.span;
          CHECK(span == doctest::Approx(m * step + (p - 1) * (t.t_f + t.t_b - t.t_w)));
        }
      }
    }
  }
}
