// Messages through host staging buffers (executor_options::messages = staged), the path a GPU
// takes when MPI cannot read device memory, checked on the host, where both paths run: it must
// give the direct path's losses and gradients bit for bit and post every message (no deadlock
// under 1F1B, ZB-V, Chimera and DualPipe, the last with F&B pairs), with a fence after every op
// or only where a dependency needs one. It allocates nothing after the
// warm-up steps (test_executor_allocations.cpp counts them). On a GPU (label gpu) the same cases
// run with the views in device memory: staged with and without a fence per op.
#include <doctest/doctest.h>

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include <stretto/kokkos/execution_instance.hpp>
#include <stretto/kokkos/executor.hpp>
#include <stretto/mpi/communicator.hpp>
#include <stretto/mpi/node.hpp>
#include <stretto/stretto.hpp>

#include "fashion_mnist/mlp_model.hpp"

namespace {

struct run_result {
  std::vector<double> losses;     // the step losses (last stage's ranks; 0 elsewhere)
  std::vector<double> gradients;  // every local stage's gradients after the last step
  std::vector<double> weights;    // every local layer's parameters after the last step
  bool staged{false};
};

run_result train(const std::string& name, stretto::kokkos::message_path path, bool fence_every_op) {
  int rank = 0, p = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  const auto& policy = stretto::policies::find_policy(name);
  const stretto::pipeline_shape shape{p, 2 * p, policy.default_chunks};
  const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
  const std::vector<std::int64_t> widths{12, 10, 9, 8, 8, 7, 6, 6, 5};
  const std::vector<std::int32_t> local = plan.stages_on_rank(rank);
  stretto::examples::mlp_model<double> model(widths, plan.num_stages(), local, 7);
  stretto::mpi::communicator comm(MPI_COMM_WORLD, shape);
  stretto::kokkos::executor_options options;
  options.messages = path;
  options.fence_every_op = fence_every_op;
  stretto::kokkos::executor exec(plan, model, comm, options);
  run_result out;
  out.staged = exec.stages_messages();
  for (int step = 0; step < 3; ++step) {
    const auto data = model.random_batch(8 * p, 11 + static_cast<std::uint64_t>(step));
    model.set_batch(data.inputs, data.labels, 8 * p, shape.num_microbatches, 8 * p);
    out.losses.push_back(exec.run_step().loss);
    if (step == 2)
      for (std::int32_t s : local) {
        const auto g = model.pack_gradients(s);
        out.gradients.insert(out.gradients.end(), g.begin(), g.end());
      }
    for (std::int32_t s : local) model.apply_gradients(s, 0.05, 0.9);
  }
  for (std::int32_t l = 0; l < model.num_layers(); ++l) {
    const auto w = model.parameters(l);
    out.weights.insert(out.weights.end(), w.begin(), w.end());
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return out;
}

}  // namespace

TEST_CASE("mpi.staging.staged_messages_give_the_direct_paths_results_bit_for_bit" * doctest::timeout(120)) {
  int rank = 0, p = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  int ran = 0;
  for (const std::string name : {"1f1b", "zb-v", "chimera", "dualpipe"}) {
    const auto& policy = stretto::policies::find_policy(name);
    if (!policy.check(stretto::pipeline_shape{p, 2 * p, policy.default_chunks}).empty()) continue;  // p odd
    ++ran;
    CAPTURE(name);
    CAPTURE(p);
    CAPTURE(rank);
    // The reference: the default path, fenced after every op (on a GPU without a device-aware MPI
    // that is staging too; the comparison then checks that fewer fences change nothing).
    const run_result direct = train(name, stretto::kokkos::message_path::automatic, true);
    if (Kokkos::SpaceAccessibility<Kokkos::HostSpace, stretto::kokkos::matrix<double>::memory_space>::accessible)
      CHECK_FALSE(direct.staged);  // host memory: the direct path by default
    for (const bool fence_every_op : {true, false}) {
      CAPTURE(fence_every_op);
      const run_result staged = train(name, stretto::kokkos::message_path::staged, fence_every_op);
      CHECK(staged.staged);
      CHECK(staged.losses == direct.losses);  // exact: same kernels on the same values
      CHECK(staged.gradients == direct.gradients);
      CHECK(staged.weights == direct.weights);
    }
    // The losses are real: positive and finite on the last stage's ranks.
    const auto plan = stretto::policies::make_schedule(name, stretto::pipeline_shape{p, 2 * p, policy.default_chunks});
    bool last = false;
    for (std::int32_t s : plan.stages_on_rank(rank)) last = last || s + 1 == plan.num_stages();
    if (last)
      for (double l : direct.losses) CHECK(l > 0.0);
  }
  CHECK(ran == (p % 2 == 0 ? 4 : 2));
}

TEST_CASE("mpi.staging.node_local_rank_and_device_aware_switch" * doctest::timeout(60)) {
  int rank = 0, p = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  // One node: the local rank is the world rank, from the launcher's variable and from the split.
  CHECK(stretto::mpi::local_rank() == rank);
  const char* names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
  std::vector<std::string> saved;
  for (const char* name : names) {
    const char* v = std::getenv(name);
    saved.emplace_back(v ? v : "");
    unsetenv(name);
  }
  CHECK(stretto::mpi::local_rank() == rank);  // MPI_COMM_TYPE_SHARED split
  setenv("SLURM_LOCALID", "7", 1);
  CHECK(stretto::mpi::local_rank() == 7);
  setenv("SLURM_LOCALID", "x", 1);  // not a number: ignored, the split decides
  CHECK(stretto::mpi::local_rank() == rank);
  unsetenv("SLURM_LOCALID");
  for (std::size_t i = 0; i < saved.size(); ++i)
    if (!saved[i].empty()) setenv(names[i], saved[i].c_str(), 1);

  // The switch decides over the library's query.
  const char* before = std::getenv("STRETTO_MPI_DEVICE_AWARE");
  const std::string kept = before ? before : "";
  setenv("STRETTO_MPI_DEVICE_AWARE", "1", 1);
  CHECK(stretto::mpi::device_aware_mpi());
  {
    const stretto::pipeline_shape shape{p, p, 1};
    const auto plan = stretto::policies::make_schedule("1f1b", shape);
    stretto::examples::mlp_model<double> model({6, 5, 5, 5, 5, 4}, plan.num_stages(), plan.stages_on_rank(rank), 3);
    stretto::mpi::communicator comm(MPI_COMM_WORLD, shape);
    CHECK(comm.device_aware());
    stretto::kokkos::executor exec(plan, model, comm);
    // Host memory is always sent as it is; device memory too when MPI is device-aware.
    CHECK_FALSE(exec.stages_messages());
  }
  setenv("STRETTO_MPI_DEVICE_AWARE", "0", 1);
  CHECK_FALSE(stretto::mpi::device_aware_mpi());
  if (kept.empty()) unsetenv("STRETTO_MPI_DEVICE_AWARE");
  else setenv("STRETTO_MPI_DEVICE_AWARE", kept.c_str(), 1);
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("mpi.staging.host_backend_traits") {
  using host = Kokkos::DefaultHostExecutionSpace;
  static_assert(std::is_same_v<stretto::kokkos::staging_space_t<host>, Kokkos::HostSpace>);
  CHECK(stretto::kokkos::device_traits<host>::device_count() == 0);
  stretto::kokkos::execution_instance<host> instance;
  CHECK_FALSE(instance.owns_queue());  // a host backend has no queue of its own: the default instance
  instance.fence();
  if (Kokkos::SpaceAccessibility<Kokkos::HostSpace, Kokkos::DefaultExecutionSpace::memory_space>::accessible)
    CHECK(stretto::kokkos::device_traits<Kokkos::DefaultExecutionSpace>::device_count() == 0);
  else
    CHECK(stretto::kokkos::device_traits<Kokkos::DefaultExecutionSpace>::device_count() >= 0);
}
