// The dependency graph on Boost.Graph: its edges (closed-form counts), topological order, the
// deadlock cycle of a compute-only schedule, and the critical path, which equals the simulator's
// span for every policy of policies::all_policies across a grid of shapes and cost models.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <stretto/graph/dependency_graph.hpp>
#include <stretto/stretto.hpp>

#include "core/support.hpp"

namespace {

using namespace stretto;
using graph::dependency_graph;
using graph::edge_kind;
using graph::lowered_location;
using graph::lowered_op;

// Costs whose sums are exact in binary, so that the critical path and the span compare with ==.
const sim::uniform_costs cost_grid[] = {
    {1.0, 1.0, 1.0, 0.0, 1.0, 0.5},
    {1.0, 2.0, 0.5, 0.25, 1.0, 0.5},
    {1.5, 1.0, 1.0, 1.0, 1.0, 0.5},
    {0.5, 1.0, 2.0, 3.0, 1.0, 0.5},
};

// Every shape of the grid that `policy` accepts: p in 1..6, the microbatch counts of
// support.hpp (1, 2, p − 1, p, p + 1, 2p, 3p + 1), v in {1, 2}.
template <class Visit>
void for_each_accepted_shape(const policies::policy_info& policy, Visit visit) {
  for (std::int32_t p = 1; p <= 6; ++p)
    for (std::int32_t m : testing::grid_microbatches(p))
      for (std::int32_t v : {1, 2}) {
        const pipeline_shape shape{p, m, v};
        if (policy.check(shape).empty()) visit(shape);
      }
}

double last_end(const sim::timeline& t) {
  double end = 0.0;
  for (std::int32_t r = 0; r < t.num_ranks(); ++r)
    for (const auto& o : t.ops(r)) end = std::max(end, o.end);
  return end;
}

// A p = 2, m = 2 schedule that is in order per stage but deadlocks (test_compile_time.cpp's).
schedule deadlocked() {
  schedule s({2, 2, 1}, placement_kind::linear);
  for (std::int32_t j : {0, 1}) {
    s.push_back(0, {op_kind::forward, 0, j});
    s.push_back(0, {op_kind::backward, 0, j});
  }
  for (std::int32_t j : {1, 0}) {
    s.push_back(1, {op_kind::forward, 1, j});
    s.push_back(1, {op_kind::backward, 1, j});
  }
  return s;
}

}  // namespace

TEST_CASE("dependency_graph.edge_counts_closed_form" * doctest::timeout(10)) {
  for (std::int32_t p : {1, 2, 3, 5})
    for (std::int32_t m : {1, 2, 7}) {
      CAPTURE(p);
      CAPTURE(m);
      // 1F1B, fused backward: F(s) needs F(s−1); BW(s) needs F(s) and, but on the last stage,
      // BW(s+1): (p−1)m + pm + (p−1)m data edges. Program order: p·(2m − 1).
      const dependency_graph fused(make_schedule<policies::one_f_one_b>({p, m, 1}));
      CHECK(fused.num_vertices() == static_cast<std::size_t>(2 * p * m));
      CHECK(fused.num_edges(edge_kind::data) == static_cast<std::size_t>((3 * p - 2) * m));
      CHECK(fused.num_edges(edge_kind::program_order) == static_cast<std::size_t>(p * (2 * m - 1)));
      CHECK(fused.num_edges(edge_kind::message) == 0);
      CHECK_FALSE(fused.is_lowered());
      // ZB-H1, split backward: W(s) needs B(s) as well: (4p − 2)m data edges.
      const dependency_graph split(make_schedule<policies::zb_h1>({p, m, 1}));
      CHECK(split.num_edges(edge_kind::data) == static_cast<std::size_t>((4 * p - 2) * m));
      CHECK(split.num_edges(edge_kind::program_order) == static_cast<std::size_t>(p * (3 * m - 1)));
    }
  const dependency_graph g(make_schedule<policies::gpipe>({3, 4, 1}));
  CHECK(g[g.vertex_at(2, 0)] == lowered_location{2, 0, lowered_op::run({op_kind::forward, 2, 0})});
  CHECK(g[g.vertex_at(0, 7)] == lowered_location{0, 7, lowered_op::run({op_kind::backward, 0, 0})});
}

TEST_CASE("dependency_graph.topological_order_respects_every_edge" * doctest::timeout(30)) {
  for (const auto& policy : policies::all_policies)
    for_each_accepted_shape(policy, [&](pipeline_shape shape) {
      CAPTURE(policy.name);
      CAPTURE(shape.num_ranks);
      CAPTURE(shape.num_microbatches);
      CAPTURE(shape.num_chunks);
      const dependency_graph g(policy.generate(shape));
      const std::vector<graph::vertex_id> order = graph::topological_order(g);
      REQUIRE(order.size() == g.num_vertices());
      std::vector<std::size_t> place(order.size());
      for (std::size_t i = 0; i < order.size(); ++i) place[order[i]] = i;
      std::size_t backwards = 0;
      for (auto [e, end] = boost::edges(g.graph()); e != end; ++e)
        backwards += place[boost::source(*e, g.graph())] < place[boost::target(*e, g.graph())] ? 0 : 1;
      CHECK(backwards == 0);
      CHECK(graph::find_cycle(g).empty());
    });
}

TEST_CASE("dependency_graph.deadlock_names_the_cycle" * doctest::timeout(10)) {
  const dependency_graph g(deadlocked());
  // The only cycle: BW(0,0) → F(0,1) (rank 0's order) → F(1,1) (activation) → BW(1,1) → F(1,0)
  // → BW(1,0) (rank 1's order) → BW(0,0) (gradient).
  const std::vector<lowered_location> expected{
      {0, 1, lowered_op::run({op_kind::backward, 0, 0})}, {0, 2, lowered_op::run({op_kind::forward, 0, 1})},
      {1, 0, lowered_op::run({op_kind::forward, 1, 1})},  {1, 1, lowered_op::run({op_kind::backward, 1, 1})},
      {1, 2, lowered_op::run({op_kind::forward, 1, 0})},  {1, 3, lowered_op::run({op_kind::backward, 1, 0})},
  };
  std::vector<lowered_location> cycle = graph::find_cycle(g);
  REQUIRE(cycle.size() == expected.size());
  // Each op must complete before the next one, the last before the first.
  for (std::size_t i = 0; i < cycle.size(); ++i) {
    const auto from = g.vertex_at(cycle[i].rank, cycle[i].position);
    const auto& next = cycle[(i + 1) % cycle.size()];
    CHECK(boost::edge(from, g.vertex_at(next.rank, next.position), g.graph()).second);
  }
  auto by_place = [](const lowered_location& a, const lowered_location& b) {
    return a.rank != b.rank ? a.rank < b.rank : a.position < b.position;
  };
  std::sort(cycle.begin(), cycle.end(), by_place);
  CHECK(cycle == expected);

  try {
    (void)graph::topological_order(g);
    FAIL("topological_order accepted a cyclic graph");
  } catch (const graph::deadlock_error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("deadlock (receives block; ranks run their lists in order)") != std::string::npos);
    CHECK(what.find("rank 0 position 1 [BW(stage 0, mb 0)]") != std::string::npos);
    CHECK(what.find("rank 1 position 0 [F(stage 1, mb 1)]") != std::string::npos);
    CHECK(what.find("rank 1 position 3 [BW(stage 1, mb 0)]") != std::string::npos);
    CHECK(what.find(" needs the output of (") != std::string::npos);
    CHECK(what.find(" from rank 0 (receives block)") != std::string::npos);
    CHECK(e.cycle().size() == expected.size());
  }
  // A schedule that breaks a rule other than deadlock has no well-defined graph.
  schedule missing({2, 1, 1}, placement_kind::linear);
  missing.push_back(0, {op_kind::forward, 0, 0});
  CHECK_THROWS_AS(dependency_graph{missing}, validation_error);
}

TEST_CASE("dependency_graph.critical_path_equals_simulated_span" * doctest::timeout(60)) {
  std::size_t checked = 0;
  for (const auto& policy : policies::all_policies)
    for_each_accepted_shape(policy, [&](pipeline_shape shape) {
      const schedule s = policy.generate(shape);
      const dependency_graph g(s);
      for (const auto& costs : cost_grid) {
        CAPTURE(policy.name);
        CAPTURE(shape.num_ranks);
        CAPTURE(shape.num_microbatches);
        CAPTURE(shape.num_chunks);
        CAPTURE(costs.t_comm);
        const sim::simulation run = sim::simulate(s, costs);
        const graph::critical_path_result path = graph::critical_path(g, costs);
        CHECK(path.length == last_end(run.events));  // the same timing model, exactly
        CHECK(path.span == run.metrics.span);
        CHECK(path.length >= path.span);
        if (policy.name == "gpipe" || policy.name == "1f1b" || policy.name == "zb-h1")
          CHECK(path.length == run.metrics.span);  // the rank that ends last starts at 0
        // The path is a chain of the graph that starts with an op that waits for nothing.
        REQUIRE_FALSE(path.path.empty());
        const auto first = g.vertex_at(path.path.front().rank, path.path.front().position);
        CHECK(boost::in_degree(first, g.graph()) == 0);
        for (std::size_t i = 0; i + 1 < path.path.size(); ++i) {
          const auto a = g.vertex_at(path.path[i].rank, path.path[i].position);
          const auto b = g.vertex_at(path.path[i + 1].rank, path.path[i + 1].position);
          CHECK(boost::edge(a, b, g.graph()).second);
        }
        ++checked;
      }
    });
  CHECK(checked >= 4 * 3 * 30);  // every policy, many shapes, every cost model
}

TEST_CASE("dependency_graph.critical_path_closed_form_gpipe" * doctest::timeout(10)) {
  // GPipe at T_F = 1, T_BW = 2 and a hop of c between ranks: rank 0's forwards (m), the last
  // microbatch down the pipeline ((p − 1)(1 + c)), the last rank's backwards (2m), and the first
  // microbatch's gradient back up ((p − 1)(2 + c)): 3m + 3(p − 1) + 2(p − 1)c.
  for (std::int32_t p : {1, 2, 4, 7})
    for (std::int32_t m : {1, 3, 8})
      for (double c : {0.0, 0.5, 2.0}) {
        CAPTURE(p);
        CAPTURE(m);
        CAPTURE(c);
        const dependency_graph g(make_schedule<policies::gpipe>({p, m, 1}));
        const auto path = graph::critical_path(g, sim::uniform_costs{1.0, 1.0, 1.0, c, 1.0, 0.5});
        CHECK(path.length == 3.0 * m + 3.0 * (p - 1) + 2.0 * (p - 1) * c);
        CHECK(path.path.front() == lowered_location{0, 0, lowered_op::run({op_kind::forward, 0, 0})});
        CHECK(path.path.back() == lowered_location{0, 2 * m - 1, lowered_op::run({op_kind::backward, 0, 0})});
      }
}
