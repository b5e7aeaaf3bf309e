// The step API's own services (`stretto::training::pipeline`), under mpiexec at 1, 2 and 4 ranks
// (pp = 1 or 2, dp = W / pp), on the demo's MLP and a global batch of 24 samples:
// - non-finite values: a NaN put into one stage's gradient (before its first W of the step, on
//   every rank that holds the stage) skips the optimizer step on every rank with `skip_step`
//   (weights unchanged, gradients zeroed, the optimizer never called, the lowest rank holding that
//   stage named as the origin with "non-finite gradient of stage s"), after which a clean step
//   equals the sequential first step; with `throw_error` every rank throws `nonfinite_error`
//   naming the same origin. A NaN input makes microbatch 0's loss NaN: the loss outranks every
//   gradient, named as "non-finite loss (nan) of microbatch 0 on stage S-1".
// - `local_loss` summed over the ranks is `loss`; `align_steps` changes no number.
// - `replan` to another schedule of the same shape and placement continues training (two
//   steps equal the sequential ones) with the observers still attached; another shape is refused.
#include <doctest/doctest.h>

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <stretto/stretto.hpp>
#include <stretto/training/pipeline.hpp>

#include "fashion_mnist/mlp_model.hpp"
#include "common/mpi_world.hpp"

namespace {

using model_type = stretto::examples::mlp_model<double>;

const std::vector<std::int64_t> widths{12, 10, 9, 8, 6};  // 4 layers
constexpr std::int64_t batch = 24;
constexpr std::uint64_t seed = 11;
constexpr double lr = 0.1, momentum = 0.9;


stretto::training::pipeline_options test_options(stretto::training::nonfinite_action action) {
  stretto::training::pipeline_options o;
  o.grid.timeout = o.communicator.timeout = o.reduction.timeout = std::chrono::duration<double>(60.0);
  o.grid.on_timeout = o.communicator.on_timeout = o.reduction.on_timeout = stretto::mpi::timeout_action::throw_error;
  o.on_nonfinite = action;
  return o;
}

// Puts a NaN into stage `stage`'s gradient before its first W or BW of the next step.
class nan_injector final : public stretto::kokkos::observer {
 public:
  nan_injector(model_type& model, std::int32_t stage) : model_(model), stage_(stage) {}
  bool armed{false};
  void on_compute_begin(std::size_t, const stretto::op& o, clock::time_point) override {
    if (armed && o.stage == stage_ &&
        (o.kind == stretto::op_kind::backward_weight || o.kind == stretto::op_kind::backward)) {
      model_.inject_nan_gradient(stage_);
      armed = false;
    }
  }

 private:
  model_type& model_;
  std::int32_t stage_;
};

class step_counter final : public stretto::kokkos::observer {
 public:
  int steps{0};
  void on_step_begin(std::span<const stretto::op>, clock::time_point) override { ++steps; }
};

double relative_difference(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return diff / scale;
}

// The lowest world rank whose pipeline rank holds `stage` (pipeline-major: world = d · pp + r).
std::int32_t lowest_rank_holding(const stretto::schedule& plan, std::int32_t stage) {
  for (std::int32_t r = 0; r < plan.num_ranks(); ++r) {
    const auto local = plan.stages_on_rank(r);
    if (std::find(local.begin(), local.end(), stage) != local.end()) return r;
  }
  return -1;
}

}  // namespace

TEST_CASE("mpi.step_api.nonfinite_gradient_skipped_then_training_goes_on" * doctest::timeout(120)) {
  const int w = world_size();
  model_type reference(widths, 1, {0}, seed);
  const auto data = reference.random_batch(batch, 300);
  const double reference_loss = reference.sequential_step(data, lr, momentum);
  for (const std::int32_t pp : {1, 2}) {
    if (w % pp != 0) continue;
    const stretto::schedule plan = stretto::policies::make_schedule("zb-h1", {pp, 4, 1});
    for (std::int32_t bad = 0; bad < plan.num_stages(); ++bad) {
      CAPTURE(pp);
      CAPTURE(bad);
      stretto::training::pipeline<model_type> pipe(
          MPI_COMM_WORLD, plan, [&](std::vector<std::int32_t> local) { return model_type(widths, plan.num_stages(), local, seed); },
          test_options(stretto::training::nonfinite_action::skip_step));
      model_type& model = pipe.model();
      nan_injector inject(model, bad);
      pipe.add_observer(inject);
      const auto local = plan.stages_on_rank(pipe.grid().pipeline_rank());
      const bool holds_bad = std::find(local.begin(), local.end(), bad) != local.end();
      std::vector<std::vector<double>> before;
      for (std::int32_t l = 0; l < model.num_layers(); ++l) before.push_back(model.parameters(l));
      inject.armed = holds_bad;
      int calls = 0;
      const auto skipped = pipe.step(data, [&](std::int32_t s) {
        ++calls;
        model.apply_gradients(s, lr, momentum);
      });
      CHECK_FALSE(skipped.applied);
      CHECK(calls == 0);
      CHECK(skipped.nonfinite.origin == lowest_rank_holding(plan, bad));
      if (skipped.nonfinite.origin == pipe.grid().world_rank())
        CHECK(skipped.nonfinite.finding == "non-finite gradient of stage " + std::to_string(bad));
      else
        CHECK(skipped.nonfinite.finding.empty());
      for (std::int32_t l = 0; l < model.num_layers(); ++l) CHECK(model.parameters(l) == before[static_cast<std::size_t>(l)]);
      for (const std::int32_t s : local)
        for (const double g : model.gradients(s)) REQUIRE(g == 0.0);
      // The skipped step left no trace: the next one is the sequential first step.
      const auto next = pipe.step(data, [&](std::int32_t s) { model.apply_gradients(s, lr, momentum); });
      CHECK(next.applied);
      CHECK(next.nonfinite.origin == -1);
      CHECK(std::abs(next.loss - reference_loss) <= 1e-12 * std::abs(reference_loss));
      for (const std::int32_t s : local)
        for (std::int32_t l = model.first_layer(s); l < model.first_layer(s + 1); ++l)
          CHECK(relative_difference(model.parameters(l), reference.parameters(l)) <= 1e-12);
      MPI_Barrier(MPI_COMM_WORLD);
    }
  }
}

TEST_CASE("mpi.step_api.nonfinite_thrown_on_every_rank" * doctest::timeout(120)) {
  const int w = world_size();
  const std::int32_t pp = w % 2 == 0 ? 2 : 1;
  const stretto::schedule plan = stretto::policies::make_schedule("1f1b", {pp, 4, 1});
  stretto::training::pipeline<model_type> pipe(
      MPI_COMM_WORLD, plan, [&](std::vector<std::int32_t> local) { return model_type(widths, plan.num_stages(), local, seed); },
      test_options(stretto::training::nonfinite_action::throw_error));
  model_type& model = pipe.model();
  const std::int32_t me = pipe.grid().world_rank();
  const auto data = model.random_batch(batch, 301);
  nan_injector inject(model, 0);
  pipe.add_observer(inject);
  inject.armed = pipe.grid().pipeline_rank() == 0;
  bool thrown = false;
  try {
    pipe.step(data, [](std::int32_t) { FAIL("the optimizer ran in a step with a NaN gradient"); });
  } catch (const stretto::training::nonfinite_error& e) {
    thrown = true;
    CHECK(e.origin() == 0);
    if (me == 0) {
      CHECK(std::string(e.what()) ==
            "stretto::training: rank 0: non-finite gradient of stage 0 in step 1 (nonfinite_action::skip_step skips such steps)");
      CHECK(e.finding() == "non-finite gradient of stage 0");
    } else {
      CHECK(std::string(e.what()) == "stretto::training: rank 0 found a non-finite value in step 1");
      CHECK(e.finding().empty());
    }
  }
  CHECK(thrown);
  MPI_Barrier(MPI_COMM_WORLD);

  // A NaN input: microbatch 0's loss is NaN and so is every stage's gradient; the loss is the
  // origin, found by the lowest rank of the last stage (pipeline rank pp - 1 of copy 0).
  auto poisoned = model.random_batch(batch, 302);
  Kokkos::deep_copy(Kokkos::subview(poisoned.inputs, 0, 0), std::numeric_limits<double>::quiet_NaN());
  try {
    pipe.step(poisoned, [](std::int32_t) { FAIL("the optimizer ran in a step with a NaN loss"); });
    FAIL("no nonfinite_error for a NaN loss");
  } catch (const stretto::training::nonfinite_error& e) {
    CHECK(e.origin() == pp - 1);
    if (me == pp - 1) {
      const std::string f = e.finding();
      CHECK(f.rfind("non-finite loss (", 0) == 0);
      CHECK(f.find(") of microbatch 0 on stage " + std::to_string(pp - 1)) != std::string::npos);
      CHECK(std::string(e.what()).find(" in step 2 ") != std::string::npos);
    }
  }
  CHECK(pipe.steps() == 2);
}

TEST_CASE("mpi.step_api.local_losses_sum_to_the_loss_and_aligned_steps_change_nothing" * doctest::timeout(120)) {
  const int w = world_size();
  model_type reference(widths, 1, {0}, seed);
  const std::vector<model_type::batch_data> data{reference.random_batch(batch, 310), reference.random_batch(batch, 311)};
  std::vector<double> reference_loss;
  for (const auto& d : data) reference_loss.push_back(reference.sequential_step(d, lr, momentum));
  for (const std::int32_t pp : {1, 2}) {
    if (w % pp != 0) continue;
    for (const bool align : {false, true}) {
      CAPTURE(pp);
      CAPTURE(align);
      const stretto::schedule plan = stretto::policies::make_schedule(pp == 2 ? "chimera" : "1f1b", {pp, 4, 1});
      auto options = test_options(stretto::training::nonfinite_action::throw_error);
      options.align_steps = align;
      stretto::training::pipeline<model_type> pipe(
          MPI_COMM_WORLD, plan, [&](std::vector<std::int32_t> local) { return model_type(widths, plan.num_stages(), local, seed); },
          options);
      for (std::size_t step = 0; step < data.size(); ++step) {
        const auto result = pipe.step(data[step], [&](std::int32_t s) { pipe.model().apply_gradients(s, lr, momentum); });
        double sum = 0.0;
        MPI_Allreduce(&result.local_loss, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        CHECK(std::abs(sum - result.loss) <= 1e-14 * std::abs(result.loss));
        CHECK(std::abs(result.loss - reference_loss[step]) <= 1e-12 * std::abs(reference_loss[step]));
        const auto local = plan.stages_on_rank(pipe.grid().pipeline_rank());
        if (std::find(local.begin(), local.end(), plan.num_stages() - 1) == local.end()) CHECK(result.local_loss == 0.0);
        else CHECK(result.local_loss > 0.0);
      }
    }
  }
}

TEST_CASE("mpi.step_api.replan_keeps_model_and_observers" * doctest::timeout(120)) {
  const int w = world_size();
  const std::int32_t pp = w % 2 == 0 ? 2 : 1;
  model_type reference(widths, 1, {0}, seed);
  const std::vector<model_type::batch_data> data{reference.random_batch(batch, 320), reference.random_batch(batch, 321)};
  std::vector<double> reference_loss;
  for (const auto& d : data) reference_loss.push_back(reference.sequential_step(d, lr, momentum));
  const stretto::schedule first = stretto::policies::make_schedule("zb-h1", {pp, 4, 1});
  stretto::training::pipeline<model_type> pipe(
      MPI_COMM_WORLD, first, [&](std::vector<std::int32_t> local) { return model_type(widths, first.num_stages(), local, seed); },
      test_options(stretto::training::nonfinite_action::throw_error));
  model_type& model = pipe.model();
  step_counter counter;
  pipe.add_observer(counter);
  const auto sgd = [&](std::int32_t s) { model.apply_gradients(s, lr, momentum); };
  const double loss0 = pipe.step(data[0], sgd).loss;
  pipe.replan(stretto::policies::make_schedule("1f1b", {pp, 4, 1}));
  const stretto::schedule second = stretto::policies::make_schedule("1f1b", {pp, 4, 1});
  CHECK(std::ranges::equal(pipe.plan().ops(0), second.ops(0)));
  const double loss1 = pipe.step(data[1], sgd).loss;
  CHECK(counter.steps == 2);
  CHECK(std::abs(loss0 - reference_loss[0]) <= 1e-12 * std::abs(reference_loss[0]));
  CHECK(std::abs(loss1 - reference_loss[1]) <= 1e-12 * std::abs(reference_loss[1]));
  for (const std::int32_t s : pipe.plan().stages_on_rank(pipe.grid().pipeline_rank()))
    for (std::int32_t l = model.first_layer(s); l < model.first_layer(s + 1); ++l)
      CHECK(relative_difference(model.parameters(l), reference.parameters(l)) <= 1e-12);
  try {
    pipe.replan(stretto::policies::make_schedule("1f1b", {pp, 8, 1}));
    FAIL("replan took another shape");
  } catch (const stretto::argument_error& e) {
    CHECK(std::string(e.what()).find("differs from the pipeline's " + std::to_string(pp) + "x4x1") != std::string::npos);
  }
}
