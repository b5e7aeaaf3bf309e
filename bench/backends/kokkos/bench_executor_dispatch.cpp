/**
@file
@brief Per-op dispatch cost of the Kokkos executor with a run-time schedule and with a schedule
compiled at build time (`stretto::compile_time::static_schedule`), for ZB-H1.

- `run_step/<source>/m:<m>`: one `executor::run_step` of a single rank holding the whole model
  (p = 1, so no message is ever waited for) with a model whose stage functions do nothing on
  1 × 1 views: what is left is the executor's own work per op (looking up inputs, allocating the
  output view, bookkeeping, one `Kokkos::fence`). Counter `time/op`: seconds per op.
- `walk/<source>/p:<p>/m:<m>`: reading every rank's op list and branching on the op kind, the
  part of dispatch that depends on where the list lives (nested `std::vector`s of a `schedule`,
  or one flat constant array). Counter `time/op`.
- `construct/<source>/m:<m>`: getting an executor ready: `make_schedule` + run-time validation +
  copy, versus copying the constant table (validated while compiling).

`<source>` is `run_time` or `compile_time`. Times per iteration in ns or µs.
*/

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

#include <benchmark/benchmark.h>

#include <stretto/compile_time/static_schedule.hpp>
#include <stretto/kokkos/executor.hpp>
#include <stretto/policies/zero_bubble.hpp>

namespace {

using stretto::op;
using stretto::op_kind;
using stretto::pipeline_shape;
using stretto::policies::zb_h1;

/** @brief Initialises Kokkos on first use; finalised at exit, after every benchmark's views. */
void ensure_kokkos() { static Kokkos::ScopeGuard guard; }

/** @brief A `stage_model` whose stage functions do nothing, on 1 × 1 host views. */
struct null_model {
  using matrix_type = stretto::kokkos::matrix<double, Kokkos::HostSpace>;
  matrix_type input_{"input", 1, 1};

  std::int64_t input_features(std::int32_t) const { return 1; }
  std::int64_t output_features(std::int32_t) const { return 1; }
  std::int64_t microbatch_rows(std::int32_t) const { return 1; }
  matrix_type input(std::int32_t) const { return input_; }
  void forward(std::int32_t, std::int32_t, const matrix_type&, const matrix_type&) {}
  double loss(std::int32_t, const matrix_type&, const matrix_type&) { return 0.0; }
  void backward_input(std::int32_t, std::int32_t, const matrix_type&, const matrix_type&) {}
  void backward_weight(std::int32_t, std::int32_t) {}
};

/** @brief A transport for one rank: with p = 1 the executor never sends or receives. */
struct single_rank_transport {
  struct request {};
  std::int32_t rank() const { return 0; }
  request post_receive(const stretto::message_key&, std::int32_t, double*, std::size_t) { return {}; }
  request post_send(const stretto::message_key&, std::int32_t, const double*, std::size_t) { return {}; }
  bool test(request&) { return true; }
  void wait(request&, const op&) {}
};
static_assert(stretto::kokkos::stage_model<null_model>);
static_assert(stretto::transport<single_rank_transport>);

template <std::int32_t M>
using static_zb = stretto::compile_time::static_schedule<zb_h1, pipeline_shape{1, M, 1}>;

void set_time_per_op(benchmark::State& state, double ops) {
  state.counters["ops"] = benchmark::Counter(ops);
  state.counters["time/op"] =
      benchmark::Counter(ops, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

template <std::int32_t M>
void run_step_run_time(benchmark::State& state) {
  ensure_kokkos();
  null_model model;
  single_rank_transport comm;
  stretto::kokkos::executor exec(stretto::make_schedule<zb_h1>({1, M, 1}), model, comm);
  for (auto _ : state) benchmark::DoNotOptimize(exec.run_step());
  set_time_per_op(state, 3.0 * M);
}

template <std::int32_t M>
void run_step_compile_time(benchmark::State& state) {
  ensure_kokkos();
  null_model model;
  single_rank_transport comm;
  stretto::kokkos::executor exec(static_zb<M>{}, model, comm);
  for (auto _ : state) benchmark::DoNotOptimize(exec.run_step());
  set_time_per_op(state, 3.0 * M);
}

/** @brief Walks one op list, branching on the op kind as the executor's dispatch does. */
[[gnu::noinline]] std::int64_t walk(std::span<const op> list) {
  std::int64_t sum = 0;
  for (const op& o : list) {
    switch (o.kind) {
      case op_kind::forward: sum += o.microbatch; break;
      case op_kind::backward_input:
      case op_kind::backward: sum += 2 * o.stage; break;
      case op_kind::backward_weight: sum -= o.microbatch; break;
    }
  }
  return sum;
}

/** @brief Walks every rank's list (the same out-of-line walker for both kinds of schedule). */
template <class Plan>
std::int64_t walk(const Plan& plan) {
  std::int64_t sum = 0;
  for (std::int32_t r = 0; r < plan.num_ranks(); ++r) sum += walk(plan.ops(r));
  return sum;
}

template <std::int32_t P, std::int32_t M>
void walk_run_time(benchmark::State& state) {
  const stretto::schedule plan = stretto::make_schedule<zb_h1>({P, M, 1});
  for (auto _ : state) {
    benchmark::DoNotOptimize(walk(plan));
    benchmark::ClobberMemory();
  }
  set_time_per_op(state, 3.0 * P * M);
}

template <std::int32_t P, std::int32_t M>
void walk_compile_time(benchmark::State& state) {
  const stretto::compile_time::static_schedule<zb_h1, pipeline_shape{P, M, 1}> plan;
  for (auto _ : state) {
    benchmark::DoNotOptimize(walk(plan));
    benchmark::ClobberMemory();
  }
  set_time_per_op(state, 3.0 * P * M);
}

template <std::int32_t M>
void construct_run_time(benchmark::State& state) {
  ensure_kokkos();
  null_model model;
  single_rank_transport comm;
  for (auto _ : state) {
    stretto::kokkos::executor exec(stretto::make_schedule<zb_h1>({1, M, 1}), model, comm);
    benchmark::DoNotOptimize(exec.plan().num_ops());
  }
}

template <std::int32_t M>
void construct_compile_time(benchmark::State& state) {
  ensure_kokkos();
  null_model model;
  single_rank_transport comm;
  for (auto _ : state) {
    stretto::kokkos::executor exec(static_zb<M>{}, model, comm);
    benchmark::DoNotOptimize(exec.plan().num_ops());
  }
}

BENCHMARK(run_step_run_time<64>)->Name("run_step/run_time/m:64")->Unit(benchmark::kMicrosecond);
BENCHMARK(run_step_compile_time<64>)->Name("run_step/compile_time/m:64")->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(walk_run_time, 8, 64)->Name("walk/run_time/p:8/m:64")->Unit(benchmark::kNanosecond);
BENCHMARK_TEMPLATE(walk_compile_time, 8, 64)->Name("walk/compile_time/p:8/m:64")->Unit(benchmark::kNanosecond);
BENCHMARK(construct_run_time<64>)->Name("construct/run_time/m:64")->Unit(benchmark::kMicrosecond);
BENCHMARK(construct_compile_time<64>)->Name("construct/compile_time/m:64")->Unit(benchmark::kMicrosecond);

}  // namespace
