/**
@file
@brief Simulator throughput, and the cost of the automatic scheduler.

- `simulate/<policy>/p:<ranks>/m:<microbatches>/<costs>`: `sim::simulate` on a schedule
  generated once (outside the timed loop), under `uniform_costs` or per-stage `stage_costs`
  (Zero Bubble Table 9 times, 1.5B row). `simulate` validates the schedule first, as every
  caller pays; `/memory_curve` also records the memory curve (`record_memory`).
- `auto_schedule/zb-<k>p/p:8/m:<m>`: the heuristic with all 8 switch combinations plus the
  refinement, for the Table 5 rows (ms costs).
- `auto_schedule/<zb-1p|zb-2p|auto>/p:<p>/m:<m>` for (p, m) = (32, 96), (32, 256), (64, 512): the
  same at large shapes, with the 1.5B row's costs on every stage; `auto` plans under 1.5p·M_B
  (between the two). `/heuristic` times the 8 heuristic runs alone (no refinement).
- `auto_schedule_v/p:<ranks>/m:<microbatches>/limit:p` and `official_v/...`: auto-v under p·M_B
  (all candidates and the local search), and the official V planner alone (its four knob
  settings with refinement, `policies::plan_zb_v`) on the same integer ticks, 1.5B row costs.

**Counters.** `ops`: ops per schedule; `ops/s`: simulated ops per second of CPU time
(`kIsRate`); the target is ≥ 10 M ops/s on one core. `span` and `bubble_rate`: the simulated
step, computed once outside the timed loop.
*/

#include <cstdint>
#include <string>
#include <utility>

#include <benchmark/benchmark.h>

#include <stretto/policies/registry.hpp>
#include <stretto/plan/auto_schedule.hpp>
#include <stretto/plan/auto_schedule_v.hpp>
#include <stretto/policies/zb_v.hpp>
#include <stretto/sim/cost_model.hpp>
#include <stretto/sim/simulator.hpp>

namespace {

using stretto::pipeline_shape;

constexpr stretto::sim::uniform_costs table9{18.522, 18.086, 9.337, 0.601, 1.0, 0.5};

template <class Costs>
void run_simulate(benchmark::State& state, const stretto::schedule& s, const Costs& costs,
                  stretto::sim::simulate_options options) {
  const stretto::sim::simulation reference = stretto::sim::simulate(s, costs, options);
  for (auto _ : state) {
    stretto::sim::simulation run = stretto::sim::simulate(s, costs, options);
    benchmark::DoNotOptimize(run);
    benchmark::ClobberMemory();
  }
  const auto ops = static_cast<double>(s.num_ops());
  state.counters["ops"] = benchmark::Counter(ops);
  state.counters["ops/s"] =
      benchmark::Counter(ops * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["span"] = benchmark::Counter(reference.metrics.span);
  state.counters["bubble_rate"] = benchmark::Counter(reference.metrics.bubble_rate);
}

void run_auto_schedule(benchmark::State& state, pipeline_shape shape, double factor, bool refine) {
  const double limit = stretto::plan::zb_memory_limit(shape, table9, factor);
  stretto::plan::auto_schedule_options options;
  options.refine = refine;
  const auto reference = stretto::plan::auto_schedule_detailed(shape, table9, limit, options);
  for (auto _ : state) {
    stretto::schedule plan = stretto::plan::auto_schedule(shape, table9, limit, options);
    benchmark::DoNotOptimize(plan);
  }
  const double ideal = static_cast<double>(shape.num_microbatches) *
                       (table9.t_forward + table9.t_backward_input + table9.t_backward_weight);
  state.counters["ops"] = benchmark::Counter(static_cast<double>(reference.plan.num_ops()));
  state.counters["span"] = benchmark::Counter(reference.span);
  state.counters["heuristic_span"] = benchmark::Counter(reference.heuristic_span);
  state.counters["bubble_rate"] = benchmark::Counter(1.0 - ideal / reference.span);
  state.counters["refine_moves"] = benchmark::Counter(reference.refine_moves);
}

void run_auto_schedule_v(benchmark::State& state, pipeline_shape shape, bool official_only) {
  const double limit = static_cast<double>(shape.num_ranks);  // p·M_B
  const auto in = stretto::plan::detail::v_inputs_of(shape, table9, limit);
  for (auto _ : state) {
    if (official_only) {
      auto plan = stretto::policies::plan_zb_v(shape, in.costs, in.cap);
      benchmark::DoNotOptimize(plan);
    } else {
      stretto::schedule plan = stretto::plan::auto_schedule_v(shape, table9, limit);
      benchmark::DoNotOptimize(plan);
    }
  }
  state.counters["ops"] = benchmark::Counter(6.0 * shape.num_ranks * shape.num_microbatches);
}

bool register_benchmarks() {
  for (const pipeline_shape shape : {pipeline_shape{8, 24, 2}, pipeline_shape{32, 96, 2}, pipeline_shape{32, 256, 2},
                                     pipeline_shape{64, 512, 2}})
    for (const bool official_only : {true, false}) {
      const std::string name = std::string(official_only ? "official_v" : "auto_schedule_v") + "/p:" +
                               std::to_string(shape.num_ranks) + "/m:" + std::to_string(shape.num_microbatches) +
                               "/limit:p";
      benchmark::RegisterBenchmark(name.c_str(), run_auto_schedule_v, shape, official_only)
          ->Unit(benchmark::kMillisecond);
    }
  for (const char* policy : {"1f1b", "zb-h1"})
    for (const pipeline_shape shape : {pipeline_shape{8, 32, 1}, pipeline_shape{32, 256, 1}}) {
      const std::string base = std::string("simulate/") + policy + "/p:" + std::to_string(shape.num_ranks) +
                               "/m:" + std::to_string(shape.num_microbatches);
      const stretto::schedule s = stretto::policies::make_schedule(policy, shape);
      const stretto::sim::stage_costs per_stage = stretto::sim::stage_costs::from(table9, shape);
      benchmark::RegisterBenchmark((base + "/uniform").c_str(), [s](benchmark::State& state) {
        run_simulate(state, s, table9, {});
      })->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark((base + "/uniform/memory_curve").c_str(), [s](benchmark::State& state) {
        run_simulate(state, s, table9, {.record_memory = true});
      })->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark((base + "/stage_costs").c_str(), [s, per_stage](benchmark::State& state) {
        run_simulate(state, s, per_stage, {});
      })->Unit(benchmark::kMicrosecond);
    }
  for (const std::int32_t m : {24, 32, 64})
    for (const double factor : {1.0, 2.0}) {
      const std::string name = std::string("auto_schedule/zb-") + (factor == 1.0 ? "1" : "2") + "p/p:8/m:" +
                               std::to_string(m);
      benchmark::RegisterBenchmark(name.c_str(), run_auto_schedule, pipeline_shape{8, m, 1}, factor, true)
          ->Unit(benchmark::kMillisecond);
    }
  for (const pipeline_shape shape : {pipeline_shape{32, 96, 1}, pipeline_shape{32, 256, 1}, pipeline_shape{64, 512, 1}})
    for (const auto& [label, factor] : {std::pair{"zb-1p", 1.0}, std::pair{"zb-2p", 2.0}, std::pair{"auto", 1.5}})
      for (const bool refine : {true, false}) {
        const std::string name = std::string("auto_schedule/") + label + "/p:" + std::to_string(shape.num_ranks) +
                                 "/m:" + std::to_string(shape.num_microbatches) + (refine ? "" : "/heuristic");
        benchmark::RegisterBenchmark(name.c_str(), run_auto_schedule, shape, factor, refine)
            ->Unit(benchmark::kMillisecond);
      }
  return true;
}

[[maybe_unused]] const bool registered = register_benchmarks();

}  // namespace
