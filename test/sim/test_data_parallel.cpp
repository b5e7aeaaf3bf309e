// Data parallelism in the simulator (sim/data_parallel.hpp): the ring all-reduce time, and each
// stage's reduction after its last W/BW, overlapped with the compute still running. Closed forms
// worked by hand in the comments.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <stretto/policies/registry.hpp>
#include <stretto/sim/data_parallel.hpp>
#include <stretto/stretto.hpp>

namespace {

using stretto::pipeline_shape;
using stretto::sim::data_parallel;
using stretto::sim::ring_allreduce_time;
using stretto::sim::simulate_data_parallel;
using stretto::sim::uniform_costs;

// d = 2, 3 bytes per stage, α = 0.5, β = 1 byte per time unit:
// T_ring = 2(2 − 1)·0.5 + 2(2 − 1)/2 · 3/1 = 1 + 3 = 4.
const data_parallel two_groups{2, {3.0}, 0.5, 1.0};

}  // namespace

TEST_CASE("sim.data_parallel.ring_time" * doctest::timeout(10)) {
  // 2(n − 1)α + 2(n − 1)/n · B/β.
  CHECK(ring_allreduce_time(4, 8.0, 0.25, 2.0) == doctest::Approx(2 * 3 * 0.25 + 2.0 * 3 / 4 * 8 / 2));  // 7.5
  CHECK(ring_allreduce_time(4, 8.0, 0.25, 2.0) == doctest::Approx(7.5));
  CHECK(ring_allreduce_time(2, 3.0, 0.5, 1.0) == doctest::Approx(4.0));
  CHECK(ring_allreduce_time(8, 1e9, 0.0, 1e9) == doctest::Approx(2.0 * 7 / 8));  // the bandwidth term tends to 2B/β
  CHECK(ring_allreduce_time(1, 1e9, 1.0, 1.0) == 0.0);                          // one member: nothing to reduce
  CHECK(ring_allreduce_time(3, 1e9, 1.0, 0.0) == doctest::Approx(4.0));          // β = 0: unlimited, latency only
}

TEST_CASE("sim.data_parallel.one_f_one_b_p4_m8" * doctest::timeout(10)) {
  // 1F1B, p = 4, m = 8, T_F = 1, fused BW = T_B + T_W = 2, no message delay: span (m + p − 1)·3 = 33.
  // The last microbatch's BW runs down the pipeline: it ends on stage 3 at 33 − 3·2 = 27, on
  // stage 2 at 29, stage 1 at 31, stage 0 at 33 (each rank's last op). Each stage's reduction
  // takes T_ring = 4 from there: stage 3 [27, 31] and stage 2 [29, 33] end by 33, hidden behind
  // the compute of ranks 0 and 1. The step is per rank (each rank repeats its list): rank r
  // starts at r, so its pipeline step would end at r + 33; stage 1 [31, 35] sticks out of rank
  // 1's 34 by 1, stage 0 [33, 37] out of rank 0's 33 by 4; stage 2 [29, 33] and stage 3 [27, 31]
  // end in time. Step 37; exposed 37 − 33 = 4; busy 8·3 = 24 per rank, bubble 1 − 96/(4·37).
  const auto s = stretto::policies::make_schedule("1f1b", {4, 8, 1});
  const auto run = simulate_data_parallel(s, uniform_costs{}, two_groups);
  CHECK(run.pipeline.step_time == doctest::Approx(33.0));
  REQUIRE(run.reductions.size() == 4);
  const double ready[] = {33, 31, 29, 27};
  const double exposed[] = {4, 1, 0, 0};
  for (std::int32_t st = 0; st < 4; ++st) {
    CAPTURE(st);
    const auto& red = run.reductions[static_cast<std::size_t>(st)];
    CHECK(red.stage == st);
    CHECK(red.ranks == std::vector<std::int32_t>{st});
    CHECK(red.ready == doctest::Approx(ready[st]));
    CHECK(red.start == doctest::Approx(ready[st]));
    CHECK(red.end == doctest::Approx(ready[st] + 4.0));
    CHECK(red.exposed == doctest::Approx(exposed[st]));
  }
  CHECK(run.step_time == doctest::Approx(37.0));
  CHECK(run.exposed_reduction == doctest::Approx(4.0));
  CHECK(run.reduction_time == doctest::Approx(16.0));
  CHECK(run.bubble_rate == doctest::Approx(52.0 / 148.0));
  // Without the reductions the bubble is 1F1B's (p − 1)/(m + p − 1) = 3/11.
  CHECK(run.pipeline.metrics.bubble_rate == doctest::Approx(3.0 / 11.0));
  // A faster network, T_ring = 2(1)·0 + 1·3/3 = 1: stage 0's reduction [33, 34] is all that shows.
  const auto fast = simulate_data_parallel(s, uniform_costs{}, data_parallel{2, {3.0}, 0.0, 3.0});
  CHECK(fast.step_time == doctest::Approx(34.0));
  CHECK(fast.exposed_reduction == doctest::Approx(1.0));
  CHECK(fast.reductions[1].exposed == 0.0);
}

TEST_CASE("sim.data_parallel.zb_h1_defers_every_w" * doctest::timeout(10)) {
  // ZB-H1, p = 4, m = 8, unit F, B, W: span 3m + (p − 1) = 27, and every rank ends with W's that
  // run until 27 (the schedule fills its bubbles with deferred W), so no reduction can hide: all
  // four start at 27 and the step grows by the whole T_ring = 4, to 31 (rank 0's; rank r starts at
  // r, so stage r's reduction sticks out of its rank's step r + 27 by 4 − r); bubble 1 − 96/124.
  const auto s = stretto::policies::make_schedule("zb-h1", {4, 8, 1});
  const auto run = simulate_data_parallel(s, uniform_costs{}, two_groups);
  CHECK(run.pipeline.step_time == doctest::Approx(27.0));
  for (const auto& red : run.reductions) {
    CAPTURE(red.stage);
    CHECK(red.ready == doctest::Approx(27.0));
    CHECK(red.exposed == doctest::Approx(4.0 - red.stage));
  }
  CHECK(run.step_time == doctest::Approx(31.0));
  CHECK(run.exposed_reduction == doctest::Approx(4.0));
  CHECK(run.bubble_rate == doctest::Approx(1.0 - 96.0 / 124.0));
}

TEST_CASE("sim.data_parallel.chunks_share_a_link" * doctest::timeout(10)) {
  // Interleaved 1F1B, p = 2, m = 4, v = 2 (times per chunk 0.5, BW 1): rank 0 holds stages 0 and
  // 2, rank 1 stages 1 and 3. The timeline puts the last BW of stage 3 at 10.5, stage 2 at 11.5,
  // stage 1 at 12.5, stage 0 at 13.5 (the span). Stage 2's reduction [11.5, 15.5] overlaps rank
  // 0's remaining stage-0 compute (until 13.5); stage 0's, ready at 13.5, waits for rank 0's link
  // until 15.5 and ends at 19.5. Likewise rank 1: stage 3 [10.5, 14.5], stage 1 [14.5, 18.5].
  // Rank 0 starts at 0, rank 1 at 0.5, so their pipeline steps end at 13.5 and 14: exposed,
  // stage 0 4, stage 1 4, stage 2 2, stage 3 0.5; step max(19.5 − 0, 18.5 − 0.5) = 19.5.
  const auto s = stretto::policies::make_schedule("interleaved-1f1b", {2, 4, 2});
  const auto run = simulate_data_parallel(s, uniform_costs{}, two_groups);
  CHECK(run.pipeline.step_time == doctest::Approx(13.5));
  const double ready[] = {13.5, 12.5, 11.5, 10.5};
  const double start[] = {15.5, 14.5, 11.5, 10.5};
  const double exposed[] = {4, 4, 2, 0.5};
  const std::int32_t rank[] = {0, 1, 0, 1};
  for (std::size_t st = 0; st < 4; ++st) {
    CAPTURE(st);
    const auto& red = run.reductions[st];
    CHECK(red.ranks == std::vector<std::int32_t>{rank[st]});
    CHECK(red.ready == doctest::Approx(ready[st]));
    CHECK(red.start == doctest::Approx(start[st]));
    CHECK(red.end == doctest::Approx(start[st] + 4.0));
    CHECK(red.exposed == doctest::Approx(exposed[st]));
  }
  CHECK(run.step_time == doctest::Approx(19.5));
  CHECK(run.exposed_reduction == doctest::Approx(6.0));
}

TEST_CASE("sim.data_parallel.two_replicas_reduce_over_2d" * doctest::timeout(10)) {
  // Chimera holds every stage twice (stage s on ranks s and p − 1 − s), so each ring has 2d = 4
  // members: T_ring = 2·3·0.5 + 2·3/4·3 = 7.5, and each reduction holds both ranks' links.
  const auto s = stretto::policies::make_schedule("chimera", {4, 4, 1});
  const auto run = simulate_data_parallel(s, uniform_costs{}, two_groups);
  for (const auto& red : run.reductions) {
    CAPTURE(red.stage);
    CHECK(red.ranks == std::vector<std::int32_t>{std::min(red.stage, 3 - red.stage), std::max(red.stage, 3 - red.stage)});
    CHECK(red.end - red.start == doctest::Approx(7.5));
  }
  // Stages 0 and 3 share ranks {0, 3}: whichever is ready later waits for the other.
  const auto& a = run.reductions[0];
  const auto& b = run.reductions[3];
  CHECK((a.start >= b.end || b.start >= a.end));
}

TEST_CASE("sim.data_parallel.edges" * doctest::timeout(10)) {
  for (const auto& [name, shape] : {std::pair{"1f1b", pipeline_shape{4, 1, 1}}, std::pair{"1f1b", pipeline_shape{4, 2, 1}},
                                    std::pair{"1f1b", pipeline_shape{4, 4, 1}}, std::pair{"1f1b", pipeline_shape{2, 5, 1}},
                                    std::pair{"1f1b", pipeline_shape{3, 6, 1}}, std::pair{"zb-v", pipeline_shape{3, 6, 2}}}) {
    CAPTURE(std::string(name));
    CAPTURE(shape.num_ranks);
    CAPTURE(shape.num_microbatches);
    const auto s = stretto::policies::make_schedule(name, shape);
    // d = 1: nothing is reduced, the step is the pipeline's.
    const auto one = simulate_data_parallel(s, uniform_costs{}, data_parallel{1, {1e9}, 1.0, 1.0});
    CHECK(one.step_time == doctest::Approx(one.pipeline.step_time));
    CHECK(one.exposed_reduction == 0.0);
    CHECK(one.reduction_time == 0.0);
    CHECK(one.bubble_rate == doctest::Approx(one.pipeline.metrics.bubble_rate));
    // d = 2: rank 0's last op is stage 0's last BW or W in all of these, so its reduction (4)
    // runs after rank 0's compute: rank 0's step is at least its compute + 4.
    const auto two = simulate_data_parallel(s, uniform_costs{}, two_groups);
    const auto rank0 = two.pipeline.events.ops(0);
    CHECK(two.reductions[0].ready == doctest::Approx(rank0.back().end));
    CHECK(two.step_time >= rank0.back().end - rank0.front().start + 4.0 - 1e-12);
    CHECK(two.step_time == doctest::Approx(two.pipeline.step_time + two.exposed_reduction));
    CHECK(two.reduction_time == doctest::Approx(4.0 * shape.num_stages()));
  }
}

TEST_CASE("sim.data_parallel.per_stage_bytes_and_optimizer" * doctest::timeout(10)) {
  // 1F1B p = 2, m = 2, unit times: span (m + p − 1)·3 = 9, stage 0's last BW ends at 9 and
  // stage 1's one BW earlier, at 9 − 2 = 7.
  // Stage bytes {2, 6}, d = 2, α = 0, β = 1: T_ring = B, stage 0 [9, 11], stage 1 [7, 13].
  // A synchronised optimizer of 1 after a barrier latency of 0.5 starts at 13.5: step 14.5.
  const pipeline_shape shape{2, 2, 1};
  const auto s = stretto::policies::make_schedule("1f1b", shape);
  auto costs = stretto::sim::stage_costs::from(uniform_costs{}, shape);
  costs.optimizer_time = {1.0, 1.0};
  costs.synchronised_optimizer = true;
  costs.sync_latency = 0.5;
  const auto run = simulate_data_parallel(s, costs, data_parallel{2, {2.0, 6.0}, 0.0, 1.0});
  CHECK(run.reductions[0].end == doctest::Approx(11.0));
  CHECK(run.reductions[1].start == doctest::Approx(7.0));
  CHECK(run.reductions[1].end == doctest::Approx(13.0));
  CHECK(run.pipeline.step_time == doctest::Approx(10.5));  // 9 + 0.5 + 1
  CHECK(run.step_time == doctest::Approx(14.5));
  CHECK(run.exposed_reduction == doctest::Approx(4.0));
}

TEST_CASE("sim.data_parallel.bad_input" * doctest::timeout(10)) {
  const auto s = stretto::policies::make_schedule("1f1b", {4, 8, 1});
  auto message = [&](const data_parallel& dp) {
    try {
      (void)simulate_data_parallel(s, uniform_costs{}, dp);
    } catch (const stretto::argument_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message(data_parallel{0, {}, 0.0, 0.0}).find("groups (d) must be >= 1") != std::string::npos);
  CHECK(message(data_parallel{2, {1.0, 2.0}, 0.0, 0.0}).find("one entry per stage (4)") != std::string::npos);
  CHECK(message(data_parallel{2, {-1.0}, 0.0, 0.0}).find("gradient_bytes must be finite") != std::string::npos);
  CHECK(message(data_parallel{2, {1.0}, -1.0, 0.0}).find("latency and bandwidth") != std::string::npos);
}
