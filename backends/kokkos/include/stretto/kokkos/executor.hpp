#pragma once
/**
@file
@brief The Kokkos executor: runs one rank's op list of a schedule, calling the user's stage
functions on `Kokkos::View`s and moving activations and gradients through a `stretto::transport`.
*/

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <stretto/compile_time/static_schedule.hpp>
#include <stretto/kokkos/boundary.hpp>
#include <stretto/core/dependencies.hpp>
#include <stretto/core/errors.hpp>
#include <stretto/core/schedule.hpp>
#include <stretto/core/transport.hpp>
#include <stretto/validate/validate.hpp>
#include <stretto/sim/cost_model.hpp>
#include <stretto/sim/simulator.hpp>
#include <stretto/sim/timeline.hpp>

#include <stretto/kokkos/execution_instance.hpp>

namespace stretto::kokkos {

/**
@brief The tensors that flow between stages: `[rows, features]`, rows = the samples of one
microbatch, row-major, in `MemorySpace`.
*/
template <class Scalar, class MemorySpace = Kokkos::DefaultExecutionSpace::memory_space>
using matrix = Kokkos::View<Scalar**, Kokkos::LayoutRight, MemorySpace>;

/**
@brief What a model must provide for the executor to run its stages on this rank (the long form,
with who calls what on which rank, the lifetimes and the optimizer rule: docs/stage-model.md).

**Notation.** `M` the model type, `model` an `M&`, `s` a stage and `mb` a microbatch (both
`std::int32_t`), `matrix_type` = `M::matrix_type`. Every view argument is passed as a
`const matrix_type&`: a `Kokkos::View` is a handle, so a const view's elements are still written
(`y(i, j) = ...`); declare the parameters `const matrix_type&` (or take them by value).

| Valid expression | Returns | Meaning |
|---|---|---|
| `M::matrix_type` | | the tensor of activations and gradients: a rank-2 `LayoutRight` `Kokkos::View` of non-const scalars, e.g. `stretto::kokkos::matrix<double>` (`[rows, features]`) |
| `model.input_features(s)`, `model.output_features(s)` | convertible to `std::int64_t` | widths of stage s's input and output |
| `model.microbatch_rows(mb)` | convertible to `std::int64_t` | the number of samples in mb (every rank, at the start of every step) |
| `model.input(mb)` | convertible to `matrix_type` | stage 0's input for mb, `[rows(mb), input_features(0)]` (called on stage 0's rank only) |
| `model.forward(s, mb, x, y)` | ignored | F: reads x `[rows, input_features(s)]`, writes y `[rows, output_features(s)]`, keeps what B and W need |
| `model.loss(mb, y, dy)` | convertible to `double` | on the last stage, right after its F: returns mb's loss, writes d loss / d y into dy (same shape as y) |
| `model.backward_input(s, mb, dy, dx)` | ignored | B: reads the output gradient dy, writes the input gradient dx (dx has 0 rows on stage 0: nothing to write), keeps what W needs |
| `model.backward_weight(s, mb)` | ignored | W: accumulates stage s's weight gradients of mb, then frees mb's state |

Optionally `model.backward(s, mb, dy, dx)` runs a fused BW; without it BW is B then W. For
`executor::run_forward_only`, `model.output(mb, y)` receives the last stage's output instead of
`loss`. Optionally `model.compute_space()` returns the execution-space instance its kernels run on
(a stream on a GPU), the one the executor fences (see `executor`, "Messages on a device").

**Lifetimes.** The views given to `forward`, `loss` and `backward_input` are handles on buffers
of the executor's `buffer_pool`. A model may keep them as long as it likes: the pool hands a
buffer out again only once no one else holds a view of it, so what a model keeps is never
overwritten. It should drop them when done, at the latest in mb's `backward_weight` (`backward`
for a fused BW): a buffer still held is not reused, and every later step allocates again. x and
dy are read-only (after a local hand-over x is the previous stage's y, which that stage may keep).
The view returned by `input(mb)` is the model's own.

**Overlapped F&B pairs** (DualPipe, DualPipeV; `op::overlapped`). The executor runs a pair as the
simulator prices it (docs/timing-model.md, "Overlapped F&B pairs in the executor"): it waits
until the inputs of both ops are there, runs the pair, and posts both ops' messages when the
pair has ended.
Optionally `model.forward_backward(f, x, y, b, dy, dx)` runs the pair together (`f` the F op
with input x and output y, `b` the B or BW op with output gradient dy and input gradient dx,
dx with 0 rows on stage 0; a BW must also do W's work); the simulator prices that with the cost
model's overlap time (`sim::overlap_time`). Without it the two ops run one after the other in
list order, priced as the two durations added up (the default overlap time).

**Loss scaling.** `loss` must scale by the global batch (e.g. divide by the number of samples of
the whole step) so that gradients summed over microbatches equal the full-batch gradient: the
executor applies no scaling of its own. The step's loss (`step_record::loss`, the sum of `loss`
over the microbatches) is filled on the ranks of the last stage only (0 elsewhere).

Each row of the table is a named concept below, so that a compiler's diagnostic names the one
that a model misses (e.g. "required for the satisfaction of 'stage_model_backward_weight<M>'").
*/
/** @brief A `stage_model`'s tensor type: a rank-2 `LayoutRight` view of non-const scalars, such as `matrix<double>`. */
template <class T>
concept stage_matrix = Kokkos::is_view<T>::value &&                                  // a Kokkos::View
                       T::rank == 2 &&                                                // rank 2, [rows, features]
                       std::is_same_v<typename T::array_layout, Kokkos::LayoutRight> &&  // row-major
                       !std::is_const_v<typename T::value_type>;                      // of non-const scalars

/** @brief `M::matrix_type` is a rank-2 `LayoutRight` view of non-const scalars (`stretto::kokkos::matrix`). */
template <class M>
concept stage_model_matrix_type = requires { typename M::matrix_type; } && stage_matrix<typename M::matrix_type>;

/** @brief `input_features(s)`, `output_features(s)` and `microbatch_rows(mb)` give sizes. */
template <class M>
concept stage_model_sizes = requires(M& model, std::int32_t s, std::int32_t mb) {
  { model.input_features(s) } -> std::convertible_to<std::int64_t>;   // std::int64_t input_features(std::int32_t s)
  { model.output_features(s) } -> std::convertible_to<std::int64_t>;  // std::int64_t output_features(std::int32_t s)
  { model.microbatch_rows(mb) } -> std::convertible_to<std::int64_t>;  // std::int64_t microbatch_rows(std::int32_t mb)
};

/** @brief `input(mb)` gives stage 0's input. */
template <class M>
concept stage_model_input = requires(M& model, std::int32_t mb) {
  { model.input(mb) } -> std::convertible_to<typename M::matrix_type>;  // matrix_type input(std::int32_t mb)
};

/** @brief F: `forward(s, mb, x, y)` with both views `const matrix_type&`. */
template <class M>
concept stage_model_forward = requires(M& model, std::int32_t s, std::int32_t mb, const typename M::matrix_type& x,
                                       const typename M::matrix_type& y) {
  model.forward(s, mb, x, y);  // void forward(std::int32_t s, std::int32_t mb, const matrix_type& x, const matrix_type& y): y is const& too
};

/** @brief The loss on the last stage: `loss(mb, y, dy)` returns the loss as a `double`. */
template <class M>
concept stage_model_loss = requires(M& model, std::int32_t mb, const typename M::matrix_type& y,
                                    const typename M::matrix_type& dy) {
  { model.loss(mb, y, dy) } -> std::convertible_to<double>;  // double loss(std::int32_t mb, const matrix_type& y, const matrix_type& dy)
};

/** @brief B: `backward_input(s, mb, dy, dx)` with both views `const matrix_type&`. */
template <class M>
concept stage_model_backward_input = requires(M& model, std::int32_t s, std::int32_t mb,
                                              const typename M::matrix_type& dy, const typename M::matrix_type& dx) {
  model.backward_input(s, mb, dy, dx);  // void backward_input(std::int32_t s, std::int32_t mb, const matrix_type& dy, const matrix_type& dx)
};

/** @brief W: `backward_weight(s, mb)`. */
template <class M>
concept stage_model_backward_weight = requires(M& model, std::int32_t s, std::int32_t mb) {
  model.backward_weight(s, mb);  // void backward_weight(std::int32_t s, std::int32_t mb)
};

/** @brief Every row of the table above (see its named parts). */
template <class M>
concept stage_model = stage_model_matrix_type<M> && stage_model_sizes<M> && stage_model_input<M> &&
                      stage_model_forward<M> && stage_model_loss<M> && stage_model_backward_input<M> &&
                      stage_model_backward_weight<M>;

/** @brief How an `executor` hands messages to its transport (`executor_options::messages`). */
enum class message_path : std::uint8_t {
  automatic,  ///< `direct` when the views are host-accessible or the transport reads device memory (`comm.device_aware()`), else `staged`
  staged,     ///< through host staging buffers (pinned on a GPU), copied on their own instance; also on a host backend (tests)
  direct,     ///< the views' own pointers, also in device memory: the transport must read it (a CUDA- or ROCm-aware MPI)
};

/** @brief Options of an `executor`. */
struct executor_options {
  /// Receives are posted this many ops ahead of the op that needs them (at least the op itself),
  /// so that a message can land while the rank computes, while the number of receive buffers
  /// stays bounded independently of m.
  std::int32_t receive_lookahead{4};
  /// How messages reach the transport when the views live in memory the host cannot read (a GPU's);
  /// see `executor`, "Messages on a device".
  message_path messages{message_path::automatic};
  /// false (the default): fence the compute instance only where a dependency needs it (before an
  /// op's output leaves the rank, and at the step's end), so that a GPU queues op after op; then,
  /// on an asynchronous execution space, `compute_end` of an op that sends nothing is when its
  /// kernels were queued, and an observer that reads an op's results on the host fences the
  /// compute instance first (as `training::pipeline`'s gradient all-reduce does). true: fence after
  /// every op, so that each op's `compute_end` is when its kernels have finished (op timings on a
  /// GPU). The same on a host backend either way.
  bool fence_every_op{false};
};

/**
@brief The four instants of one op on one rank, in seconds since the step's origin.

`wait_begin` ≤ `compute_begin` ≤ `compute_end` ≤ `send_complete`:
- `wait_begin`: the op became the rank's next op and began waiting for its input (a receive from
  another rank; an input that is local or none is there at once, so then `compute_begin` follows
  within the executor's overhead);
- `compute_begin`, `compute_end`: the stage function's call, from the moment its input is there
  to the end of the fence of the compute instance after it (its output's send is posted inside;
  with `executor_options::fence_every_op` false, the default, on an asynchronous execution
  space, an op that sends nothing ends when its kernels were queued);
- `send_complete`: when the executor saw the send of the op's output complete (it tests pending
  sends after every op and waits for the rest at the step's end, so this is an upper bound);
  `compute_end` for ops that send nothing to another rank (W, a local hand-over, the loss).
*/
struct op_trace {
  op what{};
  double wait_begin{0.0};
  double compute_begin{0.0};
  double compute_end{0.0};
  double send_complete{0.0};

  double wait() const noexcept { return compute_begin - wait_begin; }        ///< seconds idle before the op
  double compute() const noexcept { return compute_end - compute_begin; }  ///< seconds of work
  friend constexpr bool operator==(const op_trace&, const op_trace&) = default;
};

/**
@brief What one step of one rank returns.

`ops` holds the compute intervals (`compute_begin`, `compute_end`) in the simulator's
`sim::op_timing` form, ready for `sim::timeline` and `sim::op_time_profile`; `trace` holds all four
instants of each op. A rank's idle time is `span` minus `busy`: the bubble rate of a step over p
ranks started together is (p·max_r end_r − Σ_r busy_r) / (p·max_r end_r).
*/
struct step_record {
  std::vector<sim::op_timing> ops;  ///< this rank's ops, compute intervals, seconds since the step's origin
  std::vector<op_trace> trace;      ///< this rank's ops, every instant, in execution order
  double loss{0.0};                 ///< sum of `model.loss` over microbatches (last stage only)

  /// The end of this rank's last computation, seconds since the origin (0 if the rank has no op).
  double end() const noexcept {
    double e = 0.0;
    for (const auto& t : trace) e = std::max(e, t.compute_end);
    return e;
  }
  /// Seconds this rank computed: Σ (compute_end − compute_begin); waits for inputs are not busy.
  double busy() const noexcept {
    double b = 0.0;
    for (const auto& t : trace) b += t.compute();
    return b;
  }
  /// Seconds this rank was idle between the origin and `end()`: `end() − busy()`.
  double idle() const noexcept { return end() - busy(); }
};

/**
@brief What an executor reports while it runs: override the events you need (every one does
nothing by default), then `executor::add_observer`.

In the manner of Taskflow's observers, the executor calls each added observer at each event, in
the order they were added, on the thread that runs the step; it never reads anything back, so an
observer changes no schedule, message or result. `index` is the op's position in the running op
list (`ops` of `on_step_begin`). Per op the events come in the order wait → compute begin →
compute end → send complete (the last possibly after later ops' events). `timeline_recorder`
is the observer behind `step_record`; trace writers or Kokkos Tools profiling regions
(`Kokkos::Profiling::pushRegion` in `on_compute_begin`) plug in the same way.

An observer must outlive the executor's steps and should not allocate per event if the step is to
stay allocation-free.
*/
class observer {
 public:
  using clock = std::chrono::steady_clock;
  virtual ~observer() = default;
  /// A step (or a forward-only pass) starts; `origin` is the time its timings are measured from.
  virtual void on_step_begin(std::span<const op> /*ops*/, clock::time_point /*origin*/) {}
  /// Op `index` is next and begins waiting for its input.
  virtual void on_wait_begin(std::size_t /*index*/, const op& /*o*/, clock::time_point /*t*/) {}
  /// Op `index`'s input is there; its stage function is called now.
  virtual void on_compute_begin(std::size_t /*index*/, const op& /*o*/, clock::time_point /*t*/) {}
  /// Op `index`'s stage function returned; its kernels are fenced if its output left the rank or
  /// `executor_options::fence_every_op` is set (else, on a device, they may still be queued: fence
  /// the compute instance before reading its results on the host).
  virtual void on_compute_end(std::size_t /*index*/, const op& /*o*/, clock::time_point /*t*/) {}
  /// Op `index`'s output is delivered (its send completed, or it needed none).
  virtual void on_send_complete(std::size_t /*index*/, const op& /*o*/, clock::time_point /*t*/) {}
  /// Every op ran and every send completed.
  virtual void on_step_end(clock::time_point /*t*/) {}
};

/**
@brief The observer that records a `step_record`: per op its four instants in seconds since the
step's origin. Its buffers keep their capacity from step to step (no allocation after the
first step).
*/
class timeline_recorder final : public observer {
 public:
  void on_step_begin(std::span<const op> ops, clock::time_point origin) override {
    origin_ = origin;
    record_.ops.clear();
    record_.trace.assign(ops.size(), op_trace{});
    record_.loss = 0.0;
    for (std::size_t i = 0; i < ops.size(); ++i) record_.trace[i].what = ops[i];
  }
  void on_wait_begin(std::size_t index, const op&, clock::time_point t) override {
    record_.trace[index].wait_begin = seconds(t);
  }
  void on_compute_begin(std::size_t index, const op&, clock::time_point t) override {
    record_.trace[index].compute_begin = seconds(t);
  }
  void on_compute_end(std::size_t index, const op&, clock::time_point t) override {
    record_.trace[index].compute_end = seconds(t);
  }
  void on_send_complete(std::size_t index, const op&, clock::time_point t) override {
    record_.trace[index].send_complete = seconds(t);
  }
  void on_step_end(clock::time_point) override {
    for (const op_trace& t : record_.trace) record_.ops.push_back({t.what, t.compute_begin, t.compute_end});
  }

  const step_record& record() const noexcept { return record_; }
  step_record& record() noexcept { return record_; }

 private:
  double seconds(clock::time_point t) const { return std::chrono::duration<double>(t - origin_).count(); }
  clock::time_point origin_{};
  step_record record_;
};

/**
@brief Matrices reused from step to step: the executor's activations, gradients and messages.

A buffer is a `[rows, cols]` matrix allocated once. `acquire(label, rows, cols, rows_hint)`
returns a managed view of the first `rows` rows of a free buffer of width `cols` with at least
`rows` rows (first fit); when none is free it allocates `growth()` new buffers of
`max(rows, rows_hint)` rows at once and returns the first.
A buffer is free when nobody but the pool holds a view of it (`use_count() == 1`): the executor's
stores, a message in flight and a model's saved state all keep it in use without telling the
pool, and let it go by dropping their views. In steady state (same shapes every step) a step
therefore allocates nothing once the first step has grown the pool to its peak.

**Cost.** `acquire` scans the buffers: O(number of buffers) per call, no allocation when one
is free. **Sizing.** The executor sets `growth` to the most buffers its rank can hold at once
by the schedule: 3 per microbatch state the rank holds at its simulated peak (from F to W the
model may keep F's input and output and B's output gradient) + the receive lookahead + 2 (a
loss gradient and a send in flight). A width therefore reaches its peak the first time it is
used, however the messages' timing varies from step to step.
*/
template <class Matrix>
class buffer_pool {
 public:
  void reserve(std::size_t buffers) { slots_.reserve(buffers); }
  /** @brief How many buffers an `acquire` that finds none free allocates (at least 1). */
  void set_growth(std::size_t buffers) noexcept { growth_ = std::max<std::size_t>(buffers, 1); }
  std::size_t growth() const noexcept { return growth_; }

  /** @brief A `[rows, cols]` view of a free buffer; allocates `growth()` of `max(rows, rows_hint)` rows if none is free. */
  Matrix acquire(const char* label, std::int64_t rows, std::int64_t cols, std::int64_t rows_hint = 0) {
    for (Matrix& slot : slots_)
      if (slot.use_count() == 1 && static_cast<std::int64_t>(slot.extent(1)) == cols &&
          static_cast<std::int64_t>(slot.extent(0)) >= rows)
        return head(slot, rows);
    const std::size_t first = slots_.size();
    for (std::size_t k = 0; k < growth_; ++k) {
      ++allocations_;
      slots_.emplace_back(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string(label)),
                          static_cast<std::size_t>(std::max(rows, rows_hint)), static_cast<std::size_t>(cols));
    }
    return head(slots_[first], rows);
  }

  /** @brief Buffers the pool holds. */
  std::size_t size() const noexcept { return slots_.size(); }
  /** @brief Buffers allocated since construction (equals `size()`: none is ever released). */
  std::size_t allocations() const noexcept { return allocations_; }
  /**
  @brief Bytes of the buffers someone besides the pool holds a view of, each counted whole
  (rows × cols × value size, also when a shorter view of it is in use): the activation memory
  the pool's users hold now. O(number of buffers), no allocation.
  */
  std::size_t bytes_in_use() const noexcept {
    std::size_t bytes = 0;
    for (const Matrix& m : slots_)
      if (m.use_count() > 1) bytes += m.span() * sizeof(typename Matrix::value_type);
    return bytes;
  }
  /** @brief Buffers someone besides the pool holds a view of. */
  std::size_t in_use() const noexcept {
    return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [](const Matrix& m) { return m.use_count() > 1; }));
  }

 private:
  static Matrix head(const Matrix& slot, std::int64_t rows) {
    return Kokkos::subview(slot, Kokkos::make_pair(std::int64_t{0}, rows), Kokkos::ALL);
  }
  std::vector<Matrix> slots_;
  std::size_t allocations_{0};
  std::size_t growth_{1};
};

/**
@brief Runs rank `comm.rank()`'s op list of a schedule with `Model`'s stage functions.

**Message flow.** F(s, mb) sends its output to stage s+1 and B/BW(s, mb) its input gradient to
stage s−1, as `message_key`s, through `comm` when the other stage is on another rank, by a local
hand-over (no copy, no message) when it is on the same rank. Receives are posted
`receive_lookahead` ops ahead; a send's buffer is released as soon as its request completes.
An overlapped F&B pair runs as one unit, once both of its inputs are there, and sends both of
its messages at its end (see `stage_model`), as the simulator prices it.

**Memory.** Every output, input gradient, loss gradient and receive buffer comes from a
`buffer_pool` (`pool()`); after the first step of a shape, a step allocates nothing (see
`buffer_pool`), provided the model lets go of the views it is given once it no longer needs them.

**Messages on a device** (`executor_options::messages`, `fence_every_op`). The model's kernels run
on one execution-space instance, `compute_space()` (`model.compute_space()` if the model has it,
else the default instance; on a GPU, a stream): the executor fences that instance only, not the
whole device. When the views are in memory the host cannot read (CUDA, HIP) and the transport
cannot read device memory (`comm.device_aware()` false or absent), messages are *staged*: a
received input lands in a host buffer (pinned, `device_traits<E>::staging_space`) and is copied
to the device on the compute instance ahead of the op's kernels; an output that leaves the rank
is copied to a host buffer on the executor's own instance (`execution_instance`, a second
stream) right after its op, while the next op computes, and its send is posted once that copy
is done (at the end of the next op, before the rank blocks on a receive, or at the step's end).
With a device-aware transport the views' own pointers are sent, after a fence of the compute
instance. Staging buffers come from a second `buffer_pool`. The schedule logic is the same on
every path; on a host backend the default is the direct path (`message_path::staged` forces
staging, for tests).

**Several tensors per boundary.** A `Model` that declares `boundary_type` (a
`boundary_stage_model`, boundary.hpp) runs through its `boundary_model`: every boundary crossing
is one message of the tuple packed into one pool buffer, and gradients carry only the elements
with a gradient. Any other `Model` is a `stage_model` and runs as it is.

**Errors.** The constructor validates the schedule (`validation_error`). Waits report the rank,
the op and the message they wait for (see the transport's timeout).

@pre `Kokkos::initialize` has run; every rank of the pipeline runs the same schedule.
*/
template <class Model, transport Comm>
  requires stage_model<executed_model_t<Model>>  // Model itself, or its boundary_model (boundary.hpp)
class executor {
  struct validate_at_run_time {};       // tags of the private constructor: whether to validate
  struct validated_at_compile_time {};  // the schedule, or trust the compiler's validation

 public:
  using matrix_type = typename executed_model_t<Model>::matrix_type;
  using scalar_type = typename matrix_type::non_const_value_type;
  using memory_space = typename matrix_type::memory_space;
  using execution_space = typename matrix_type::execution_space;
  /// Host staging buffers of messages: pinned memory on a GPU (`device_traits`), else host memory.
  using host_matrix = Kokkos::View<scalar_type**, Kokkos::LayoutRight, staging_space_t<execution_space>>;
  using clock = std::chrono::steady_clock;

  executor(const schedule& s, Model& model, Comm& comm, executor_options options = {})
      : executor(s, model, comm, options, validate_at_run_time{}) {}

  /**
  @brief Runs a schedule generated and validated at compile time
  (`stretto::compile_time::static_schedule`), e.g. `executor exec(static_schedule<zb_h1, pipeline_shape{4, 8, 1}>{}, model, comm)`.

  This rank's op list is read in place from the constant table and the schedule is not validated
  again; `plan()` holds the equal run-time `schedule` (`s.to_schedule()`) for message routing.
  @throws argument_error if the transport's rank is not one of the schedule's ranks.
  */
  template <schedule_policy Policy, pipeline_shape Shape>
  executor(compile_time::static_schedule<Policy, Shape> s, Model& model, Comm& comm, executor_options options = {})
      : executor(s.to_schedule(), model, comm, options, validated_at_compile_time{}) {
    static_ops_ = s.ops(rank_);
  }

 private:
  template <class Validated>
  executor(const schedule& s, Model& model, Comm& comm, executor_options options, Validated)
      : schedule_(s), model_(boundary_detail::executed<Model>::bind(model, s.num_stages())), comm_(comm), options_(options), rank_(comm.rank()) {
    if constexpr (!std::is_same_v<Validated, validated_at_compile_time>)
      if (auto check = validate(s); !check) throw validation_error(check.message);
    if (rank_ < 0 || rank_ >= s.num_ranks())
      throw argument_error(stretto::detail::cat("stretto::kokkos::executor: transport rank ", rank_,
                                                " is outside the schedule's ", s.num_ranks(), " ranks"));
    if (options_.receive_lookahead < 0) options_.receive_lookahead = 0;
    set_up_device();
    // Buffers held at once (see buffer_pool): per microbatch state (F to W) its input, output and
    // output gradient, the receives posted ahead, a loss gradient and a send in flight.
    const double v = s.shape().num_chunks;
    const double states = sim::peak_memory(s, sim::uniform_costs{1, 1, 1, 0, v, v})[static_cast<std::size_t>(rank_)];
    const auto expected = 3 * static_cast<std::size_t>(states) + static_cast<std::size_t>(options_.receive_lookahead) + 2;
    pool_.set_growth(expected);
    pool_.reserve(4 * expected);
    if (staged_) {
      host_pool_.set_growth(expected);
      host_pool_.reserve(4 * expected);
    }
    const auto cells = static_cast<std::size_t>(s.num_stages()) * static_cast<std::size_t>(s.num_microbatches());
    activation_in_.resize(cells);
    gradient_in_.resize(cells);
    // Every op sends at most one message, and a step completes its sends: room for all of them.
    sends_.reserve(s.ops(rank_).size());
    staging_held_.reserve(s.ops(rank_).size());
  }

  // The compute instance (the model's, or the default one) and the message path.
  void set_up_device() {
    if constexpr (requires { model_.compute_space(); }) space_ = model_.compute_space();
    bool device_aware = false;
    if constexpr (requires { comm_.device_aware(); }) device_aware = static_cast<bool>(comm_.device_aware());
    staged_ = options_.messages == message_path::staged ||
              (options_.messages == message_path::automatic && !host_accessible && !device_aware);
  }

 public:
  const schedule& plan() const noexcept { return schedule_; }
  /** @brief The buffers of activations, gradients and messages (device memory space). */
  const buffer_pool<matrix_type>& pool() const noexcept { return pool_; }
  /** @brief The execution-space instance the executor fences and copies received inputs on: `model.compute_space()` if the model has it, else the default instance. */
  const execution_space& compute_space() const noexcept { return space_; }
  /** @brief Whether messages go through host staging buffers (see `executor_options::messages`). */
  bool stages_messages() const noexcept { return staged_; }

  /**
  @brief Runs this rank's op list once (one optimizer step's forward and backward work).
  @param origin the time that the returned timings are measured from (e.g. taken right after a
  barrier on every rank).
  @return the step's timings and loss, recorded by the executor's `timeline_recorder`; valid until
  the next step (copy it to keep it).
  */
  const step_record& run_step(clock::time_point origin = clock::now()) {
    return run(static_ops_.data() != nullptr ? static_ops_ : schedule_.ops(rank_), origin, false);
  }

  /**
  @brief Runs only the forwards of this rank (evaluation), microbatch by microbatch.

  On the last stage, `model.output(mb, y)` receives each microbatch's output instead of `loss`;
  the model should not keep backward state meanwhile. The order (by microbatch, then stage) is
  deadlock-free under every placement.
  */
  const step_record& run_forward_only(clock::time_point origin = clock::now())
    requires requires(executed_model_t<Model>& m, const matrix_type& y) { m.output(std::int32_t{0}, y); }
  {
    if (forward_only_.empty()) {
      for (const op& o : schedule_.ops(rank_))
        if (o.kind == op_kind::forward) forward_only_.push_back(op{o.kind, o.stage, o.microbatch});  // no F&B pair here
      std::stable_sort(forward_only_.begin(), forward_only_.end(), [](const op& a, const op& b) {
        return a.microbatch != b.microbatch ? a.microbatch < b.microbatch : a.stage < b.stage;
      });
    }
    return run(forward_only_, origin, true);
  }

 /**
  @brief Adds `o` to the observers called at each event of every later step (see `observer`).
  @pre `o` outlives this executor's steps, or is removed before it dies.
  */
  void add_observer(observer& o) { observers_.push_back(&o); }
  /** @brief Stops calling `o` (no effect if it was not added). */
  void remove_observer(observer& o) { std::erase(observers_, &o); }

 private:
  template <class Event, class... Args>
  void notify(Event event, Args&&... args) {
    (recorder_.*event)(args...);
    for (observer* o : observers_) (o->*event)(args...);
  }

  const step_record& run(std::span<const op> list, clock::time_point origin, bool forward_only) {
    notify(&observer::on_step_begin, list, origin);
    double loss = 0.0;
    max_rows_ = 0;
    for (std::int32_t mb = 0; mb < schedule_.num_microbatches(); ++mb)
      max_rows_ = std::max<std::int64_t>(max_rows_, model_.microbatch_rows(mb));
    receive_ops_.clear();
    for (std::size_t i = 0; i < list.size(); ++i)
      if (needs_receive(list[i])) receive_ops_.push_back(i);
    next_receive_ = 0;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const op& o = list[i];
      // An F&B pair (never in a forward-only pass, whose list has no pair) runs as one unit.
      const bool pair = o.overlapped && i + 1 < list.size();
      post_receives_through(list, i + (pair ? 1 : 0) + static_cast<std::size_t>(options_.receive_lookahead));
      if (pair) {
        loss += run_pair(list, i);
        ++i;
        continue;
      }
      notify(&observer::on_wait_begin, i, o, clock::now());
      await_input(o);
      release_completed_sends();  // sends that completed during the wait free their buffers before the op
      notify(&observer::on_compute_begin, i, o, clock::now());
      bool sent = false;
      switch (o.kind) {
        case op_kind::forward: loss += run_forward(i, o, forward_only, sent); break;
        case op_kind::backward_input:
        case op_kind::backward: run_backward(i, o, sent); break;
        case op_kind::backward_weight: model_.backward_weight(o.stage, o.microbatch); break;
      }
      end_compute(sent);
      const auto end = clock::now();
      notify(&observer::on_compute_end, i, o, end);
      post_unposted_sends();
      if (!sent) notify(&observer::on_send_complete, i, o, end);
      release_completed_sends();
    }
    end_compute(true);  // the step's work is done, and every staged send is posted
    flush_staged_sends();
    staging_held_.clear();
    for (auto& pending : sends_) {
      comm_.wait(pending.request, pending.sender);
      notify(&observer::on_send_complete, pending.index, pending.sender, clock::now());
    }
    sends_.clear();
    notify(&observer::on_step_end, clock::now());
    recorder_.record().loss = loss;
    return recorder_.record();
  }

  struct message_buffer {
    matrix_type device;
    host_matrix host;  // the mirror the transport reads or writes when `device` is not host-accessible
    typename Comm::request request;
    op sender{};
    std::size_t index{0};  // the sender's position in the running op list
    message_key key{};     // a send's message, and its destination rank until it is posted (-1 after)
    std::int32_t unposted_to{-1};
    bool copied{false};    // a staged send: its copy to `host` is queued
  };

  static constexpr bool host_accessible =
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, memory_space>::accessible;

  std::size_t cell(std::int32_t stage, std::int32_t mb) const noexcept {
    return static_cast<std::size_t>(stage) * static_cast<std::size_t>(schedule_.num_microbatches()) +
           static_cast<std::size_t>(mb);
  }
  bool is_last(std::int32_t stage) const noexcept { return stage + 1 == schedule_.num_stages(); }

  // Whether `o`'s input comes from another rank.
  bool needs_receive(const op& o) const noexcept {
    if (o.kind == op_kind::forward) return o.stage > 0 && schedule_.rank_of(o.stage - 1, o.microbatch) != rank_;
    if (produces_input_gradient(o.kind))
      return !is_last(o.stage) && schedule_.rank_of(o.stage + 1, o.microbatch) != rank_;
    return false;
  }

  matrix_type allocate(const char* label, std::int64_t rows, std::int64_t cols) {
    return pool_.acquire(label, rows, cols, max_rows_);
  }
  host_matrix host_buffer(const matrix_type& device) {
    return host_pool_.acquire("stretto::host_staging", static_cast<std::int64_t>(device.extent(0)),
                              static_cast<std::int64_t>(device.extent(1)), max_rows_);
  }

  scalar_type* transport_data(message_buffer& b) { return staged_ ? b.host.data() : b.device.data(); }

  void post_receives_through(std::span<const op> list, std::size_t last_op) {
    while (next_receive_ < receive_ops_.size() && receive_ops_[next_receive_] <= last_op) {
      const op& o = list[receive_ops_[next_receive_++]];
      const bool forward = o.kind == op_kind::forward;
      const std::int32_t from_stage = forward ? o.stage - 1 : o.stage + 1;
      const message_key key{forward ? message_direction::activation : message_direction::gradient,
                            from_stage, o.stage, o.microbatch};
      const std::int64_t cols = forward ? model_.input_features(o.stage) : boundary_detail::output_gradient_features(model_, o.stage);
      message_buffer b;
      b.device = allocate(forward ? "stretto::activation_in" : "stretto::gradient_in",
                          model_.microbatch_rows(o.microbatch), cols);
      if (staged_) b.host = host_buffer(b.device);
      b.request = comm_.post_receive(key, schedule_.rank_of(from_stage, o.microbatch), transport_data(b), b.device.size());
      (forward ? activation_in_ : gradient_in_)[cell(o.stage, o.microbatch)] = std::move(b);
    }
  }

  // Waits until the input of `o` (activation for F, output gradient for B/BW) is there if it
  // comes from another rank (and copies it to the device if it was staged on the host).
  void await_input(const op& o) {
    if (!needs_receive(o)) return;
    message_buffer& b = (o.kind == op_kind::forward ? activation_in_ : gradient_in_)[cell(o.stage, o.microbatch)];
    if (staged_) flush_staged_sends();  // before blocking: a peer may wait for them first
    comm_.wait(b.request, o);
    if (staged_) {  // queued ahead of the op's kernels; the staging buffer is kept until a fence
      Kokkos::deep_copy(space_, b.device, b.host);
      staging_held_.push_back(std::move(b.host));
      b.host = host_matrix();
    }
  }

  // Returns the input of `o` (after `await_input`) and forgets it (its last consumer is `o`).
  matrix_type take_input(const op& o, std::vector<message_buffer>& store) {
    message_buffer& b = store[cell(o.stage, o.microbatch)];
    matrix_type input = b.device;
    b = message_buffer{};
    if (input.data() == nullptr && input.size() == 0 && model_.microbatch_rows(o.microbatch) > 0)
      throw validation_error(stretto::detail::cat("stretto::kokkos::executor: rank ", rank_, " runs ",
                                                  to_string(o), " before its input exists"));
    return input;
  }

  // Returns whether a message was posted (false: a local hand-over).
  bool hand_over(std::size_t index, const op& sender, message_key key, matrix_type value) {
    const std::int32_t to_rank = schedule_.rank_of(key.to_stage, key.microbatch);
    auto& store = key.direction == message_direction::activation ? activation_in_ : gradient_in_;
    message_buffer b;
    b.device = std::move(value);
    if (to_rank == rank_) {  // same rank: a local hand-over, no message
      store[cell(key.to_stage, key.microbatch)] = std::move(b);
      return false;
    }
    if (staged_) b.host = host_buffer(b.device);  // copied by end_compute, once the op's kernels are done
    b.sender = sender;
    b.index = index;
    // Posted by `post_unposted_sends` once the op's (or its F&B pair's) compute end is stamped:
    // the receiver cannot then start before the end this rank records.
    b.key = key;
    b.unposted_to = to_rank;
    sends_.push_back(std::move(b));
    return true;
  }

  // After an op's stage functions: fences the compute instance where a dependency needs it (`sends`:
  // an output leaves the rank) or `fence_every_op` asks; with staging, posts the earlier ops'
  // staged sends and queues this op's copies to the host on the copy instance, where they run
  // while the next op computes.
  void end_compute(bool sends, bool post_earlier = true) {
    if (sends || options_.fence_every_op) {
      space_.fence();
      staging_held_.clear();  // the received inputs' copies have run
    }
    if (!staged_) return;
    if (post_earlier) flush_staged_sends();
    for (message_buffer& b : sends_)
      if (b.unposted_to >= 0 && !b.copied) {
        Kokkos::deep_copy(copies_.space(), b.host, b.device);
        b.copied = true;
      }
  }

  // Staging: waits for the queued copies to the host and posts their sends.
  void flush_staged_sends() {
    bool queued = false;
    for (const message_buffer& b : sends_) queued = queued || (b.unposted_to >= 0 && b.copied);
    if (!queued) return;
    copies_.fence();
    for (message_buffer& b : sends_)
      if (b.unposted_to >= 0 && b.copied) post(b);
  }

  void post(message_buffer& b) {
    b.request = comm_.post_send(b.key, b.unposted_to, static_cast<const scalar_type*>(transport_data(b)), b.device.size());
    b.unposted_to = -1;
  }

  // Without staging: posts the sends of the op (or F&B pair) that just ended. With staging they
  // are posted once their copies to the host are done (`flush_staged_sends`).
  void post_unposted_sends() {
    if (staged_) return;
    for (std::size_t k = sends_.size(); k-- > 0 && sends_[k].unposted_to >= 0;) post(sends_[k]);
  }

  // Runs the F&B pair at `list[i]`, `list[i + 1]` as one unit: waits for both inputs, runs both
  // ops (together through `model.forward_backward` when the model has it, else one after the
  // other), then posts both messages. Returns the loss of the F when it is on the last stage.
  double run_pair(std::span<const op> list, std::size_t i) {
    const op& first = list[i];
    const op& second = list[i + 1];
    const auto wait = clock::now();
    notify(&observer::on_wait_begin, i, first, wait);
    notify(&observer::on_wait_begin, i + 1, second, wait);
    await_input(first);
    await_input(second);
    release_completed_sends();
    double loss = 0.0;
    bool sent[2] = {false, false};
    const bool f_first = first.kind == op_kind::forward;
    const op& f = f_first ? first : second;
    const op& b = f_first ? second : first;
    if constexpr (requires(const matrix_type& m, const op& q) { model_.forward_backward(q, m, m, q, m, m); }) {
      const auto start = clock::now();
      notify(&observer::on_compute_begin, i, first, start);
      notify(&observer::on_compute_begin, i + 1, second, start);
      const matrix_type x = f.stage == 0 ? matrix_type(model_.input(f.microbatch)) : take_input(f, activation_in_);
      matrix_type y = allocate("stretto::activation_out", model_.microbatch_rows(f.microbatch), model_.output_features(f.stage));
      const matrix_type dy = take_input(b, gradient_in_);
      matrix_type dx = b.stage == 0 ? matrix_type()
                                    : allocate("stretto::gradient_out", model_.microbatch_rows(b.microbatch),
                                               boundary_detail::input_gradient_features(model_, b.stage));
      model_.forward_backward(f, x, y, b, dy, dx);
      loss = finish_forward(i + (f_first ? 0 : 1), f, false, std::move(y), sent[f_first ? 0 : 1]);
      if (b.stage > 0)
        sent[f_first ? 1 : 0] =
            hand_over(i + (f_first ? 1 : 0), b, {message_direction::gradient, b.stage, b.stage - 1, b.microbatch}, std::move(dx));
      end_compute(sent[0] || sent[1]);
      const auto end = clock::now();
      notify(&observer::on_compute_end, i, first, end);
      notify(&observer::on_compute_end, i + 1, second, end);
    } else {
      auto run_one = [&](std::size_t index, const op& o, bool& o_sent) {
        notify(&observer::on_compute_begin, index, o, clock::now());
        if (o.kind == op_kind::forward) loss = run_forward(index, o, false, o_sent);
        else run_backward(index, o, o_sent);
        end_compute(o_sent, false);  // staged: the pair's sends are posted after the pair
        notify(&observer::on_compute_end, index, o, clock::now());
      };
      run_one(i, first, sent[0]);
      run_one(i + 1, second, sent[1]);
    }
    post_unposted_sends();
    const auto end = clock::now();
    if (!sent[0]) notify(&observer::on_send_complete, i, first, end);
    if (!sent[1]) notify(&observer::on_send_complete, i + 1, second, end);
    release_completed_sends();
    return loss;
  }

  double run_forward(std::size_t index, const op& o, bool forward_only, bool& sent) {
    const matrix_type input = o.stage == 0 ? matrix_type(model_.input(o.microbatch)) : take_input(o, activation_in_);
    matrix_type output = allocate("stretto::activation_out", model_.microbatch_rows(o.microbatch),
                                  model_.output_features(o.stage));
    model_.forward(o.stage, o.microbatch, input, output);
    return finish_forward(index, o, forward_only, std::move(output), sent);
  }

  // What follows F's computation: the output to the model (forward-only) or the loss on the last
  // stage, else the output handed to the next stage. Returns the loss.
  double finish_forward(std::size_t index, const op& o, bool forward_only, matrix_type output, bool& sent) {
    if (is_last(o.stage) && forward_only) {
      if constexpr (requires { model_.output(o.microbatch, output); }) model_.output(o.microbatch, output);
      return 0.0;
    }
    if (is_last(o.stage)) {
      matrix_type gradient = allocate("stretto::loss_gradient", output.extent(0), boundary_detail::output_gradient_features(model_, o.stage));
      const double loss = model_.loss(o.microbatch, output, gradient);
      message_buffer b;
      b.device = gradient;
      gradient_in_[cell(o.stage, o.microbatch)] = std::move(b);
      return loss;
    }
    sent = hand_over(index, o, {message_direction::activation, o.stage, o.stage + 1, o.microbatch}, std::move(output));
    return 0.0;
  }

  void run_backward(std::size_t index, const op& o, bool& sent) {
    const matrix_type gradient = take_input(o, gradient_in_);
    matrix_type input_gradient =
        o.stage == 0 ? matrix_type() : allocate("stretto::gradient_out", model_.microbatch_rows(o.microbatch),
                                                 boundary_detail::input_gradient_features(model_, o.stage));
    if (o.kind == op_kind::backward) {
      if constexpr (requires { model_.backward(o.stage, o.microbatch, gradient, input_gradient); }) {
        model_.backward(o.stage, o.microbatch, gradient, input_gradient);
      } else {
        model_.backward_input(o.stage, o.microbatch, gradient, input_gradient);
        model_.backward_weight(o.stage, o.microbatch);
      }
    } else {
      model_.backward_input(o.stage, o.microbatch, gradient, input_gradient);
    }
    if (o.stage > 0)
      sent = hand_over(index, o, {message_direction::gradient, o.stage, o.stage - 1, o.microbatch}, std::move(input_gradient));
  }

  void release_completed_sends() {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < sends_.size(); ++i) {
      if (sends_[i].unposted_to < 0 && comm_.test(sends_[i].request)) {
        notify(&observer::on_send_complete, sends_[i].index, sends_[i].sender, clock::now());
        continue;
      }
      if (kept != i) sends_[kept] = std::move(sends_[i]);
      ++kept;
    }
    sends_.resize(kept);
  }

  schedule schedule_;
  std::span<const op> static_ops_{};  // this rank's ops in a compile-time table; empty: schedule_'s
  typename boundary_detail::executed<Model>::handle model_;  // Model&, or its boundary_model
  Comm& comm_;
  executor_options options_;
  std::int32_t rank_;
  std::vector<message_buffer> activation_in_;  // [stage · m + mb]: F's input, received or handed over
  std::vector<message_buffer> gradient_in_;    // [stage · m + mb]: B/BW's output gradient
  std::vector<op> forward_only_;               // this rank's F ops by (microbatch, stage)
  std::vector<std::size_t> receive_ops_;       // indices of the running op list's ops that receive
  std::size_t next_receive_{0};
  std::vector<message_buffer> sends_;          // sends still in flight, with their buffers
  timeline_recorder recorder_;                 // the observer behind step_record
  buffer_pool<matrix_type> pool_;              // activations, gradients, receive buffers
  buffer_pool<host_matrix> host_pool_;         // host staging of messages (device memory only)
  std::int64_t max_rows_{0};                   // the largest microbatch of the running step
  std::vector<observer*> observers_;           // added by the user, called after recorder_
  execution_space space_{};                    // the model's kernels' instance (fenced, receives' copies)
  execution_instance<execution_space> copies_;  // its own queue: staged sends' copies to the host
  bool staged_{false};                         // messages through host_pool_ (see message_path)
  std::vector<host_matrix> staging_held_;      // received inputs' staging buffers until their copies ran
};

}  // namespace stretto::kokkos
