// Lowered schedules run for real under rendezvous semantics: every send is an MPI_Issend, which
// completes only once the matching receive has been posted, and every op waits for its request
// before the next op starts. Every policy at p = the number of ranks, and (at p = 2) looped
// schedules in which the two ranks exchange both ways, must finish, with messages of 1, 1000 and
// 150 000 doubles whose contents and sizes are checked. A deadlock would stop a rank in a wait:
// after 30 s it reports the rank, the op and the message, and aborts the job.
#include <doctest/doctest.h>

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <stretto/graph/dependency_graph.hpp>
#include <stretto/graph/lowering.hpp>
#include <stretto/stretto.hpp>

#include "graph/hand_schedules.hpp"

namespace {

using namespace stretto;
using graph::lowered_kind;
using graph::lowered_op;
using graph::lowered_schedule;

// 1, 1000 or 150 000 doubles (8 B, 8 KB above the shared-memory eager limit, 1.2 MB).
std::size_t size_of(const message_key& k) {
  switch ((k.from_stage + k.microbatch + (k.direction == message_direction::gradient ? 1 : 0)) % 3) {
    case 0: return 1;
    case 1: return 1000;
    default: return 150000;
  }
}

double value_of(const message_key& k, std::size_t i) {
  return static_cast<double>(k.microbatch * 1000 + k.from_stage * 10 + k.to_stage) + static_cast<double>(i % 7) * 0.125;
}

int tag_of(const message_key& k, std::int32_t num_stages) {
  return (k.microbatch * num_stages + k.to_stage) * 2 + (k.direction == message_direction::gradient ? 1 : 0);
}

// Waits for `request`; after 30 s reports what this rank waits in and aborts (never hangs).
MPI_Status wait_or_abort(MPI_Request& request, MPI_Comm comm, int rank, const lowered_op& o) {
  const auto start = std::chrono::steady_clock::now();
  std::chrono::microseconds pause{0};
  MPI_Status status{};
  for (int done = 0; !done;) {
    MPI_Test(&request, &done, &status);
    if (done) break;
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(30)) {
      std::fprintf(stderr, "rank %d: deadlock? waited 30 s in %s\n", rank, graph::to_string(o).c_str());
      std::fflush(stderr);
      MPI_Abort(comm, 3);
    }
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
    pause = std::min(std::chrono::microseconds{200}, pause + std::chrono::microseconds{2});
  }
  return status;
}

/** Runs this rank's lowered list: compute ops sleep a random few µs; sends and receives block. */
std::size_t run(const lowered_schedule& l, MPI_Comm comm, int rank, std::mt19937& engine) {
  std::size_t wrong = 0;
  const std::int32_t S = l.shape().num_stages();
  for (const lowered_op& o : l.ops(rank)) {
    if (o.kind == lowered_kind::compute) {
      if (engine() % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(engine() % 200));
      continue;
    }
    const std::size_t size = size_of(o.message);
    std::vector<double> buffer(size + 1);  // one spare value: a longer message would show in the count
    MPI_Request request = MPI_REQUEST_NULL;
    if (o.kind == lowered_kind::send) {
      for (std::size_t i = 0; i < size; ++i) buffer[i] = value_of(o.message, i);
      MPI_Issend(buffer.data(), static_cast<int>(size), MPI_DOUBLE, o.peer, tag_of(o.message, S), comm, &request);
      wait_or_abort(request, comm, rank, o);
    } else {
      MPI_Irecv(buffer.data(), static_cast<int>(size + 1), MPI_DOUBLE, o.peer, tag_of(o.message, S), comm, &request);
      MPI_Status status = wait_or_abort(request, comm, rank, o);
      int received = 0;
      MPI_Get_count(&status, MPI_DOUBLE, &received);
      wrong += static_cast<std::size_t>(received) == size ? 0 : 1;
      for (std::size_t i = 0; i < size; ++i) wrong += buffer[i] == value_of(o.message, i) ? 0 : 1;
    }
  }
  return wrong;
}

}  // namespace

TEST_CASE("mpi.rendezvous.lowered_schedules_finish_with_synchronous_sends" * doctest::timeout(110)) {
  int rank = 0, p = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  std::mt19937 engine(static_cast<unsigned>(rank) * 7919U + 1U);

  std::vector<schedule> plans;
  for (const auto& policy : policies::all_policies)
    for (std::int32_t m : {1, 2, p + 1, 2 * p})
      for (std::int32_t v : {1, 2}) {
        const pipeline_shape shape{p, m, v};
        if (policy.check(shape).empty()) plans.push_back(policy.generate(shape));
      }
  if (p == 2)
    for (std::int32_t m : {1, 3}) {
      plans.push_back(testing::looped_breadth_first(2, m, 2));
      plans.push_back(testing::looped_depth_first(2, m, 2));
      plans.push_back(testing::looped_depth_first(2, m, 3));
    }
  const sim::uniform_costs backward_heavy{1.0, 3.0, 0.5, 2.0, 1.0, 0.5};
  std::size_t runs = 0;
  for (const schedule& s : plans) {
    for (const lowered_schedule& l : {graph::lower(s), graph::lower(s, backward_heavy)}) {
      CAPTURE(s.num_microbatches());
      CAPTURE(s.shape().num_chunks);
      REQUIRE(graph::validate(l).ok());
      CHECK(run(l, comm, rank, engine) == 0);
      MPI_Barrier(comm);
      ++runs;
    }
  }
  CHECK(runs >= 2 * 3 * 4);
  MPI_Comm_free(&comm);
}
