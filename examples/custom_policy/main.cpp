// A user's own schedule policy (one_f_one_b_w_lag.hpp: 1F1B with B and W split, each W one B
// late), used end to end with nothing but the `schedule_policy` concept:
//
//   rank 0: F0 F1 F2 F3 B0 F4 B1 W0 F5 B2 W1 B3 W2 B4 W3 B5 W4 W5      (p = 4, m = 6)
//   rank 3: F0 B0 F1 B1 W0 F2 B2 W1 F3 B3 W2 F4 B4 W3 F5 B5 W4 W5
//
// 1. compile time: the whole op table as a constant, validated and simulated by the compiler;
// 2. run time: validated, simulated beside 1F1B and ZB-H1, lowered to sends and receives and
//    checked deadlock-free under rendezvous semantics (Boost.Graph);
// 3. executed on 4 MPI ranks by the Kokkos executor, from the compile-time table, on a small MLP
//    with random data; the weights after two steps must equal a sequential run's.
//
//   mpiexec -n 4 build/examples/custom_policy/stretto.example.custom_policy
//
// Exit status: 0 when every check passes, 1 when one fails, 2 on a wrong number of ranks.

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <stretto/compile_time/static_schedule.hpp>
#include <stretto/graph/dependency_graph.hpp>
#include <stretto/graph/lowering.hpp>
#include <stretto/kokkos/executor.hpp>
#include <stretto/mpi/communicator.hpp>
#include <stretto/stretto.hpp>

#include "custom_policy/one_f_one_b_w_lag.hpp"
#include "fashion_mnist/mlp_model.hpp"

namespace {

using policy = stretto::examples::one_f_one_b_w_lag;
using model_type = stretto::examples::mlp_model<double>;
using matrix_type = model_type::matrix_type;

constexpr stretto::pipeline_shape shape{4, 8, 1};
constexpr stretto::sim::uniform_costs equal_times{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};

// ---- 1. compile time ---------------------------------------------------------------------------
// Generated and checked against every invariant while compiling (a broken policy is a compile
// error naming the rule: test/compile_fail/custom_policy_forgets_w.cpp).
using compiled = stretto::compile_time::static_schedule<policy, shape>;
static_assert(compiled::num_ops() == 3 * 4 * 8);
static_assert(compiled::ops(3)[4] == stretto::op{stretto::op_kind::backward_weight, 3, 0});  // F0 B0 F1 B1 W0
// Simulated by the compiler too. At equal times T the step takes 3mT + (p − 1)(T_F + T_B) =
// 30T at p = 4, m = 8: the W lag takes W off the gradient's path up the pipeline, so the bubble
// lies between ZB-H1's (p − 1)(T_F + T_B − T_W) (27) and 1F1B's (p − 1)(T_F + T_B + T_W) (33).
static_assert(stretto::sim::simulate(compiled::to_schedule(), equal_times).metrics.span == 30.0);

// ---- 3. the model and the data ---------------------------------------------------------------
const std::vector<std::int64_t> widths{16, 32, 24, 16, 10};  // 4 layers, one per stage
constexpr std::int64_t batch = 32;
constexpr std::uint64_t seed = 7;
constexpr double lr = 0.05, momentum = 0.9;

double relative_difference(const std::vector<double>& got, const std::vector<double>& want) {
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < want.size() && i < got.size(); ++i) {
    diff = std::max(diff, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return got.size() == want.size() ? diff / scale : 1.0;
}

int run(int rank) {
  int failures = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "custom_policy: rank %d: check failed: %s\n", rank, what);
      ++failures;
    }
  };
  const bool print = rank == 0;

  // ---- 2. run time: validate, simulate, lower ---------------------------------------------------
  const stretto::schedule plan = stretto::make_schedule<policy>(shape);
  expect(plan == compiled::to_schedule(), "the run-time schedule equals the compile-time table");
  const stretto::validation_result valid = stretto::validate(plan);
  expect(valid.ok(), valid.message.c_str());
  const auto mine = stretto::sim::simulate(plan, equal_times);
  const auto one_f_one_b = stretto::sim::simulate(stretto::make_schedule<stretto::policies::one_f_one_b>(shape), equal_times);
  const auto zb_h1 = stretto::sim::simulate(stretto::make_schedule<stretto::policies::zb_h1>(shape), equal_times);
  const stretto::graph::lowered_schedule lowered = stretto::graph::lower(plan);
  const stretto::graph::lowering_result deadlock_free = stretto::graph::validate(lowered);
  expect(deadlock_free.ok(), deadlock_free.message.c_str());
  std::size_t sends = 0;
  for (std::int32_t r = 0; r < lowered.num_ranks(); ++r)
    for (const auto& o : lowered.ops(r)) sends += o.kind == stretto::graph::lowered_kind::send ? 1 : 0;
  if (print) {
    std::printf("custom_policy: %s at (p, m) = (%d, %d): %zu ops, validated at compile time and at run time\n",
                std::string(policy::name).c_str(), shape.num_ranks, shape.num_microbatches, plan.num_ops());
    std::printf("custom_policy: simulated span (T_F = T_B = T_W = 1): %s %.0f, 1f1b %.0f, zb-h1 %.0f; "
                "bubble rate %.4f; peak memory on rank 0 %.1f M_B\n",
                std::string(policy::name).c_str(), mine.metrics.span, one_f_one_b.metrics.span,
                zb_h1.metrics.span, mine.metrics.bubble_rate, mine.peak_memory[0]);
    std::printf("custom_policy: lowered to %zu sends and %zu receives, deadlock-free under rendezvous sends\n",
                sends, sends);
  }

  // ---- 3. execution on the MPI ranks, from the compile-time table ------------------------------
  model_type reference(widths, 1, {0}, seed);  // the sequential run: one stage, one microbatch
  const std::vector<model_type::batch_data> data{reference.random_batch(batch, 100), reference.random_batch(batch, 101)};
  for (const auto& d : data) (void)reference.sequential_step(d, lr, momentum);

  const std::int32_t stage = rank;  // linear placement: stage r on rank r
  model_type model(widths, shape.num_stages(), {stage}, seed);
  stretto::mpi::communicator comm(MPI_COMM_WORLD, shape,
                                  {std::chrono::duration<double>(60.0), stretto::mpi::timeout_action::abort});
  stretto::kokkos::executor exec(compiled{}, model, comm);
  double loss = 0.0;
  for (const auto& d : data) {
    model.set_batch(d.inputs, d.labels, batch, shape.num_microbatches, batch);
    MPI_Barrier(MPI_COMM_WORLD);
    loss = exec.run_step().loss;
    model.apply_gradients(lr, momentum);
  }
  double worst = 0.0;
  for (std::int32_t l = model.first_layer(stage); l < model.first_layer(stage + 1); ++l)
    worst = std::max(worst, relative_difference(model.parameters(l), reference.parameters(l)));
  expect(worst <= 1e-12, "the weights equal the sequential run's to 1e-12");
  expect(model.held_microbatches() == 0, "every microbatch's state was freed by its W");
  double total_loss = 0.0, all_worst = 0.0;
  MPI_Reduce(&loss, &total_loss, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
  MPI_Reduce(&worst, &all_worst, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  if (print)
    std::printf("custom_policy: executed on 4 MPI ranks with the Kokkos executor: step 2 loss %.6f, "
                "weights equal to the sequential run (max relative difference %.1e)\n",
                total_loss, all_worst);
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  // MPI_THREAD_MULTIPLE lets the communicator's progress thread move messages while stages compute.
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != shape.num_ranks) {
    if (rank == 0)
      std::fprintf(stderr, "custom_policy: error: run on %d MPI ranks (mpiexec -n %d), not %d\n", shape.num_ranks,
                   shape.num_ranks, size);
    MPI_Finalize();
    return 2;
  }
  int failures = 0;
  {
    Kokkos::ScopeGuard kokkos(argc, argv);
    failures = run(rank);
  }
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) std::printf("custom_policy: %s\n", total == 0 ? "all checks passed" : "FAILED");
  MPI_Finalize();
  return total == 0 ? 0 : 1;
}
