// V-Half and V-Min (Qi, Wan, Amar, Lin 2024, "Pipeline Parallelism with Controllable Memory",
// arXiv 2405.15362): exact per-rank orders of the reference construction, spans at equal and
// unequal times, the peak-memory and bubble closed forms, and validity over a grid of shapes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <stretto/stretto.hpp>

#include "common/invariants.hpp"

using stretto::op_kind;
using stretto::pipeline_shape;
using stretto::schedule;
using stretto::sim::uniform_costs;

namespace {

// A rank's order in the notation of docs/controllable-memory.md: kind (F, B, W), chunk (A for
// stage r, C for stage 2p−1−r), 0-based microbatch, e.g. "FA0 FC0 BC0 WC0 BA0 WA0".
std::string chunk_row(const schedule& s, std::int32_t r) {
  std::string out;
  for (const auto& o : s.ops(r)) {
    if (!out.empty()) out += ' ';
    out += o.kind == op_kind::forward ? 'F' : o.kind == op_kind::backward_input ? 'B' : 'W';
    out += o.stage == r ? 'A' : 'C';
    out += std::to_string(o.microbatch);
  }
  return out;
}

schedule make(std::string_view name, std::int32_t p, std::int32_t m) {
  return stretto::policies::make_schedule(name, {p, m, 2});
}

struct reference_row {
  std::int32_t p, m, rank;
  const char* row;
};

// Produced by running the reference construction itself, sail-sg zero-bubble-pipeline-parallelism
// megatron/core/pipeline_parallel/zerobubble/scheduler/zbv_greedy.py at commit 39f2c186
// (unmodified; its megatron import stubbed), PipelineGraph(p, m, "half" | "min", 1000, 1000, 1000,
// 1).schedule_from_pattern(..., do_reorder=True): the per-rank stage_order, with its types 0..5
// written FA, FC, BC, BA, WC, WA.
constexpr reference_row v_half_reference[] = {
    {2, 1, 0,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {2, 1, 1,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {2, 3, 0,
     "FA0 FA1 FA2 FC0 BC0 WC0 FC1 BA0 BC1 WC1 FC2 BC2 BA1 WC2 BA2 WA0 WA1 WA2"},
    {2, 3, 1,
     "FA0 FC0 FA1 FC1 BC0 WC0 BA0 WA0 FA2 FC2 BC1 BA1 BC2 BA2 WC1 WC2 WA1 WA2"},
    {3, 1, 0,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {3, 1, 1,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {3, 1, 2,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {3, 5, 0,
     "FA0 FA1 FA2 FC0 BC0 WC0 FC1 BC1 WC1 BA0 WA0 FA3 FC2 BC2 WC2 BA1 WA1 FA4 FC3 BC3 WC3 BA2 "
     "WA2 FC4 BC4 BA3 WC4 WA3 BA4 WA4"},
    {3, 5, 1,
     "FA0 FA1 FC0 FC1 BC0 WC0 FA2 BA0 BC1 WC1 FC2 WA0 FA3 BA1 BC2 WC2 FC3 WA1 FA4 BA2 BC3 WC3 "
     "FC4 WA2 BA3 BC4 WC4 WA3 BA4 WA4"},
    {3, 5, 2,
     "FA0 FC0 FA1 FC1 BC0 WC0 BA0 WA0 FA2 FC2 BC1 WC1 BA1 WA1 FA3 FC3 BC2 BA2 WC2 FA4 WA2 FC4 "
     "BC3 BA3 WC3 WA3 BC4 BA4 WC4 WA4"},
    {5, 3, 0,
     "FA0 FA1 FA2 FC0 BC0 WC0 FC1 BC1 WC1 FC2 BC2 WC2 BA0 WA0 BA1 WA1 BA2 WA2"},
    {5, 3, 1,
     "FA0 FA1 FA2 FC0 FC1 BC0 WC0 FC2 BC1 WC1 BA0 BC2 WC2 WA0 BA1 WA1 BA2 WA2"},
    {5, 3, 2,
     "FA0 FA1 FA2 FC0 FC1 FC2 BC0 WC0 BC1 WC1 BA0 WA0 BC2 WC2 BA1 WA1 BA2 WA2"},
    {5, 3, 3,
     "FA0 FA1 FA2 FC0 FC1 FC2 BC0 WC0 BC1 BA0 WC1 WA0 BA1 BC2 WC2 WA1 BA2 WA2"},
    {5, 3, 4,
     "FA0 FC0 FA1 FC1 FA2 FC2 BC0 WC0 BA0 WA0 BC1 WC1 BA1 WA1 BC2 WC2 BA2 WA2"},
    {6, 12, 0,
     "FA0 FA1 FA2 FA3 FA4 FA5 FA6 FC0 BC0 WC0 FC1 BC1 WC1 FC2 BC2 WC2 FC3 BA0 BC3 WC3 FC4 WA0 "
     "FA7 BA1 BC4 WC4 FC5 WA1 FA8 BA2 BC5 WC5 FC6 WA2 FA9 BA3 BC6 WC6 FC7 WA3 FA10 BA4 BC7 "
     "WC7 FC8 WA4 FA11 BA5 BC8 WC8 FC9 BC9 WC9 BA6 WA5 WA6 FC10 BC10 WC10 BA7 WA7 FC11 BC11 "
     "BA8 WC11 BA9 WA8 WA9 BA10 WA10 BA11 WA11"},
    {6, 12, 5,
     "FA0 FC0 FA1 FC1 FA2 FC2 FA3 FC3 BC0 WC0 BA0 WA0 FA4 FC4 BC1 WC1 BA1 WA1 FA5 FC5 BC2 WC2 "
     "BA2 WA2 FA6 FC6 BC3 WC3 BA3 WA3 FA7 FC7 BC4 WC4 BA4 WA4 FA8 FC8 BC5 WC5 BA5 WA5 FA9 FC9 "
     "BC6 BA6 WC6 FA10 WA6 FC10 BC7 BA7 WC7 FA11 WA7 FC11 BC8 BA8 BC9 BA9 WC8 WC9 BC10 BA10 "
     "WC10 WA8 BC11 BA11 WC11 WA9 WA10 WA11"},
    {8, 4, 0,
     "FA0 FA1 FA2 FA3 FC0 BC0 WC0 FC1 BC1 WC1 FC2 BC2 WC2 FC3 BC3 WC3 BA0 WA0 BA1 WA1 BA2 WA2 "
     "BA3 WA3"},
    {8, 4, 3,
     "FA0 FA1 FA2 FA3 FC0 FC1 FC2 FC3 BC0 WC0 BC1 WC1 BC2 WC2 BA0 WA0 BC3 WC3 BA1 WA1 BA2 WA2 "
     "BA3 WA3"},
    {8, 4, 7,
     "FA0 FC0 FA1 FC1 FA2 FC2 FA3 FC3 BC0 WC0 BA0 WA0 BC1 WC1 BA1 WA1 BC2 WC2 BA2 WA2 BC3 WC3 "
     "BA3 WA3"},
    {8, 16, 0,
     "FA0 FA1 FA2 FA3 FA4 FA5 FA6 FA7 FA8 FC0 BC0 WC0 FC1 BC1 WC1 FC2 BC2 WC2 FC3 BC3 WC3 FC4 "
     "BA0 BC4 WC4 FC5 WA0 FA9 BA1 BC5 WC5 FC6 WA1 FA10 BA2 BC6 WC6 FC7 WA2 FA11 BA3 BC7 WC7 "
     "FC8 WA3 FA12 BA4 BC8 WC8 FC9 WA4 FA13 BA5 BC9 WC9 FC10 WA5 FA14 BA6 BC10 WC10 FC11 WA6 "
     "FA15 BA7 BC11 WC11 FC12 BC12 WC12 BA8 WA7 WA8 FC13 BC13 WC13 BA9 WA9 FC14 BC14 WC14 "
     "BA10 WA10 FC15 BC15 BA11 WC15 BA12 WA11 WA12 BA13 WA13 BA14 WA14 BA15 WA15"},
    {8, 16, 7,
     "FA0 FC0 FA1 FC1 FA2 FC2 FA3 FC3 FA4 FC4 BC0 WC0 BA0 WA0 FA5 FC5 BC1 WC1 BA1 WA1 FA6 FC6 "
     "BC2 WC2 BA2 WA2 FA7 FC7 BC3 WC3 BA3 WA3 FA8 FC8 BC4 WC4 BA4 WA4 FA9 FC9 BC5 WC5 BA5 WA5 "
     "FA10 FC10 BC6 WC6 BA6 WA6 FA11 FC11 BC7 WC7 BA7 WA7 FA12 FC12 BC8 BA8 WC8 FA13 WA8 FC13 "
     "BC9 BA9 WC9 FA14 WA9 FC14 BC10 BA10 WC10 FA15 WA10 FC15 BC11 BA11 BC12 BA12 WC11 WC12 "
     "BC13 BA13 WC13 WA11 BC14 BA14 WC14 WA12 BC15 BA15 WC15 WA13 WA14 WA15"},
};

constexpr reference_row v_min_reference[] = {
    {2, 2, 0,
     "FA0 FA1 FC0 BC0 WC0 BA0 WA0 FC1 BC1 WC1 BA1 WA1"},
    {2, 2, 1,
     "FA0 FC0 BC0 BA0 FA1 FC1 WC0 WA0 BC1 BA1 WC1 WA1"},
    {3, 2, 0,
     "FA0 FA1 FC0 BC0 WC0 FC1 BA0 BC1 WC1 WA0 BA1 WA1"},
    {3, 2, 1,
     "FA0 FA1 FC0 FC1 BC0 WC0 BA0 WA0 BC1 WC1 BA1 WA1"},
    {3, 2, 2,
     "FA0 FC0 FA1 FC1 BC0 BA0 WC0 WA0 BC1 BA1 WC1 WA1"},
    {3, 6, 0,
     "FA0 FA1 FA2 FC0 BC0 WC0 FC1 BA0 BC1 WC1 WA0 FC2 FA3 BA1 BC2 WC2 WA1 FC3 FA4 BA2 BC3 WC3 "
     "WA2 FC4 FA5 BA3 BC4 WC4 WA3 FC5 BC5 BA4 WC5 WA4 BA5 WA5"},
    {3, 6, 2,
     "FA0 FC0 FA1 FC1 BC0 BA0 WC0 WA0 FA2 FC2 BC1 BA1 WC1 WA1 FA3 FC3 BC2 BA2 WC2 WA2 FA4 FC4 "
     "BC3 BA3 WC3 WA3 FA5 FC5 BC4 BA4 WC4 WA4 BC5 BA5 WC5 WA5"},
    {5, 10, 0,
     "FA0 FA1 FA2 FA3 FC0 BC0 WC0 FC1 BC1 WC1 BA0 WA0 FC2 BC2 WC2 FA4 BA1 WA1 FC3 BC3 WC3 FA5 "
     "BA2 WA2 FC4 BC4 WC4 FA6 BA3 WA3 FC5 BC5 WC5 FA7 BA4 WA4 FC6 BC6 WC6 FA8 BA5 WA5 FC7 BC7 "
     "WC7 FA9 BA6 WA6 FC8 BC8 WC8 BA7 WA7 FC9 BC9 WC9 BA8 WA8 BA9 WA9"},
    {5, 10, 4,
     "FA0 FC0 FA1 FC1 FA2 FC2 BC0 BA0 WC0 WA0 BC1 BA1 WC1 FA3 FC3 WA1 BC2 BA2 FA4 FC4 WC2 WA2 "
     "BC3 BA3 FA5 FC5 WC3 WA3 BC4 BA4 FA6 FC6 WC4 WA4 BC5 BA5 FA7 FC7 WC5 WA5 BC6 BA6 FA8 FC8 "
     "WC6 WA6 BC7 BA7 FA9 FC9 WC7 WA7 BC8 BA8 WC8 WA8 BC9 BA9 WC9 WA9"},
    {6, 4, 0,
     "FA0 FA1 FA2 FA3 FC0 BC0 WC0 FC1 BC1 WC1 FC2 BA0 BC2 WC2 WA0 FC3 BA1 BC3 WC3 WA1 BA2 WA2 "
     "BA3 WA3"},
    {6, 4, 1,
     "FA0 FA1 FA2 FA3 FC0 FC1 BC0 WC0 BC1 FC2 WC1 BA0 WA0 BC2 FC3 WC2 BA1 WA1 BC3 WC3 BA2 WA2 "
     "BA3 WA3"},
    {6, 4, 2,
     "FA0 FA1 FA2 FA3 FC0 FC1 BC0 WC0 FC2 BC1 WC1 BA0 WA0 FC3 BC2 BA1 WC2 WA1 BC3 BA2 WC3 WA2 "
     "BA3 WA3"},
    {6, 4, 3,
     "FA0 FA1 FA2 FC0 FC1 FC2 BC0 WC0 FA3 BC1 WC1 BA0 WA0 FC3 BA1 BC2 WC2 WA1 BA2 BC3 WC3 WA2 "
     "BA3 WA3"},
    {6, 4, 4,
     "FA0 FA1 FA2 FC0 FC1 FC2 BC0 WC0 FA3 BA0 WA0 BC1 WC1 FC3 BA1 WA1 BC2 WC2 BA2 WA2 BC3 WC3 "
     "BA3 WA3"},
    {6, 4, 5,
     "FA0 FC0 FA1 FC1 FA2 FC2 BC0 BA0 WC0 WA0 FA3 FC3 BC1 BA1 WC1 WA1 BC2 BA2 WC2 WA2 BC3 BA3 "
     "WC3 WA3"},
    {6, 12, 0,
     "FA0 FA1 FA2 FA3 FA4 FC0 BC0 WC0 FC1 BC1 WC1 FC2 BA0 BC2 WC2 WA0 FC3 FA5 BA1 BC3 WC3 WA1 "
     "FC4 FA6 BA2 BC4 WC4 WA2 FC5 FA7 BA3 BC5 WC5 WA3 FC6 FA8 BA4 BC6 WC6 WA4 FC7 FA9 BA5 BC7 "
     "WC7 WA5 FC8 FA10 BA6 BC8 WC8 WA6 FC9 FA11 BA7 BC9 WC9 WA7 FC10 BC10 BA8 WC10 WA8 FC11 "
     "BC11 BA9 WC11 WA9 BA10 WA10 BA11 WA11"},
    {6, 12, 3,
     "FA0 FA1 FA2 FC0 FC1 FC2 BC0 WC0 FA3 BC1 WC1 BA0 WA0 FC3 FA4 BA1 BC2 WC2 WA1 FC4 FA5 BA2 "
     "BC3 WC3 WA2 FC5 FA6 BA3 BC4 WC4 WA3 FC6 FA7 BA4 BC5 WC5 WA4 FC7 FA8 BA5 BC6 WC6 WA5 FC8 "
     "FA9 BA6 BC7 WC7 WA6 FC9 FA10 BA7 BC8 WC8 WA7 FC10 FA11 BA8 BC9 WC9 WA8 FC11 BC10 BA9 "
     "WC10 WA9 BA10 BC11 WC11 WA10 BA11 WA11"},
    {8, 1, 0,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {8, 1, 1,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {8, 1, 2,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {8, 1, 3,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {8, 1, 4,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {8, 1, 5,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {8, 1, 6,
     "FA0 FC0 BC0 WC0 BA0 WA0"},
    {8, 1, 7,
     "FA0 FC0 BC0 BA0 WC0 WA0"},
    {8, 16, 0,
     "FA0 FA1 FA2 FA3 FA4 FA5 FC0 BC0 WC0 FC1 BC1 WC1 FC2 BC2 WC2 BA0 WA0 FC3 BC3 WC3 FA6 BA1 "
     "WA1 FC4 BC4 WC4 FA7 BA2 WA2 FC5 BC5 WC5 FA8 BA3 WA3 FC6 BC6 WC6 FA9 BA4 WA4 FC7 BC7 WC7 "
     "FA10 BA5 WA5 FC8 BC8 WC8 FA11 BA6 WA6 FC9 BC9 WC9 FA12 BA7 WA7 FC10 BC10 WC10 FA13 BA8 "
     "WA8 FC11 BC11 WC11 FA14 BA9 WA9 FC12 BC12 WC12 FA15 BA10 WA10 FC13 BC13 WC13 BA11 WA11 "
     "FC14 BC14 WC14 BA12 WA12 FC15 BC15 WC15 BA13 WA13 BA14 WA14 BA15 WA15"},
    {8, 16, 7,
     "FA0 FC0 FA1 FC1 FA2 FC2 FA3 FC3 BC0 BA0 WC0 WA0 BC1 BA1 FA4 FC4 WC1 WA1 BC2 BA2 WC2 FA5 "
     "FC5 WA2 BC3 BA3 FA6 FC6 WC3 WA3 BC4 BA4 FA7 FC7 WC4 WA4 BC5 BA5 FA8 FC8 WC5 WA5 BC6 BA6 "
     "FA9 FC9 WC6 WA6 BC7 BA7 FA10 FC10 WC7 WA7 BC8 BA8 FA11 FC11 WC8 WA8 BC9 BA9 FA12 FC12 "
     "WC9 WA9 BC10 BA10 FA13 FC13 WC10 WA10 BC11 BA11 FA14 FC14 WC11 WA11 BC12 BA12 FA15 FC15 "
     "WC12 WA12 BC13 BA13 WC13 WA13 BC14 BA14 WC14 WA14 BC15 BA15 WC15 WA15"},
};

// Costs per full stage (a chunk takes half): E = (1, 1, 1), U1 = (1, 2, 1), U2 = (2, 3, 1); no
// communication cost.
constexpr uniform_costs cost_e{1.0, 1.0, 1.0, 0.0};
constexpr uniform_costs cost_u1{1.0, 2.0, 1.0, 0.0};
constexpr uniform_costs cost_u2{2.0, 3.0, 1.0, 0.0};

double span(std::string_view name, std::int32_t p, std::int32_t m, const uniform_costs& costs) {
  return stretto::sim::simulate(make(name, p, m), costs).metrics.span;
}

}  // namespace

TEST_CASE("policies.controllable_memory.paper_vectors_p4_m8" * doctest::timeout(10)) {
  // Rank 0 at p = 4, m = 8 (the construction's own output for its default setting).
  CHECK(chunk_row(make("v-half", 4, 8), 0) ==
        "FA0 FA1 FA2 FA3 FA4 FC0 BC0 WC0 FC1 BC1 WC1 FC2 BA0 BC2 WC2 FC3 WA0 FA5 BA1 BC3 WC3 FC4 WA1 FA6 "
        "BA2 BC4 WC4 FC5 WA2 FA7 BA3 BC5 WC5 FC6 BC6 WC6 BA4 WA3 WA4 FC7 BC7 BA5 WC7 BA6 WA5 WA6 BA7 WA7");
  CHECK(chunk_row(make("v-min", 4, 8), 0) ==
        "FA0 FA1 FA2 FC0 BC0 WC0 FC1 BC1 WC1 BA0 WA0 FA3 FC2 BC2 BA1 WC2 WA1 FA4 FC3 BC3 BA2 WC3 WA2 FA5 "
        "FC4 BC4 BA3 WC4 WA3 FA6 FC5 BC5 BA4 WC5 WA4 FA7 FC6 BC6 BA5 WC6 WA5 FC7 BC7 BA6 WC7 WA6 BA7 WA7");
}

TEST_CASE("policies.controllable_memory.reference_orders" * doctest::timeout(20)) {
  for (const auto& [name, rows] : {std::pair{std::string_view("v-half"), std::span<const reference_row>(v_half_reference)},
                                   std::pair{std::string_view("v-min"), std::span<const reference_row>(v_min_reference)}}) {
    for (const reference_row& row : rows) {
      CAPTURE(name);
      CAPTURE(row.p);
      CAPTURE(row.m);
      CAPTURE(row.rank);
      CHECK(chunk_row(make(name, row.p, row.m), row.rank) == row.row);
    }
  }
}

TEST_CASE("policies.controllable_memory.worked_spans" * doctest::timeout(20)) {
  // Spans at T_comm = 0 of the reference construction's orders, each also checked with two
  // independent evaluators: (p, m, E, U1, U2).
  struct row {
    std::int32_t p, m;
    double e, u1, u2;
  };
  for (const row& r : {row{4, 8, 26.5, 41.0, 62.0}, row{6, 12, 41.5, 64.5, 97.5}, row{8, 16, 56.5, 88.0, 133.0},
                       row{8, 24, 80.5, 124.0, 185.0}}) {
    CAPTURE(r.p);
    CAPTURE(r.m);
    CHECK(span("v-half", r.p, r.m, cost_e) == r.e);
    CHECK(span("v-half", r.p, r.m, cost_u1) == r.u1);
    CHECK(span("v-half", r.p, r.m, cost_u2) == r.u2);
  }
  for (const row& r : {row{4, 8, 29.5, 54.5, 83.5}, row{6, 12, 44.5, 82.5, 126.5}, row{8, 16, 61.5, 113.5, 174.0},
                       row{8, 24, 85.5, 161.5, 246.0}}) {
    CAPTURE(r.p);
    CAPTURE(r.m);
    CHECK(span("v-min", r.p, r.m, cost_e) == r.e);
    CHECK(span("v-min", r.p, r.m, cost_u1) == r.u1);
    CHECK(span("v-min", r.p, r.m, cost_u2) == r.u2);
  }
}

TEST_CASE("policies.controllable_memory.equal_time_bubble" * doctest::timeout(60)) {
  // Bubble span − 3m (T_F = T_B = T_W = 1, no communication) for m ≥ 2p, which no longer depends
  // on m: V-Half 1.5(p−1) − 2 for even p, 1.5(p−1) − 0.5 for odd p; V-Min 2(p−1) − 1.5 when 3
  // divides p, else 2(p−1) − 0.5. 1F1B's is 3(p−1).
  for (std::int32_t p = 2; p <= 12; ++p) {
    for (std::int32_t m : {2 * p, 2 * p + 1, 3 * p}) {
      CAPTURE(p);
      CAPTURE(m);
      const double half = 1.5 * (p - 1) - (p % 2 == 0 ? 2.0 : 0.5);
      const double min = 2.0 * (p - 1) - (p % 3 == 0 ? 1.5 : 0.5);
      if (p >= 3) CHECK(span("v-half", p, m, cost_e) - 3.0 * m == half);
      CHECK(span("v-min", p, m, cost_e) - 3.0 * m == min);
      const double one_f_one_b =
          stretto::sim::simulate(stretto::policies::make_schedule("1f1b", {p, m, 1}), cost_e).metrics.span;
      CHECK(one_f_one_b - 3.0 * m == 3.0 * (p - 1));
      CHECK(span("v-min", p, m, cost_e) < one_f_one_b);
    }
  }
  // p = 2 is the one V-Half shape off the even-p line: 0.5 instead of −0.5 (an idle half slot).
  CHECK(span("v-half", 2, 6, cost_e) == 18.5);
}

TEST_CASE("policies.controllable_memory.peak_memory" * doctest::timeout(60)) {
  // Peak activation per rank in M_B, at m = 3p. Two accountings: a chunk's F holds M_B/2 until
  // its W (M_W = M_B), and Zero Bubble's split, where B frees half and W the other half
  // (M_W = M_B/2), which can only be lower. V-Half: ⌊(p+2)/2⌋ on every rank in both. V-Min:
  // at most ⌊(p+4)/3⌋ on every rank and equal to it on the last rank for p ≥ 3; under the split
  // accounting ranks 0 and 1 are M_B/2 lower at p = 8. ZB-V, for scale: p.
  const uniform_costs held{1.0, 1.0, 1.0, 0.0, 1.0, 1.0};
  const uniform_costs split{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};
  for (std::int32_t p = 2; p <= 16; ++p) {
    CAPTURE(p);
    const std::int32_t m = 3 * p;
    const auto half_held = stretto::sim::simulate(make("v-half", p, m), held).peak_memory;
    const auto half_split = stretto::sim::simulate(make("v-half", p, m), split).peak_memory;
    const auto min_held = stretto::sim::simulate(make("v-min", p, m), held).peak_memory;
    const auto min_split = stretto::sim::simulate(make("v-min", p, m), split).peak_memory;
    for (std::int32_t r = 0; r < p; ++r) {
      CAPTURE(r);
      const auto i = static_cast<std::size_t>(r);
      CHECK(half_held[i] == (p + 2) / 2);
      CHECK(half_split[i] == (p + 2) / 2);
      CHECK(min_held[i] <= (p + 4) / 3);
      CHECK(min_split[i] <= min_held[i]);
    }
    if (p >= 3) CHECK(min_held.back() == (p + 4) / 3);
    if (p >= 3) CHECK(min_split.back() == (p + 4) / 3);
  }
  const auto min_split_8 = stretto::sim::simulate(make("v-min", 8, 24), split).peak_memory;
  CHECK(min_split_8[0] == 3.5);
  CHECK(min_split_8[1] == 3.5);
  CHECK(min_split_8[2] == 4.0);
  const auto zb_v_8 = stretto::sim::simulate(make("zb-v", 8, 24), split).peak_memory;
  CHECK(zb_v_8.front() == 8.0);
}

TEST_CASE("policies.controllable_memory.valid_over_the_grid" * doctest::timeout(120)) {
  for (const std::string_view name : {"v-half", "v-min"}) {
    const auto& policy = stretto::policies::find_policy(name);
    CHECK(policy.default_chunks == 2);
    CHECK(policy.placement == stretto::placement_kind::v_shape);
    for (std::int32_t p = 1; p <= 10; ++p) {
      for (std::int32_t m = 1; m <= 3 * p; ++m) {
        CAPTURE(name);
        CAPTURE(p);
        CAPTURE(m);
        const pipeline_shape shape{p, m, 2};
        REQUIRE(policy.check(shape).empty());
        const schedule s = policy.generate(shape);
        const auto result = stretto::validate(s);
        CHECK_MESSAGE(result.ok(), result.message);
        CHECK(stretto::testing::check_schedule_invariants(s));
        // Three ops (F, B, W) per chunk and microbatch, two chunks per rank.
        for (std::int32_t r = 0; r < p; ++r) CHECK(s.ops(r).size() == static_cast<std::size_t>(6 * m));
      }
    }
  }
}

TEST_CASE("policies.controllable_memory.shape_rule" * doctest::timeout(5)) {
  for (const std::string_view name : {"v-half", "v-min"}) {
    const auto& policy = stretto::policies::find_policy(name);
    for (std::int32_t v : {1, 3, 4}) {
      const std::string problem = policy.check({4, 8, v});
      CAPTURE(problem);
      CHECK(problem.starts_with(std::string(name) + ": places 2 chunks per rank in a V, so chunks must be 2 (got " +
                                std::to_string(v) + ")"));
    }
    CHECK(policy.check({4, 0, 2}).find("microbatches must be at least 1") != std::string::npos);
    CHECK(policy.check({0, 4, 2}).find("ranks must be at least 1") != std::string::npos);
    CHECK_THROWS_AS(stretto::policies::make_schedule(name, {4, 8, 1}), stretto::shape_error);
  }
}
