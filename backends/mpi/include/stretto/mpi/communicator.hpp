#pragma once
/**
@file
@brief The MPI transport: non-blocking point-to-point messages between pipeline ranks, with a
timeout on every wait and, by default, a progress thread that moves messages while the stage
functions compute. Models `stretto::transport`.
*/

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <stretto/core/errors.hpp>
#include <stretto/core/op.hpp>
#include <stretto/core/shape.hpp>
#include <stretto/core/transport.hpp>
#include <stretto/detail/text.hpp>

#include "collectives.hpp"  // timeout_action; bounded duplication at construction
#include "node.hpp"         // device_aware_mpi

namespace stretto::mpi {

/**
@brief Who moves messages forward between MPI calls of the caller (see `communicator`, "Progress").
*/
enum class progress_mode : std::uint8_t {
  automatic,  ///< `thread` when MPI provides `MPI_THREAD_MULTIPLE`, else `poll` (the default)
  thread,     ///< a progress thread per communicator; needs `MPI_THREAD_MULTIPLE`
  poll,       ///< no thread: messages move only inside `post_*`, `test` and `wait`
};

/** @brief How a wait passes the time until its message completes. */
enum class wait_style : std::uint8_t {
  automatic,  ///< `spin` when this node runs no more ranks than it has cores, else `block` (the default)
  spin,       ///< poll `MPI_Test` without pause, as `MPI_Wait` does: lowest latency, one core busy
  block,      ///< poll briefly, then sleep until the progress thread (or a backed-off poll) sees completion
};

/** @brief Options of a `communicator`. */
struct communicator_options {
  /// How long one wait may block before it is reported; finite and above 0. Default 300 s.
  std::chrono::duration<double> timeout{300.0};
  timeout_action on_timeout{timeout_action::abort};
  progress_mode progress{progress_mode::automatic};
  wait_style waiting{wait_style::automatic};
  /// The longest pause between two progress polls once nothing has happened for `hot_time`
  /// (the pause doubles from 1 µs up to this). Default 50 µs.
  std::chrono::duration<double> poll_interval{50e-6};
  /// After a message is posted or completes, or a wait starts, and all the while a large message
  /// is being transferred, polls follow each other after only `hot_pause`, so that a transfer's
  /// many handshakes follow each other quickly; this long after the last such event the pauses
  /// grow. Default 2 ms.
  std::chrono::duration<double> hot_time{2e-3};
  /// The pause between hot polls; negative (the default): a yield when this node runs no more
  /// ranks than it has cores, else 20 µs of sleep.
  std::chrono::duration<double> hot_pause{-1.0};
  /// How long construction waits for the last rank to arrive (its collectives); finite and above
  /// 0. Negative (the default): the larger of `timeout` and 60 s, since ranks reach construction
  /// after start-up work of different lengths, which a short message timeout should not count.
  std::chrono::duration<double> setup_timeout{-1.0};
};

namespace detail {
template <class T>
MPI_Datatype datatype_of() {
  if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, std::int32_t>) return MPI_INT32_T;
  else if constexpr (std::is_same_v<T, std::int64_t>) return MPI_INT64_T;
  else static_assert(sizeof(T) == 0, "stretto::mpi: no MPI datatype for this element type");
}

// One MPI request and its outcome. It lives on the heap so that the progress thread can keep a
// pointer to it while the `request` that owns it moves; `done` is set (after `status`) by
// whichever thread completes it, under the communicator's lock. A large receive starts as a probe
// (`probing`: no MPI request yet) and becomes an `MPI_Imrecv` when its message arrives
// (`matched`), so that the progress thread knows when a transfer is under way.
struct pending_message {
  MPI_Request handle{MPI_REQUEST_NULL};
  MPI_Status status{};
  std::atomic<bool> done{false};
  bool probing{false};
  bool matched{false};     // a large receive whose message has arrived
  bool large_send{false};  // a send the receiver will announce when it matches
  void* buffer{nullptr};
  int count{0};
  MPI_Datatype type{MPI_DATATYPE_NULL};
  int source{0};
  int tag{0};
};
}  // namespace detail

/**
@brief Point-to-point transport of activations and gradients between the ranks of one pipeline.

Each message carries a tag derived from its `message_key` (destination stage, microbatch,
direction; the source stage follows from these), on a communicator duplicated from the one
given, so that user traffic can never match it.

**Progress.** An MPI library moves a message only while some thread of the process is inside an
MPI call. A message larger than the eager limit needs several handshakes (rendezvous; through
shared memory without single copy, as between nodes over TCP, Open MPI 4 needs about two per
32 KiB fragment, with both ranks taking part), so a rank that calls MPI only between ops stalls
the transfer for a whole op per handshake. With `progress_mode::thread` (the default when MPI was
initialised with `MPI_THREAD_MULTIPLE`) each communicator runs a thread that tests its
outstanding requests while the caller computes:
- receives of 32 KiB or more are matched by `MPI_Improbe` / `MPI_Imrecv`, so the thread sees
  when a transfer begins; the receiver then announces it to the sender (an empty message on a
  second duplicated communicator), so that both sides know;
- while a transfer is under way, and for `hot_time` (2 ms) after a message is posted or
  completes or a wait starts, it polls every `hot_pause` (a yield with spare cores; 20 µs of
  sleep when ranks outnumber cores, where a yielding thread would keep its share of a core that
  another rank needs to compute or copy);
- otherwise the pause between tests doubles from 1 µs up to `poll_interval` (50 µs);
- with nothing outstanding it sleeps until a message is posted (and polls once per millisecond,
  to take in unexpected messages); it stands aside while the caller spins in `wait`; and
  `MPI_Finalize` stops it (an attribute of `MPI_COMM_SELF`) should the communicator outlive MPI.
A wait either spins on `MPI_Test` as `MPI_Wait` does (`wait_style::spin`, chosen when the node
runs no more ranks than it has cores), or polls for a few microseconds and then sleeps on a
condition variable that the progress thread signals when the request completes
(`wait_style::block`, chosen when ranks outnumber cores: a spinning waiter would take the core
from a rank that computes). With `progress_mode::poll` there is no thread: a blocking wait polls
with the same hot-then-backed-off pauses. No wait sleeps a fixed time. Measurements (ping-pong
and emulated pipelines, `bench/mpi`) and the choice of these defaults are in the README,
"Message progress". All ranks of a pipeline should use the same `progress_mode`.

**Errors.** The constructor throws `argument_error` when the pipeline needs more tags than the
MPI library offers (`MPI_TAG_UB`), when the communicator's size differs from the number of
ranks, when `progress_mode::thread` is asked for but MPI runs below `MPI_THREAD_MULTIPLE`, or
when a timeout is not a finite number of seconds above 0. Construction itself is bounded: its
collectives (`MPI_Comm_idup`, an `MPI_Iallgather`) report a rank that never arrives after
`setup_timeout`, as `collectives.hpp` describes.
`wait` reports a timeout with the rank, the waiting op and the message (see `timeout_action`),
and a received message of the wrong size as an error naming both sizes.

**Destruction of a pending request** (an exception unwinding) cancels it and then waits for it
to finish, up to `timeout`: a receive that has already matched cannot be cancelled, and MPI may
write its buffer until it completes. If it does not finish in time, the job is aborted with a
diagnostic (a destructor cannot throw, and freeing the buffer would be unsafe).

@pre `MPI_Init` (or `MPI_Init_thread`) has run. Construction and destruction are collective
over `comm`. Every request is completed or destroyed before its communicator. One thread at a
time uses a communicator (its own progress thread aside).
*/
class communicator {
 public:
  /** @brief A pending send or receive. Move-only. */
  class request {
   public:
    request() = default;
    request(request&& other) noexcept { *this = std::move(other); }
    request& operator=(request&& other) noexcept {
      // Swapped, so that a request this one held is abandoned by `other`'s destructor.
      std::swap(state_, other.state_);
      std::swap(owner_, other.owner_);
      key_ = other.key_;
      peer_ = other.peer_;
      count_ = other.count_;
      is_receive_ = other.is_receive_;
      datatype_ = other.datatype_;
      return *this;
    }
    request(const request&) = delete;
    request& operator=(const request&) = delete;
    ~request() {
      if (state_ && owner_ != nullptr) owner_->abandon(*this);
    }
    const message_key& key() const noexcept { return key_; }
    /// Whether the request has not completed yet, as far as anyone has seen; makes no MPI call,
    /// so with a progress thread it turns false without the caller calling MPI.
    bool pending() const noexcept { return state_ != nullptr && !state_->done.load(std::memory_order_acquire); }

   private:
    friend class communicator;
    std::unique_ptr<detail::pending_message> state_;
    communicator* owner_{nullptr};
    message_key key_{};
    std::int32_t peer_{-1};
    std::size_t count_{0};
    bool is_receive_{false};
    MPI_Datatype datatype_{MPI_DATATYPE_NULL};
  };

  /**
  @brief Duplicates `comm` for a pipeline of `shape`; rank r of `comm` is pipeline rank r.
  @throws argument_error if `comm`'s size is not `shape.num_ranks`, the tags do not fit, or
  `options.progress` is `thread` while MPI runs below `MPI_THREAD_MULTIPLE`.
  */
  communicator(MPI_Comm comm, const pipeline_shape& shape, communicator_options options = {})
      : shape_(shape), options_(options) {
    check_timeout(options_.timeout, "communicator's timeout");
    const std::chrono::duration<double> setup =
        options_.setup_timeout.count() < 0 ? std::max(options_.timeout, std::chrono::duration<double>(60.0))
                                           : options_.setup_timeout;
    check_timeout(setup, "communicator's setup_timeout");
    int size = 0;
    MPI_Comm_size(comm, &size);
    if (size != shape.num_ranks)
      throw argument_error(stretto::detail::cat("stretto::mpi: the communicator has ", size,
                                                " ranks but the pipeline has ", shape.num_ranks,
                                                "; launch with -n ", shape.num_ranks));
    int* tag_ub = nullptr;
    int found = 0;
    MPI_Comm_get_attr(comm, MPI_TAG_UB, &tag_ub, &found);
    const long long needed = 2LL * shape.num_stages() * shape.num_microbatches;
    const long long available = found && tag_ub ? *tag_ub : 32767;
    if (needed - 1 > available)
      throw argument_error(stretto::detail::cat(
          "stretto::mpi: the pipeline needs ", needed, " message tags (2·S·m) but MPI_TAG_UB is ",
          available, "; use fewer microbatches per step"));
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    if (options_.progress == progress_mode::thread && level < MPI_THREAD_MULTIPLE)
      throw argument_error(
          "stretto::mpi: progress_mode::thread needs MPI_THREAD_MULTIPLE; initialise MPI with "
          "MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided), or use progress_mode::poll");
    threaded_ = options_.progress != progress_mode::poll && level >= MPI_THREAD_MULTIPLE;
    // At most one send and one receive of each direction per (stage, microbatch) held by a rank
    // are outstanding at once: with room for that reserved, no step allocates here.
    max_outstanding_ = 4 * static_cast<std::size_t>(shape.num_chunks) * static_cast<std::size_t>(shape.num_microbatches) + 8;
    active_.reserve(max_outstanding_);
    spare_states_.reserve(max_outstanding_);
    // Made up front: how many are outstanding at once depends on when messages complete (a slow
    // receiver leaves more sends in flight), so growing on demand would allocate in whichever step
    // first ran late.
    for (std::size_t i = 0; i < max_outstanding_; ++i) spare_states_.push_back(std::make_unique<detail::pending_message>());
    // Bounded like every wait: a rank that never arrives is reported after `setup_timeout`.
    const collective_options bounded{setup, options_.on_timeout};
    comm_ = duplicate(comm, bounded, "constructing stretto::mpi::communicator");
    control_ = duplicate(comm, bounded, "constructing stretto::mpi::communicator");
    MPI_Comm_rank(comm_, &rank_);
    // Ranks that share this node (same processor name), against its cores: decides how waits
    // pass the time.
    int on_node = 1;
    {
      char name[MPI_MAX_PROCESSOR_NAME] = {};
      int length = 0;
      MPI_Get_processor_name(name, &length);
      std::vector<char> names(static_cast<std::size_t>(size) * MPI_MAX_PROCESSOR_NAME);
      allgather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR, comm_, bounded,
                "constructing stretto::mpi::communicator: ranks per node");
      on_node = 0;
      for (int r = 0; r < size; ++r)
        on_node += std::equal(name, name + MPI_MAX_PROCESSOR_NAME, names.data() + static_cast<std::ptrdiff_t>(r) * MPI_MAX_PROCESSOR_NAME);
    }
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    oversubscribed_ = static_cast<unsigned>(on_node) > cores;
    spin_waits_ = options_.waiting == wait_style::spin ||
                  (options_.waiting == wait_style::automatic && !oversubscribed_);
    if (threaded_) {
      // MPI_Finalize deletes MPI_COMM_SELF's attributes first: the thread stops before MPI does,
      // even if this communicator outlives MPI_Finalize.
      MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, &communicator::on_finalize, &finalize_key_, nullptr);
      MPI_Comm_set_attr(MPI_COMM_SELF, finalize_key_, this);
      progress_thread_ = std::thread([this] { progress_loop(); });
    }
  }
  communicator(const communicator&) = delete;
  communicator& operator=(const communicator&) = delete;
  ~communicator() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && finalize_key_ != MPI_KEYVAL_INVALID) {
      MPI_Comm_delete_attr(MPI_COMM_SELF, finalize_key_);  // stops the thread
      MPI_Comm_free_keyval(&finalize_key_);
    }
    stop_progress();
    if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    if (!finalized && control_ != MPI_COMM_NULL) MPI_Comm_free(&control_);
  }

  std::int32_t rank() const noexcept { return rank_; }
  /// Whether MPI reads device memory (`device_aware_mpi()`): the Kokkos executor then sends device views without staging.
  bool device_aware() const { return device_aware_mpi(); }
  MPI_Comm native() const noexcept { return comm_; }
  const communicator_options& options() const noexcept { return options_; }
  /// Whether a progress thread runs (`progress_mode::thread`, or `automatic` under `MPI_THREAD_MULTIPLE`).
  bool has_progress_thread() const noexcept { return threaded_; }
  /// Whether this node runs more ranks of the communicator than it has cores.
  bool oversubscribed() const noexcept { return oversubscribed_; }

  /** @brief The tag of message `k`: (microbatch · S + destination stage) · 2 + direction. */
  int tag_of(const message_key& k) const noexcept {
    return (k.microbatch * shape_.num_stages() + k.to_stage) * 2 +
           (k.direction == message_direction::gradient ? 1 : 0);
  }

  /** @brief Starts receiving `count` values of message `k` from rank `from` into `data`. */
  template <class T>
  request post_receive(const message_key& k, std::int32_t from, T* data, std::size_t count) {
    request q = make_request(k, from, count, true, detail::datatype_of<T>());
    detail::pending_message& m = *q.state_;
    if (count * sizeof(T) < probe_bytes) {
      MPI_Irecv(data, static_cast<int>(count), q.datatype_, from, tag_of(k), comm_, &m.handle);
    } else {
      m.probing = true;
      m.buffer = data;
      m.count = static_cast<int>(count);
      m.type = q.datatype_;
      m.source = from;
      m.tag = tag_of(k);
      match(m);  // a message already here matches now, as MPI_Irecv would match it
    }
    start(q);
    return q;
  }

  /** @brief Starts sending `count` values of message `k` to rank `to`; `data` must outlive the request. */
  template <class T>
  request post_send(const message_key& k, std::int32_t to, const T* data, std::size_t count) {
    request q = make_request(k, to, count, false, detail::datatype_of<T>());
    MPI_Isend(data, static_cast<int>(count), q.datatype_, to, tag_of(k), comm_, &q.state_->handle);
    q.state_->large_send = count * sizeof(T) >= probe_bytes;
    start(q);
    return q;
  }

  /** @brief Returns whether `q` has completed (checking a received message's size); never blocks. */
  bool test(request& q) {
    // With a progress thread the caller makes no MPI call here (unless it spins in `wait`, when
    // the thread stands aside): the thread completes the request, and a caller that polled
    // between its ops would wait for the thread's lock and do the thread's copying on its own
    // critical path. When the thread has not polled for a while (ranks outnumber cores and it
    // did not get one), the caller polls instead: a completed send's buffer is released, and a
    // transfer moves, as without a thread, rather than waiting for the thread's next turn.
    return test(q, !threaded_ || spinning_waiters_.load(std::memory_order_relaxed) > 0 || progress_stalled());
  }

 private:
  // `test`, polling MPI when `poll` is set.
  bool test(request& q, bool poll) {
    if (!q.state_) return true;
    detail::pending_message& m = *q.state_;
    if (!m.done.load(std::memory_order_acquire) && poll) {
      std::unique_lock lock(mutex_, std::defer_lock);
      if (threaded_) lock.lock();
      if (!m.done.load(std::memory_order_relaxed)) poll_one(m);
    }
    if (!m.done.load(std::memory_order_acquire)) return false;
    const MPI_Status status = m.status;
    recycle(q.state_);
    check_size(q, status);
    return true;
  }

 public:
  /**
  @brief Blocks until `q` completes. `waiting` is the op that needs it, for the diagnostic.

  Spins on `MPI_Test`, or polls briefly and then sleeps until the request completes, as
  `options().waiting` says (see "Progress"); never sleeps a fixed time. After `options().timeout`
  it reports "rank R timed out after T s in OP waiting for MESSAGE from rank P (tag X)" and
  aborts the job or throws `timeout_error`, as `options().on_timeout` says.
  */
  void wait(request& q, const op& waiting) {
    if (test(q)) return;
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(options_.timeout);
    if (spin_waits_) {
      spinning_guard spinning(*this);
      for (std::uint32_t i = 1; !test(q); ++i)
        if (i % 64 == 0 && clock::now() > deadline) fail_timeout(q, waiting);
      return;
    }
    // Block: a few microseconds of polling (a message already on its way), then sleep.
    const auto spin_until = clock::now() + std::chrono::microseconds(5);
    while (clock::now() < spin_until)
      if (test(q, true)) return;
    if (threaded_) {
      {
        std::unique_lock lock(mutex_);
        ++blocked_waiters_;
        ++activity_;
        if (idle_) progress_cv_.notify_one();
        const bool done = done_cv_.wait_until(lock, deadline, [&] { return q.state_->done.load(std::memory_order_relaxed); });
        --blocked_waiters_;
        if (!done) {
          lock.unlock();
          fail_timeout(q, waiting);
        }
      }
      test(q);  // checks the size and releases the state
      return;
    }
    backoff pause(options_, oversubscribed_);
    while (!test(q)) {
      if (clock::now() > deadline) fail_timeout(q, waiting);
      pause.wait();
    }
  }

 private:
  // The pause between two polls that find nothing: while hot, `hot_pause` (automatic: a yield
  // with spare cores, 20 µs of sleep when oversubscribed, where a yielding thread would keep its
  // share of a core that another rank needs to compute or copy); then 1, 2, 4 … µs up to
  // `poll_interval`. `reset()` makes it hot.
  class backoff {
   public:
    backoff(const communicator_options& o, bool oversubscribed)
        : hot_(std::chrono::duration_cast<clock::duration>(o.hot_time)),
          cap_(std::chrono::duration_cast<clock::duration>(o.poll_interval)),
          hot_pause_(std::chrono::duration_cast<clock::duration>(o.hot_pause.count() >= 0 ? o.hot_pause : std::chrono::duration<double>(20e-6))),
          yield_(o.hot_pause.count() < 0 && !oversubscribed) {
      reset();
    }
    void reset() {
      hot_until_ = clock::now() + hot_;
      pause_ = std::chrono::microseconds(1);
    }
    void wait() {
      if (clock::now() < hot_until_) {
        if (yield_) std::this_thread::yield();
        else std::this_thread::sleep_for(hot_pause_);
        return;
      }
      std::this_thread::sleep_for(pause_);
      pause_ = std::min<clock::duration>(cap_, pause_ * 2);
    }

   private:
    using clock = std::chrono::steady_clock;
    clock::duration hot_, cap_, hot_pause_;
    bool yield_;
    clock::time_point hot_until_{};
    clock::duration pause_{};
  };

  // While the caller spins in `wait`, the progress thread stands aside; the caller wakes it on
  // leaving only if requests remain outstanding (they need it while the caller computes).
  struct spinning_guard {
    explicit spinning_guard(communicator& c) : c_(c) { c_.spinning_waiters_.fetch_add(1, std::memory_order_relaxed); }
    ~spinning_guard() {
      if (!c_.threaded_) {
        c_.spinning_waiters_.fetch_sub(1, std::memory_order_relaxed);
        return;
      }
      bool wake = false;
      {
        std::lock_guard lock(c_.mutex_);
        c_.spinning_waiters_.fetch_sub(1, std::memory_order_relaxed);
        wake = !c_.active_.empty();
        if (wake) ++c_.activity_;
      }
      if (wake) c_.progress_cv_.notify_one();
    }
    spinning_guard(const spinning_guard&) = delete;
    spinning_guard& operator=(const spinning_guard&) = delete;
    communicator& c_;
  };

  request make_request(const message_key& k, std::int32_t peer, std::size_t count, bool receive,
                       MPI_Datatype type) {
    if (count > static_cast<std::size_t>(INT_MAX))
      throw argument_error(stretto::detail::cat("stretto::mpi: ", to_string(k), " has ", count,
                                                " values; at most INT_MAX fit in one message"));
    request q;
    q.state_ = acquire_state();
    q.owner_ = this;
    q.key_ = k;
    q.peer_ = peer;
    q.count_ = count;
    q.is_receive_ = receive;
    q.datatype_ = type;
    return q;
  }

  // The states of completed requests are kept for the next ones, so that a step in steady state
  // allocates nothing (a pipeline posts the same messages every step). Only the caller's thread
  // touches `spare_states_`, without the lock: the progress thread drops a request from
  // `active_` before it marks it done, so a state seen done is no longer the thread's.
  std::unique_ptr<detail::pending_message> acquire_state() {
    if (spare_states_.empty()) return std::make_unique<detail::pending_message>();
    std::unique_ptr<detail::pending_message> state = std::move(spare_states_.back());
    spare_states_.pop_back();
    state->handle = MPI_REQUEST_NULL;
    state->status = MPI_Status{};
    state->done.store(false, std::memory_order_relaxed);
    state->probing = state->matched = state->large_send = false;
    state->buffer = nullptr;
    state->count = 0;
    state->type = MPI_DATATYPE_NULL;
    state->source = state->tag = 0;
    return state;
  }

  void recycle(std::unique_ptr<detail::pending_message>& state) {
    spare_states_.push_back(std::move(state));
  }

  // Hands a freshly posted request to the progress thread (woken only from its idle sleep: when
  // it ticks, it finds the request anyway, and a wake-up per message would cost the caller).
  void start(request& q) {
    if (!threaded_) return;
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      active_.push_back(q.state_.get());
      ++activity_;
      wake = idle_;
    }
    if (wake) progress_cv_.notify_one();
  }

  // Receives of at least this many bytes match by probe (see `pending_message`); smaller ones
  // are posted at once (one eager message, nothing to follow).
  static constexpr std::size_t probe_bytes = 32 * 1024;

  // Posts a probing receive once its message has arrived; returns whether it is posted. The
  // caller holds the lock when there is a progress thread.
  bool match(detail::pending_message& m) {
    if (!m.probing) return true;
    int found = 0;
    MPI_Message message = MPI_MESSAGE_NULL;
    MPI_Improbe(m.source, m.tag, comm_, &found, &message, MPI_STATUS_IGNORE);
    if (!found) return false;
    MPI_Imrecv(m.buffer, m.count, m.type, &message, &m.handle);
    m.probing = false;
    m.matched = true;
    // Tell the sender that the transfer has begun, so that its progress thread keeps up (an
    // empty message, eager: it completes at once).
    if (threaded_) MPI_Send(nullptr, 0, MPI_BYTE, m.source, m.tag, control_);
    return true;
  }

  // Tests one request; the caller holds the lock when there is a progress thread.
  void poll_one(detail::pending_message& m) {
    if (!match(m)) return;
    int done = 0;
    MPI_Test(&m.handle, &done, &m.status);
    if (!done) return;
    m.done.store(true, std::memory_order_release);
    forget(&m);
  }

  void forget(detail::pending_message* m) {
    if (!threaded_) return;
    const auto it = std::find(active_.begin(), active_.end(), m);
    if (it == active_.end()) return;
    *it = active_.back();
    active_.pop_back();
  }

  // The destructor of a pending request: cancel, then wait (bounded) until MPI is done with it.
  void abandon(request& q) noexcept {
    detail::pending_message& m = *q.state_;
    std::unique_lock lock(mutex_, std::defer_lock);
    if (threaded_) lock.lock();
    if (m.done.load(std::memory_order_relaxed)) return;
    forget(&m);  // from now on only this thread touches the request
    if (m.probing) return;  // its message never arrived: MPI knows nothing of this receive
    MPI_Cancel(&m.handle);
    if (threaded_) lock.unlock();
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(options_.timeout);
    backoff pause(options_, oversubscribed_);
    for (;;) {
      int done = 0;
      MPI_Test(&m.handle, &done, MPI_STATUS_IGNORE);
      if (done) return;
      if (clock::now() > deadline) break;
      pause.wait();
    }
    const std::string text = stretto::detail::cat(
        "stretto::mpi: rank ", rank_, " dropped its pending ", q.is_receive_ ? "receive of the " : "send of the ",
        to_string(q.key_), q.is_receive_ ? " from rank " : " to rank ", q.peer_,
        "; it could not be cancelled and did not finish within ", detail::seconds_text(options_.timeout.count()),
        " s, so its buffer is unsafe to free");
    detail::abort_with(comm_, text, 3);
  }

  void stop_progress() {
    if (!progress_thread_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    progress_cv_.notify_all();
    progress_thread_.join();
  }

  static int on_finalize(MPI_Comm, int, void* self, void*) {
    static_cast<communicator*>(self)->stop_progress();
    return MPI_SUCCESS;
  }

  // Whether the progress thread last polled more than `stall_after` ago (four of its longest
  // pauses, and no less than 200 µs): it is not getting a core.
  bool progress_stalled() const noexcept {
    using steady = std::chrono::steady_clock;
    const auto stall_after = std::max<steady::duration>(
        std::chrono::microseconds(200), 4 * std::chrono::duration_cast<steady::duration>(options_.poll_interval));
    return steady::now().time_since_epoch().count() - last_progress_.load(std::memory_order_relaxed) > stall_after.count();
  }

  // The progress thread: tests the outstanding requests, signals blocked waits, backs off.
  void progress_loop() {
#if defined(__linux__) && defined(PR_SET_TIMERSLACK)
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);  // short pauses mean short (default slack: 50 µs)
#endif
    std::vector<MPI_Request> handles;
    std::vector<int> indices;
    std::vector<MPI_Status> statuses;
    std::vector<detail::pending_message*> finished;
    finished.reserve(max_outstanding_);
    handles.reserve(max_outstanding_);
    indices.reserve(max_outstanding_);
    statuses.reserve(max_outstanding_);
    backoff pause(options_, oversubscribed_);
    std::uint64_t seen = 0;
    std::unique_lock lock(mutex_);
    while (!stop_) {
      last_progress_.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
      if (spinning_waiters_.load(std::memory_order_relaxed) > 0) {
        // The caller's own polling moves everything meanwhile.
        progress_cv_.wait_for(lock, std::chrono::milliseconds(1),
                              [&] { return stop_ || spinning_waiters_.load(std::memory_order_relaxed) == 0; });
        continue;
      }
      if (active_.empty()) {
        idle_ = true;
        const bool woken = progress_cv_.wait_for(lock, std::chrono::milliseconds(1), [&] { return stop_ || !active_.empty(); });
        idle_ = false;
        if (!woken) {
          int flag = 0;  // nothing outstanding: still take in what arrives now and then
          MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, MPI_STATUS_IGNORE);
        }
        continue;
      }
      // A large receive that has matched is a transfer under way: its handshakes need this side
      // at once. (A send's match cannot be seen: a send gets `hot_time` after its post.)
      bool transferring = false;
      bool large_sends = false;
      for (detail::pending_message* m : active_) {
        if (m->probing && match(*m)) ++activity_;
        transferring = transferring || m->matched;
        large_sends = large_sends || m->large_send;
      }
      // A receiver announced a match: this side's large sends are under way.
      for (;;) {
        int announced = 0;
        MPI_Status from;
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, control_, &announced, &from);
        if (!announced) break;
        MPI_Recv(nullptr, 0, MPI_BYTE, from.MPI_SOURCE, from.MPI_TAG, control_, MPI_STATUS_IGNORE);
        sending_ = true;
      }
      sending_ = sending_ && large_sends;
      transferring = transferring || sending_;
      const int n = static_cast<int>(active_.size());
      handles.resize(active_.size());
      indices.resize(active_.size());
      statuses.resize(active_.size());
      for (std::size_t i = 0; i < active_.size(); ++i) handles[i] = active_[i]->handle;
      int completed = 0;
      MPI_Testsome(n, handles.data(), &completed, indices.data(), statuses.data());
      if (completed == MPI_UNDEFINED) completed = 0;
      // Dropped from `active_` first, marked done last: from then on the caller owns the state.
      finished.clear();
      for (int i = 0; i < completed; ++i) {
        detail::pending_message* m = active_[static_cast<std::size_t>(indices[static_cast<std::size_t>(i)])];
        m->handle = MPI_REQUEST_NULL;
        m->status = statuses[static_cast<std::size_t>(i)];
        finished.push_back(m);
      }
      if (completed > 0) {
        std::erase_if(active_, [](const detail::pending_message* m) { return m->handle == MPI_REQUEST_NULL && !m->probing; });
        for (detail::pending_message* m : finished) m->done.store(true, std::memory_order_release);
        done_cv_.notify_all();
      }
      // Hot again after any event, and all the while a matched transfer is under way.
      if (completed > 0 || activity_ != seen || transferring) {
        seen = activity_;
        pause.reset();
      }
      lock.unlock();
      pause.wait();
      lock.lock();
    }
  }

  void check_size(const request& q, const MPI_Status& status) const {
    if (!q.is_receive_) return;
    int received = 0;
    MPI_Get_count(&status, q.datatype_, &received);
    if (static_cast<std::size_t>(received) != q.count_)
      throw argument_error(stretto::detail::cat("stretto::mpi: rank ", rank_, " received ", received,
                                                " values for the ", to_string(q.key_), " from rank ",
                                                q.peer_, " but expected ", q.count_,
                                                " (the two stages disagree on the tensor shape)"));
  }

  [[noreturn]] void fail_timeout(request& q, const op& waiting) {
    const std::string text = stretto::detail::cat(
        "stretto::mpi: rank ", rank_, " timed out after ", detail::seconds_text(options_.timeout.count()), " s in ", to_string(waiting), " waiting for ",
        q.is_receive_ ? "the receive of the " : "its send of the ", to_string(q.key_),
        q.is_receive_ ? " from rank " : " to rank ", q.peer_, " (tag ", tag_of(q.key_), ")");
    detail::fail_collective(comm_, text, options_.on_timeout);
  }

  pipeline_shape shape_{};
  communicator_options options_{};
  MPI_Comm comm_{MPI_COMM_NULL};
  int rank_{0};
  bool threaded_{false};
  bool oversubscribed_{false};
  bool spin_waits_{true};
  // Shared with the progress thread (under `mutex_`, except the atomics).
  std::mutex mutex_;
  std::condition_variable progress_cv_;        // wakes the progress thread: work, stop, a waiter
  std::condition_variable done_cv_;            // wakes blocked waits: something completed
  std::vector<detail::pending_message*> active_;  // outstanding requests the thread tests
  std::vector<std::unique_ptr<detail::pending_message>> spare_states_;  // completed requests' states, reused
  std::size_t max_outstanding_{0};  // capacity reserved for the outstanding requests
  std::uint64_t activity_{0};                  // bumped by posts and waits: the thread gets hot
  int blocked_waiters_{0};
  std::atomic<int> spinning_waiters_{0};
  std::atomic<std::chrono::steady_clock::rep> last_progress_{0};  // when the progress thread last went round its loop (steady clock ticks)
  bool idle_{false};                           // the thread sleeps until a post wakes it
  bool stop_{false};
  std::thread progress_thread_;
  int finalize_key_{MPI_KEYVAL_INVALID};       // MPI_COMM_SELF's attribute that stops the thread
  MPI_Comm control_{MPI_COMM_NULL};            // receivers announce matched large messages here
  bool sending_{false};                        // a large send of this rank is under way
};

static_assert(transport<communicator>);

}  // namespace stretto::mpi
