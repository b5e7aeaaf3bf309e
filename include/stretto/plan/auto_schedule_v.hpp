#pragma once
/**
@file
@brief The V-shaped counterpart of the automatic scheduler: ZB-V planned from a cost model
under a memory limit (Qi et al., "Zero Bubble Pipeline Parallelism", §6; the official
`zbv.py`; schedules.md §7.7).
*/

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <limits>
#include <sstream>
#include <string>

#include "../core/errors.hpp"
#include "../core/schedule.hpp"
#include "../detail/text.hpp"
#include "../policies/list_scheduling.hpp"
#include "../sim/cost_model.hpp"
#include "../sim/simulator.hpp"

namespace stretto::plan {

using sim::cost_model;
using sim::simulate;
using sim::simulation;

/**
@brief Plans a V-shaped zero-bubble schedule for `shape` under `costs` with at most
`memory_limit` of activations per rank.

**Shape.** V-shape placement, v = 2 (stage s < p on rank s, stage s ≥ p on rank 2p−1−s); B/W
split. Each rank greedily starts the ready op of highest priority, a forward only while its
activations stay within `memory_limit`, with the op times of `costs` (converted to integer
units of 1/1000 of the longest op, as the Zero Bubble code plans in integer microseconds) and
its message delay. Three priority orders are tried, as the official heuristic tries its
switches: (B of chunk C, F of C, B of A, F of A, W), (B of C, B of A, F of C, F of A, W) and
(B of C, F of C, B of A, W, F of A); the one whose simulation under `costs` has the shortest
span is returned (ties: the lower peak memory).

**Invariants.** At equal chunk times with no message delay and `memory_limit` = p·M_B it finds
ZB-V's zero-bubble schedule (span 6m chunk units for m ≥ 2p − 1); every rank's peak stays
within `memory_limit`.

**Units.** `memory_limit` in the cost model's memory unit (M_B per full stage, so p·M_B is
1F1B's peak). Planned with the op times of stage 0 (`costs.duration`); the plan is then
simulated, and the orders compared, with every stage's own times. Every stage must have the same
activation memory (F's and W's `memory_delta`), since the plan keeps the limit by that size.

@throws shape_error unless v = 2 and p, m ≥ 1; argument_error when `memory_limit` is below one
microbatch's activations on a rank (both chunks' F), when the stages' activation memories
differ, or when an op time or the message delay is negative.
*/
template <cost_model Costs>
schedule auto_schedule_v(const pipeline_shape& shape, const Costs& costs, double memory_limit) {
  using stretto::detail::cat;
  if (shape.num_ranks < 1 || shape.num_microbatches < 1 || shape.num_chunks != 2)
    throw shape_error(cat("auto-v: plans the V-shaped placement with 2 chunks per rank and needs p, m >= 1 (got p = ",
                          shape.num_ranks, ", m = ", shape.num_microbatches, ", chunks = ", shape.num_chunks, ")"));
  const double f_memory = costs.memory_delta(op{op_kind::forward, 0, 0}, shape);
  const double w_memory = -costs.memory_delta(op{op_kind::backward_weight, 0, 0}, shape);
  // The list scheduler accounts memory with one F size and one W size for every chunk: refuse
  // per-stage sizes rather than return a plan that breaks the limit.
  auto differs = [](double x, double reference) {
    return std::abs(x - reference) > 1e-12 * std::max(1.0, std::abs(reference));
  };
  for (std::int32_t s = 1; s < shape.num_stages(); ++s) {
    const double f = costs.memory_delta(op{op_kind::forward, s, 0}, shape);
    const double w = -costs.memory_delta(op{op_kind::backward_weight, s, 0}, shape);
    if (differs(f, f_memory) || differs(w, w_memory)) {
      std::ostringstream text;
      text << "auto-v: plans with the same activation memory on every stage, but stage " << s << "'s F holds " << f
           << " and its W frees " << w << " against stage 0's " << f_memory << " and " << w_memory
           << "; use auto, which plans per-stage memory (one stage per rank)";
      throw argument_error(text.str());
    }
  }
  if (!(memory_limit >= 2.0 * f_memory)) {
    std::ostringstream text;
    text << "auto-v: the memory limit " << memory_limit
         << " is below one microbatch's activations on a rank (its two chunks' F: " << 2.0 * f_memory
         << "); give at least that";
    throw argument_error(text.str());
  }
  const double t_f = costs.duration(op{op_kind::forward, 0, 0}, shape);
  const double t_b = costs.duration(op{op_kind::backward_input, 0, 0}, shape);
  const double t_w = costs.duration(op{op_kind::backward_weight, 0, 0}, shape);
  const double t_comm = costs.comm_delay(shape.num_ranks - 1, shape.num_ranks, shape);
  if (!(t_f >= 0.0 && t_b >= 0.0 && t_w >= 0.0 && t_comm >= 0.0)) {
    std::ostringstream text;
    text << "auto-v: op times and the message delay must be >= 0 (got F " << t_f << ", B " << t_b << ", W " << t_w
         << ", comm " << t_comm << ")";
    throw argument_error(text.str());
  }
  const double longest = std::max(t_f, std::max(t_b, t_w));
  const double unit = longest > 0.0 ? longest / 1000.0 : 1.0;
  auto ticks = [unit](double t) { return static_cast<std::int64_t>(std::llround(t / unit)); };
  const std::int32_t p = shape.num_ranks;
  policies::detail::unit_costs units{ticks(t_f),
                                     ticks(t_b),
                                     ticks(t_w),
                                     ticks(t_comm),
                                     f_memory,
                                     w_memory};
  // Priority classes of (B_C, F_C, B_A, F_A, W) in each order tried; lower runs first.
  constexpr std::int64_t orders[3][5] = {{0, 1, 2, 3, 4}, {0, 2, 1, 3, 4}, {0, 1, 2, 4, 3}};
  schedule best;
  double best_span = std::numeric_limits<double>::infinity(), best_peak = 0.0;
  for (const bool reserve : {false, true})
  for (const auto& order : orders) {
    units.reserve_second_half = reserve;
    schedule candidate(shape, placement_kind::v_shape);
    try {
      policies::detail::list_schedule(candidate, true, units, memory_limit, [&](const policies::detail::candidate& c) {
        const bool second_half = c.what.stage >= p;
        std::int64_t cls = order[4];
        if (c.what.kind == op_kind::backward_input) cls = second_half ? order[0] : order[2];
        if (c.what.kind == op_kind::forward) cls = second_half ? order[1] : order[3];
        return cls * 100000000 + c.what.microbatch;
      });
    } catch (const std::logic_error&) {
      continue;  // this order cannot finish under the limit; another may
    }
    const simulation result = simulate(candidate, costs);
    double peak = 0.0;
    for (double x : result.peak_memory) peak = x > peak ? x : peak;
    if (peak > memory_limit * (1.0 + 1e-9)) continue;  // never return a plan over the limit
    if (result.metrics.span < best_span || (result.metrics.span == best_span && peak < best_peak)) {
      best = candidate;
      best_span = result.metrics.span;
      best_peak = peak;
    }
  }
  if (best_span == std::numeric_limits<double>::infinity())
    throw argument_error(cat("auto-v: no priority order finishes within the memory limit for p = ", p,
                             ", m = ", shape.num_microbatches, " (forwards wait for memory that only later "
                             "backwards free); raise the limit, e.g. to 2p·M_B"));
  return best;
}

}  // namespace stretto::plan
