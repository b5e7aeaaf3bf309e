// Data × pipeline parallelism: the process grid's rank order and errors, and the step API's
// result against the sequential oracle. With W = the number of MPI ranks, every pp in {1, 2, 4}
// dividing W with dp = W / pp in {1, 2, 4} runs 1F1B, ZB-H1, ZB-V and Chimera (p even) through
// `stretto::training::pipeline`: two steps on a global batch of 42 samples (uneven slices and
// microbatches) leave every weight equal, to 1e-12 relative, to two sequential steps on the
// whole batch (mean loss, double precision), and the reported loss equals the sequential loss.
// Each stage's gradient all-reduce starts exactly once per step, right after that stage's last
// W or BW on the rank (before the rank's next op begins); a reduction that a rank never joins
// times out with a diagnostic naming rank, stage and op. On an asynchronous execution space
// (emulated: a model whose W writes only when its instance is fenced) the all-reduce starts after
// a fence; staged through host buffers (forced) it gives the direct path's results bit for bit.
#include <doctest/doctest.h>

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <stretto/mpi/gradient_reduction.hpp>
#include <stretto/mpi/process_grid.hpp>
#include <stretto/stretto.hpp>
#include <stretto/training/pipeline.hpp>

#include "fashion_mnist/mlp_model.hpp"
#include "common/mpi_world.hpp"

namespace {

using model_type = stretto::examples::mlp_model<double>;

const std::vector<std::int64_t> widths{12, 10, 9, 8, 8, 7, 6, 6, 5};  // 8 layers: ZB-V on 4 ranks has 8 stages
constexpr std::int64_t batch = 42;
constexpr std::uint64_t seed = 7;
constexpr double lr = 0.1, momentum = 0.9;


double relative_difference(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return diff / scale;
}

stretto::training::pipeline_options test_options() {
  stretto::training::pipeline_options o;
  o.grid.timeout = std::chrono::duration<double>(60.0);
  o.grid.on_timeout = stretto::mpi::timeout_action::throw_error;
  o.communicator.timeout = std::chrono::duration<double>(60.0);
  o.communicator.on_timeout = stretto::mpi::timeout_action::throw_error;
  o.reduction.timeout = std::chrono::duration<double>(60.0);
  o.reduction.on_timeout = stretto::mpi::timeout_action::throw_error;
  return o;
}

}  // namespace

TEST_CASE("mpi.data_parallel.grid_rank_order") {
  const int w = world_size(), me = world_rank();
  for (const std::int32_t pp : {1, 2, 4, 8}) {
    if (w % pp != 0) continue;
    const std::int32_t dp = w / pp;
    for (const auto order : {stretto::mpi::rank_order::pipeline_major, stretto::mpi::rank_order::data_parallel_major}) {
      CAPTURE(pp);
      CAPTURE(stretto::mpi::to_string(order));
      stretto::mpi::process_grid_options options;
      options.order = order;
      const stretto::mpi::process_grid grid(MPI_COMM_WORLD, pp, options);
      CHECK(grid.pipeline_size() == pp);
      CHECK(grid.data_parallel_size() == dp);
      // The documented formulas.
      if (order == stretto::mpi::rank_order::pipeline_major) {
        CHECK(grid.pipeline_rank() == me % pp);
        CHECK(grid.data_parallel_rank() == me / pp);
      } else {
        CHECK(grid.pipeline_rank() == me / dp);
        CHECK(grid.data_parallel_rank() == me % dp);
      }
      CHECK(grid.world_rank_of(grid.data_parallel_rank(), grid.pipeline_rank()) == me);
      // The groups: sizes and ranks within them, and who is in them.
      int size = 0, rank = 0;
      MPI_Comm_size(grid.pipeline(), &size);
      MPI_Comm_rank(grid.pipeline(), &rank);
      CHECK(size == pp);
      CHECK(rank == grid.pipeline_rank());
      MPI_Comm_size(grid.data_parallel(), &size);
      MPI_Comm_rank(grid.data_parallel(), &rank);
      CHECK(size == dp);
      CHECK(rank == grid.data_parallel_rank());
      std::vector<int> members(static_cast<std::size_t>(pp));
      MPI_Allgather(&me, 1, MPI_INT, members.data(), 1, MPI_INT, grid.pipeline());
      for (std::int32_t r = 0; r < pp; ++r)
        CHECK(members[static_cast<std::size_t>(r)] == grid.world_rank_of(grid.data_parallel_rank(), r));
    }
  }
  // The holders of a stage: its rank in every copy; both replicas' ranks in a bidirectional
  // schedule (Chimera at pp = 2: stage 0 sits on pipeline ranks 0 and 1), each group its own
  // communicator of that many ranks.
  if (w % 2 == 0) {
    const stretto::mpi::process_grid grid(MPI_COMM_WORLD, 2);
    const std::int32_t dp = w / 2;
    const stretto::schedule one_way = stretto::policies::make_schedule("1f1b", {2, 2, 1});
    const stretto::schedule both_ways = stretto::policies::make_schedule("chimera", {2, 2, 1});
    std::vector<std::int32_t> copies, replicas;
    for (std::int32_t d = 0; d < dp; ++d) {
      copies.push_back(grid.world_rank_of(d, 1));
      replicas.push_back(grid.world_rank_of(d, 0));
      replicas.push_back(grid.world_rank_of(d, 1));
    }
    std::sort(replicas.begin(), replicas.end());
    CHECK(grid.holders(one_way, 1) == copies);
    CHECK(grid.holders(both_ways, 0) == replicas);
    const auto groups = grid.stage_groups(both_ways);
    for (std::int32_t stage = 0; stage < 2; ++stage) {
      CHECK(groups.size(stage) == 2 * dp);
      int size = 0;
      MPI_Comm_size(groups.group(stage), &size);
      CHECK(size == 2 * dp);
    }
    const auto single = grid.stage_groups(one_way);
    CHECK(single.size(0) == dp);
    CHECK((single.group(0) == MPI_COMM_NULL) == (grid.pipeline_rank() != 0));
  }
  // Pipeline-major keeps pipeline neighbours adjacent: with 2 pipelines of w/2 ranks, ranks 0 and 1 share one.
  if (w >= 4) {
    const stretto::mpi::process_grid grid(MPI_COMM_WORLD, w / 2);
    CHECK(grid.world_rank_of(0, 1) == 1);
    CHECK(grid.world_rank_of(1, 0) == w / 2);
  }
}

TEST_CASE("mpi.data_parallel.grid_errors") {
  const int w = world_size();
  if (w >= 2) {
    // w + 1 never divides w (w >= 2): the message names the rule and the valid pipeline sizes.
    try {
      const stretto::mpi::process_grid grid(MPI_COMM_WORLD, w + 1);
      FAIL("no error for a pipeline of w + 1 ranks");
    } catch (const stretto::argument_error& e) {
      const std::string text = e.what();
      CHECK(text.find("not a multiple of the " + std::to_string(w + 1) + " pipeline ranks") != std::string::npos);
      CHECK(text.find("ranks = data-parallel groups × pipeline ranks") != std::string::npos);
      CHECK(text.find("use a pipeline of 1, ") != std::string::npos);
    }
  }
  stretto::mpi::process_grid_options options;
  options.data_parallel = w + 1;
  try {
    const stretto::mpi::process_grid grid(MPI_COMM_WORLD, 1, options);
    FAIL("no error for a data-parallel size that does not fit");
  } catch (const stretto::argument_error& e) {
    CHECK(std::string(e.what()).find("or use --data-parallel " + std::to_string(w)) != std::string::npos);
  }
  CHECK_THROWS_AS(stretto::mpi::process_grid(MPI_COMM_WORLD, 0), stretto::argument_error);
}

namespace {

// The sequential reference of the step tests: the whole batch on one process, two SGD steps on
// batches drawn with seeds 500 and 501; the model after them, the batches and each step's loss.
struct sequential_run {
  model_type model;
  std::vector<model_type::batch_data> data;
  std::vector<double> loss;
};
sequential_run sequential_reference() {
  sequential_run run{model_type(widths, 1, {0}, seed), {}, {}};
  run.data = {run.model.random_batch(batch, 500), run.model.random_batch(batch, 501)};
  for (const auto& d : run.data) run.loss.push_back(run.model.sequential_step(d, lr, momentum));
  return run;
}

}  // namespace

TEST_CASE("mpi.data_parallel.gradients_equal_the_sequential_run" * doctest::timeout(280)) {
  const int w = world_size();
  const int me = world_rank();
  const auto [reference, data, reference_loss] = sequential_reference();

  int combos = 0;
  for (const std::int32_t pp : {1, 2, 4}) {
    if (w % pp != 0 || w / pp > 4) continue;
    const std::int32_t dp = w / pp;
    for (const std::string_view name : {"1f1b", "zb-h1", "zb-v", "chimera"}) {
      const auto& policy = stretto::policies::find_policy(name);
      std::set<std::int32_t> ms{1, pp, 2 * pp, 3};
      // 1F1B also runs with the copies of a stage adjacent (data-parallel-major rank order).
      std::vector<stretto::mpi::rank_order> orders{stretto::mpi::rank_order::pipeline_major};
      if (name == "1f1b") orders.push_back(stretto::mpi::rank_order::data_parallel_major);
      for (const auto order : orders)
      for (const std::int32_t m : ms) {
        const stretto::pipeline_shape shape{pp, m, policy.default_chunks};
        if (!policy.check(shape).empty()) continue;
        CAPTURE(name);
        CAPTURE(pp);
        CAPTURE(dp);
        CAPTURE(m);
        CAPTURE(stretto::mpi::to_string(order));
        const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
        stretto::training::pipeline_options options = test_options();
        options.grid.order = order;
        stretto::training::pipeline<model_type> pipe(
            MPI_COMM_WORLD, plan, [&](std::vector<std::int32_t> local) { return model_type(widths, plan.num_stages(), local, seed); },
            options);
        model_type& model = pipe.model();
        for (std::size_t step = 0; step < data.size(); ++step) {
          std::int32_t calls = 0;
          const auto result = pipe.step(data[step], [&](std::int32_t stage, std::span<double>) {
            ++calls;
            model.apply_gradients(stage, lr, momentum);
          });
          CHECK(calls == static_cast<std::int32_t>(plan.stages_on_rank(pipe.grid().pipeline_rank()).size()));
          CHECK(std::abs(result.loss - reference_loss[step]) <= 1e-12 * std::abs(reference_loss[step]));
          CHECK(result.exposed_reduction >= 0.0);
          // Fired once per local stage, right after that stage's last W or BW of this rank's list.
          const auto ops = plan.ops(pipe.grid().pipeline_rank());
          const auto& trace = result.record->trace;
          for (const std::int32_t stage : pipe.reduction().local_stages()) {
            CAPTURE(stage);
            std::int64_t last = -1;
            for (std::size_t i = 0; i < ops.size(); ++i)
              if (ops[i].stage == stage && (ops[i].kind == stretto::op_kind::backward_weight ||
                                            ops[i].kind == stretto::op_kind::backward))
                last = static_cast<std::int64_t>(i);
            CHECK(pipe.reduction().starts(stage) == 1);
            REQUIRE(pipe.reduction().started_after(stage) == last);
            const auto at = static_cast<std::size_t>(last);
            CHECK(pipe.reduction().start_time(stage) >= trace[at].compute_end);
            if (at + 1 < trace.size()) CHECK(pipe.reduction().start_time(stage) <= trace[at + 1].wait_begin);
          }
          // With two stages on the rank (ZB-V, Chimera), the first reduction starts while the
          // rank still computes: before its last op's end.
          const auto& local = pipe.reduction().local_stages();
          if (local.size() >= 2) {
            double earliest = result.record->end();
            for (const std::int32_t stage : local) earliest = std::min(earliest, pipe.reduction().start_time(stage));
            CHECK(earliest < result.record->end());
          }
        }
        for (const std::int32_t s : plan.stages_on_rank(pipe.grid().pipeline_rank()))
          for (std::int32_t l = model.first_layer(s); l < model.first_layer(s + 1); ++l) {
            CAPTURE(l);
            CHECK(relative_difference(model.parameters(l), reference.parameters(l)) <= 1e-12);
          }
        CHECK(model.held_microbatches() == 0);
        ++combos;
        MPI_Barrier(MPI_COMM_WORLD);
      }
    }
  }
  CHECK(combos >= 3);  // at least 1F1B, ZB-H1 and ZB-V ran for some pp
  (void)me;
}

TEST_CASE("mpi.data_parallel.batch_too_small") {
  const int w = world_size();
  const stretto::schedule plan = stretto::policies::make_schedule("1f1b", {1, 4, 1});
  stretto::training::pipeline<model_type> pipe(
      MPI_COMM_WORLD, plan, [&](std::vector<std::int32_t> local) { return model_type(widths, 1, local, seed); },
      test_options());
  const auto tiny = pipe.model().random_batch(4 * w - 1, 1);  // dp = w copies × 4 microbatches need 4w samples
  try {
    pipe.step(tiny, [](std::int32_t) {});
    FAIL("no error for a batch smaller than dp × m");
  } catch (const stretto::argument_error& e) {
    CHECK(std::string(e.what()).find("use a batch of at least " + std::to_string(4 * w)) != std::string::npos);
  }
}

TEST_CASE("mpi.data_parallel.reduction_timeout_names_rank_stage_and_op") {
  const int w = world_size(), me = world_rank();
  if (w < 2) return;
  // dp = w copies of a one-rank 1F1B pipeline (ops F0 F1 BW0 BW1): the all-reduce of stage 0
  // starts after BW(stage 0, mb 1). Rank 0 starts it at once; the others only after 1.5 s, so
  // rank 0's wait (0.3 s) times out with the diagnostic, and a later wait completes the sum.
  const stretto::mpi::process_grid grid(MPI_COMM_WORLD, 1);
  const stretto::schedule plan = stretto::policies::make_schedule("1f1b", {1, 2, 1});
  stretto::mpi::gradient_reduction reduction(
      grid, plan, {std::chrono::duration<double>(0.3), stretto::mpi::timeout_action::throw_error});
  std::vector<double> gradients(5, me + 1.0);
  reduction.begin_step([&](std::int32_t) { return std::span<double>(gradients); });
  if (me != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto ops = plan.ops(0);
  for (std::size_t i = 0; i < ops.size(); ++i) reduction.op_done(i, ops[i]);
  CHECK(reduction.starts(0) == 1);
  CHECK(reduction.started_after(0) == 3);
  if (me == 0) {
    try {
      reduction.wait();
      FAIL("rank 0 did not time out");
    } catch (const stretto::timeout_error& e) {
      CHECK(std::string(e.what()) ==
            "stretto::mpi: rank 0 timed out after 0.3 s in the optimizer step waiting for the gradient all-reduce of "
            "stage 0 over its " + std::to_string(w) + " ranks, started after BW(stage 0, mb 1) (a rank of the group did "
            "not finish its step)");
    }
  }
  bool done = false;
  for (int attempt = 0; attempt < 100 && !done; ++attempt) {
    try {
      reduction.wait();
      done = true;
    } catch (const stretto::timeout_error&) {
    }
  }
  REQUIRE(done);
  for (const double g : gradients) CHECK(g == doctest::Approx(w * (w + 1) / 2.0));
}

namespace {

// The demo's MLP with its W deferred to its compute instance's fence, as on an asynchronous
// execution space (a GPU stream), where W returns once its kernels are queued: `backward_weight`
// only queues the accumulation, and `compute_space().fence()` runs the queued ones in order. The
// executor converts the instance to the host's execution space (whose fence runs nothing), so only
// a fence of the model's own instance writes the gradients: a reduction that read them before one
// would sum partial gradients.
class deferred_model {
 public:
  using matrix_type = model_type::matrix_type;
  struct instance {
    deferred_model* owner{nullptr};
    void fence() const { owner->run_queued(); }
    operator matrix_type::execution_space() const { return {}; }  // what the executor fences: nothing
  };

  deferred_model(std::int32_t stages, const std::vector<std::int32_t>& local) : inner_(widths, stages, local, seed) {
    queued_per_stage_.assign(static_cast<std::size_t>(stages), 0);
  }

  const instance& compute_space() {
    space_.owner = this;  // the pipeline holds the model by value: point at where it lives now
    return space_;
  }
  std::int64_t input_features(std::int32_t s) const { return inner_.input_features(s); }
  std::int64_t output_features(std::int32_t s) const { return inner_.output_features(s); }
  std::int64_t microbatch_rows(std::int32_t mb) const { return inner_.microbatch_rows(mb); }
  matrix_type input(std::int32_t mb) const { return inner_.input(mb); }
  void forward(std::int32_t s, std::int32_t mb, const matrix_type& x, const matrix_type& y) { inner_.forward(s, mb, x, y); }
  double loss(std::int32_t mb, const matrix_type& y, const matrix_type& dy) { return inner_.loss(mb, y, dy); }
  void backward_input(std::int32_t s, std::int32_t mb, const matrix_type& dy, const matrix_type& dx) {
    inner_.backward_input(s, mb, dy, dx);
  }
  void backward_weight(std::int32_t s, std::int32_t mb) {
    queued_.push_back({s, mb});
    ++queued_per_stage_[static_cast<std::size_t>(s)];
  }
  std::span<double> gradients(std::int32_t s) { return inner_.gradients(s); }
  static std::int64_t batch_rows(const model_type::batch_data& b) { return model_type::batch_rows(b); }
  void set_microbatches(const model_type::batch_data& b, std::span<const std::int64_t> offsets) {
    inner_.set_microbatches(b, offsets);
  }

  model_type& inner() noexcept { return inner_; }
  /// W's of `stage` queued and not yet run (written at the next fence).
  std::int32_t queued(std::int32_t stage) const { return queued_per_stage_[static_cast<std::size_t>(stage)]; }
  /// Fences that ran at least one queued W.
  std::int32_t writing_fences() const noexcept { return writing_fences_; }

 private:
  void run_queued() {
    if (!queued_.empty()) ++writing_fences_;
    for (const auto& [s, mb] : queued_) inner_.backward_weight(s, mb);
    queued_.clear();
    std::fill(queued_per_stage_.begin(), queued_per_stage_.end(), 0);
  }

  model_type inner_;
  instance space_{};
  std::vector<std::pair<std::int32_t, std::int32_t>> queued_;  // (stage, microbatch), in W order
  std::vector<std::int32_t> queued_per_stage_;
  std::int32_t writing_fences_{0};
};

// Right after each all-reduce start (observers run after the pipeline's own), whether the
// stage's W's were all written: counts the starts and those that found none still queued.
class start_checker final : public stretto::kokkos::observer {
 public:
  start_checker(const stretto::training::pipeline<deferred_model>& pipe, deferred_model& model)
      : pipe_(pipe), model_(model) {}
  std::int32_t started{0}, written{0};
  void on_compute_end(std::size_t index, const stretto::op&, clock::time_point) override {
    const auto& reduction = pipe_.reduction();
    for (const std::int32_t stage : reduction.local_stages())
      if (reduction.group_size(stage) > 1 && reduction.started_after(stage) == static_cast<std::int64_t>(index)) {
        ++started;
        written += model_.queued(stage) == 0 ? 1 : 0;
      }
  }

 private:
  const stretto::training::pipeline<deferred_model>& pipe_;
  deferred_model& model_;
};

}  // namespace

// The gradient all-reduce on an asynchronous execution space: with W's work done only when the
// model's compute instance is fenced (deferred_model), the pipeline fences that instance before
// each stage's all-reduce starts, so the reduced gradients, and the weights after two steps, equal
// the sequential run's (1e-12), with the executor's default fences (fence_every_op off).
TEST_CASE("mpi.data_parallel.reduction_fences_the_compute_instance_first" * doctest::timeout(200)) {
  const int w = world_size();
  if (w < 2) return;  // no all-reduce on one rank
  const auto [reference, data, reference_loss] = sequential_reference();

  int combos = 0;
  for (const std::int32_t pp : {1, 2, 4}) {
    if (w % pp != 0 || w / pp > 4) continue;
    for (const std::string_view name : {"1f1b", "zb-v", "chimera"}) {
      const auto& policy = stretto::policies::find_policy(name);
      for (const std::int32_t m : {1, 2 * pp}) {
        const stretto::pipeline_shape shape{pp, m, policy.default_chunks};
        if (!policy.check(shape).empty()) continue;
        if (w / pp < 2 && name != "chimera") continue;  // one copy of each stage: nothing to reduce
        const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
        CAPTURE(name);
        CAPTURE(pp);
        CAPTURE(m);
        stretto::training::pipeline_options options = test_options();
        REQUIRE_FALSE(options.executor.fence_every_op);
        stretto::training::pipeline<deferred_model> pipe(
            MPI_COMM_WORLD, plan, [&](std::vector<std::int32_t> local) { return deferred_model(plan.num_stages(), local); },
            options);
        deferred_model& model = pipe.model();
        start_checker checker(pipe, model);
        pipe.add_observer(checker);
        std::int32_t reduced = 0;  // local stages with more than one holder
        for (const std::int32_t stage : pipe.reduction().local_stages()) reduced += pipe.reduction().group_size(stage) > 1;
        for (std::size_t step = 0; step < data.size(); ++step) {
          const auto result = pipe.step(data[step], [&](std::int32_t stage, std::span<double>) {
            model.inner().apply_gradients(stage, lr, momentum);
          });
          CHECK(std::abs(result.loss - reference_loss[step]) <= 1e-12 * std::abs(reference_loss[step]));
        }
        CHECK(reduced > 0);
        CHECK(checker.started == 2 * reduced);  // each reduced stage's all-reduce, in each step
        CHECK(checker.written == checker.started);  // every one after its stage's W's were written
        CHECK(model.writing_fences() >= checker.started);
        for (const std::int32_t s : plan.stages_on_rank(pipe.grid().pipeline_rank()))
          for (std::int32_t l = model.inner().first_layer(s); l < model.inner().first_layer(s + 1); ++l) {
            CAPTURE(l);
            CHECK(relative_difference(model.inner().parameters(l), reference.parameters(l)) <= 1e-12);
          }
        CHECK(model.inner().held_microbatches() == 0);
        ++combos;
        MPI_Barrier(MPI_COMM_WORLD);
      }
    }
  }
  CHECK(combos >= 2);
}

namespace {

// One run of `plan` through the step API with the gradient all-reduce on `path`: every step's
// loss, the mean gradients the optimizer is given (this rank's stages, in order) and the weights.
struct reduction_run {
  std::vector<double> losses, gradients, weights;
  bool staged{false};
  std::size_t staging_allocations{0}, local_stages{0};
};

reduction_run train_reducing(const stretto::schedule& plan, stretto::kokkos::message_path path,
                             const std::vector<model_type::batch_data>& data) {
  stretto::training::pipeline_options options = test_options();
  options.executor.messages = path;
  stretto::training::pipeline<model_type> pipe(
      MPI_COMM_WORLD, plan, [&](std::vector<std::int32_t> local) { return model_type(widths, plan.num_stages(), local, seed); },
      options);
  model_type& model = pipe.model();
  reduction_run out;
  out.staged = pipe.stages_gradients();
  for (const auto& d : data) {
    const auto result = pipe.step(d, [&](std::int32_t stage, std::span<double> g) {
      out.gradients.insert(out.gradients.end(), g.begin(), g.end());
      model.apply_gradients(stage, lr, momentum);
    });
    out.losses.push_back(result.loss);
  }
  const auto local = plan.stages_on_rank(pipe.grid().pipeline_rank());
  out.local_stages = local.size();
  for (const std::int32_t s : local)
    for (std::int32_t l = model.first_layer(s); l < model.first_layer(s + 1); ++l) {
      const auto p = model.parameters(l);
      out.weights.insert(out.weights.end(), p.begin(), p.end());
    }
  out.staging_allocations = pipe.gradient_staging_allocations();
  MPI_Barrier(MPI_COMM_WORLD);
  return out;
}

}  // namespace

// The gradient all-reduce staged through host buffers (the path of gradients in device memory
// with an MPI that is not device-aware), forced on the host with `message_path::staged`: the
// losses, the reduced mean gradients and the weights after three steps equal the direct path's
// bit for bit, and the host buffers are allocated once per local stage (on the first step).
TEST_CASE("mpi.data_parallel.staged_reduction_equals_the_direct_one_bit_for_bit" * doctest::timeout(200)) {
  const int w = world_size();
  if (w < 2) return;  // no all-reduce on one rank
  model_type maker(widths, 1, {0}, seed);
  const std::vector<model_type::batch_data> data{maker.random_batch(batch, 600), maker.random_batch(batch, 601),
                                                 maker.random_batch(batch, 602)};
  int combos = 0;
  for (const std::int32_t pp : {1, 2, 4}) {
    if (w % pp != 0 || w / pp > 4) continue;
    for (const std::string_view name : {"1f1b", "zb-v", "chimera"}) {
      const auto& policy = stretto::policies::find_policy(name);
      const stretto::pipeline_shape shape{pp, 2 * pp, policy.default_chunks};
      if (!policy.check(shape).empty()) continue;
      if (w / pp < 2 && name != "chimera") continue;  // one copy of each stage: nothing to reduce
      CAPTURE(name);
      CAPTURE(pp);
      const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
      const reduction_run direct = train_reducing(plan, stretto::kokkos::message_path::automatic, data);
      const reduction_run staged = train_reducing(plan, stretto::kokkos::message_path::staged, data);
      CHECK_FALSE(direct.staged);  // host memory: the direct path by default
      CHECK(staged.staged);
      REQUIRE(direct.gradients.size() > 0);
      CHECK(staged.losses == direct.losses);  // exact: the same sums of the same values
      CHECK(staged.gradients == direct.gradients);
      CHECK(staged.weights == direct.weights);
      CHECK(direct.staging_allocations == 0);
      CHECK(staged.staging_allocations == staged.local_stages);  // on the first step only
      ++combos;
    }
  }
  CHECK(combos >= 2);
}
