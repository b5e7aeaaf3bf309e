#pragma once
/**
@file
@brief The step API: one object that owns the process grid, the schedule, this rank's executor
and the data-parallel gradient reduction, and trains one global batch per `step(batch)`.
*/

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <stretto/core/errors.hpp>
#include <stretto/core/schedule.hpp>
#include <stretto/detail/text.hpp>
#include <stretto/kokkos/executor.hpp>
#include <stretto/mpi/communicator.hpp>
#include <stretto/mpi/gradient_reduction.hpp>
#include <stretto/mpi/process_grid.hpp>
#include <stretto/training/checkpoint.hpp>

namespace stretto::training {

/**
@brief The executor observer that starts a stage's gradient all-reduce as soon as its last W (or
BW) of the step has run (`mpi::gradient_reduction::op_done` at each `on_compute_end`).
*/
class reduction_observer final : public kokkos::observer {
 public:
  explicit reduction_observer(mpi::gradient_reduction& r) noexcept : reduction_(r) {}
  void on_compute_end(std::size_t index, const op& o, clock::time_point) override { reduction_.op_done(index, o); }

 private:
  mpi::gradient_reduction& reduction_;
};

/**
@brief What `pipeline` needs of a model besides `kokkos::stage_model` and `mpi::gradient_model`,
for a batch type `Batch`:

| Valid expression | Meaning |
|---|---|
| `model.batch_rows(batch)` | the number of samples of the global batch |
| `model.set_microbatches(batch, offsets)` | microbatch j is rows [offsets[j], offsets[j+1]) of `batch` (a `std::span<const std::int64_t>` of m+1 offsets) |

**Loss.** `model.loss(mb, y, dy)` returns the *sum* of the per-sample losses of microbatch `mb`
and writes the gradient of that sum: the pipeline divides the reduced gradients and the loss by
the global batch (one scaling, after the sums, as a mean loss over the global batch gives).
*/
template <class M, class Batch>
concept batch_model = kokkos::stage_model<M> && mpi::gradient_model<M> &&
                      requires(M& model, const Batch& batch, std::span<const std::int64_t> offsets) {
                        { model.batch_rows(batch) } -> std::convertible_to<std::int64_t>;
                        model.set_microbatches(batch, offsets);
                      };

/** @brief Options of a `pipeline`. */
struct pipeline_options {
  mpi::process_grid_options grid{};                  ///< rank order, expected data-parallel size
  mpi::communicator_options communicator{};          ///< the pipeline's messages (timeouts, progress)
  mpi::gradient_reduction_options reduction{};       ///< the gradient all-reduces (timeout)
  kokkos::executor_options executor{};               ///< the receive lookahead
};

/** @brief What one `pipeline::step` returns (on every rank). */
struct step_result {
  double loss{0.0};             ///< mean loss over the global batch (summed over the last stages and the data-parallel groups)
  double exposed_reduction{0.0};  ///< seconds this rank waited for its gradient all-reduces after its last op
  const kokkos::step_record* record{nullptr};  ///< this rank's op timings of the step (valid until the next step)
};

/**
@brief Data × pipeline parallel training, one global batch per call, as PyTorch's
`schedule.step(x, target=y)`.

**Construction** (collective over `comm`): splits `comm` into `dp = size / pp` pipelines of
`pp = plan.num_ranks()` ranks (`mpi::process_grid`, pipeline-major by default), creates this
rank's model with `make_model(local_stages)` (the stages `plan` places on this rank's pipeline
rank), the pipeline's `mpi::communicator`, the stage groups of the gradient reduction and the
`kokkos::executor`.

**`step(batch, optimizer)`**, on every rank with the same global batch:
1. the batch of B samples is cut into dp contiguous slices (data-parallel copy d gets rows
   [d·⌊B/dp⌋ + min(d, B mod dp), …), sizes differing by at most one), and this copy's slice into
   the schedule's m microbatches the same way (`model.set_microbatches`);
2. this rank's op list runs; each stage's gradient all-reduce over the ranks that hold it (its
   data-parallel group, and both replicas of a bidirectional schedule) starts right after the
   stage's last W or BW, while the other stages still compute (`mpi::gradient_reduction`);
3. the loss is summed over the last stages of every copy, the all-reduces are awaited (bounded;
   the wait is the exposed reduction time), every local stage's gradients are divided by B;
4. `optimizer(stage, gradients)` runs for each stage this rank holds (`gradients` the stage's
   `std::span` from `model.gradients(stage)`), then the gradients are zeroed for the next step.

The result equals a sequential step on the whole batch with the mean loss, up to the order of
floating-point sums (the tests check 1e-12 in double).

**Errors.** `argument_error` when the communicator's size is not a multiple of pp (from the
grid), or when B < dp · m (every microbatch needs a sample), naming the rule and the smallest
valid batch; timeouts as `pipeline_options` say, with rank, stage and op.

@pre MPI initialised (with `MPI_THREAD_MULTIPLE` for the default progress thread); Kokkos
initialised with a host-accessible default memory space (the gradients are summed in place by
MPI on host memory).
*/
template <class Model>
class pipeline {
 public:
  using clock = std::chrono::steady_clock;

  template <class MakeModel>
    requires std::invocable<MakeModel&, std::vector<std::int32_t>>
  pipeline(MPI_Comm comm, const schedule& plan, MakeModel&& make_model, pipeline_options options = {})
      : options_(options),
        grid_(comm, plan.num_ranks(), options.grid),
        plan_(plan),
        model_(make_model(plan.stages_on_rank(grid_.pipeline_rank()))),
        comm_(grid_.pipeline(), plan.shape(), options.communicator),
        reduction_(grid_, plan, options.reduction),
        observer_(reduction_),
        executor_(plan, model_, comm_, options.executor) {
    static_assert(kokkos::stage_model<Model> && mpi::gradient_model<Model>,
                  "stretto::training::pipeline: the model needs the stage functions (kokkos::stage_model) and "
                  "model.gradients(stage) (mpi::gradient_model)");
    executor_.add_observer(observer_);
    offsets_.reserve(static_cast<std::size_t>(plan.num_microbatches()) + 1);
  }
  pipeline(const pipeline&) = delete;
  pipeline& operator=(const pipeline&) = delete;

  /**
  @brief Trains one global batch (see the class). `optimizer(stage, std::span<T> gradients)` is
  called once per local stage, in increasing stage order, with the mean gradients.
  @return the mean loss (every rank), the exposed reduction time and this rank's timings.
  */
  template <class Batch, class Optimizer>
    requires batch_model<Model, Batch>
  step_result step(const Batch& batch, Optimizer&& optimizer) {
    const std::int64_t rows = static_cast<std::int64_t>(model_.batch_rows(batch));
    split(rows);
    model_.set_microbatches(batch, std::span<const std::int64_t>(offsets_));
    const auto origin = clock::now();
    reduction_.begin_step_for(model_, origin);
    const kokkos::step_record& record = executor_.run_step(origin);
    // The loss over the last stages of every copy: a small all-reduce, started before the
    // gradients' wait so that the two overlap.
    double local = record.loss, total = 0.0;
    MPI_Request loss_request = MPI_REQUEST_NULL;
    MPI_Iallreduce(&local, &total, 1, MPI_DOUBLE, MPI_SUM, grid_.world(), &loss_request);
    reduction_.wait();
    if (!mpi::detail::wait_bounded(loss_request, options_.reduction.timeout))
      mpi::detail::fail_collective(
          grid_.world(),
          stretto::detail::cat("stretto::training: rank ", grid_.world_rank(), " timed out after ",
                               mpi::detail::seconds_text(options_.reduction.timeout.count()),
                               " s in the optimizer step waiting for the loss all-reduce over all ", grid_.world_size(),
                               " ranks (a rank did not finish its step)"),
          options_.reduction.on_timeout);
    const double scale = 1.0 / static_cast<double>(rows);
    for (std::int32_t stage : reduction_.local_stages()) {
      auto gradients = std::span(model_.gradients(stage));
      using element = std::remove_cv_t<typename decltype(gradients)::element_type>;
      for (auto& g : gradients) g = static_cast<element>(g * scale);
      if constexpr (std::is_invocable_v<Optimizer&, std::int32_t, decltype(gradients)>) optimizer(stage, gradients);
      else optimizer(stage);
      Kokkos::fence();  // the hook's kernels are done with the gradients
      std::fill(gradients.begin(), gradients.end(), element(0));
    }
    return {total * scale, reduction_.exposed_seconds(), &record};
  }

  /**
  @brief Saves this pipeline's training state into `dir` with `counters` (collective, between
  steps): `training::save_checkpoint` over this pipeline's grid, schedule and model.
  @return the checkpoint's folder. @throws io::checkpoint_error on every rank.
  */
  std::filesystem::path save(const std::filesystem::path& dir, const io::training_counters& counters,
                             const checkpoint_options& options = {})
    requires checkpointable_model<Model>
  {
    return save_checkpoint(dir, grid_, plan_, model_, counters, options);
  }
  /**
  @brief Restores the training state saved in `dir` (collective, before a step):
  `training::resume_checkpoint`. @return the saved counters.
  @throws io::checkpoint_error on every rank, naming what differs.
  */
  io::training_counters resume(const std::filesystem::path& dir, const checkpoint_options& options = {})
    requires checkpointable_model<Model>
  {
    return resume_checkpoint(dir, grid_, plan_, model_, options);
  }

  const mpi::process_grid& grid() const noexcept { return grid_; }
  const schedule& plan() const noexcept { return plan_; }
  Model& model() noexcept { return model_; }
  const Model& model() const noexcept { return model_; }
  kokkos::executor<Model, mpi::communicator>& executor() noexcept { return executor_; }
  const mpi::gradient_reduction& reduction() const noexcept { return reduction_; }
  /// This copy's microbatch boundaries of the last step: m + 1 row offsets into the global batch.
  std::span<const std::int64_t> offsets() const noexcept { return offsets_; }

  /**
  @brief This data-parallel copy's rows of a batch of `rows` samples: [first, second).
  @throws argument_error if rows < dp · m.
  */
  std::pair<std::int64_t, std::int64_t> slice(std::int64_t rows) const {
    const std::int64_t dp = grid_.data_parallel_size();
    const std::int64_t m = plan_.num_microbatches();
    if (rows < dp * m)
      throw argument_error(stretto::detail::cat(
          "stretto::training::pipeline: a batch of ", rows, " samples cannot give each of the ", dp,
          " data-parallel copies ", m, " microbatches of at least one sample (batch ≥ dp × m = ", dp * m,
          "); use a batch of at least ", dp * m, " samples or fewer microbatches"));
    const std::int64_t d = grid_.data_parallel_rank();
    const std::int64_t first = d * (rows / dp) + std::min(d, rows % dp);
    return {first, first + rows / dp + (d < rows % dp ? 1 : 0)};
  }

 private:
  void split(std::int64_t rows) {
    const auto [first, last] = slice(rows);
    const std::int64_t n = last - first;
    const std::int64_t m = plan_.num_microbatches();
    offsets_.assign(1, first);
    for (std::int64_t j = 0; j < m; ++j) offsets_.push_back(offsets_.back() + n / m + (j < n % m ? 1 : 0));
  }

  pipeline_options options_;
  mpi::process_grid grid_;
  schedule plan_;
  Model model_;
  mpi::communicator comm_;
  mpi::gradient_reduction reduction_;
  reduction_observer observer_;
  kokkos::executor<Model, mpi::communicator> executor_;
  std::vector<std::int64_t> offsets_;
};

}  // namespace stretto::training
