// The MPI transport on its own: tags, timeouts with a diagnostic, size checks.
#include <doctest/doctest.h>

#include <mpi.h>

#include <chrono>
#include <string>
#include <vector>

#include <stretto/mpi/communicator.hpp>

using stretto::message_direction;
using stretto::message_key;
using stretto::op;
using stretto::op_kind;

TEST_CASE("mpi.communicator.round_trip_in_both_directions" * doctest::timeout(60)) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  stretto::mpi::communicator comm(MPI_COMM_WORLD, {size, 3, 1});
  // Every rank sends a differently sized message to both neighbours at once (p = 2: the same
  // rank is both next and previous), each identified by its own key.
  const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  std::vector<double> to_next(1000 + static_cast<std::size_t>(rank), rank), to_prev(7, -rank);
  std::vector<double> from_prev(1000 + static_cast<std::size_t>(prev)), from_next(7);
  auto r1 = comm.post_receive(message_key{message_direction::activation, prev, rank, 2}, prev, from_prev.data(), from_prev.size());
  auto r2 = comm.post_receive(message_key{message_direction::gradient, next, rank, 2}, next, from_next.data(), from_next.size());
  auto s1 = comm.post_send(message_key{message_direction::activation, rank, next, 2}, next, to_next.data(), to_next.size());
  auto s2 = comm.post_send(message_key{message_direction::gradient, rank, prev, 2}, prev, to_prev.data(), to_prev.size());
  const op waiting{op_kind::forward, rank, 2};
  comm.wait(r2, waiting);
  comm.wait(r1, waiting);
  comm.wait(s1, waiting);
  comm.wait(s2, waiting);
  CHECK(from_prev.front() == prev);
  CHECK(from_prev.back() == prev);
  CHECK(from_next.front() == -next);
}

TEST_CASE("mpi.communicator.timeout_names_rank_op_and_message" * doctest::timeout(60)) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  stretto::mpi::communicator comm(
      MPI_COMM_WORLD, {size, 4, 1},
      {std::chrono::duration<double>(0.2), stretto::mpi::timeout_action::throw_error});
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
