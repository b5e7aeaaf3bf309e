// SkipPipe's execution against a sequential reference: one rank per node, every microbatch on its
// own path (stages left out, swapped neighbours), backward retracing it, the stage replicas'
// gradients all-reduced at the end of the step. After each of two steps (an SGD step with
// momentum between them) every rank's gradients equal, to 1e-12 relative in double, those of a
// single-process run that applies the same paths to the whole model, microbatch by microbatch;
// and the losses add up to the reference's. Settings: 2 stages x 2 nodes (4 ranks), 2 stages of 2
// and 3 nodes (5 ranks), 3 stages x 2 nodes and 2 stages x 3 nodes (6 ranks); plans from the
// planner, the full pipeline, random skipping, hand-written swaps and paths of stage 0 alone; plain
// and residual stages; m = 2 (fewer microbatches than nodes) up to 9. Also: bad plans and models
// refused with the rule, and a node that never runs its ops reported by the waiting ranks (rank,
// op, message) within the timeout.
#include <doctest/doctest.h>

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <stretto/skippipe/planner.hpp>
#include <stretto/training/skippipe.hpp>

#include "fashion_mnist/mlp_model.hpp"
#include "common/mpi_world.hpp"

namespace {

using model_type = stretto::examples::mlp_model<double>;
using matrix_type = model_type::matrix_type;
namespace sp = stretto::skippipe;

constexpr std::int64_t input_width = 6, hidden = 5, classes = 4;
constexpr std::uint64_t seed = 7;
constexpr double lr = 0.1, momentum = 0.9;


// Nodes 0.. in stage order, heterogeneous compute (1, 1.5, 2, 1, …), a uniform network.
sp::setting make_setting(const std::vector<std::int32_t>& sizes, std::int32_t path_length, std::int32_t microbatches,
                         std::int32_t memory) {
  sp::setting s;
  std::int32_t n = 0;
  for (const std::int32_t k : sizes) {
    std::vector<std::int32_t> nodes;
    for (std::int32_t i = 0; i < k; ++i) nodes.push_back(n++);
    s.stages.push_back(nodes);
  }
  for (std::int32_t a = 0; a < n; ++a) s.compute.push_back(1.0 + 0.5 * (a % 3));
  s.latency.assign(static_cast<std::size_t>(n), std::vector<double>(static_cast<std::size_t>(n), 0.1));
  s.bandwidth.assign(static_cast<std::size_t>(n), std::vector<double>(static_cast<std::size_t>(n), 1e9));
  s.activation_bytes = 1e6;
  s.path_length = path_length;
  s.microbatches = microbatches;
  s.memory = memory;
  s.check();
  return s;
}

// The model: layer 0 (input → hidden) is model stage 0, layers 1 … S−1 (hidden → hidden) the
// skippable stages, layer S (hidden → classes) the head.
std::vector<std::int64_t> widths_for(std::int32_t stages) {
  std::vector<std::int64_t> w{input_width};
  for (std::int32_t s = 0; s < stages; ++s) w.push_back(hidden);
  w.push_back(classes);
  return w;
}
std::vector<std::int32_t> boundaries_for(std::int32_t stages) {
  std::vector<std::int32_t> b;
  for (std::int32_t s = 0; s <= stages + 1; ++s) b.push_back(s);
  return b;
}

void add(const matrix_type& y, const matrix_type& a, const matrix_type& b) {
  Kokkos::parallel_for(
      "test::add", Kokkos::MDRangePolicy<Kokkos::Rank<2>>({0, 0}, {y.extent(0), y.extent(1)}),
      KOKKOS_LAMBDA(const std::size_t i, const std::size_t j) { y(i, j) = a(i, j) + b(i, j); });
}

// The sequential reference: the whole model in one process, microbatch by microbatch, each along
// its path (model stage stage_of(node) per visited node, the head and the loss, then back).
double reference_step(model_type& ref, const sp::setting& s, const std::vector<sp::path>& paths, bool residual) {
  const std::int32_t S = s.num_stages();
  double total = 0.0;
  for (std::int32_t j = 0; j < s.num_microbatches(); ++j) {
    const sp::path& p = paths[static_cast<std::size_t>(j)];
    const auto rows = ref.microbatch_rows(j);
    matrix_type x = ref.input(j);
    for (std::size_t k = 0; k < p.size(); ++k) {
      const std::int32_t ms = k == 0 ? 0 : s.stage_of(p[k]);
      matrix_type f("f", rows, hidden);
      ref.forward(ms, j, x, f);
      if (residual && ms > 0) {
        matrix_type y("y", rows, hidden);
        add(y, x, f);
        x = y;
      } else {
        x = f;
      }
    }
    matrix_type logits("logits", rows, classes), dlogits("dlogits", rows, classes);
    ref.forward(S, j, x, logits);
    total += ref.loss(j, logits, dlogits);
    matrix_type g("g", rows, hidden);
    ref.backward_input(S, j, dlogits, g);
    ref.backward_weight(S, j);
    for (std::size_t k = p.size(); k-- > 0;) {
      const std::int32_t ms = k == 0 ? 0 : s.stage_of(p[k]);
      matrix_type dx("dx", k == 0 ? 0 : rows, hidden);
      ref.backward_input(ms, j, g, dx);
      if (residual && ms > 0) add(dx, dx, g);
      ref.backward_weight(ms, j);
      g = dx;
    }
  }
  Kokkos::fence();
  return total;
}

double relative_difference(std::span<const double> got, std::span<const double> want) {
  double diff = 0.0, scale = 1e-300;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return diff / scale;
}

// Two steps of the runner against two steps of the reference, on every rank.
void check_equivalence(const sp::setting& s, const std::vector<sp::path>& paths, bool residual, const std::string& label) {
  CAPTURE(label);
  CAPTURE(residual);
  const std::int32_t S = s.num_stages();
  const std::int32_t rank = world_rank();
  const std::int32_t stage = s.stage_of(rank);
  const std::vector<std::int32_t> local = stage == 0 ? std::vector<std::int32_t>{0, S} : std::vector<std::int32_t>{stage};
  std::vector<std::int32_t> all;
  for (std::int32_t ms = 0; ms <= S; ++ms) all.push_back(ms);
  model_type model(widths_for(S), boundaries_for(S), local, seed);
  model_type ref(widths_for(S), boundaries_for(S), all, seed);
  stretto::training::skippipe_options o;
  o.residual = residual;
  o.timeout = std::chrono::duration<double>(60.0);
  stretto::training::skippipe_runner runner(MPI_COMM_WORLD, s, paths, model, o);
  const std::int32_t m = s.num_microbatches();
  const std::int64_t batch = 3 * m + 1;  // microbatches of 3 and 4 rows
  for (int step = 0; step < 2; ++step) {
    CAPTURE(step);
    const auto data = model.random_batch(batch, seed + 100 + static_cast<std::uint64_t>(step));
    model.set_batch(data.inputs, data.labels, batch, m, batch);
    ref.set_batch(data.inputs, data.labels, batch, m, batch);
    const stretto::training::skippipe_step_result r = runner.step();
    const double want_loss = reference_step(ref, s, paths, residual);
    double loss = 0.0;
    MPI_Allreduce(&r.loss, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    CHECK(std::abs(loss - want_loss) <= 1e-12 * std::abs(want_loss));
    // The ops this rank ran: a forward and a backward per visit, a loss op per microbatch it starts.
    std::int32_t visits = 0;
    for (std::int32_t j = 0; j < m; ++j)
      for (std::size_t k = 0; k < paths[static_cast<std::size_t>(j)].size(); ++k)
        visits += paths[static_cast<std::size_t>(j)][k] == rank ? (k == 0 ? 3 : 2) : 0;
    CHECK(r.ops == visits);
    for (const std::int32_t ms : local) {
      CAPTURE(ms);
      const auto got = model.gradients(ms);
      const auto want = ref.gradients(ms);
      REQUIRE(got.size() == want.size());
      bool visited = ms == 0 || ms == S;
      for (const sp::path& p : paths)
        for (const std::int32_t node : p) visited = visited || s.stage_of(node) == ms;
      double norm = 0.0;
      for (const double v : want) norm += v * v;
      CHECK((norm > 0.0) == visited);  // a stage no path visits has no gradient
      CHECK(relative_difference(got, want) <= 1e-12);
    }
    model.apply_gradients(lr, momentum);
    ref.apply_gradients(lr, momentum);
  }
}

std::vector<sp::path> stage_zero_only(const sp::setting& s) {
  std::vector<sp::path> out;
  for (std::int32_t j = 0; j < s.num_microbatches(); ++j) out.push_back({s.data_node(j)});
  return out;
}

}  // namespace

TEST_CASE("skippipe execution: gradients equal the sequential run of the same paths") {
  const int n = world_size();
  if (n == 4) {  // 2 stages x 2 nodes
    const sp::setting full = make_setting({2, 2}, 2, 3, 3);
    // Paths of stage 0 alone (skip ratio 1/2, m = 2 < 4 nodes): the loss op follows the forward
    // on the same node; stage 1 gets no gradient.
    const sp::setting alone = make_setting({2, 2}, 1, 1, 3);
    for (const bool residual : {false, true}) {
      check_equivalence(full, sp::full_pipeline_paths(full), residual, "2x2 full pipeline, m = 6");
      check_equivalence(full, sp::plan(full).paths, residual, "2x2 planner, path length 2, m = 6");
      check_equivalence(alone, stage_zero_only(alone), residual, "2x2 stage 0 alone, m = 2");
    }
  } else if (n == 5) {  // 2 stages of 2 and 3 nodes
    const sp::setting s = make_setting({2, 3}, 2, 3, 3);
    for (const bool residual : {false, true}) {
      check_equivalence(s, sp::full_pipeline_paths(s), residual, "2+3 full pipeline, m = 6");
      check_equivalence(s, sp::random_skip_paths(s, 3), residual, "2+3 random, m = 6");
    }
  } else if (n == 6) {
    // 3 stages x 2 nodes: skip ratio 1/3 from the planner, random skipping, swaps by hand.
    const sp::setting s3 = make_setting({2, 2, 2}, 2, 3, 3);
    const sp::setting s3_swaps = make_setting({2, 2, 2}, 3, 2, 3);
    // Node numbers: stage 0 = {0, 1}, stage 1 = {2, 3}, stage 2 = {4, 5}.
    const std::vector<sp::path> swaps{{0, 4, 2}, {0, 3, 5}, {1, 5, 3}, {1, 2, 4}};
    REQUIRE(sp::find_violations(s3_swaps, swaps).empty());
    for (const bool residual : {false, true}) {
      check_equivalence(s3, sp::plan(s3).paths, residual, "3x2 planner, skip 1/3, m = 6");
      check_equivalence(s3, sp::random_skip_paths(s3, 5), residual, "3x2 random, skip 1/3, m = 6");
      check_equivalence(s3_swaps, swaps, residual, "3x2 swapped stages 2 and 1, m = 4");
      check_equivalence(s3_swaps, sp::full_pipeline_paths(s3_swaps), residual, "3x2 full pipeline, m = 4");
    }
    // 2 stages x 3 nodes: 3 replicas of each stage.
    const sp::setting s2 = make_setting({3, 3}, 2, 3, 3);
    const sp::setting s2_small = make_setting({3, 3}, 2, 1, 3);  // m = 3 < 6 nodes
    for (const bool residual : {false, true}) {
      check_equivalence(s2, sp::plan(s2).paths, residual, "2x3 planner, m = 9");
      check_equivalence(s2_small, sp::full_pipeline_paths(s2_small), residual, "2x3 full pipeline, m = 3");
    }
  }
}

TEST_CASE("skippipe execution: bad plans and models are refused with the rule") {
  const int n = world_size();
  if (n < 2) return;
  const sp::setting s = make_setting({1, n - 1}, 2, 2, 3);
  const std::vector<std::int32_t> local = world_rank() == 0 ? std::vector<std::int32_t>{0, 2} : std::vector<std::int32_t>{1};
  model_type model(widths_for(2), boundaries_for(2), local, seed);
  std::vector<sp::path> bad = sp::full_pipeline_paths(s);
  bad[1] = {1, 0};  // starts on a stage-1 node
  CHECK_THROWS_WITH_AS(stretto::training::skippipe_runner(MPI_COMM_WORLD, s, bad, model),
                       doctest::Contains("microbatch 1, node 1: rule start"), stretto::argument_error);
  bad[1] = {0, 0};
  CHECK_THROWS_WITH_AS(stretto::training::skippipe_runner(MPI_COMM_WORLD, s, bad, model),
                       doctest::Contains("microbatch 1, node 0: rule stage-once"), stretto::argument_error);
  // A stage that narrows the width cannot be skipped.
  model_type narrow({input_width, hidden, hidden - 1, classes}, boundaries_for(2), local, seed);
  CHECK_THROWS_WITH_AS(stretto::training::skippipe_runner(MPI_COMM_WORLD, s, sp::full_pipeline_paths(s), narrow),
                       doctest::Contains("stage 1's output width is 4 but stage 0's output width is 5"),
                       stretto::argument_error);
  // One rank per node.
  const sp::setting more = make_setting({1, n}, 2, 1, 3);
  const std::string expected = "launch with -n " + std::to_string(n + 1);
  CHECK_THROWS_WITH_AS(stretto::training::skippipe_runner(MPI_COMM_WORLD, more, sp::full_pipeline_paths(more), model),
                       doctest::Contains(expected.c_str()), stretto::argument_error);
}

TEST_CASE("skippipe execution: a node that never runs its ops is reported by rank and op, within the timeout") {
  if (world_size() != 4) return;  // 2 stages x 2 nodes
  const sp::setting s = make_setting({2, 2}, 2, 1, 3);
  const std::int32_t rank = world_rank();
  const std::vector<std::int32_t> local = rank < 2 ? std::vector<std::int32_t>{0, 2} : std::vector<std::int32_t>{1};
  model_type model(widths_for(2), boundaries_for(2), local, seed);
  stretto::training::skippipe_options o;
  o.timeout = std::chrono::duration<double>(0.5);
  o.on_timeout = stretto::mpi::timeout_action::throw_error;
  {
    stretto::training::skippipe_runner runner(MPI_COMM_WORLD, s, sp::full_pipeline_paths(s), model, o);
    const auto data = model.random_batch(4, seed);
    model.set_batch(data.inputs, data.labels, 4, 2, 4);
    if (rank < 2) {  // stage 0 runs its forwards, then waits for the loss op's input from stage 1
      const std::string expected = "stretto::mpi: rank " + std::to_string(rank) +
                                   " timed out after 0.5 s in F(stage 2, mb " + std::to_string(rank) +
                                   ") waiting for the receive of the activation of mb " + std::to_string(rank) +
                                   " from stage 1 to stage 0 from rank " + std::to_string(rank + 2);
      const auto begin = std::chrono::steady_clock::now();
      CHECK_THROWS_WITH_AS(runner.step(), doctest::Contains(expected.c_str()), stretto::timeout_error);
      CHECK(std::chrono::steady_clock::now() - begin < std::chrono::seconds(10));
    }
    // Stage 1's nodes never run theirs.
  }
  MPI_Barrier(MPI_COMM_WORLD);
}
