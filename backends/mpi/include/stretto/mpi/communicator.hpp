#pragma once
/**
@file
@brief The MPI transport: non-blocking point-to-point messages between pipeline ranks, with a
timeout on every wait. Models `stretto::transport`.
*/

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include <stretto/core/errors.hpp>
#include <stretto/core/op.hpp>
#include <stretto/core/shape.hpp>
#include <stretto/core/transport.hpp>
#include <stretto/detail/text.hpp>

namespace stretto::mpi {

/** @brief What a wait does when it times out. */
enum class timeout_action : std::uint8_t {
  abort,        ///< print the diagnostic on stderr and `MPI_Abort` the job (default: nothing hangs)
  throw_error,  ///< throw `stretto::timeout_error` (tests, or callers that clean up themselves)
};

/** @brief Options of a `communicator`. */
struct communicator_options {
  /// How long one wait may block before it is reported. Default 300 s.
  std::chrono::duration<double> timeout{300.0};
  timeout_action on_timeout{timeout_action::abort};
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
}  // namespace detail

/**
@brief Point-to-point transport of activations and gradients between the ranks of one pipeline.

Each message carries a tag derived from its `message_key` (destination stage, microbatch,
direction; the source stage follows from these), on a communicator duplicated from the one
given, so that user traffic can never match it.

**Errors.** The constructor throws `argument_error` when the pipeline needs more tags than the
MPI library offers (`MPI_TAG_UB`), or when the communicator's size differs from the number of
ranks. `wait` reports a timeout with the rank, the waiting op and the message (see
`timeout_action`), and a received message of the wrong size as an error naming both sizes.

@pre `MPI_Init` has run. Construction and destruction are collective over `comm`.
*/
class communicator {
 public:
  /** @brief A pending send or receive. Move-only. */
  class request {
   public:
    request() = default;
    request(request&& other) noexcept { *this = std::move(other); }
    request& operator=(request&& other) noexcept {
      std::swap(handle_, other.handle_);
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
      // A request dropped while pending (an exception unwinding) is cancelled, never leaked.
      if (handle_ != MPI_REQUEST_NULL) {
        MPI_Cancel(&handle_);
        MPI_Request_free(&handle_);
      }
    }
    const message_key& key() const noexcept { return key_; }
    bool pending() const noexcept { return handle_ != MPI_REQUEST_NULL; }

   private:
    friend class communicator;
    MPI_Request handle_{MPI_REQUEST_NULL};
    message_key key_{};
    std::int32_t peer_{-1};
    std::size_t count_{0};
    bool is_receive_{false};
    MPI_Datatype datatype_{MPI_DATATYPE_NULL};
  };

  /**
  @brief Duplicates `comm` for a pipeline of `shape`; rank r of `comm` is pipeline rank r.
  @throws argument_error if `comm`'s size is not `shape.num_ranks` or the tags do not fit.
  */
  communicator(MPI_Comm comm, const pipeline_shape& shape, communicator_options options = {})
      : shape_(shape), options_(options) {
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
    MPI_Comm_dup(comm, &comm_);
    MPI_Comm_rank(comm_, &rank_);
  }
  communicator(const communicator&) = delete;
  communicator& operator=(const communicator&) = delete;
  ~communicator() {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  std::int32_t rank() const noexcept { return rank_; }
  MPI_Comm native() const noexcept { return comm_; }
  const communicator_options& options() const noexcept { return options_; }

  /** @brief The tag of message `k`: (microbatch · S + destination stage) · 2 + direction. */
  int tag_of(const message_key& k) const noexcept {
    return (k.microbatch * shape_.num_stages() + k.to_stage) * 2 +
           (k.direction == message_direction::gradient ? 1 : 0);
  }

  /** @brief Starts receiving `count` values of message `k` from rank `from` into `data`. */
  template <class T>
  request post_receive(const message_key& k, std::int32_t from, T* data, std::size_t count) {
    request q = make_request(k, from, count, true, detail::datatype_of<T>());
    MPI_Irecv(data, static_cast<int>(count), q.datatype_, from, tag_of(k), comm_, &q.handle_);
    return q;
  }

  /** @brief Starts sending `count` values of message `k` to rank `to`; `data` must outlive the request. */
  template <class T>
  request post_send(const message_key& k, std::int32_t to, const T* data, std::size_t count) {
    request q = make_request(k, to, count, false, detail::datatype_of<T>());
    MPI_Isend(data, static_cast<int>(count), q.datatype_, to, tag_of(k), comm_, &q.handle_);
    return q;
  }

  /** @brief Returns whether `q` has completed (checking a received message's size); never blocks. */
  bool test(request& q) {
    if (q.handle_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    MPI_Status status;
    MPI_Test(&q.handle_, &done, &status);
    if (done) check_size(q, status);
    return done != 0;
  }

  /**
  @brief Blocks until `q` completes. `waiting` is the op that needs it, for the diagnostic.

  Polls with `MPI_Test`, backing off to short sleeps so that oversubscribed ranks yield the CPU.
  After `options().timeout` it reports "rank R timed out after T s in OP waiting for MESSAGE from
  rank P (tag X)" and aborts the job or throws `timeout_error`, as `options().on_timeout` says.
  */
  void wait(request& q, const op& waiting) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    std::chrono::microseconds pause{0};
    while (!test(q)) {
      if (clock::now() - start > options_.timeout) fail_timeout(q, waiting);
      if (pause.count() > 0) std::this_thread::sleep_for(pause);
      pause = std::min(std::chrono::microseconds{200}, pause + std::chrono::microseconds{2});
    }
  }

 private:
  request make_request(const message_key& k, std::int32_t peer, std::size_t count, bool receive,
                       MPI_Datatype type) const {
    if (count > static_cast<std::size_t>(INT_MAX))
      throw argument_error(stretto::detail::cat("stretto::mpi: ", to_string(k), " has ", count,
                                                " values; at most INT_MAX fit in one message"));
    request q;
    q.key_ = k;
    q.peer_ = peer;
    q.count_ = count;
    q.is_receive_ = receive;
    q.datatype_ = type;
    return q;
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
        "stretto::mpi: rank ", rank_, " timed out after ", seconds_text(options_.timeout.count()), " s in ", to_string(waiting), " waiting for ",
        q.is_receive_ ? "the receive of the " : "its send of the ", to_string(q.key_),
        q.is_receive_ ? " from rank " : " to rank ", q.peer_, " (tag ", tag_of(q.key_), ")");
    if (options_.on_timeout == timeout_action::throw_error) throw timeout_error(text);
    std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
    MPI_Abort(comm_, 3);
    throw timeout_error(text);  // MPI_Abort does not return; this keeps [[noreturn]] honest.
  }

  static std::string seconds_text(double seconds) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", seconds);
    return text;
  }

  pipeline_shape shape_{};
  communicator_options options_{};
  MPI_Comm comm_{MPI_COMM_NULL};
  int rank_{0};
};

static_assert(transport<communicator>);

}  // namespace stretto::mpi
