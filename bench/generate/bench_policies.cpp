/**
@file
@brief Run-time cost of every policy in `stretto::policies::all_policies`, at two pipeline sizes,
for three amounts of work:

- `generate`: `make_schedule(name, shape)` (the policy's shape check and its generator);
- `generate_validate`: the same, then `stretto::validate`;
- `generate_validate_simulate`: `make_schedule`, then `sim::simulate` with uniform costs
  (T_F = T_B = T_W = 1, T_comm = 0). `simulate` validates the schedule itself (the structural
  rules before running it, deadlock freedom by running it), so validation is counted once here,
  as a caller of `simulate` pays it.

Benchmarks are named `<work>/<policy>/p:<ranks>/m:<microbatches>`.

**Counters.** `ops`: ops in the schedule; `ops/s`: ops handled per second
(`benchmark::Counter::kIsRate`, which Google Benchmark divides by CPU time, not wall time);
`span` and `bubble_rate`: the simulated step under the uniform costs (computed once, outside the
timed loop, so every row can be read on its own). Times are per iteration, in microseconds.
*/

#include <cstdint>
#include <string>

#include <benchmark/benchmark.h>

#include <stretto/validate/validate.hpp>
#include <stretto/policies/registry.hpp>
#include <stretto/sim/cost_model.hpp>
#include <stretto/sim/simulator.hpp>

namespace {

using stretto::pipeline_shape;
using stretto::policies::policy_info;

/** @brief How much of the pipeline from shape to metrics one iteration runs. */
enum class work : std::uint8_t { generate, generate_validate, generate_validate_simulate };

constexpr const char* to_string(work w) noexcept {
  switch (w) {
    case work::generate: return "generate";
    case work::generate_validate: return "generate_validate";
    case work::generate_validate_simulate: return "generate_validate_simulate";
  }
  return "?";
}

/** @brief The (ranks, microbatches) sizes measured, with one chunk per rank. */
constexpr pipeline_shape shapes[] = {{8, 32, 1}, {32, 256, 1}};

constexpr stretto::sim::uniform_costs equal_costs{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};

void run_policy(benchmark::State& state, const policy_info& policy, pipeline_shape shape, work what) {
  // Untimed: the size of the schedule and its simulated metrics, reported as counters.
  const stretto::schedule reference = stretto::policies::make_schedule(policy.name, shape);
  const stretto::sim::simulation reference_run = stretto::sim::simulate(reference, equal_costs);
  const auto ops = static_cast<double>(reference.num_ops());

  for (auto _ : state) {
    stretto::schedule s = stretto::policies::make_schedule(policy.name, shape);
    switch (what) {
      case work::generate: break;
      case work::generate_validate: {
        stretto::validation_result result = stretto::validate(s);
        if (!result) {
          state.SkipWithError(result.message.c_str());
          return;
        }
        benchmark::DoNotOptimize(result);
        break;
      }
      case work::generate_validate_simulate: {
        stretto::sim::simulation run = stretto::sim::simulate(s, equal_costs);
        benchmark::DoNotOptimize(run);
        break;
      }
    }
    benchmark::DoNotOptimize(s);
    benchmark::ClobberMemory();
  }

  state.counters["ops"] = benchmark::Counter(ops);
  state.counters["ops/s"] =
      benchmark::Counter(ops * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["span"] = benchmark::Counter(reference_run.metrics.span);
  state.counters["bubble_rate"] = benchmark::Counter(reference_run.metrics.bubble_rate);
}

/** @brief Registers every (work, policy, shape) combination; runs during static initialisation. */
bool register_policy_benchmarks() {
  for (const work what : {work::generate, work::generate_validate, work::generate_validate_simulate})
    for (const policy_info& policy : stretto::policies::all_policies)
      for (pipeline_shape shape : shapes) {
        shape.num_chunks = policy.default_chunks;  // v = 2 for looped and V-shaped policies
        const std::string name = std::string(to_string(what)) + "/" + std::string(policy.name) +
                                 "/p:" + std::to_string(shape.num_ranks) +
                                 "/m:" + std::to_string(shape.num_microbatches);
        benchmark::RegisterBenchmark(name.c_str(), run_policy, policy, shape, what)
            ->Unit(benchmark::kMicrosecond);
      }
  return true;
}

[[maybe_unused]] const bool registered = register_policy_benchmarks();

}  // namespace
