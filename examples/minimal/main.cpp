// Stretto's minimal trainer: a user's own stage model (scale_model.hpp) trained pipeline-parallel
// on 1 to 4 MPI ranks (scripts/launch.sh -n 2 build/examples/minimal/stretto.example.minimal).
// Between the readme markers: the README's "Using the headers" snippet, verbatim (tested).
// [readme-begin]
#include <mpi.h>
#include <Kokkos_Core.hpp>
#include <stretto/kokkos/executor.hpp>   // target stretto::kokkos
#include <stretto/mpi/communicator.hpp>  // target stretto::mpi
#include <stretto/stretto.hpp>           // target stretto::stretto: policies, validation, simulator
#include <cstdio>
#include <exception>
#include "scale_model.hpp"  // the model: a stretto::kokkos::stage_model

// Everything holding MPI or Kokkos resources lives in here: destroyed before Kokkos::finalize, MPI_Finalize.
int train(int rank, int ranks) {
  // 1. A schedule from a policy (constexpr: it can also be built and checked at compile time).
  const stretto::pipeline_shape shape{ranks, /*microbatches*/ 4, /*chunks*/ 1};
  const stretto::schedule plan = stretto::make_schedule<stretto::policies::zb_h1>(shape);
  static_assert(stretto::validate(stretto::make_schedule<stretto::policies::zb_h1>({4, 8, 1})).ok());
  // 2. Predict it: span and bubble rate under unit costs (T_F = T_B = T_W = 1, no message cost).
  const auto predicted = stretto::sim::simulate(plan, stretto::sim::uniform_costs{1.0, 1.0, 1.0, 0.0});
  if (rank == 0)
    std::printf("minimal: zb-h1 on %d ranks, 4 microbatches: simulated span %g, bubble rate %.3f\n", ranks,
                predicted.metrics.span, predicted.metrics.bubble_rate);
  // 3. Run it: each rank runs its own ops; activations and gradients move over MPI.
  stretto::examples::scale_model model(plan, rank, /*rows per microbatch*/ 8);
  stretto::mpi::communicator comm(MPI_COMM_WORLD, shape);  // every wait times out (300 s) with a diagnostic
  stretto::kokkos::executor exec(plan, model, comm);
  double loss = 0.0;
  for (int step = 1; step <= 30; ++step) {
    model.set_batch(step);
    const stretto::kokkos::step_record& record = exec.run_step();
    model.apply_gradients(/*learning rate*/ 0.2);  // touches only plan.stages_on_rank(rank)
    // record.loss: the step's loss on the last stage's rank, 0 elsewhere; summed over the ranks.
    MPI_Allreduce(&record.loss, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0 && step % 10 == 0) std::printf("step %d loss %.6e\n", step, loss);
  }
  return loss < 1e-4 ? 0 : 1;  // from 0.07 at step 1
}

int main(int argc, char** argv) {
  // MPI_THREAD_MULTIPLE lets the communicator run a thread that moves messages while stages compute.
  int provided = 0, rank = 0, ranks = 1;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  int status = 0;
  try {
    const Kokkos::ScopeGuard kokkos(argc, argv);  // Kokkos::finalize at the end of this block
    status = train(rank, ranks);
  } catch (const std::exception& e) {
    // One rank failing alone would leave the others waiting for its messages: end them all.
    std::fprintf(stderr, "minimal: error on rank %d: %s\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return status;
}
// [readme-end]
