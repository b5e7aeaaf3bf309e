#pragma once
/**
@file
@brief The step API: one object that owns the process grid, the schedule, this rank's executor
and the data-parallel gradient reduction, and trains one global batch per `step(batch)`.
*/

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
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
#include <stretto/training/gradient_staging.hpp>

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
@brief What `pipeline` needs of a model besides `kokkos::stage_model` (or, for a model whose stage
boundaries carry several tensors, `kokkos::boundary_stage_model`: see kokkos/boundary.hpp) and
`mpi::gradient_model`, for a batch type `Batch`:

| Valid expression | Meaning |
|---|---|
| `model.batch_rows(batch)` | the number of samples of the global batch |
| `model.set_microbatches(batch, offsets)` | microbatch j is rows [offsets[j], offsets[j+1]) of `batch` (a `std::span<const std::int64_t>` of m+1 offsets) |

**Loss.** `model.loss(mb, y, dy)` returns the *sum* of the per-sample losses of microbatch `mb`
and writes the gradient of that sum: the pipeline divides the reduced gradients and the loss by
the global batch (one scaling, after the sums, as a mean loss over the global batch gives).

**Optional.** `model.microbatch_losses()`, indexed by microbatch (the last step's loss of each
microbatch this rank computed): a non-finite loss is then reported with its microbatch
(`nonfinite_report::finding`), else with its stage only.
*/
template <class M, class Batch>
concept batch_model = kokkos::stage_model<kokkos::executed_model_t<M>> && mpi::gradient_model<M> &&
                      requires(M& model, const Batch& batch, std::span<const std::int64_t> offsets) {
                        { model.batch_rows(batch) } -> std::convertible_to<std::int64_t>;
                        model.set_microbatches(batch, offsets);
                      };

/**
@brief What `pipeline::step` does when the step's loss or a gradient is not finite (NaN, ±inf).
In either case no rank runs the optimizer for that step and every rank's gradients are zeroed,
so the weights stay those before the step on every rank.
*/
enum class nonfinite_action : std::uint8_t {
  throw_error,  ///< every rank throws `nonfinite_error` (default: a diverging run stops at its first bad step)
  skip_step,    ///< every rank returns `step_result::applied == false` (post-validation, Zero Bubble paper §5)
};

/** @brief Options of a `pipeline`. */
struct pipeline_options {
  mpi::process_grid_options grid{};                  ///< rank order, expected data-parallel size
  mpi::communicator_options communicator{};          ///< the pipeline's messages (timeouts, progress)
  mpi::gradient_reduction_options reduction{};       ///< the gradient all-reduces and the step's loss all-reduce (timeout)
  kokkos::executor_options executor{};               ///< the receive lookahead
  nonfinite_action on_nonfinite{nonfinite_action::throw_error};  ///< a non-finite loss or gradient (see `step`)
  /// A barrier (bounded by `reduction.timeout`) before each step's origin, so that every rank's
  /// `step_record` is measured from the same instant (timelines compared across ranks, a measured
  /// bubble rate). Costs one barrier per step on more than one rank; nothing on one rank.
  bool align_steps{false};
  /// Zero each stage's gradients after its optimizer call (one pass over them). false saves that
  /// pass where the optimizer leaves them zero itself (e.g. an update kernel that writes 0 after
  /// reading each gradient); the gradients of a step without an optimizer call (non-finite) are
  /// zeroed either way. @pre with false, the optimizer zeroes every gradient it is given, else
  /// the next step adds to them.
  bool zero_gradients{true};
};

/**
@brief Which rank found the origin of a non-finite value in a step, and what it found.

A NaN loss makes every gradient of its microbatch NaN, and a NaN in a stage's backward flows to
the stages before it, so several ranks may find one in the same step. The origin is the finding
of highest precedence: a non-finite loss (on a rank of the last stage), else the non-finite
gradient of the highest stage; among equal findings, the lowest world rank.
*/
struct nonfinite_report {
  std::int32_t origin{-1};  ///< world rank (`process_grid::world_rank`) that found the origin; -1: every value was finite
  /// On the origin rank, what it found, e.g. "non-finite loss (nan) of microbatch 3 on stage 7" or
  /// "non-finite gradient of stage 2"; empty on the other ranks.
  std::string finding;
  explicit operator bool() const noexcept { return origin >= 0; }
};

/**
@brief Thrown by `pipeline::step` on every rank when the step found a non-finite loss or gradient
and `pipeline_options::on_nonfinite` is `throw_error`. Before it is thrown the gradients are
zeroed and no optimizer step has run, so a caller that catches it may go on training.
*/
class nonfinite_error : public std::runtime_error {
 public:
  nonfinite_error(const std::string& what, nonfinite_report report)
      : std::runtime_error(what), report_(std::move(report)) {}
  /** @brief The world rank that found the origin (the same on every rank). */
  std::int32_t origin() const noexcept { return report_.origin; }
  /** @brief What the origin rank found; empty on the other ranks. */
  const std::string& finding() const noexcept { return report_.finding; }
  const nonfinite_report& report() const noexcept { return report_; }

 private:
  nonfinite_report report_;
};

/** @brief What one `pipeline::step` returns (on every rank). */
struct step_result {
  double loss{0.0};             ///< mean loss over the global batch (summed over the last stages and the data-parallel groups)
  double exposed_reduction{0.0};  ///< seconds this rank waited for its gradient all-reduces after its last op
  const kokkos::step_record* record{nullptr};  ///< this rank's op timings of the step (valid until the next step)
  /// This rank's part of `loss`: its last-stage microbatches' loss sum divided by the global
  /// batch (0 on ranks without the last stage). Summed over the world ranks it gives `loss`.
  double local_loss{0.0};
  bool applied{true};           ///< whether the optimizer ran (false: a non-finite value, `skip_step`)
  nonfinite_report nonfinite{};  ///< the origin of a non-finite value (`origin == -1` when `applied`)
};

namespace detail {
/// The shortest text that reads back as `v` ("nan", "-inf", "0.25").
inline std::string number_text(double v) {
  char out[32];
  const auto end = std::to_chars(out, out + sizeof out, v).ptr;
  return std::string(out, end);
}

/// Waits for `request` up to `timeout`: first tests it in a short busy loop (up to 200 µs, where
/// a small collective between ranks of one node completes), then as `mpi::detail::wait_bounded`
/// does. Returns false on timeout.
inline bool wait_step_collective(MPI_Request& request, std::chrono::duration<double> timeout) {
  using clock = std::chrono::steady_clock;
  const auto spin_until = clock::now() + std::chrono::microseconds(200);
  do {
    int done = 0;
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done) return true;
    std::this_thread::yield();
  } while (clock::now() < spin_until);
  return mpi::detail::wait_bounded(request, timeout);
}
}  // namespace detail

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
   the schedule's m microbatches the same way (`model.set_microbatches`); with
   `pipeline_options::align_steps`, a barrier;
2. this rank's op list runs; each stage's gradient all-reduce over the ranks that hold it (its
   data-parallel group, and both replicas of a bidirectional schedule) starts right after the
   stage's last W or BW, while the other stages still compute (`mpi::gradient_reduction`),
   once the model's compute instance (`model.compute_space()`, else the executor's) is fenced:
   on an asynchronous execution space the W's kernels may still be queued when W returns;
3. the all-reduces are awaited (bounded; the wait is the exposed reduction time); one pass over
   each local stage's gradients divides them by B and checks that they are finite;
4. the loss is summed over the world in one all-reduce of one value, which also carries whether
   any rank found a non-finite loss or gradient (this rank adds NaN to its share if it did, so
   the sum is non-finite exactly when some rank found one); only then, a second all-reduce
   finds the rank of the origin (`nonfinite_report`). On one rank there is no collective;
5. if every value was finite, `optimizer(stage, gradients)` runs for each stage this rank holds
   (`gradients` the stage's `std::span` from `model.gradients(stage)`), else the step is skipped
   or thrown as `pipeline_options::on_nonfinite` says; then the gradients are zeroed (by the
   optimizer itself with `pipeline_options::zero_gradients` false).

Per step this costs, besides the ops: the gradient all-reduces (data parallelism, replicas), one
all-reduce of one double (none on one rank), one pass over the local gradients (scale and check)
and one that zeroes them (unless `zero_gradients` is false), and a barrier with `align_steps`.

**Gradients in device memory** (a GPU build: `model.gradients(s)` points into memory the host
cannot read, the executor's `memory_space`). Where the executor stages its messages (MPI not
device-aware, `kokkos::message_path`), each stage's all-reduce sums a host copy: right before it
starts, the compute instance is fenced and the gradients are copied into a host buffer (pinned on
a GPU, `kokkos::device_traits`) on that instance; after the all-reduces the step scales and checks
the host copy and copies it back (`gradient_staging`). With a device-aware MPI the device buffer
is summed in place and copied to the host for the scale and check only. The buffers are allocated
on the first step: none per step after it. The optimizer's span then points into device memory.

The result equals a sequential step on the whole batch with the mean loss, up to the order of
floating-point sums (the tests check 1e-12 in double). With B a power of two the division is
exact, so a model that divides its loss gradient by B itself gives bit for bit the same result.

**Observers.** `add_observer(o)` adds an executor observer (`kokkos::observer`) called at each
op event of every later step; it stays attached across `replan`. The step's own timings are in
`step_result::record` (`kokkos::step_record`).

**Errors.** `argument_error` when the communicator's size is not a multiple of pp (from the
grid), or when B < dp · m (every microbatch needs a sample), naming the rule and the smallest
valid batch; `nonfinite_error` on every rank for a non-finite loss or gradient (with
`nonfinite_action::throw_error`); timeouts as `pipeline_options` say, with rank, stage and op.

@pre MPI initialised (with `MPI_THREAD_MULTIPLE` for the default progress thread); Kokkos
initialised; `model.gradients(s)` in the executor's memory space (host memory, or device memory
as above).
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
        comm_(grid_.pipeline(), plan.shape(), options.communicator) {
    static_assert(kokkos::stage_model<kokkos::executed_model_t<Model>> && mpi::gradient_model<Model>,
                  "stretto::training::pipeline: the model needs the stage functions (kokkos::stage_model, or "
                  "kokkos::boundary_stage_model for several tensors per boundary) and model.gradients(stage) "
                  "(mpi::gradient_model)");
    attach(plan_);
    offsets_.reserve(static_cast<std::size_t>(plan.num_microbatches()) + 1);
  }
  pipeline(const pipeline&) = delete;
  pipeline& operator=(const pipeline&) = delete;

  /**
  @brief Trains one global batch (see the class). `optimizer(stage, std::span<T> gradients)` is
  called once per local stage, in increasing stage order, with the mean gradients; it is not
  called in a step with a non-finite loss or gradient.
  @return the mean loss (every rank), the exposed reduction time, this rank's timings, and whether
  the optimizer ran (with the origin of a non-finite value where it did not).
  @throws nonfinite_error on every rank, for a non-finite loss or gradient with
  `nonfinite_action::throw_error` (gradients zeroed, no optimizer step anywhere);
  argument_error if the batch has fewer than dp · m samples.
  */
  template <class Batch, class Optimizer>
    requires batch_model<Model, Batch>
  step_result step(const Batch& batch, Optimizer&& optimizer) {
    const std::int64_t rows = static_cast<std::int64_t>(model_.batch_rows(batch));
    split(rows);
    model_.set_microbatches(batch, std::span<const std::int64_t>(offsets_));
    ++steps_;
    if (options_.align_steps && grid_.world_size() > 1) {
      MPI_Request barrier = MPI_REQUEST_NULL;
      MPI_Ibarrier(grid_.world(), &barrier);
      wait_or_fail(barrier, "the barrier before the step (align_steps)");
    }
    const auto origin = clock::now();
    staging_.begin_step();
    reduction_->begin_step([this](std::int32_t stage) { return reduction_buffer(stage); }, origin);
    const kokkos::step_record& record = executor_->run_step(origin);
    fence_compute();  // every W's kernels are done before the gradients are read below
    reduction_->wait();
    const double scale = 1.0 / static_cast<double>(rows);

    // This rank's findings: the loss of its last-stage microbatches, then each local stage's
    // gradients, checked in the pass that divides them by the batch. `priority` orders them
    // (nonfinite_report): the loss above every stage, a higher stage above a lower one.
    std::int32_t priority = 0;
    std::string finding;
    const std::int32_t last_stage = plan_.num_stages() - 1;
    const auto& local = reduction_->local_stages();
    const bool holds_last = std::find(local.begin(), local.end(), last_stage) != local.end();
    if (holds_last && !std::isfinite(record.loss)) {
      priority = last_stage + 2;
      finding = loss_finding(record.loss, last_stage);
    }
    for (std::int32_t stage : local)
      if (!scale_and_check_stage(stage, scale) && stage + 1 > priority) {
        priority = stage + 1;
        finding = stretto::detail::cat("non-finite gradient of stage ", stage);
      }

    // The loss summed over the world, carrying the findings: NaN added to a rank's share makes
    // the sum non-finite; only then the ranks look for the origin.
    double total = record.loss;
    nonfinite_report report;
    if (priority > 0) report = {grid_.world_rank(), finding};
    if (grid_.world_size() > 1) {
      double mine = record.loss + (priority > 0 ? std::numeric_limits<double>::quiet_NaN() : 0.0);
      MPI_Request request = MPI_REQUEST_NULL;
      MPI_Iallreduce(&mine, &total, 1, MPI_DOUBLE, MPI_SUM, grid_.world(), &request);
      wait_or_fail(request, "the loss all-reduce over all ranks");
      if (!std::isfinite(total)) report = find_origin(priority, std::move(finding), total);
    }

    step_result result{total * scale, reduction_->exposed_seconds(), &record, record.loss * scale, true, {}};
    if (report) {
      for (std::int32_t stage : local) staging_type::zero(std::span(model_.gradients(stage)), executor_->compute_space());
      if (options_.on_nonfinite == nonfinite_action::throw_error) {
        const std::string what =
            report.origin == grid_.world_rank()
                ? stretto::detail::cat("stretto::training: rank ", report.origin, ": ", report.finding, " in step ",
                                       steps_, " (nonfinite_action::skip_step skips such steps)")
                : stretto::detail::cat("stretto::training: rank ", report.origin, " found a non-finite value in step ",
                                       steps_);
        throw nonfinite_error(what, std::move(report));
      }
      result.applied = false;
      result.nonfinite = std::move(report);
      return result;
    }
    for (std::int32_t stage : local) {
      auto gradients = std::span(model_.gradients(stage));
      if constexpr (std::is_invocable_v<Optimizer&, std::int32_t, decltype(gradients)>) optimizer(stage, gradients);
      else optimizer(stage);
      Kokkos::fence();  // the hook's kernels are done with the gradients
      if (options_.zero_gradients) staging_type::zero(gradients, executor_->compute_space());
    }
    return result;
  }

  /**
  @brief Adds an executor observer, called at each op event of every later step (after the
  pipeline's own gradient-reduction observer), also after `replan`.
  @pre `o` outlives this pipeline's steps.
  */
  void add_observer(kokkos::observer& o) {
    observers_.push_back(&o);
    executor_->add_observer(o);
  }

  /**
  @brief Runs the later steps with `next` instead of the current schedule (e.g. one planned from
  measured op times, `plan::auto_schedule`): a new executor and gradient reduction for it, the
  same grid, communicator and model; observers stay attached. Collective over the world (the
  reduction's stage groups are built anew).
  @throws argument_error unless `next` has the current shape (ranks, microbatches, chunks) and
  places the same stages on this rank (the model holds those), naming what differs.
  */
  void replan(const schedule& next) {
    const pipeline_shape a = plan_.shape(), b = next.shape();
    if (a.num_ranks != b.num_ranks || a.num_microbatches != b.num_microbatches || a.num_chunks != b.num_chunks)
      throw argument_error(stretto::detail::cat(
          "stretto::training::pipeline::replan: the new schedule's shape ", b.num_ranks, "x", b.num_microbatches, "x",
          b.num_chunks, " differs from the pipeline's ", a.num_ranks, "x", a.num_microbatches, "x", a.num_chunks,
          " (ranks x microbatches x chunks); plan for the same shape"));
    if (next.stages_on_rank(grid_.pipeline_rank()) != plan_.stages_on_rank(grid_.pipeline_rank()))
      throw argument_error(stretto::detail::cat(
          "stretto::training::pipeline::replan: the new schedule places other stages on pipeline rank ",
          grid_.pipeline_rank(), " than the model holds; plan with the same stage placement"));
    executor_.reset();
    observer_.reset();
    reduction_.reset();
    plan_ = next;
    attach(plan_);
    for (kokkos::observer* o : observers_) executor_->add_observer(*o);
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
  kokkos::executor<Model, mpi::communicator>& executor() noexcept { return *executor_; }
  const mpi::gradient_reduction& reduction() const noexcept { return *reduction_; }
  /**
  @brief Whether the gradient all-reduce sums host copies of the gradients (staged through host
  buffers, pinned on a GPU): the executor stages its messages (`executor_options::messages`;
  by default when the views are not host-accessible and MPI is not device-aware).
  */
  bool stages_gradients() const noexcept { return staging_.reduces_on_host(); }
  /// Host gradient buffers allocated so far (one per local stage on the first staged step; none on a host backend's direct path).
  std::size_t gradient_staging_allocations() const noexcept { return staging_.allocations(); }
  /// This copy's microbatch boundaries of the last step: m + 1 row offsets into the global batch.
  std::span<const std::int64_t> offsets() const noexcept { return offsets_; }
  /// The number of `step` calls so far (the one running included).
  std::int64_t steps() const noexcept { return steps_; }

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

  // The gradient reduction, its observer and the executor of `s` (first the reduction's observer).
  void attach(const schedule& s) {
    reduction_.emplace(grid_, s, options_.reduction);
    // A stage's all-reduce reads gradients that its W's kernels wrote: on an asynchronous
    // execution space they may still be queued, so the compute instance is fenced first.
    reduction_->set_before_start([this](std::int32_t stage) {
      fence_compute();
      if (staging_.reduces_on_host()) staging_.to_host(stage, std::span(model_.gradients(stage)), executor_->compute_space());
    });
    observer_.emplace(*reduction_);
    executor_.emplace(s, model_, comm_, options_.executor);
    // The all-reduce sums host copies where the executor stages its messages (the same rule:
    // views the host cannot read and an MPI that cannot read them, or staging forced).
    staging_.configure(static_cast<std::size_t>(s.num_stages()), executor_->stages_messages());
    executor_->add_observer(*observer_);
  }

  // Waits for the kernels queued on the model's compute instance: `model.compute_space()` when the
  // model has one (the instance its W's kernels run on), else the executor's (the default
  // instance). Never the whole device.
  void fence_compute() {
    if constexpr (requires { model_.compute_space().fence(); }) model_.compute_space().fence();
    else executor_->compute_space().fence();
  }

  // The buffer stage `stage`'s all-reduce sums: the host copy when staged, else the model's gradients.
  auto reduction_buffer(std::int32_t stage) {
    auto gradients = std::span(model_.gradients(stage));
    return staging_.reduces_on_host() ? staging_.host(stage, gradients.size()) : gradients;
  }

  // Divides stage `stage`'s gradients by the batch and checks them, on the host: in place when the
  // host reads them, else on the host copy (made now unless the all-reduce made it), copied back.
  bool scale_and_check_stage(std::int32_t stage, double scale) {
    auto gradients = std::span(model_.gradients(stage));
    if (!staging_.active()) return scale_and_check(gradients, scale);
    if (!staging_.copied(stage)) staging_.to_host(stage, gradients, executor_->compute_space());
    const bool finite = scale_and_check(staging_.host(stage, gradients.size()), scale);
    staging_.to_device(stage, gradients, executor_->compute_space());
    return finite;
  }

  // Divides every gradient by the batch (`scale` = 1/B) and returns whether all are finite, in one pass.
  template <class T>
  static bool scale_and_check(std::span<T> gradients, double scale) {
    bool finite = true;
    for (T& g : gradients) {
      g = static_cast<T>(g * scale);
      finite &= g - g == T(0);  // NaN for NaN and ±inf
    }
    return finite;
  }

  // "non-finite loss (nan) of microbatch j on stage s"; the microbatch where the model reports its
  // losses per microbatch (`model.microbatch_losses()`, indexed by microbatch).
  std::string loss_finding(double loss, std::int32_t stage) const {
    if constexpr (requires { model_.microbatch_losses()[std::size_t{0}]; std::size(model_.microbatch_losses()); }) {
      const auto& losses = model_.microbatch_losses();
      for (std::size_t mb = 0; mb < std::size(losses); ++mb)
        if (!std::isfinite(static_cast<double>(losses[mb])))
          return stretto::detail::cat("non-finite loss (", detail::number_text(static_cast<double>(losses[mb])),
                                      ") of microbatch ", mb, " on stage ", stage);
    }
    return stretto::detail::cat("non-finite loss (", detail::number_text(loss), ") on stage ", stage);
  }

  // After a non-finite loss sum: the origin over the world (MAXLOC of the priority; the lowest rank
  // among equals). Priority 0 everywhere: the finite shares overflowed in the sum, reported by rank 0.
  nonfinite_report find_origin(std::int32_t priority, std::string finding, double total) {
    int mine[2] = {priority, grid_.world_rank()}, worst[2] = {0, 0};
    MPI_Request request = MPI_REQUEST_NULL;
    MPI_Iallreduce(mine, worst, 1, MPI_2INT, MPI_MAXLOC, grid_.world(), &request);
    wait_or_fail(request, "the non-finite check's all-reduce (which rank found the origin)");
    if (worst[0] == 0)
      return {0, grid_.world_rank() == 0 ? stretto::detail::cat("non-finite loss sum over the ", grid_.world_size(),
                                                                " ranks (", detail::number_text(total), ")")
                                         : std::string()};
    return {worst[1], worst[1] == grid_.world_rank() ? std::move(finding) : std::string()};
  }

  void wait_or_fail(MPI_Request& request, const char* what) {
    if (!detail::wait_step_collective(request, options_.reduction.timeout))
      mpi::detail::fail_collective(
          grid_.world(),
          stretto::detail::cat("stretto::training: rank ", grid_.world_rank(), " timed out after ",
                               mpi::detail::seconds_text(options_.reduction.timeout.count()), " s in step ", steps_,
                               " waiting for ", what, " over all ", grid_.world_size(),
                               " ranks (a rank did not finish its step)"),
          options_.reduction.on_timeout);
  }

  pipeline_options options_;
  mpi::process_grid grid_;
  schedule plan_;
  Model model_;
  mpi::communicator comm_;
  std::optional<mpi::gradient_reduction> reduction_;  // of plan_ (replan makes new ones)
  std::optional<reduction_observer> observer_;
  std::optional<kokkos::executor<Model, mpi::communicator>> executor_;
  using executor_type = kokkos::executor<Model, mpi::communicator>;
  using gradient_scalar = std::remove_cv_t<typename decltype(std::span(std::declval<Model&>().gradients(0)))::element_type>;
  using staging_type =
      gradient_staging<gradient_scalar, typename executor_type::execution_space, typename executor_type::memory_space>;
  staging_type staging_;  // host copies of the gradients (staged all-reduce, or device memory)
  std::vector<kokkos::observer*> observers_;  // added by the user, in order
  std::vector<std::int64_t> offsets_;
  std::int64_t steps_{0};
};

}  // namespace stretto::training
