// The SkipPipe simulator against timelines computed by hand (2–3 nodes, 2–3 microbatches).
#include <doctest/doctest.h>

#include <vector>

#include <stretto/skippipe/simulate.hpp>

#include "common.hpp"

namespace {

using stretto::skippipe::op_type;
using stretto::skippipe::simulate;

struct expected_op {
  int microbatch;
  int node;
  op_type type;
  double start;
  double end;
};

void check_ops(const stretto::skippipe::simulation& run, const std::vector<expected_op>& want) {
  REQUIRE(run.ops.size() == want.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    CAPTURE(k);
    CHECK(run.ops[k].microbatch == want[k].microbatch);
    CHECK(run.ops[k].node == want[k].node);
    CHECK(run.ops[k].type == want[k].type);
    CHECK(run.ops[k].start == doctest::Approx(want[k].start));
    CHECK(run.ops[k].end == doctest::Approx(want[k].end));
  }
}

constexpr op_type F = op_type::forward;
constexpr op_type L = op_type::loss;
constexpr op_type B = op_type::backward;

}  // namespace

TEST_CASE("skippipe.simulate.three_nodes_two_microbatches") {
  // Nodes 0, 1, 2 serve stages 0, 1, 2; w = 1, 2, 1; every hop 0.5; backward 2w, loss 0.5w;
  // memory 2; both microbatches go 0 > 1 > 2 > 0 (loss) and back.
  //   node 0: F0 [0,1], F1 [1,2]
  //   node 1: F0 [1.5,3.5]; F1 arrived at 2.5, runs [3.5,5.5]
  //   node 2: F0 [4,5]; F1 arrives at 6, runs [6,7]; B0 arrived at 6.5, waits: [7,9]
  //   node 0: L0 [5.5,6] (arrived 5.5); L1 [7.5,8]
  //   node 2: B1 arrives 8.5, waits for B0: [9,11]
  //   node 1: B0 [9.5,13.5] (4 = 2·2); B1 arrives 11.5, runs [13.5,17.5]
  //   node 0: B0 [14,16]; B1 [18,20]  -> iteration 20
  auto s = skippipe_test::line({1, 2, 1}, 0.5);
  s.backward_factor = 2.0;
  s.loss_factor = 0.5;
  s.memory = 2;
  s.microbatches = 2;
  s.path_length = 3;
  s.check();
  const auto run = simulate(s, {{0, 1, 2}, {0, 1, 2}});
  CHECK_FALSE(run.deadlocked);
  CHECK(run.iteration_time == doctest::Approx(20.0));
  CHECK(run.finish == std::vector<double>{16.0, 20.0});
  check_ops(run, {{0, 0, F, 0, 1},      {1, 0, F, 1, 2},      {0, 1, F, 1.5, 3.5}, {1, 1, F, 3.5, 5.5},
                  {0, 2, F, 4, 5},      {0, 0, L, 5.5, 6},    {1, 2, F, 6, 7},     {0, 2, B, 7, 9},
                  {1, 0, L, 7.5, 8},    {1, 2, B, 9, 11},     {0, 1, B, 9.5, 13.5}, {1, 1, B, 13.5, 17.5},
                  {0, 0, B, 14, 16},    {1, 0, B, 18, 20}});
  CHECK(run.forwards == std::vector<std::int32_t>{2, 2, 2});
  CHECK(run.busy == std::vector<double>{1 + 1 + 0.5 + 0.5 + 2 + 2, 2 + 2 + 4 + 4, 1 + 1 + 2 + 2});
}

TEST_CASE("skippipe.simulate.memory_slot_blocks_the_next_forward") {
  // Two nodes, w = 1, every hop 1, backward 1·w, loss 1·w, path 0 > 1.
  // memory 1: microbatch 1's forward on node 0 waits for microbatch 0's backward there:
  //   mb 0: F 0 [0,1], F 1 [2,3], L 0 [4,5], B 1 [6,7], B 0 [8,9]
  //   mb 1: F 0 [9,10], F 1 [11,12], L 0 [13,14], B 1 [15,16], B 0 [17,18]  -> 18
  // no limit: mb 1 follows one step behind:
  //   F 0 [1,2], F 1 [3,4], L 0 [5,6], B 1 [7,8], B 0 [9,10]               -> 10
  auto s = skippipe_test::line({1, 1}, 1.0);
  s.backward_factor = 1.0;
  s.loss_factor = 1.0;
  s.memory = 1;
  s.microbatches = 2;
  s.path_length = 2;
  s.check();
  const auto limited = simulate(s, {{0, 1}, {0, 1}});
  CHECK(limited.iteration_time == doctest::Approx(18.0));
  CHECK(limited.finish == std::vector<double>{9.0, 18.0});
  const auto free_run = simulate(s, {{0, 1}, {0, 1}}, /*limit_memory=*/false);
  CHECK(free_run.iteration_time == doctest::Approx(10.0));
  check_ops(free_run, {{0, 0, F, 0, 1}, {1, 0, F, 1, 2}, {0, 1, F, 2, 3}, {1, 1, F, 3, 4}, {0, 0, L, 4, 5},
                       {1, 0, L, 5, 6}, {0, 1, B, 6, 7}, {1, 1, B, 7, 8}, {0, 0, B, 8, 9}, {1, 0, B, 9, 10}});
}

TEST_CASE("skippipe.simulate.backward_before_forward") {
  // Two nodes, w = 1, no hop time, backward 1·w, loss 1·w, memory 2, three microbatches 0 > 1.
  //   node 0: F0 [0,1], F1 [1,2]; F2 waits for a slot. L0 [2,3], L1 [3,4] (node 1 ran F0 [1,2],
  //   F1 [2,3], B0 [3,4], B1 [4,5]); B0 on node 0 [4,5] frees a slot at 5, when B1 arrives too:
  //   the backward goes first, B1 [5,6], then F2 [6,7]; F2 on node 1 [7,8], L2 [8,9],
  //   B2 on node 1 [9,10], on node 0 [10,11]  -> 11 (forward first would give 10).
  auto s = skippipe_test::line({1, 1}, 0.0);
  s.backward_factor = 1.0;
  s.loss_factor = 1.0;
  s.memory = 2;
  s.microbatches = 3;
  s.path_length = 2;
  s.check();
  const auto run = simulate(s, {{0, 1}, {0, 1}, {0, 1}});
  CHECK(run.iteration_time == doctest::Approx(11.0));
  CHECK(run.finish == std::vector<double>{5.0, 6.0, 11.0});
  check_ops(run, {{0, 0, F, 0, 1}, {0, 1, F, 1, 2}, {1, 0, F, 1, 2}, {0, 0, L, 2, 3}, {1, 1, F, 2, 3},
                  {0, 1, B, 3, 4}, {1, 0, L, 3, 4}, {0, 0, B, 4, 5}, {1, 1, B, 4, 5}, {1, 0, B, 5, 6},
                  {2, 0, F, 6, 7}, {2, 1, F, 7, 8}, {2, 0, L, 8, 9}, {2, 1, B, 9, 10}, {2, 0, B, 10, 11}});
}

TEST_CASE("skippipe.simulate.deadlock_is_reported") {
  // Stage 0 = {0, 1}, stage 1 = {2}, stage 2 = {3}; memory 1. Microbatch 0 goes 0 > 2 > 3,
  // microbatch 1 goes 1 > 3 > 2 (a swap): each holds the slot of the node the other needs next.
  auto s = skippipe_test::line({1, 1, 1, 1}, 0.0);
  s.stages = {{0, 1}, {2}, {3}};
  s.memory = 1;
  s.microbatches = 1;
  s.path_length = 3;
  s.check();
  const auto run = simulate(s, {{0, 2, 3}, {1, 3, 2}});
  CHECK(run.deadlocked);
  CHECK_FALSE(simulate(s, {{0, 2, 3}, {1, 3, 2}}, false).deadlocked);
}
