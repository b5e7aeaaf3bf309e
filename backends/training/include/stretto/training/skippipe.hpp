#pragma once
/**
@file
@brief SkipPipe's execution over MPI: every microbatch follows its own path through a subset of
the stages, backward retraces it, and the replicas of each stage all-reduce their gradients at
the end of the step (SkipPipe, Blagoev, Ersoy and Chen, arXiv 2502.19913, §3 and §5;
docs/skippipe.md, "Execution").

**Ranks and stages.** One MPI rank per node of the `skippipe::setting`: rank n is node n and
holds the layers of the stage it serves (`setting::stage_of(n)`). The model is a
`stretto::kokkos::stage_model` of S + 1 *model stages* for the S SkipPipe stages:
- model stage 0: the input layers (SkipPipe stage 0, on every stage-0 node),
- model stage s, 1 ≤ s < S: the layers of SkipPipe stage s,
- model stage S: the head, after which the loss is computed (also SkipPipe stage 0: "stage 0
  first and last").
A stage-0 node therefore holds model stages 0 and S; any other node holds one model stage.

**A step.** Microbatch j with path {d, n1, …, n_{L−1}} runs: F of model stage 0 on d (its input
is `model.input(j)`), F of model stage stage_of(n_k) on n_k for k = 1 … L−1 in path order (the
stages the path leaves out are identities: the activation goes straight to the next node of the
path; a swap runs two stages in swapped order), then on d the *loss op*: F of the head, the loss,
B and W of the head; then the backward retraces the path: B and W of n_{L−1}'s stage, …, and last
model stage 0 on d. Each node runs its ops in the order of the discrete-event simulation of the
plan (`skippipe::simulate`: queueing on the node, loss and backward before forward, `memory`
activation slots; without the slots when they deadlock): the plan's order. Every op of that order
depends only on ops that end earlier in simulated time, so the blocking waits cannot deadlock.
The activations and gradients travel over a `stretto::mpi::communicator` as messages keyed by
(direction, sending stage, receiving stage, microbatch): a path visits each stage once, so the
key is unique within a step. After the last op the replicas of each stage (the nodes of
`stages[s]`; model stages 0 and S for s = 0) sum their gradients with a bounded all-reduce on a
communicator of the stage's nodes. With the loss averaged over the global batch (the model's
business), the sum is the gradient of the step's mean loss; every replica then holds the same
gradients, so the same optimizer step keeps the replicas equal.

**Residual stages.** With `skippipe_options::residual`, model stages 1 … S−1 compute
y = x + f(x) (and dx = dy + f'(x)ᵀ dy) around the model's F and B, as a transformer block does;
then leaving a stage out is exactly that block's identity. Without it a stage computes y = f(x).

**Preconditions** (checked by the constructor, with an `argument_error` naming the rule): the
communicator has one rank per node; every path starts on its microbatch's stage-0 node
(`setting::data_node`), names nodes 0 … N−1, visits each stage at most once and stage 0 only
first; the *skippable* widths agree: `output_features(0)` = `input_features(s)` =
`output_features(s)` = `input_features(S)` for every 1 ≤ s < S, since any stage may follow any
other (an MLP's hidden layers of one width, a transformer's blocks). The path-model rules of
`skippipe::find_violations` (path length, swaps, caps) are the planner's business and are not
required here: the full pipeline runs as well.

**Model requirements** beyond `stage_model`: `model.gradients(s)` returns a contiguous
`std::span` of stage s's gradient accumulators in host-accessible memory (summed in place by the
all-reduce); for `infer`, `model.output(mb, logits)` consumes the head's output of mb.

**Errors.** Every wait is bounded (`skippipe_options::timeout`): a point-to-point wait reports
"rank R timed out after T s in OP waiting for MESSAGE from rank P" and the stage all-reduce
"… in MPI_Iallreduce (stage s's gradients) …", then aborts the job or throws `timeout_error`
(`skippipe_options::on_timeout`).
*/

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <stretto/core/errors.hpp>
#include <stretto/core/op.hpp>
#include <stretto/core/shape.hpp>
#include <stretto/core/transport.hpp>
#include <stretto/detail/text.hpp>
#include <stretto/kokkos/executor.hpp>
#include <stretto/mpi/collectives.hpp>
#include <stretto/mpi/communicator.hpp>
#include <stretto/skippipe/paths.hpp>
#include <stretto/skippipe/setting.hpp>
#include <stretto/skippipe/simulate.hpp>

namespace stretto::training {

namespace detail {
// The residual stage's kernels, free functions because nvcc refuses a device lambda in a private
// member function. `y`, `x`, `f` and `dx`, `dy` have the same extents.
template <class Matrix>
void residual_add(const Matrix& y, const Matrix& x, const Matrix& f) {  // y = x + f
  Kokkos::parallel_for(
      "skippipe::residual", Kokkos::MDRangePolicy<Kokkos::Rank<2>>({0, 0}, {y.extent(0), y.extent(1)}),
      KOKKOS_LAMBDA(const std::size_t a, const std::size_t b) { y(a, b) = x(a, b) + f(a, b); });
}
template <class Matrix>
void residual_accumulate(const Matrix& dx, const Matrix& dy) {  // dx += dy
  Kokkos::parallel_for(
      "skippipe::residual_backward", Kokkos::MDRangePolicy<Kokkos::Rank<2>>({0, 0}, {dx.extent(0), dx.extent(1)}),
      KOKKOS_LAMBDA(const std::size_t a, const std::size_t b) { dx(a, b) += dy(a, b); });
}
}  // namespace detail

/** @brief Options of a `skippipe_runner`. */
struct skippipe_options {
  /// Model stages 1 … S−1 are residual: y = x + f(x) (see the file comment). Default off.
  bool residual{false};
  /// Emulated node speed: after each op's compute (fenced) the rank sleeps until the op has
  /// taken `slowdown` times its measured time (1: no emulation; ≥ 1). The demo gives each node
  /// its setting's relative compute time, to emulate heterogeneous nodes on equal cores.
  double slowdown{1.0};
  /// Emulated node speed from the setting: when above 0, every op lasts at least its time in the
  /// setting (w_n for F, backward_factor · w_n for the backward, loss_factor · w_d for the loss op,
  /// F, loss, B and W of the head included) times `time_unit`, sleeping the rest. Then the measured
  /// iteration follows the setting's node speeds on any machine (the network is not emulated).
  std::chrono::duration<double> time_unit{0.0};
  /// Bound of every wait (point-to-point and the stage all-reduce); finite and above 0.
  std::chrono::duration<double> timeout{300.0};
  mpi::timeout_action on_timeout{mpi::timeout_action::abort};
};

/** @brief What one step did on this rank. */
struct skippipe_step_result {
  double loss{0.0};         ///< sum of the losses of the microbatches whose loss op ran here (stage-0 nodes)
  double seconds{0.0};      ///< wall time of the step on this rank, the stage all-reduce included
  std::int32_t ops{0};      ///< forwards, loss ops and backwards this rank ran
};

/**
@brief Checks that `paths` can be executed on `s` (the preconditions of the file comment that
concern paths).
@throws argument_error naming the microbatch, the node and the rule, with a valid alternative.
*/
inline void check_executable_paths(const skippipe::setting& s, const std::vector<skippipe::path>& paths) {
  const std::int32_t m = s.num_microbatches();
  if (static_cast<std::int32_t>(paths.size()) != m)
    throw argument_error(stretto::detail::cat("skippipe execution: the plan has ", paths.size(),
                                              " paths; it needs one per microbatch, ", m, " (|stage 0| · microbatches)"));
  for (std::int32_t j = 0; j < m; ++j) {
    const skippipe::path& p = paths[static_cast<std::size_t>(j)];
    auto fail = [&](std::int32_t node, const char* rule, const std::string& why) {
      throw argument_error(stretto::detail::cat("skippipe execution: microbatch ", j, ", node ", node, ": rule ", rule,
                                                ": ", why));
    };
    if (p.empty() || p[0] != s.data_node(j))
      fail(p.empty() ? -1 : p[0], "start",
           stretto::detail::cat("the path must start on the microbatch's stage-0 node ", s.data_node(j)));
    std::uint64_t seen = 0;
    for (std::size_t k = 0; k < p.size(); ++k) {
      if (p[k] < 0 || p[k] >= s.num_nodes())
        fail(p[k], "node-range", stretto::detail::cat("no such node; nodes are 0..", s.num_nodes() - 1));
      const std::int32_t st = s.stage_of(p[k]);
      if ((seen >> st) & 1U || (k > 0 && st == 0))
        fail(p[k], "stage-once",
             stretto::detail::cat("stage ", st, " is visited twice; a path visits each stage at most once, stage 0 only first"));
      seen |= std::uint64_t{1} << st;
    }
  }
}

/**
@brief Runs SkipPipe steps of a model over MPI, one rank per node (see the file comment).

@tparam Model a `stretto::kokkos::stage_model` of S + 1 model stages, with `gradients(s)`.
@pre `MPI_Init_thread` and `Kokkos::initialize` have run. Construction and destruction are
collective over `comm`.
*/
template <class Model>
  requires kokkos::stage_model<Model>
class skippipe_runner {
 public:
  using matrix_type = typename Model::matrix_type;

  /**
  @brief Prepares rank `comm`'s node to run `paths` on `s` with `model`.
  @param model holds the model stages of this rank's node (0 and S on a stage-0 node, else
  stage_of(rank)); it must outlive the runner.
  @throws argument_error when the communicator does not have one rank per node, a path is not
  executable (`check_executable_paths`), the skippable widths disagree, or an option is out of
  range.
  */
  skippipe_runner(MPI_Comm comm, const skippipe::setting& s, std::vector<skippipe::path> paths, Model& model,
                  skippipe_options options = {})
      : setting_(s), model_(model), options_(options) {
    s.check();
    mpi::check_timeout(options_.timeout, "skippipe runner's timeout");
    if (!(options_.time_unit.count() >= 0.0) || !std::isfinite(options_.time_unit.count()))
      throw argument_error("skippipe execution: time_unit must be a finite time >= 0 (0: no emulation)");
    if (!(options_.slowdown >= 1.0) || !std::isfinite(options_.slowdown))
      throw argument_error(stretto::detail::cat("skippipe execution: slowdown must be a finite factor >= 1 (got ",
                                                std::to_string(options_.slowdown), "); 1 runs at the node's own speed"));
    int size = 0, rank = 0;
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);
    if (size != s.num_nodes())
      throw argument_error(stretto::detail::cat("skippipe execution: the setting has ", s.num_nodes(),
                                                " nodes but the communicator has ", size, " ranks; launch with -n ",
                                                s.num_nodes(), " (one rank per node)"));
    rank_ = rank;
    stage_ = s.stage_of(rank_);
    num_stages_ = s.num_stages();
    check_widths();
    set_paths(std::move(paths));
    const mpi::collective_options bounded{options_.timeout, options_.on_timeout};
    // Every rank arrives before the (unbounded) split: then the split cannot wait on a missing rank.
    mpi::barrier(comm, bounded, "the skippipe runner's setup");
    MPI_Comm_split(comm, stage_, rank_, &stage_comm_);
    mpi::communicator_options co;
    co.timeout = options_.timeout;
    co.on_timeout = options_.on_timeout;
    // Tags: (microbatch · S' + receiving stage) · 2 + direction, S' = N ≥ S stages of the shape.
    transport_.emplace(comm, pipeline_shape{size, s.num_microbatches(), 1}, co);
  }
  skippipe_runner(const skippipe_runner&) = delete;
  skippipe_runner& operator=(const skippipe_runner&) = delete;
  ~skippipe_runner() {
    slots_.clear();  // requests still pending (a step that threw) go back to their communicator first
    transport_.reset();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && stage_comm_ != MPI_COMM_NULL) MPI_Comm_free(&stage_comm_);
  }

  /**
  @brief Replaces the plan (e.g. the full pipeline for a comparison); collective in effect: every
  rank must set the same paths before the next step.
  @throws argument_error as the constructor.
  */
  void set_paths(std::vector<skippipe::path> paths) {
    check_executable_paths(setting_, paths);
    paths_ = std::move(paths);
    skippipe::simulation sim = skippipe::simulate(setting_, paths_, true);
    if (sim.deadlocked) sim = skippipe::simulate(setting_, paths_, false);
    order_.clear();
    for (const skippipe::executed_op& o : sim.ops)
      if (o.node == rank_) order_.push_back({o.microbatch, o.type});
    simulated_time_ = sim.iteration_time;
  }

  const std::vector<skippipe::path>& paths() const noexcept { return paths_; }
  /** @brief This rank's ops of a step, in the order it runs them. */
  const std::vector<std::pair<std::int32_t, skippipe::op_type>>& order() const noexcept { return order_; }
  /** @brief The simulated iteration time of the plan on the setting (its time unit). */
  double simulated_time() const noexcept { return simulated_time_; }
  /** @brief The stage this rank's node serves. */
  std::int32_t stage() const noexcept { return stage_; }
  /** @brief The communicator of this stage's nodes (the replicas). */
  MPI_Comm stage_communicator() const noexcept { return stage_comm_; }

  /**
  @brief One training step: this rank's ops in the plan's order, then the stage all-reduce of the
  gradients (summed in place in `model.gradients(s)`). The optimizer step is the caller's.
  @pre every rank has set the same batch on its model (`microbatch_rows` on every rank, `input`
  and the labels on the stage-0 nodes).
  */
  skippipe_step_result step() {
    const auto begin = std::chrono::steady_clock::now();
    skippipe_step_result out;
    run_ops(true, out);
    const mpi::collective_options bounded{options_.timeout, options_.on_timeout};
    for (const std::int32_t ms : local_model_stages()) {
      auto g = model_.gradients(ms);
      if (stage_size() > 1)
        mpi::allreduce(MPI_IN_PLACE, g.data(), static_cast<int>(g.size()), mpi_type<typename decltype(g)::value_type>(),
                       MPI_SUM, stage_comm_, bounded, stretto::detail::cat("stage ", stage_, "'s gradients"));
    }
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    return out;
  }

  /**
  @brief Inference along `paths` (the plan's when empty): forwards only, each rank's in the order
  (position on the path, microbatch), and `model.output(mb, logits)` after the head on the
  microbatch's stage-0 node. Collective: every rank passes the same paths.
  */
  void infer(const std::vector<skippipe::path>& paths = {})
    requires requires(Model& m, std::int32_t mb, const matrix_type& y) { m.output(mb, y); }
  {
    const std::vector<skippipe::path> saved = paths_;
    if (!paths.empty()) {
      check_executable_paths(setting_, paths);
      paths_ = paths;
    }
    std::vector<std::pair<std::int32_t, std::int32_t>> keyed;  // (position, microbatch)
    for (std::int32_t j = 0; j < static_cast<std::int32_t>(paths_.size()); ++j) {
      const skippipe::path& p = paths_[static_cast<std::size_t>(j)];
      for (std::size_t k = 0; k < p.size(); ++k)
        if (p[k] == rank_) keyed.push_back({static_cast<std::int32_t>(k), j});
      if (p[0] == rank_) keyed.push_back({static_cast<std::int32_t>(p.size()), j});
    }
    std::sort(keyed.begin(), keyed.end());
    std::vector<std::pair<std::int32_t, skippipe::op_type>> saved_order = std::move(order_);
    order_.clear();
    for (const auto& [k, j] : keyed)
      order_.push_back({j, k == static_cast<std::int32_t>(paths_[static_cast<std::size_t>(j)].size()) ? skippipe::op_type::loss
                                                                                                        : skippipe::op_type::forward});
    skippipe_step_result ignored;
    run_ops(false, ignored);
    order_ = std::move(saved_order);
    paths_ = saved;
  }

 private:
  template <class T>
  static MPI_Datatype mpi_type() {
    static_assert(std::is_same_v<T, double> || std::is_same_v<T, float>,
                  "skippipe_runner: model.gradients(s) must be a span of double or float");
    if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
    else return MPI_FLOAT;
  }

  std::int32_t stage_size() const { return static_cast<std::int32_t>(setting_.stages[static_cast<std::size_t>(stage_)].size()); }

  std::vector<std::int32_t> local_model_stages() const {
    if (stage_ == 0) return {0, num_stages_};
    return {stage_};
  }

  void check_widths() const {
    const std::int64_t width = model_.output_features(0);
    auto fail = [&](const std::string& what, std::int64_t got) {
      throw argument_error(stretto::detail::cat(
          "skippipe execution: ", what, " is ", got, " but stage 0's output width is ", width,
          "; any stage may follow any other on a path, so every skippable stage maps width ", width, " to ", width,
          " (rule: equal skippable widths; e.g. hidden layers of one width)"));
    };
    for (std::int32_t st = 1; st < num_stages_; ++st) {
      if (model_.input_features(st) != width) fail(stretto::detail::cat("stage ", st, "'s input width"), model_.input_features(st));
      if (model_.output_features(st) != width) fail(stretto::detail::cat("stage ", st, "'s output width"), model_.output_features(st));
    }
    if (model_.input_features(num_stages_) != width)
      fail(stretto::detail::cat("the head's (model stage ", num_stages_, ") input width"), model_.input_features(num_stages_));
  }

  // Buffers of one microbatch on this rank; reused from step to step while its rows stay.
  struct slot {
    matrix_type in;        // received activation (F at a position > 0, or the loss op)
    matrix_type f;         // the model's F output
    matrix_type out;       // x + f (residual) or f itself: what is sent on
    matrix_type logits;    // the head's output
    matrix_type dlogits;   // d loss / d logits
    matrix_type grad_in;   // received gradient (B)
    matrix_type dx;        // B's input gradient, sent back
    matrix_type dx0;       // no rows: model stage 0 computes no input gradient
    mpi::communicator::request activation, gradient;
    std::vector<mpi::communicator::request> sends;
  };

  static matrix_type sized(matrix_type& v, const char* label, std::int64_t rows, std::int64_t cols) {
    if (static_cast<std::int64_t>(v.extent(0)) != rows || static_cast<std::int64_t>(v.extent(1)) != cols)
      v = matrix_type(std::string(label), static_cast<std::size_t>(rows), static_cast<std::size_t>(cols));
    return v;
  }

  // Position of this rank on microbatch j's path (0 … L−1), or −1.
  std::int32_t position(std::int32_t j) const {
    const skippipe::path& p = paths_[static_cast<std::size_t>(j)];
    for (std::size_t k = 0; k < p.size(); ++k)
      if (p[k] == rank_) return static_cast<std::int32_t>(k);
    return -1;
  }

  // Emulated node speed: sleeps until the op has taken `slowdown` × its measured time and at least
  // its setting time × `time_unit` (a sleep, not a spin: ranks that share cores leave them to the
  // others, as a separate slower node would).
  void emulate(std::chrono::steady_clock::time_point begin, skippipe::op_type type) const {
    const double w = setting_.compute[static_cast<std::size_t>(rank_)];
    const double units = type == skippipe::op_type::forward ? w
                         : type == skippipe::op_type::loss  ? setting_.loss_factor * w
                                                            : setting_.backward_factor * w;
    const std::chrono::duration<double> floor = options_.time_unit * units;
    const auto taken = std::chrono::steady_clock::now() - begin;
    const std::chrono::duration<double> wanted =
        std::max(std::chrono::duration<double>(taken) * options_.slowdown, floor);
    if (wanted > taken) std::this_thread::sleep_until(begin + std::chrono::duration_cast<std::chrono::steady_clock::duration>(wanted));
  }

  void run_ops(bool training, skippipe_step_result& out) {
    const std::int32_t m = setting_.num_microbatches();
    const std::int64_t width = model_.output_features(0);
    const std::int64_t classes = model_.output_features(num_stages_);
    slots_.resize(static_cast<std::size_t>(m));
    mpi::communicator& t = *transport_;
    auto key = [](message_direction d, std::int32_t from, std::int32_t to, std::int32_t j) {
      return message_key{d, from, to, j};
    };
    // Post every receive of the step up front: each (microbatch, direction) at most once here.
    for (const auto& [j, type] : order_) {
      slot& sl = slots_[static_cast<std::size_t>(j)];
      const skippipe::path& p = paths_[static_cast<std::size_t>(j)];
      const std::int64_t rows = model_.microbatch_rows(j);
      const auto L = static_cast<std::int32_t>(p.size());
      const std::int32_t k = position(j);
      if (type == skippipe::op_type::forward && k > 0) {
        const std::int32_t from = p[static_cast<std::size_t>(k - 1)];
        sized(sl.in, "skippipe::in", rows, width);
        sl.activation = t.post_receive(key(message_direction::activation, setting_.stage_of(from), stage_, j), from, sl.in.data(),
                                       sl.in.size());
      } else if (type == skippipe::op_type::loss && L > 1) {
        const std::int32_t from = p[static_cast<std::size_t>(L - 1)];
        sized(sl.in, "skippipe::in", rows, width);
        sl.activation = t.post_receive(key(message_direction::activation, setting_.stage_of(from), 0, j), from, sl.in.data(),
                                       sl.in.size());
      } else if (type == skippipe::op_type::backward && k < L - 1) {
        const std::int32_t from = p[static_cast<std::size_t>(k + 1)];
        sized(sl.grad_in, "skippipe::grad_in", rows, width);
        sl.gradient = t.post_receive(key(message_direction::gradient, setting_.stage_of(from), stage_, j), from,
                                     sl.grad_in.data(), sl.grad_in.size());
      } else if (type == skippipe::op_type::backward && L > 1) {  // the last node of the path: from the loss op on d
        const std::int32_t from = p[0];
        sized(sl.grad_in, "skippipe::grad_in", rows, width);
        sl.gradient = t.post_receive(key(message_direction::gradient, 0, stage_, j), from, sl.grad_in.data(), sl.grad_in.size());
      }
    }
    for (const auto& [j, type] : order_) {
      slot& sl = slots_[static_cast<std::size_t>(j)];
      const skippipe::path& p = paths_[static_cast<std::size_t>(j)];
      const std::int64_t rows = model_.microbatch_rows(j);
      const auto L = static_cast<std::int32_t>(p.size());
      const std::int32_t k = position(j);
      const std::int32_t ms = stage_;  // model stage of a forward or backward here (0 on a stage-0 node)
      if (type == skippipe::op_type::forward) {
        if (k > 0) t.wait(sl.activation, op{op_kind::forward, ms, j});
        const auto begin = std::chrono::steady_clock::now();
        const matrix_type x = k == 0 ? matrix_type(model_.input(j)) : sl.in;
        const bool residual = options_.residual && ms > 0;
        matrix_type f = sized(sl.f, "skippipe::f", rows, width);
        model_.forward(ms, j, x, f);
        if (residual) {
          matrix_type y = sized(sl.out, "skippipe::out", rows, width);
          detail::residual_add(y, x, f);
        } else {
          sl.out = f;
        }
        Kokkos::fence();
        emulate(begin, skippipe::op_type::forward);
        const std::int32_t next = k + 1 < L ? p[static_cast<std::size_t>(k + 1)] : p[0];
        if (next == rank_) {  // a path of one stage: the loss op runs here next
          sl.in = sl.out;
        } else {
          sl.sends.push_back(t.post_send(key(message_direction::activation, stage_, setting_.stage_of(next), j), next,
                                         sl.out.data(), sl.out.size()));
        }
      } else if (type == skippipe::op_type::loss) {
        if (L > 1) t.wait(sl.activation, op{op_kind::forward, num_stages_, j});
        const auto begin = std::chrono::steady_clock::now();
        matrix_type logits = sized(sl.logits, "skippipe::logits", rows, classes);
        model_.forward(num_stages_, j, sl.in, logits);
        if (!training) {
          if constexpr (requires { model_.output(j, logits); }) model_.output(j, logits);
          Kokkos::fence();
          ++out.ops;
          continue;
        }
        matrix_type dlogits = sized(sl.dlogits, "skippipe::dlogits", rows, classes);
        out.loss += static_cast<double>(model_.loss(j, logits, dlogits));
        matrix_type dx = sized(sl.dx, "skippipe::dx", rows, width);
        model_.backward_input(num_stages_, j, dlogits, dx);
        model_.backward_weight(num_stages_, j);
        Kokkos::fence();
        emulate(begin, skippipe::op_type::loss);
        const std::int32_t back = p[static_cast<std::size_t>(L - 1)];
        if (back == rank_) {
          sl.grad_in = sl.dx;
          sl.dx = matrix_type();  // the next B writes a fresh one
        } else {
          sl.sends.push_back(t.post_send(key(message_direction::gradient, 0, setting_.stage_of(back), j), back, sl.dx.data(),
                                         sl.dx.size()));
        }
      } else {
        if (L > 1) t.wait(sl.gradient, op{op_kind::backward, ms, j});
        const auto begin = std::chrono::steady_clock::now();
        const bool residual = options_.residual && ms > 0;
        const matrix_type dx = k == 0 ? sized(sl.dx0, "skippipe::dx0", 0, width) : sized(sl.dx, "skippipe::dx", rows, width);
        model_.backward_input(ms, j, sl.grad_in, dx);
        if (residual) {
          const matrix_type dy = sl.grad_in;
          detail::residual_accumulate(dx, dy);
        }
        model_.backward_weight(ms, j);
        Kokkos::fence();
        emulate(begin, skippipe::op_type::backward);
        if (k > 0) {
          const std::int32_t prev = p[static_cast<std::size_t>(k - 1)];
          sl.sends.push_back(t.post_send(key(message_direction::gradient, stage_, setting_.stage_of(prev), j), prev, sl.dx.data(),
                                         sl.dx.size()));
        }
      }
      ++out.ops;
    }
    for (std::size_t j = 0; j < slots_.size(); ++j)
      for (auto& q : slots_[j].sends) t.wait(q, op{op_kind::backward, stage_, static_cast<std::int32_t>(j)});
    for (auto& sl : slots_) sl.sends.clear();
  }

  skippipe::setting setting_;
  Model& model_;
  skippipe_options options_;
  std::int32_t rank_{0}, stage_{0}, num_stages_{0};
  std::vector<skippipe::path> paths_;
  std::vector<std::pair<std::int32_t, skippipe::op_type>> order_;
  double simulated_time_{0.0};
  MPI_Comm stage_comm_{MPI_COMM_NULL};
  std::optional<mpi::communicator> transport_;
  std::vector<slot> slots_;
};

}  // namespace stretto::training
