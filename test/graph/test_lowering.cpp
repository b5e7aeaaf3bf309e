// Communication lowering: lowered schedules of every policy, and of hand-built looped schedules
// in which two ranks exchange messages both ways, are deadlock-free under rendezvous semantics
// (Boost.Graph cycle check, cross-checked against an independent step-by-step rendezvous
// simulation); a hand-written lowered schedule that deadlocks is rejected with its cycle; every
// structural rule of a lowered schedule has its own rejection.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <stretto/graph/dependency_graph.hpp>
#include <stretto/graph/lowering.hpp>
#include <stretto/stretto.hpp>

#include "core/support.hpp"
#include "graph/hand_schedules.hpp"

namespace {

using namespace stretto;
using graph::lowered_kind;
using graph::lowered_location;
using graph::lowered_op;
using graph::lowered_schedule;
using graph::lowering_rule;

/**
A cost model whose messages differ in size by six orders of magnitude: the activation leaving
stage s costs 10^-6 · 1000^(s mod 3) time units (1 byte to 1 MB over a 1 byte/µs link), gradients
a tenth of that. Compute times are those of `uniform_costs`.
*/
struct sized_messages {
  sim::uniform_costs compute{};
  double duration(const op& o, const pipeline_shape& s) const noexcept { return compute.duration(o, s); }
  double comm_delay(std::int32_t from, std::int32_t to, const pipeline_shape&) const noexcept {
    double bytes = 1.0;
    for (std::int32_t i = 0; i < from % 3; ++i) bytes *= 1000.0;
    return (to > from ? 1.0 : 0.1) * bytes * 1e-6;
  }
  double memory_delta(const op& o, const pipeline_shape& s) const noexcept { return compute.memory_delta(o, s); }
};
static_assert(sim::cost_model<sized_messages>);

/**
The oracle: runs a lowered schedule step by step under rendezvous semantics, independently of
the graph. A compute op runs when the ops it needs on its own rank have run (inputs from other
ranks came through earlier receives); a send and its receive complete together, once both ranks
have reached them. Returns whether every rank finishes.
*/
bool finishes_under_rendezvous(const lowered_schedule& l) {
  const std::int32_t p = l.num_ranks();
  const pipeline_shape& shape = l.shape();
  std::vector<std::size_t> cursor(static_cast<std::size_t>(p), 0);
  std::vector<op> done;
  auto is_done = [&](const dependency& d) {
    return std::any_of(done.begin(), done.end(), [&](const op& o) {
      return o.stage == d.stage && o.microbatch == d.microbatch &&
             (d.kind == dependency_kind::forward ? o.kind == op_kind::forward : produces_input_gradient(o.kind));
    });
  };
  bool progress = true;
  while (progress) {
    progress = false;
    for (std::int32_t r = 0; r < p; ++r) {
      const auto list = l.ops(r);
      auto& c = cursor[static_cast<std::size_t>(r)];
      while (c < list.size()) {
        const lowered_op& o = list[c];
        if (o.kind == lowered_kind::compute) {
          bool ready = true;
          for (const dependency& d : dependencies_of(o.compute, shape))
            if (l.rank_of(d.stage, d.microbatch) == r) ready = ready && is_done(d);
          if (!ready) break;
          done.push_back(o.compute);
          ++c;
          progress = true;
          continue;
        }
        // A send or receive: its peer must be at the other end of the same message.
        const auto peer_list = l.ops(o.peer);
        auto& peer_cursor = cursor[static_cast<std::size_t>(o.peer)];
        if (peer_cursor >= peer_list.size()) break;
        const lowered_op& other = peer_list[peer_cursor];
        const bool matches = other.kind != lowered_kind::compute && other.kind != o.kind &&
                             other.message == o.message && other.peer == r;
        if (!matches) break;
        ++c;
        ++peer_cursor;
        progress = true;
      }
    }
  }
  for (std::int32_t r = 0; r < p; ++r)
    if (cursor[static_cast<std::size_t>(r)] < l.ops(r).size()) return false;
  return true;
}

std::size_t count(const lowered_schedule& l, lowered_kind kind) {
  std::size_t n = 0;
  for (std::int32_t r = 0; r < l.num_ranks(); ++r)
    for (const lowered_op& o : l.ops(r)) n += o.kind == kind ? 1 : 0;
  return n;
}

// Returns a copy of `l` with rank `rank`'s op at `from` moved to position `to`.
lowered_schedule moved(const lowered_schedule& l, std::int32_t rank, std::size_t from, std::size_t to) {
  lowered_schedule out(l.layout());
  for (std::int32_t r = 0; r < l.num_ranks(); ++r) {
    std::vector<lowered_op> list(l.ops(r).begin(), l.ops(r).end());
    if (r == rank) {
      const lowered_op o = list[from];
      list.erase(list.begin() + static_cast<std::ptrdiff_t>(from));
      list.insert(list.begin() + static_cast<std::ptrdiff_t>(to), o);
    }
    for (const lowered_op& o : list) out.push_back(r, o);
  }
  return out;
}

void check_lowering(const schedule& s, const lowered_schedule& l) {
  const graph::lowering_result result = graph::validate(l);
  INFO(result.message);
  CHECK(result.ok());
  CHECK(l.compute_schedule() == s);
  // One send and one receive per message: F(s−1) → F(s) and B|BW(s+1) → B|BW(s) between ranks.
  const std::size_t messages = graph::messages_of(s).size();
  CHECK(count(l, lowered_kind::send) == messages);
  CHECK(count(l, lowered_kind::receive) == messages);
  CHECK(finishes_under_rendezvous(l));
  // The critical path with messages is never shorter than without them.
  const sim::uniform_costs costs{1.0, 1.0, 1.0, 0.5, 1.0, 0.5};
  CHECK(graph::critical_path(graph::dependency_graph(l), costs).length >=
        graph::critical_path(graph::dependency_graph(s), costs).length);
}

}  // namespace

TEST_CASE("lowering.every_policy_deadlock_free_under_rendezvous" * doctest::timeout(60)) {
  // Every policy at every shape of the grid it accepts, one and two chunks per rank (looped,
  // V-shaped and bidirectional placements included).
  std::size_t lowered = 0;
  for (const auto& policy : policies::all_policies)
    for (std::int32_t p = 1; p <= 5; ++p)
      for (std::int32_t m : testing::grid_microbatches(p))
        for (std::int32_t v : {1, 2}) {
          const pipeline_shape shape{p, m, v};
          if (!policy.check(shape).empty()) continue;
          CAPTURE(policy.name);
          CAPTURE(p);
          CAPTURE(m);
          CAPTURE(v);
          const schedule s = policy.generate(shape);
          const lowered_schedule uniform = graph::lower(s);
          check_lowering(s, uniform);
          // Linear placements: every stage boundary carries an activation and a gradient per microbatch.
          if (s.placement() == placement_kind::linear && s.num_replicas() == 1)
            CHECK(count(uniform, lowered_kind::send) == static_cast<std::size_t>(2 * (p - 1) * m));
          check_lowering(s, graph::lower(s, sized_messages{}));
          ++lowered;
        }
  CHECK(lowered >= 3 * 25);
}

TEST_CASE("lowering.two_ranks_exchange_both_ways" * doctest::timeout(30)) {
  // Looped placement, p = 2, v = 2 (and 3): rank 0 holds stages 0, 2 (, 4), rank 1 stages 1, 3 (, 5):
  // activations and gradients go from rank 0 to rank 1 and from rank 1 to rank 0.
  for (std::int32_t v : {2, 3})
    for (std::int32_t m : {1, 2, 3, 6}) {
      CAPTURE(v);
      CAPTURE(m);
      for (const schedule& s : {testing::looped_breadth_first(2, m, v), testing::looped_depth_first(2, m, v)}) {
        REQUIRE(validate(s).ok());
        for (const lowered_schedule& l : {graph::lower(s), graph::lower(s, sized_messages{})}) {
          check_lowering(s, l);
          // S − 1 = 2v − 1 boundaries, each an activation and a gradient per microbatch, and
          // both directions on both ranks.
          CHECK(count(l, lowered_kind::send) == static_cast<std::size_t>(2 * (2 * v - 1) * m));
          for (std::int32_t r : {0, 1}) {
            bool sends = false, receives = false;
            for (const lowered_op& o : l.ops(r)) {
              sends = sends || o.kind == lowered_kind::send;
              receives = receives || o.kind == lowered_kind::receive;
            }
            CHECK(sends);
            CHECK(receives);
          }
        }
      }
    }
  // Messages of very different sizes reorder the lowered lists, and both orders are deadlock-free.
  const schedule s = testing::looped_depth_first(2, 4, 2);
  CHECK(graph::lower(s) != graph::lower(s, sized_messages{}));
}

TEST_CASE("lowering.hand_written_deadlock_reports_its_cycle" * doctest::timeout(10)) {
  const lowered_schedule bad = testing::two_rank_exchange(false);
  const lowered_schedule good = testing::two_rank_exchange(true);
  REQUIRE(graph::check_messages(bad).ok());  // well formed: only the order is wrong
  CHECK(bad.compute_schedule() == good.compute_schedule());
  CHECK(validate(bad.compute_schedule()).ok());  // buffered sends would not deadlock
  CHECK(graph::validate(good).ok());
  CHECK(finishes_under_rendezvous(good));
  CHECK_FALSE(finishes_under_rendezvous(bad));

  const graph::lowering_result result = graph::validate(bad);
  INFO(result.message);
  CHECK(result.rule == lowering_rule::deadlock);
  // The cycle: rank 0's send(a1) waits for rank 1 to post recv(a1), which follows rank 1's
  // send(g0); that waits for rank 0 to post recv(g0), which follows send(a1).
  const lowered_location send_a1{0, 3, lowered_op::send({message_direction::activation, 0, 1, 1}, 1)};
  const lowered_location send_g0{1, 3, lowered_op::send({message_direction::gradient, 1, 0, 0}, 0)};
  REQUIRE(result.cycle.size() == 2);
  CHECK(std::find(result.cycle.begin(), result.cycle.end(), send_a1) != result.cycle.end());
  CHECK(std::find(result.cycle.begin(), result.cycle.end(), send_g0) != result.cycle.end());
  CHECK(result.message.find("invalid lowered schedule [deadlock]: deadlock under rendezvous semantics") == 0);
  CHECK(result.message.find("rank 0 position 3 [send activation of mb 1 from stage 0 to stage 1 to rank 1]") !=
        std::string::npos);
  CHECK(result.message.find("rank 1 position 3 [send gradient of mb 0 from stage 1 to stage 0 to rank 0]") !=
        std::string::npos);
  CHECK(result.message.find(") cannot complete before rank 1 posts its other end, which follows (") != std::string::npos);
  CHECK(result.message.find(") cannot complete before rank 0 posts its other end, which follows (") != std::string::npos);
  try {
    graph::validate_or_throw(bad);
    FAIL("validate_or_throw accepted a deadlocking schedule");
  } catch (const graph::deadlock_error& e) {
    CHECK(e.cycle() == result.cycle);
  }
  CHECK_THROWS_AS(graph::topological_order(graph::dependency_graph(bad)), graph::deadlock_error);
  CHECK_NOTHROW(graph::validate_or_throw(good));
}

TEST_CASE("lowering.graph_verdict_matches_rendezvous_simulation" * doctest::timeout(60)) {
  // Random moves of sends and receives (kept well formed) in lowered schedules: the Boost.Graph
  // cycle check and the step-by-step rendezvous simulation agree on every one.
  std::mt19937 engine(20261130);
  std::size_t deadlocks = 0, tried = 0;
  const std::vector<schedule> bases{make_schedule<policies::one_f_one_b>({3, 4, 1}),
                                    make_schedule<policies::zb_h1>({4, 5, 1}),
                                    make_schedule<policies::gpipe>({2, 3, 1}), testing::looped_depth_first(2, 3, 2),
                                    testing::looped_breadth_first(3, 2, 2)};
  for (const schedule& s : bases) {
    const lowered_schedule base = graph::lower(s);
    for (int trial = 0; trial < 80; ++trial) {
      const auto rank = static_cast<std::int32_t>(engine() % static_cast<unsigned>(base.num_ranks()));
      const auto size = base.ops(rank).size();
      if (size < 2) continue;
      const std::size_t from = engine() % size, to = engine() % size;
      if (base.ops(rank)[from].kind == lowered_kind::compute) continue;
      const lowered_schedule l = moved(base, rank, from, to);
      if (!graph::check_messages(l).ok()) continue;
      ++tried;
      const bool finishes = finishes_under_rendezvous(l);
      const graph::lowering_result result = graph::validate(l);
      CAPTURE(result.message);
      CHECK(result.ok() == finishes);
      deadlocks += finishes ? 0 : 1;
    }
  }
  CHECK(tried >= 100);
  CHECK(deadlocks >= 10);  // the moves do produce deadlocks, so both verdicts are exercised
}

TEST_CASE("lowering.structural_rules" * doctest::timeout(10)) {
  const schedule s = make_schedule<policies::one_f_one_b>({2, 2, 1});
  const lowered_schedule l = graph::lower(s);
  REQUIRE(graph::validate(l).ok());
  const lowered_op recv_a0 = lowered_op::receive({message_direction::activation, 0, 1, 0}, 0);
  const lowered_op send_g0 = lowered_op::send({message_direction::gradient, 1, 0, 0}, 0);
  auto index_of = [&](std::int32_t r, const lowered_op& o) {
    const auto list = l.ops(r);
    return static_cast<std::size_t>(std::find(list.begin(), list.end(), o) - list.begin());
  };
  const std::size_t i_recv_a0 = index_of(1, recv_a0), i_f = index_of(1, lowered_op::run({op_kind::forward, 1, 0}));
  const std::size_t i_send_g0 = index_of(1, send_g0), i_bw = index_of(1, lowered_op::run({op_kind::backward, 1, 0}));
  REQUIRE(i_recv_a0 < i_f);
  REQUIRE(i_bw < i_send_g0);
  REQUIRE(i_send_g0 < l.ops(1).size());

  auto rebuilt = [&](auto edit) {
    lowered_schedule out(l.layout());
    for (std::int32_t r = 0; r < l.num_ranks(); ++r) {
      std::vector<lowered_op> list(l.ops(r).begin(), l.ops(r).end());
      edit(r, list);
      for (const lowered_op& o : list) out.push_back(r, o);
    }
    return out;
  };
  auto rule_of = [](const lowered_schedule& x) {
    const graph::lowering_result r = graph::validate(x);
    INFO(r.message);
    CHECK(r.message.find(std::string("[") + std::string(to_string(r.rule)) + "]") != std::string::npos);
    return r.rule;
  };
  // The receive of a0 after F(1, 0), which needs it.
  CHECK(rule_of(moved(l, 1, i_recv_a0, i_f)) == lowering_rule::receive_after_consumer);
  // The send of g0 before BW(1, 0), which produces it.
  CHECK(rule_of(moved(l, 1, i_send_g0, i_bw)) == lowering_rule::send_before_producer);
  // No send of g0.
  CHECK(rule_of(rebuilt([&](std::int32_t r, std::vector<lowered_op>& list) {
          if (r == 1) list.erase(list.begin() + static_cast<std::ptrdiff_t>(i_send_g0));
        })) == lowering_rule::missing_message);
  // The receive of a0 twice.
  CHECK(rule_of(rebuilt([](std::int32_t r, std::vector<lowered_op>& list) {
          if (r == 1) list.insert(list.begin(), list.front());
        })) == lowering_rule::duplicate_message);
  // A send to the wrong peer, and a message nobody needs.
  CHECK(rule_of(rebuilt([&](std::int32_t r, std::vector<lowered_op>& list) {
          if (r == 1) list[i_send_g0].peer = 1;
        })) == lowering_rule::stray_message);
  CHECK(rule_of(rebuilt([](std::int32_t r, std::vector<lowered_op>& list) {
          if (r == 0) list.push_back(lowered_op::send({message_direction::gradient, 1, 0, 0}, 1));
        })) == lowering_rule::stray_message);
  // The compute ops alone are invalid (a W with no B).
  CHECK(rule_of(rebuilt([](std::int32_t r, std::vector<lowered_op>& list) {
          if (r == 0) list.push_back(lowered_op::run({op_kind::backward_weight, 0, 0}));
        })) == lowering_rule::compute_invalid);
  CHECK_THROWS_AS(graph::lower(testing::without(s, {op_kind::forward, 1, 1})), validation_error);
}
