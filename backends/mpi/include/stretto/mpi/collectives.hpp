#pragma once
/**
@file
@brief Collectives that cannot hang: barrier, all-reduce, reduce, broadcast, gathers and
communicator duplication as their non-blocking MPI versions, waited for up to a timeout, with the
same kind of diagnostic as a point-to-point wait of `communicator` (the rank, the collective, what
it was for).

A blocking collective (`MPI_Barrier`, `MPI_Allreduce`, `MPI_Comm_dup` …) waits forever for a rank
that is stopped, dead without its launcher noticing, or busy in another call. These wrappers post
the non-blocking version (`MPI_Ibarrier`, `MPI_Iallreduce`, `MPI_Comm_idup` …) and test it, pausing
1 µs doubling up to 1 ms between tests, until it completes or `timeout` passes. Then they report
"stretto::mpi: rank R timed out after T s in MPI_Iallreduce (WHAT) over N ranks: a rank has not
joined (stopped, dead, or waiting in another call)" and abort the job (`timeout_action::abort`,
the default) or throw `stretto::timeout_error`.

After a timeout that throws, the collective's request is left to MPI (it cannot be cancelled or
freed): its buffers must outlive the process and the communicator must not be used for another
collective. The thrown error is for tests and for callers that end the job themselves.
*/

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include <stretto/core/errors.hpp>
#include <stretto/core/transport.hpp>
#include <stretto/detail/text.hpp>

namespace stretto::mpi {

/** @brief What a wait does when it times out. */
enum class timeout_action : std::uint8_t {
  abort,        ///< print the diagnostic on stderr and `MPI_Abort` the job (default: nothing hangs)
  throw_error,  ///< throw `stretto::timeout_error` (tests, or callers that clean up themselves)
};

/**
@brief Checks a timeout: finite and positive (a NaN would compare false with every deadline and
disable the timeout; an infinite one would wait forever).
@throws argument_error naming the rule and the value given.
*/
inline void check_timeout(std::chrono::duration<double> timeout, std::string_view what = "timeout") {
  const double t = timeout.count();
  if (!std::isfinite(t) || t <= 0.0) {
    char given[32];
    std::snprintf(given, sizeof given, "%g", t);
    throw argument_error(stretto::detail::cat("stretto::mpi: the ", what, " must be a finite number of seconds above 0 (got ",
                                              given, "); every wait needs a bound, e.g. 300"));
  }
}

/** @brief The timeout and the reaction of one bounded collective. */
struct collective_options {
  std::chrono::duration<double> timeout{300.0};  ///< finite, positive (see `check_timeout`)
  timeout_action on_timeout{timeout_action::abort};
};

namespace detail {
inline std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", seconds);
  return text;
}

/// Prints `text` as one line on stderr, flushed, and ends the job through `comm` with `code`.
[[noreturn]] inline void abort_with(MPI_Comm comm, const std::string& text, int code) {
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
  MPI_Abort(comm, code);
  std::abort();  // MPI_Abort does not return
}

/// Tests `request` until it completes or `timeout` passes, pausing between tests (1 µs, doubling
/// up to 50 µs); returns false on timeout (the request is then still pending). A collective of
/// large messages moves one handshake per test (Open MPI progresses it only inside MPI calls):
/// pauses of 1 ms made a 1 MiB all-reduce between two ranks take 45-70 ms instead of 2-10.
inline bool wait_bounded(MPI_Request& request, std::chrono::duration<double> timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(timeout);
  auto pause = std::chrono::microseconds(1);
  for (;;) {
    int done = 0;
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done) return true;
    if (clock::now() > deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(std::chrono::microseconds(50), pause * 2);
  }
}

/// Reports a timed-out collective: throws `timeout_error(text)` or ends the job (exit code 3).
[[noreturn]] inline void fail_collective(MPI_Comm comm, const std::string& text, timeout_action action) {
  if (action == timeout_action::throw_error) throw timeout_error(text);
  abort_with(comm, text, 3);
}
}  // namespace detail

/**
@brief Waits for a non-blocking collective's `request` on `comm` up to `o.timeout`.
@param operation the MPI call (e.g. "MPI_Iallreduce"), @param what what it is for (e.g. "the
epoch's loss"); both appear in the diagnostic.
@throws timeout_error with `timeout_action::throw_error` (else the job is aborted).
*/
inline void wait_collective(MPI_Request& request, MPI_Comm comm, const collective_options& o, std::string_view operation,
                            std::string_view what) {
  check_timeout(o.timeout);
  if (detail::wait_bounded(request, o.timeout)) return;
  int rank = 0, size = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const std::string text = stretto::detail::cat(
      "stretto::mpi: rank ", rank, " timed out after ", detail::seconds_text(o.timeout.count()), " s in ", operation, " (",
      what, ") over ", size, " ranks: a rank has not joined (stopped, dead, or waiting in another call)");
  detail::fail_collective(comm, text, o.on_timeout);
}

/** @brief `MPI_Barrier`, bounded (`MPI_Ibarrier`). */
inline void barrier(MPI_Comm comm, const collective_options& o, std::string_view what) {
  MPI_Request r = MPI_REQUEST_NULL;
  MPI_Ibarrier(comm, &r);
  wait_collective(r, comm, o, "MPI_Ibarrier", what);
}

/** @brief `MPI_Allreduce`, bounded (`MPI_Iallreduce`); `send` may be `MPI_IN_PLACE`. */
inline void allreduce(const void* send, void* receive, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                      const collective_options& o, std::string_view what) {
  MPI_Request r = MPI_REQUEST_NULL;
  MPI_Iallreduce(send, receive, count, type, op, comm, &r);
  wait_collective(r, comm, o, "MPI_Iallreduce", what);
}

/** @brief `MPI_Reduce`, bounded (`MPI_Ireduce`). */
inline void reduce(const void* send, void* receive, int count, MPI_Datatype type, MPI_Op op, int root, MPI_Comm comm,
                   const collective_options& o, std::string_view what) {
  MPI_Request r = MPI_REQUEST_NULL;
  MPI_Ireduce(send, receive, count, type, op, root, comm, &r);
  wait_collective(r, comm, o, "MPI_Ireduce", what);
}

/** @brief `MPI_Bcast`, bounded (`MPI_Ibcast`). */
inline void broadcast(void* data, int count, MPI_Datatype type, int root, MPI_Comm comm, const collective_options& o,
                      std::string_view what) {
  MPI_Request r = MPI_REQUEST_NULL;
  MPI_Ibcast(data, count, type, root, comm, &r);
  wait_collective(r, comm, o, "MPI_Ibcast", what);
}

/** @brief `MPI_Gather`, bounded (`MPI_Igather`). */
inline void gather(const void* send, int send_count, MPI_Datatype send_type, void* receive, int receive_count,
                   MPI_Datatype receive_type, int root, MPI_Comm comm, const collective_options& o, std::string_view what) {
  MPI_Request r = MPI_REQUEST_NULL;
  MPI_Igather(send, send_count, send_type, receive, receive_count, receive_type, root, comm, &r);
  wait_collective(r, comm, o, "MPI_Igather", what);
}

/** @brief `MPI_Gatherv`, bounded (`MPI_Igatherv`). */
inline void gatherv(const void* send, int send_count, MPI_Datatype send_type, void* receive, const int* counts,
                    const int* offsets, MPI_Datatype receive_type, int root, MPI_Comm comm, const collective_options& o,
                    std::string_view what) {
  MPI_Request r = MPI_REQUEST_NULL;
  MPI_Igatherv(send, send_count, send_type, receive, counts, offsets, receive_type, root, comm, &r);
  wait_collective(r, comm, o, "MPI_Igatherv", what);
}

/** @brief `MPI_Allgather`, bounded (`MPI_Iallgather`). */
inline void allgather(const void* send, int send_count, MPI_Datatype send_type, void* receive, int receive_count,
                      MPI_Datatype receive_type, MPI_Comm comm, const collective_options& o, std::string_view what) {
  MPI_Request r = MPI_REQUEST_NULL;
  MPI_Iallgather(send, send_count, send_type, receive, receive_count, receive_type, comm, &r);
  wait_collective(r, comm, o, "MPI_Iallgather", what);
}

/** @brief `MPI_Comm_dup`, bounded (`MPI_Comm_idup`): the new communicator, collective over `comm`. */
inline MPI_Comm duplicate(MPI_Comm comm, const collective_options& o, std::string_view what) {
  MPI_Comm out = MPI_COMM_NULL;
  MPI_Request r = MPI_REQUEST_NULL;
  MPI_Comm_idup(comm, &out, &r);
  wait_collective(r, comm, o, "MPI_Comm_idup", what);
  return out;
}

}  // namespace stretto::mpi
