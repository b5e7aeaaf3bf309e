#pragma once
/**
@file
@brief The data-parallel gradient reduction, overlapped with the backward: per stage, a
non-blocking in-place all-reduce (`MPI_Iallreduce`, sum) over the stage's gradient group, started
as soon as that stage's last W (or BW) of the step has run on this rank.
*/

#include <mpi.h>

#include <chrono>
#include <climits>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <stretto/core/errors.hpp>
#include <stretto/core/op.hpp>
#include <stretto/core/schedule.hpp>
#include <stretto/detail/text.hpp>

#include "communicator.hpp"
#include "process_grid.hpp"

namespace stretto::mpi {

/**
@brief A model whose gradients the reduction can sum: `model.gradients(s)` returns stage `s`'s
weight gradients as one contiguous span (of `double` or `float`) in host memory, valid until the
optimizer step (the reduction writes the sum into it in place).
*/
template <class M>
concept gradient_model = requires(M& model, std::int32_t s) {
  { std::span(model.gradients(s)) };
  requires std::is_same_v<std::remove_cv_t<typename decltype(std::span(model.gradients(s)))::element_type>, double> ||
               std::is_same_v<std::remove_cv_t<typename decltype(std::span(model.gradients(s)))::element_type>, float>;
};

/** @brief Options of a `gradient_reduction`. */
struct gradient_reduction_options {
  /// How long `wait` may block for one stage's all-reduce before it is reported. Default 300 s.
  std::chrono::duration<double> timeout{300.0};
  timeout_action on_timeout{timeout_action::abort};
};

/**
@brief Sums each stage's gradients over the ranks that hold a copy of it (its data-parallel group,
and both replicas of a bidirectional schedule), overlapped with the rest of the backward.

**When.** At construction it counts, for each stage on this rank, the ops of this rank's list
that accumulate weight gradients (W, or BW); `op_done(o)` after each op (the executor's
`on_compute_end`) counts them down, and the last one of a stage starts that stage's
`MPI_Iallreduce` (in place, `MPI_SUM`) on the stage's own communicator
(`process_grid::stage_groups`), while this rank's later ops (other stages' B and W) still run.
Every rank of a group runs the same op list for the stage (data-parallel copies run identical
lists; the two replicas of a bidirectional stage each reduce on their own communicator per
stage), so the collectives match. Between ops it tests the outstanding reductions, so that MPI
moves them forward (a progress thread of the `communicator` does so too, while stages compute).
`wait()`, before the optimizer step, waits for all of them.

**Gradients written by a device.** On an asynchronous execution space (a GPU stream) a W
returns when its kernels are queued, not when they ran. `set_before_start(hook)` gives a
callable run right before a stage's all-reduce is started (only when the stage has more than one
holder), e.g. a fence of the execution-space instance whose kernels wrote the gradients:
`training::pipeline` sets one that fences the model's compute instance. This class names no
device: without a hook the gradients are taken as written when `op_done` is called (a host
backend, or an executor with `executor_options::fence_every_op`).

**Bounded.** `wait` gives each reduction at most `timeout`, then reports rank, stage, group and
the op after which it started (see `timeout_action`), like the communicator's waits.

**Counting.** `starts(stage)` is how many times the stage's reduction started in the current step
(1 after the step for every local stage), `started_after(stage)` the index, in this rank's op
list, of the op that started it, `exposed_seconds()` the time `wait` blocked (the reduction
time the backward did not hide).

@pre `begin_step` before each step's first op; `op_done` after each op in list order; `wait`
after the step's last op; all with the same `gradients` spans between `begin_step` and `wait`.
*/
class gradient_reduction {
 public:
  using clock = std::chrono::steady_clock;

  /**
  @brief Builds the stage groups of `s` on `grid` (collective over the grid) and counts this
  rank's W/BW per stage.
  */
  gradient_reduction(const process_grid& grid, const schedule& s, gradient_reduction_options options = {})
      : options_(options), schedule_(s), groups_(grid.stage_groups(s)), rank_(grid.world_rank()),
        pipeline_rank_(grid.pipeline_rank()) {
    const auto stages = static_cast<std::size_t>(s.num_stages());
    expected_.assign(stages, 0);
    remaining_.assign(stages, 0);
    starts_.assign(stages, 0);
    started_after_.assign(stages, -1);
    requests_.assign(stages, MPI_REQUEST_NULL);
    buffers_.assign(stages, buffer{});
    start_times_.assign(stages, 0.0);
    const std::span<const op> ops = s.ops(pipeline_rank_);
    for (const op& o : ops)
      if (o.kind == op_kind::backward_weight || o.kind == op_kind::backward) ++expected_[static_cast<std::size_t>(o.stage)];
    for (std::int32_t stage = 0; stage < s.num_stages(); ++stage)
      if (expected_[static_cast<std::size_t>(stage)] > 0) local_.push_back(stage);
  }

  /** @brief The stages this rank holds (those whose gradients it reduces), ascending. */
  const std::vector<std::int32_t>& local_stages() const noexcept { return local_; }
  /** @brief The number of ranks that sum `stage`'s gradients. */
  std::int32_t group_size(std::int32_t stage) const noexcept { return groups_.size(stage); }

  /**
  @brief Starts a step: `gradients(stage)` gives each local stage's gradient span (host memory,
  `double` or `float`); it is asked when the stage's reduction starts.
  */
  template <class Gradients>
  void begin_step(Gradients&& gradients, clock::time_point origin = clock::now()) {
    origin_ = origin;
    exposed_ = 0.0;
    for (std::int32_t stage : local_) {
      const auto k = static_cast<std::size_t>(stage);
      remaining_[k] = expected_[k];
      starts_[k] = 0;
      started_after_[k] = -1;
    }
    if constexpr (requires { gradients(std::int32_t{0}); }) {
      for (std::int32_t stage : local_) {
        auto span = std::span(gradients(stage));
        using element = std::remove_cv_t<typename decltype(span)::element_type>;
        buffers_[static_cast<std::size_t>(stage)] = buffer{span.data(), span.size(), detail::datatype_of<element>()};
      }
    }
  }

  /**
  @brief Sets what runs right before a stage's all-reduce starts: `hook(stage)`, e.g. a fence of
  the execution-space instance that wrote the gradients (see the class). Called once per stage
  and step, from `op_done`, only for stages with more than one holder; an empty `hook` (the
  default) runs nothing. Set it before the step; it is kept across steps.
  */
  void set_before_start(std::function<void(std::int32_t stage)> hook) { before_start_ = std::move(hook); }

  /** @brief `begin_step` with `model.gradients(stage)`. */
  template <gradient_model Model>
  void begin_step_for(Model& model, clock::time_point origin = clock::now()) {
    begin_step([&](std::int32_t stage) { return std::span(model.gradients(stage)); }, origin);
  }

  /**
  @brief After op `o` (at position `index` of this rank's list) ran: if it was the stage's last
  W or BW of the step, starts the stage's all-reduce; tests the outstanding ones either way.
  */
  void op_done(std::size_t index, const op& o) {
    if (o.kind == op_kind::backward_weight || o.kind == op_kind::backward) {
      const auto k = static_cast<std::size_t>(o.stage);
      if (remaining_[k] > 0 && --remaining_[k] == 0) start(o.stage, static_cast<std::int64_t>(index));
    }
    progress();
  }

  /**
  @brief Waits (bounded) until every local stage's all-reduce completed; afterwards each local
  stage's span holds the sum over its group. Stages whose last W never ran (a step cut short)
  are reported as an error.
  @throws logic_error naming the stage if its reduction never started.
  */
  void wait() {
    const auto begin = clock::now();
    for (std::int32_t stage : local_) {
      const auto k = static_cast<std::size_t>(stage);
      if (starts_[k] == 0)
        throw std::logic_error(stretto::detail::cat("stretto::mpi::gradient_reduction: rank ", rank_, " waits for stage ",
                                               stage, "'s all-reduce, but only ", expected_[k] - remaining_[k], " of its ",
                                               expected_[k], " W/BW ops ran this step"));
      if (requests_[k] == MPI_REQUEST_NULL) continue;
      if (!detail::wait_bounded(requests_[k], options_.timeout)) fail(stage);
    }
    exposed_ = std::chrono::duration<double>(clock::now() - begin).count();
  }

  /// How many times `stage`'s reduction started in this step (1 once its last W/BW ran).
  std::int32_t starts(std::int32_t stage) const noexcept { return starts_[static_cast<std::size_t>(stage)]; }
  /// The index, in this rank's op list, of the op after which `stage`'s reduction started; -1: not yet.
  std::int64_t started_after(std::int32_t stage) const noexcept { return started_after_[static_cast<std::size_t>(stage)]; }
  /// When `stage`'s reduction started, seconds since the step's origin.
  double start_time(std::int32_t stage) const noexcept { return start_times_[static_cast<std::size_t>(stage)]; }
  /// Seconds the last `wait` blocked: the reduction time not hidden behind the backward.
  double exposed_seconds() const noexcept { return exposed_; }

 private:
  struct buffer {
    void* data{nullptr};
    std::size_t count{0};
    MPI_Datatype type{MPI_DATATYPE_NULL};
  };

  void start(std::int32_t stage, std::int64_t index) {
    const auto k = static_cast<std::size_t>(stage);
    ++starts_[k];
    started_after_[k] = index;
    start_times_[k] = std::chrono::duration<double>(clock::now() - origin_).count();
    const buffer& b = buffers_[k];
    if (groups_.size(stage) < 2) return;  // one copy: nothing to sum
    if (b.type == MPI_DATATYPE_NULL)
      throw std::logic_error(stretto::detail::cat("stretto::mpi::gradient_reduction: no gradient buffer for stage ", stage,
                                             "; call begin_step with the model's gradients first"));
    if (b.count > static_cast<std::size_t>(INT_MAX))
      throw argument_error(stretto::detail::cat("stretto::mpi::gradient_reduction: stage ", stage, " has ", b.count,
                                                " gradient values; at most INT_MAX fit in one all-reduce"));
    if (before_start_) before_start_(stage);  // e.g. the device's kernels that wrote them are done
    MPI_Iallreduce(MPI_IN_PLACE, b.data, static_cast<int>(b.count), b.type, MPI_SUM, groups_.group(stage), &requests_[k]);
  }

  void progress() {
    for (std::int32_t stage : local_) {
      MPI_Request& r = requests_[static_cast<std::size_t>(stage)];
      if (r == MPI_REQUEST_NULL) continue;
      int done = 0;
      MPI_Test(&r, &done, MPI_STATUS_IGNORE);
    }
  }

  [[noreturn]] void fail(std::int32_t stage) {
    const auto k = static_cast<std::size_t>(stage);
    const std::span<const op> ops = schedule_.ops(pipeline_rank_);
    const std::int64_t after = started_after_[k];
    const std::string text = stretto::detail::cat(
        "stretto::mpi: rank ", rank_, " timed out after ", detail::seconds_text(options_.timeout.count()),
        " s in the optimizer step waiting for the gradient all-reduce of stage ", stage, " over its ",
        groups_.size(stage), " ranks, started after ",
        after >= 0 ? to_string(ops[static_cast<std::size_t>(after)]) : std::string("no op"),
        " (a rank of the group did not finish its step)");
    detail::fail_collective(groups_.group(stage), text, options_.on_timeout);
  }

  gradient_reduction_options options_{};
  schedule schedule_;
  process_grid::stage_group_set groups_;
  std::int32_t rank_{0};
  std::int32_t pipeline_rank_{0};
  std::vector<std::int32_t> local_;          // stages on this rank
  std::vector<std::int32_t> expected_;       // per stage: W/BW ops on this rank per step
  std::vector<std::int32_t> remaining_;      // per stage: W/BW ops still to run this step
  std::vector<std::int32_t> starts_;         // per stage: reductions started this step
  std::vector<std::int64_t> started_after_;  // per stage: the op index that started it
  std::vector<double> start_times_;          // per stage: seconds since the origin
  std::vector<MPI_Request> requests_;
  std::vector<buffer> buffers_;
  std::function<void(std::int32_t)> before_start_;  // before each all-reduce (see set_before_start)
  clock::time_point origin_{};
  double exposed_{0.0};
};

}  // namespace stretto::mpi
