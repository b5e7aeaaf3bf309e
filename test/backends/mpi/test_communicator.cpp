// The MPI transport on its own: tags, timeouts with a diagnostic, size checks, progress while the
// caller makes no MPI call, and safe destruction of a request MPI may still write.
#include <doctest/doctest.h>

#include <mpi.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <stretto/mpi/communicator.hpp>

using stretto::message_direction;
using stretto::message_key;
using stretto::op;
using stretto::op_kind;

namespace {
// The four ways a communicator can move messages and wait (the test main asks for
// MPI_THREAD_MULTIPLE, so the progress thread is available).
stretto::mpi::communicator_options mode(stretto::mpi::progress_mode progress, stretto::mpi::wait_style waiting) {
  stretto::mpi::communicator_options o;
  o.timeout = std::chrono::duration<double>(30.0);
  o.on_timeout = stretto::mpi::timeout_action::throw_error;
  o.progress = progress;
  o.waiting = waiting;
  return o;
}
}  // namespace

TEST_CASE("mpi.communicator.round_trip_in_both_directions" * doctest::timeout(60)) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  using stretto::mpi::progress_mode;
  using stretto::mpi::wait_style;
  for (const auto progress : {progress_mode::thread, progress_mode::poll})
    for (const auto waiting : {wait_style::spin, wait_style::block}) {
      CAPTURE(static_cast<int>(progress));
      CAPTURE(static_cast<int>(waiting));
      stretto::mpi::communicator comm(MPI_COMM_WORLD, {size, 3, 1}, mode(progress, waiting));
      CHECK(comm.has_progress_thread() == (progress == progress_mode::thread));
      // Every rank sends a differently sized message to both neighbours at once (p = 2: the same
      // rank is both next and previous), each identified by its own key; the larger one (80 KB)
      // needs the rendezvous protocol.
      const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
      std::vector<double> to_next(10000 + static_cast<std::size_t>(rank), rank), to_prev(7, -rank);
      std::vector<double> from_prev(10000 + static_cast<std::size_t>(prev)), from_next(7);
      auto r1 = comm.post_receive(message_key{message_direction::activation, prev, rank, 2}, prev, from_prev.data(), from_prev.size());
      auto r2 = comm.post_receive(message_key{message_direction::gradient, next, rank, 2}, next, from_next.data(), from_next.size());
      auto s1 = comm.post_send(message_key{message_direction::activation, rank, next, 2}, next, to_next.data(), to_next.size());
      auto s2 = comm.post_send(message_key{message_direction::gradient, rank, prev, 2}, prev, to_prev.data(), to_prev.size());
      const op waiting_op{op_kind::forward, rank, 2};
      comm.wait(r2, waiting_op);
      comm.wait(r1, waiting_op);
      comm.wait(s1, waiting_op);
      comm.wait(s2, waiting_op);
      CHECK_FALSE(r1.pending());
      CHECK(from_prev.front() == prev);
      CHECK(from_prev.back() == prev);
      CHECK(from_next.front() == -next);
      CHECK(comm.test(r1));  // a completed request stays complete
    }
}

TEST_CASE("mpi.communicator.progress_thread_moves_a_large_message_while_the_receiver_makes_no_mpi_call" * doctest::timeout(60)) {
  // 4 MiB through shared memory without single copy takes over a hundred handshakes between the
  // two ranks. Rank 1's caller posts the receive and then only sleeps: the message must still
  // arrive (`pending()` makes no MPI call), moved by rank 1's progress thread.
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  stretto::mpi::communicator comm(MPI_COMM_WORLD, {size, 1, 1},
                                  mode(stretto::mpi::progress_mode::thread, stretto::mpi::wait_style::automatic));
  const message_key key{message_direction::activation, 0, 1, 0};
  const std::size_t n = std::size_t{1} << 19;  // 4 MiB of doubles
  if (rank == 0) {
    std::vector<double> data(n);
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<double>(i);
    auto q = comm.post_send(key, 1, data.data(), data.size());
    comm.wait(q, op{op_kind::forward, 0, 0});
  } else if (rank == 1) {
    std::vector<double> data(n, -1.0);
    auto q = comm.post_receive(key, 0, data.data(), data.size());
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (q.pending() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK_FALSE(q.pending());
    CHECK(comm.test(q));
    CHECK(data[1] == 1.0);
    CHECK(data[n - 1] == static_cast<double>(n - 1));
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("mpi.communicator.dropping_a_matched_receive_waits_for_its_data" * doctest::timeout(60)) {
  // A receive that has matched cannot be cancelled: destroying its request must wait until MPI
  // has written the whole buffer (freeing it earlier would let MPI write freed memory).
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  using stretto::mpi::progress_mode;
  for (const auto progress : {progress_mode::thread, progress_mode::poll}) {
    CAPTURE(static_cast<int>(progress));
    stretto::mpi::communicator comm(MPI_COMM_WORLD, {size, 1, 1}, mode(progress, stretto::mpi::wait_style::automatic));
    const message_key key{message_direction::activation, 0, 1, 0};
    const std::size_t n = std::size_t{1} << 19;  // 4 MiB: many fragments after the match
    if (rank == 0) {
      std::vector<double> data(n, 3.0);
      data.back() = 4.0;
      auto q = comm.post_send(key, 1, data.data(), data.size());
      comm.wait(q, op{op_kind::forward, 0, 0});
    } else if (rank == 1) {
      std::vector<double> data(n, -1.0);
      // Wait until the message is here, so that the receive matches the moment it is posted.
      MPI_Probe(0, comm.tag_of(key), comm.native(), MPI_STATUS_IGNORE);
      { auto q = comm.post_receive(key, 0, data.data(), data.size()); }  // dropped at once
      CHECK(data.front() == 3.0);
      CHECK(data.back() == 4.0);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST_CASE("mpi.communicator.dropping_an_unmatched_receive_cancels_it" * doctest::timeout(60)) {
  // Nobody sends: the destructor cancels the receive and returns (no hang, buffer untouched).
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  for (const auto progress : {stretto::mpi::progress_mode::thread, stretto::mpi::progress_mode::poll}) {
    stretto::mpi::communicator comm(MPI_COMM_WORLD, {size, 2, 1}, mode(progress, stretto::mpi::wait_style::automatic));
    std::vector<double> data(100000, -1.0);
    { auto q = comm.post_receive(message_key{message_direction::gradient, 1, 0, 1}, 1 % size, data.data(), data.size()); }
    CHECK(data.front() == -1.0);
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST_CASE("mpi.communicator.timeout_names_rank_op_and_message" * doctest::timeout(60)) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  using stretto::mpi::progress_mode;
  using stretto::mpi::wait_style;
  for (const auto progress : {progress_mode::thread, progress_mode::poll})
    for (const auto waiting : {wait_style::spin, wait_style::block}) {
      CAPTURE(static_cast<int>(progress));
      CAPTURE(static_cast<int>(waiting));
      auto options = mode(progress, waiting);
      options.timeout = std::chrono::duration<double>(0.2);
      stretto::mpi::communicator comm(MPI_COMM_WORLD, {size, 4, 1}, options);
      if (rank == 1) {
        // Nobody sends this message: the wait must give up with a diagnostic, not hang.
        std::vector<double> buffer(4);
        auto q = comm.post_receive(message_key{message_direction::activation, 0, 1, 3}, 0, buffer.data(), buffer.size());
        std::string what;
        try {
          comm.wait(q, op{op_kind::forward, 1, 3});
        } catch (const stretto::timeout_error& e) {
          what = e.what();
        }
        CHECK(what.find("rank 1 timed out after 0.2 s") != std::string::npos);
        CHECK(what.find("F(stage 1, mb 3)") != std::string::npos);
        CHECK(what.find("activation of mb 3 from stage 0 to stage 1 from rank 0") != std::string::npos);
      }
      MPI_Barrier(MPI_COMM_WORLD);
    }
}

TEST_CASE("mpi.communicator.rejects_a_message_of_the_wrong_size" * doctest::timeout(60)) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  stretto::mpi::communicator comm(MPI_COMM_WORLD, {size, 1, 1});
  const message_key key{message_direction::activation, 0, 1, 0};
  if (rank == 0) {
    std::vector<double> data(5, 1.0);
    auto q = comm.post_send(key, 1, data.data(), data.size());
    comm.wait(q, op{op_kind::forward, 0, 0});
  } else if (rank == 1) {
    std::vector<double> data(8);
    auto q = comm.post_receive(key, 0, data.data(), data.size());
    CHECK_THROWS_WITH_AS(comm.wait(q, op{op_kind::forward, 1, 0}),
                         doctest::Contains("received 5 values for the activation of mb 0 from stage 0 to stage 1 from rank 0 but expected 8"),
                         stretto::argument_error);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("mpi.communicator.rejects_a_pipeline_of_another_size" * doctest::timeout(60)) {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  CHECK_THROWS_WITH_AS(stretto::mpi::communicator(MPI_COMM_WORLD, {size + 1, 4, 1}),
                       doctest::Contains("launch with -n"), stretto::argument_error);
}
