#pragma once
/**
@file
@brief Data parallelism in the simulator: the pipeline is replicated d times (d data-parallel
groups, ranks = d·p), and each stage's parameter gradients are all-reduced over its d copies
after that stage's last W (or BW) of the step, overlapped with the compute that is still running
(docs/cluster.md, "Data parallelism in the simulator").

**The reduction of one stage** is a ring all-reduce (a reduce-scatter and an all-gather, each of
n − 1 steps over n members that each send 1/n of the buffer per step), whose time is

    T_ring(n, B) = 2(n − 1)·α + 2(n − 1)/n · B / β

for B bytes, a start-up latency α per step and a bandwidth β in bytes per time unit: the ring
cost of Thakur, Rabenseifner and Gropp, "Optimization of Collective Communication Operations in
MPICH" (IJHPCA 2005, §4, the reduce-scatter + all-gather all-reduce without the reduction's
compute term) and Patarasuk and Yuan, "Bandwidth optimal all-reduce algorithms for clusters of
workstations" (JPDC 2009, §3: 2(n − 1)/n · B is the least any all-reduce must send per member).
n = d for schedules that hold one model replica; schedules with two replicas (Chimera, BitPipe,
DualPipe) hold every stage twice per pipeline, so their rings have n = 2d members.

**Timing model.** The pipeline step is simulated as by `simulate` (each data-parallel group runs
the same schedule at the same times). The reduction of stage s becomes ready when the last W or
BW of s (over its replicas) ends; it starts when it is ready and the links of every rank holding
s are free, and holds those links until it ends. A rank's reductions therefore run one at a time,
in the order they become ready (ties: lower stage first), while compute goes on: a reduction
never delays an op. A rank's step ends when its last op and its last reduction have ended; its
optimizer step (when the cost model prices one, `cost_model_with_optimizer`) follows that, after
a barrier over all ranks when it is synchronised, as in `simulate`.
*/

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/schedule.hpp"
#include "cost_model.hpp"
#include "simulator.hpp"
#include "timeline.hpp"

namespace stretto::sim {

/**
@brief How the pipeline is replicated and what its reductions cost.

**Units.** `latency` in the cost model's time unit (α, paid once per ring step, 2(n − 1) times
per all-reduce); `bandwidth` in bytes per time unit (β; 0 means unlimited: latency only);
`gradient_bytes` in bytes.

- `groups`: d ≥ 1, the number of data-parallel groups (pipeline replicas).
- `gradient_bytes`: the bytes of parameter gradients each stage all-reduces, indexed by the
  global stage s in [0, S), S = p·v (a chunk's share when v > 1); one entry means the same for
  every stage; empty means 0 bytes (latency only).
*/
struct data_parallel {
  std::int32_t groups{1};
  std::vector<double> gradient_bytes;
  double latency{0.0};
  double bandwidth{0.0};

  /** @brief The bytes stage `stage` reduces (see `gradient_bytes`). */
  constexpr double bytes_of(std::int32_t stage) const noexcept {
    if (gradient_bytes.empty()) return 0.0;
    if (gradient_bytes.size() == 1) return gradient_bytes.front();
    const auto s = static_cast<std::size_t>(stage);
    return s < gradient_bytes.size() ? gradient_bytes[s] : 0.0;
  }

  /**
  @brief Throws `argument_error` unless `groups` ≥ 1, `gradient_bytes` has 0, 1 or `stages`
  entries, and every number is finite and ≥ 0.
  */
  constexpr void check(std::int32_t stages) const {
    if (groups < 1)
      throw argument_error("data parallelism: groups (d) must be >= 1 (got " + std::to_string(groups) +
                           "); d = 1 is one pipeline without data parallelism");
    if (!gradient_bytes.empty() && gradient_bytes.size() != 1 &&
        gradient_bytes.size() != static_cast<std::size_t>(stages))
      throw argument_error("data parallelism: gradient_bytes must have one entry per stage (" +
                           std::to_string(stages) + ") or one for every stage (got " +
                           std::to_string(gradient_bytes.size()) + ")");
    auto bad = [](double x) { return !(x >= 0.0) || x > std::numeric_limits<double>::max(); };
    for (double b : gradient_bytes)
      if (bad(b)) throw argument_error("data parallelism: gradient_bytes must be finite numbers >= 0");
    if (bad(latency) || bad(bandwidth))
      throw argument_error("data parallelism: latency and bandwidth must be finite numbers >= 0 (bandwidth 0: unlimited)");
  }
};

/**
@brief The time of a ring all-reduce of `bytes` over `members` (n) processes:
2(n − 1)·`latency` + 2(n − 1)/n · `bytes` / `bandwidth` (the ring cost of Thakur, Rabenseifner
and Gropp 2005, §4; Patarasuk and Yuan 2009, §3). 0 for n ≤ 1 (nothing to reduce); the bytes
term is 0 when `bandwidth` is 0 (unlimited).
*/
constexpr double ring_allreduce_time(std::int32_t members, double bytes, double latency, double bandwidth) noexcept {
  if (members <= 1) return 0.0;
  const double n = static_cast<double>(members);
  const double transfer = bandwidth > 0.0 ? 2.0 * (n - 1.0) / n * bytes / bandwidth : 0.0;
  return 2.0 * (n - 1.0) * latency + transfer;
}

/**
@brief One stage's gradient reduction in a data-parallel step (times in the cost model's unit).

- `ready`: the end of the stage's last W or BW (over its replicas);
- `start`, `end`: when the ring all-reduce ran (`start` ≥ `ready`; later when a link of one of
  `ranks` was still busy with an earlier reduction);
- `exposed`: the part of [start, end] after the pipeline's step would have ended on its ranks
  (a rank's first op start + the span of `simulate`, whose span is per rank, docs/timing-model.md):
  the part not hidden behind compute; 0 when it ends in time.
*/
struct stage_reduction {
  std::int32_t stage{0};
  std::vector<std::int32_t> ranks;  ///< the ranks holding the stage (one per model replica)
  double ready{0.0};
  double start{0.0};
  double end{0.0};
  double exposed{0.0};
};

/**
@brief What `simulate_data_parallel` returns.

- `pipeline`: the step of one data-parallel group without the reductions (`simulate`'s result).
- `reductions[s]`: stage s's reduction, s in [0, S).
- `step_time`: as `simulation::step_time`, the most, over ranks, from a rank's first op to the
  end of its last op and its last reduction (and its optimizer step, when the cost model has one;
  with a synchronised optimizer from the first start of all to the last optimizer's end).
- `bubble_rate`: idle compute over the step, 1 − Σ busy / (p · `step_time`), reductions counting
  as idle compute (they only use the links).
- `exposed_reduction`: `step_time − pipeline.step_time`, how much the reductions lengthen the
  step; `reduction_time`: the reductions' durations summed over stages; the hidden part is
  `reduction_time` − Σ `exposed` of the stages.
*/
struct data_parallel_simulation {
  simulation pipeline;
  std::vector<stage_reduction> reductions;
  double step_time{0.0};
  double bubble_rate{0.0};
  double exposed_reduction{0.0};
  double reduction_time{0.0};
};

/**
@brief Simulates one step of `s` replicated over `dp.groups` data-parallel groups under `costs`,
with each stage's gradients all-reduced after its last W or BW (see the file's timing model).
With d = 1 and one model replica nothing is reduced and the step equals `simulate`'s.
@throws validation_error as `simulate`; argument_error from `dp.check(S)`.
**Complexity.** O(N + S·log S + S·R) for N ops, S stages, R replicas.
*/
template <cost_model Costs>
constexpr data_parallel_simulation simulate_data_parallel(const schedule& s, const Costs& costs, const data_parallel& dp,
                                                          simulate_options options = {}) {
  dp.check(s.num_stages());
  data_parallel_simulation out;
  out.pipeline = simulate(s, costs, options);
  const pipeline_shape& shape = s.shape();
  const auto p = static_cast<std::size_t>(shape.num_ranks);
  const auto stages = static_cast<std::size_t>(shape.num_stages());
  const timeline& events = out.pipeline.events;

  // Per rank: first start and last end of its compute; per stage: its last W/BW and its ranks.
  std::vector<double> compute_start(p, 0.0);
  std::vector<double> compute_end(p, 0.0);
  std::vector<bool> has_ops(p, false);
  double first_start = 0.0;
  bool any = false;
  out.reductions.resize(stages);
  for (std::size_t st = 0; st < stages; ++st) out.reductions[st].stage = static_cast<std::int32_t>(st);
  for (std::size_t r = 0; r < p; ++r) {
    const std::span<const op_timing> ops = events.ops(static_cast<std::int32_t>(r));
    if (ops.empty()) continue;
    has_ops[r] = true;
    compute_start[r] = ops.front().start;
    first_start = !any || ops.front().start < first_start ? ops.front().start : first_start;
    any = true;
    for (const op_timing& t : ops) {
      compute_end[r] = t.end > compute_end[r] ? t.end : compute_end[r];
      if (t.what.kind != op_kind::backward_weight && t.what.kind != op_kind::backward) continue;
      stage_reduction& red = out.reductions[static_cast<std::size_t>(t.what.stage)];
      red.ready = t.end > red.ready ? t.end : red.ready;
      const auto rank = static_cast<std::int32_t>(r);
      if (std::find(red.ranks.begin(), red.ranks.end(), rank) == red.ranks.end()) red.ranks.push_back(rank);
    }
  }

  // Reductions in the order they become ready; each waits for the links of all its ranks.
  std::vector<std::size_t> order(stages);
  for (std::size_t st = 0; st < stages; ++st) order[st] = st;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {  // constexpr, unlike stable_sort
    const double ra = out.reductions[a].ready, rb = out.reductions[b].ready;
    return ra < rb || (ra == rb && a < b);
  });
  std::vector<double> link_free(p, 0.0);
  std::vector<double> rank_end = compute_end;
  const std::int32_t replicas = s.num_replicas();
  const double span = out.pipeline.metrics.span;
  for (std::size_t st : order) {
    stage_reduction& red = out.reductions[st];
    std::sort(red.ranks.begin(), red.ranks.end());
    const double duration = ring_allreduce_time(dp.groups * replicas, dp.bytes_of(red.stage), dp.latency, dp.bandwidth);
    double start = red.ready;
    // Hidden up to the earliest end of the step, among its ranks, that the pipeline alone gives.
    double hidden = std::numeric_limits<double>::max();
    for (std::int32_t r : red.ranks) {
      const auto rank = static_cast<std::size_t>(r);
      start = link_free[rank] > start ? link_free[rank] : start;
      hidden = compute_start[rank] + span < hidden ? compute_start[rank] + span : hidden;
    }
    red.start = start;
    red.end = start + duration;
    for (std::int32_t r : red.ranks) {
      const auto rank = static_cast<std::size_t>(r);
      link_free[rank] = red.end;
      rank_end[rank] = red.end > rank_end[rank] ? red.end : rank_end[rank];
    }
    hidden = hidden > red.start ? hidden : red.start;
    red.exposed = red.end > hidden ? red.end - hidden : 0.0;
    out.reduction_time += duration;
  }

  // The step: as `simulate`'s, with each rank's end moved to the end of its reductions.
  for (std::size_t r = 0; r < p; ++r)
    if (has_ops[r] && rank_end[r] - compute_start[r] > out.step_time) out.step_time = rank_end[r] - compute_start[r];
  if constexpr (cost_model_with_optimizer<Costs>) {
    double barrier = first_start;
    for (std::size_t r = 0; r < p; ++r) barrier = rank_end[r] > barrier ? rank_end[r] : barrier;
    double step = 0.0;
    double last_end = first_start;
    const bool synchronised = p > 0 && costs.optimizer(0, shape).synchronised;
    for (std::size_t r = 0; r < p; ++r) {
      const optimizer_step opt = costs.optimizer(static_cast<std::int32_t>(r), shape);
      const double start = opt.synchronised ? barrier + opt.sync_latency : (has_ops[r] ? rank_end[r] : first_start);
      const double own_start = has_ops[r] ? compute_start[r] : start;
      step = start + opt.duration - own_start > step ? start + opt.duration - own_start : step;
      last_end = start + opt.duration > last_end ? start + opt.duration : last_end;
    }
    out.step_time = synchronised ? last_end - first_start : step;
  }
  double busy = 0.0;
  for (double b : out.pipeline.metrics.busy) busy += b;
  out.bubble_rate = out.step_time > 0.0 && p > 0 ? 1.0 - busy / (static_cast<double>(p) * out.step_time) : 0.0;
  out.exposed_reduction = out.step_time > out.pipeline.step_time ? out.step_time - out.pipeline.step_time : 0.0;
  return out;
}

}  // namespace stretto::sim
