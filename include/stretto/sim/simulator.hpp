#pragma once
/**
@file
@brief The discrete-event simulator: runs a schedule under a cost model (docs/timing-model.md, "The timing
model"; docs/schedules.md §0, which reproduces the Zero Bubble paper's Table 5).
*/

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "../core/dependencies.hpp"
#include "../core/errors.hpp"
#include "../core/schedule.hpp"
#include "../detail/config.hpp"
#include "../validate/validate.hpp"
#include "cost_model.hpp"
#include "timeline.hpp"

namespace stretto::sim {

/** @brief One point of a rank's memory curve: from `time` on, the rank holds `held`. */
struct memory_sample {
  double time{0.0};
  double held{0.0};

  friend constexpr bool operator==(const memory_sample&, const memory_sample&) = default;
};

/** @brief When one rank's optimizer step ran (time unit of the cost model). */
struct interval {
  double start{0.0};
  double end{0.0};

  friend constexpr bool operator==(const interval&, const interval&) = default;
};

/**
@brief What `simulate` returns.

- `events`: per rank, every op with its start and end, in execution order.
- `metrics`: span, bubble rate (idle / (p·span)) and bubble overhead (idle / busy, the
  Megatron/BFPP normalisation), busy time per rank (see `timeline_metrics`).
- `peak_memory[r]`: the most activation memory rank r holds at once, in the cost model's memory
  unit (M_B for `uniform_costs`), plus the buffers `simulate_options` asks for (none by default).
- `parameter_memory[r]`: the parameter memory rank r holds for the whole step (`parameter_memory`):
  M_θ summed over the (stage, replica) pairs placed on it; all 0 when the cost model gives no
  M_θ. Not part of `peak_memory`: the most rank r holds is `peak_memory[r] + parameter_memory[r]`.
- `memory[r]`: rank r's memory over time as a step function, starting with `{first start, 0}`.
  An op's memory delta takes effect when it starts if it allocates (F; B when M_W > M_B) and when it ends if it
  frees (B, W, BW), so the curve's maximum is `peak_memory[r]` (without the optional buffers). Empty unless
  `simulate_options::record_memory` is set.
- `optimizer[r]`: rank r's optimizer step; empty unless the cost model models one
  (`cost_model_with_optimizer`).
- `step_time`: the time one optimizer step takes.
  Without an optimizer model it equals `metrics.span`. With a synchronised optimizer it is from
  the earliest first start to the end of the last optimizer step, all ranks having waited for the
  all-reduce. With post-validation (not synchronised) each rank repeats its own ops and optimizer,
  so it is max over ranks of (end of its optimizer − start of its first op), the span of
  docs/schedules.md §0 item 5 extended by the optimizer.
*/
struct simulation {
  timeline events;
  timeline_metrics metrics;
  std::vector<double> peak_memory;
  std::vector<double> parameter_memory;
  std::vector<std::vector<memory_sample>> memory;
  std::vector<interval> optimizer;
  double step_time{0.0};
};

/**
@brief Options of `simulate`.

**Buffers in the peak** (all off by default, so the activation peak is unchanged). An executor
holds more than the activations of the memory model:
- `receive_lookahead` receive buffers of `receive_buffer_memory` each, posted ahead on every rank
  that receives from another rank (a rank of a one-rank pipeline receives nothing): a constant
  `receive_lookahead · receive_buffer_memory` added to that rank's peak;
- `backward_buffer_memory`, the gradient buffers a running B or BW holds from its start to its
  end (the incoming and outgoing gradients) on top of what its rank holds then (including a B's
  own allocation when M_W > M_B), freed when it ends.
Both in the cost model's memory unit. They enter `simulation::peak_memory` (and
`peak_memory(s, costs, options)`), not the curve `simulation::memory`, which shows the
activations of the memory model only.
*/
struct simulate_options {
  /// Fill `simulation::memory`, the curve over time (one sample per op: as large as the
  /// timeline again, so opt in when drawing it; `peak_memory` is always filled).
  bool record_memory{false};
  std::int32_t receive_lookahead{0};  ///< receive buffers posted ahead per receiving rank (0: off)
  double receive_buffer_memory{0.0};  ///< memory of one receive buffer (one message)
  double backward_buffer_memory{0.0};  ///< held while a B or BW runs (0: off)

  /// True when some buffer is added to the peak.
  constexpr bool adds_buffers() const noexcept {
    return (receive_lookahead > 0 && receive_buffer_memory > 0.0) || backward_buffer_memory > 0.0;
  }
};

/**
@brief Returns, per rank, the peak of activation memory held while it runs its list in order,
in the cost model's memory unit. It depends on the order only, not on times.
*/
template <cost_model Costs>
constexpr std::vector<double> peak_memory(const schedule& s, const Costs& costs) {
  std::vector<double> peak(static_cast<std::size_t>(s.num_ranks()), 0.0);
  for (std::int32_t r = 0; r < s.num_ranks(); ++r) {
    double held = 0.0;
    for (const op& o : s.ops(r)) {
      held += costs.memory_delta(o, s.shape());
      if (held > peak[static_cast<std::size_t>(r)]) peak[static_cast<std::size_t>(r)] = held;
    }
  }
  return peak;
}

/**
@brief Returns, per rank, the parameter memory it holds: the sum of M_θ
(`parameter_memory_of(costs, stage, shape)`) over the distinct (stage, replica) pairs placed on
the rank, for the replicas the schedule uses (`num_replicas()`). One replica: the rank's stages,
one full stage's M_θ per rank (v chunks of M_θ/v each); two replicas (Chimera, BitPipe,
DualPipe): twice that. In the cost model's memory unit; all 0 when it gives no M_θ.
**Complexity.** O(S·replicas) per rank.
*/
template <cost_model Costs>
constexpr std::vector<double> parameter_memory(const schedule& s, const Costs& costs) {
  std::vector<double> out(static_cast<std::size_t>(s.num_ranks()), 0.0);
  const std::int32_t replicas = s.num_replicas();
  for (std::int32_t stage = 0; stage < s.num_stages(); ++stage)
    for (std::int32_t replica = 0; replica < replicas; ++replica) {
      const std::int32_t rank = rank_of_stage(s.placement(), s.shape(), stage, replica);
      if (rank >= 0 && rank < s.num_ranks())
        out[static_cast<std::size_t>(rank)] += parameter_memory_of(costs, stage, s.shape());
    }
  return out;
}

/**
@brief The per-rank peak of `peak_memory(s, costs)` plus the buffers `options` adds (see
`simulate_options`): `receive_lookahead · receive_buffer_memory` on every rank with an input
from another rank, and `backward_buffer_memory` while each B or BW runs. Depends on the order only.
@throws argument_error when `receive_lookahead` is negative or a buffer memory is negative or
not finite.
*/
template <cost_model Costs>
constexpr std::vector<double> peak_memory(const schedule& s, const Costs& costs, const simulate_options& options) {
  if (options.receive_lookahead < 0 || !(options.receive_buffer_memory >= 0.0) ||
      !(options.backward_buffer_memory >= 0.0) ||
      options.receive_buffer_memory > std::numeric_limits<double>::max() ||
      options.backward_buffer_memory > std::numeric_limits<double>::max())
    throw argument_error("simulate: receive_lookahead must be >= 0 and the buffer memories finite numbers >= 0");
  std::vector<double> peak(static_cast<std::size_t>(s.num_ranks()), 0.0);
  const double transient = options.backward_buffer_memory;
  const double receives = static_cast<double>(options.receive_lookahead) * options.receive_buffer_memory;
  for (std::int32_t r = 0; r < s.num_ranks(); ++r) {
    double held = 0.0;
    double most = 0.0;
    bool receiving = false;
    for (const op& o : s.ops(r)) {
      const double delta = costs.memory_delta(o, s.shape());
      if (transient > 0.0 && produces_input_gradient(o.kind)) {
        const double running = held + (delta > 0.0 ? delta : 0.0) + transient;
        most = running > most ? running : most;
      }
      held += delta;
      most = held > most ? held : most;
      if (receives > 0.0 && !receiving)
        for (const dependency& d : dependencies_of(o, s.shape()))
          receiving = receiving || s.rank_of(d.stage, d.microbatch) != r;
    }
    peak[static_cast<std::size_t>(r)] = most + (receiving ? receives : 0.0);
  }
  return peak;
}

namespace detail {

/**
@brief Runs the ops of `lists` (anything with `ops(rank)` returning a span of ops and
`rank_of(stage, microbatch)`) under the timing model and writes each rank's intervals into
`out` (resized to p ranks). Does not validate.

Each rank runs its list in order; an op starts when its rank is free and every dependency is
ready. A rank that reaches an op whose input does not exist yet parks on that input and is
resumed when it is produced, so every op is visited once: O(N) for N ops. An overlapped F&B
pair (`op::overlapped` on its first op) starts when the rank is free and the inputs of both ops
are ready, takes `overlap_time(costs, first, second, shape)`, and both of its ops end together:
the two events share one interval.
@return false when some rank never finishes (a deadlock); `out` then holds what did run.
*/
template <class Lists, cost_model Costs>
STRETTO_FLATTEN constexpr bool run_timeline(const Lists& lists, const pipeline_shape& shape, const Costs& costs, timeline& out) {
  const auto p = static_cast<std::size_t>(shape.num_ranks);
  const auto stages = static_cast<std::size_t>(shape.num_stages());
  // Per (stage, microbatch) cell, microbatch-major so that an op's inputs, (s − 1, j) or
  // (s + 1, j), sit next to its own cell: the end time of F and of the input-gradient producer
  // (B or BW), −1 while not run, and the rank parked on each, −1 if none. Only a rank other than
  // the producer's can be parked on a cell.
  struct cell_state {
    double forward_end{-1.0}, gradient_end{-1.0};
    std::int32_t forward_waiter{-1}, gradient_waiter{-1};
  };
  std::vector<cell_state> cells(stages * static_cast<std::size_t>(shape.num_microbatches));
  auto cell_of = [stages](std::int32_t stage, std::int32_t microbatch) {
    return static_cast<std::size_t>(microbatch) * stages + static_cast<std::size_t>(stage);
  };
  std::vector<std::size_t> cursor(p, 0);
  std::vector<double> free_at(p, 0.0);
  std::vector<std::int32_t> runnable;
  runnable.reserve(p);
  {
    std::vector<std::size_t> capacity(p);
    for (std::size_t r = 0; r < p; ++r) capacity[r] = lists.ops(static_cast<std::int32_t>(r)).size();
    out.reset(capacity);
  }
  for (std::size_t r = p; r-- > 0;) runnable.push_back(static_cast<std::int32_t>(r));
  auto wake = [&runnable](std::int32_t& waiter) {
    if (waiter >= 0) runnable.push_back(waiter);
    waiter = -1;
  };
  // When the inputs of `x` are on rank r, or −1 after parking r on the first one missing.
  auto inputs_ready = [&](const op& x, std::int32_t r, double ready) -> double {
    for (const dependency& d : dependencies_of(x, shape)) {
      cell_state& c = cells[cell_of(d.stage, d.microbatch)];
      const bool is_forward = d.kind == dependency_kind::forward;
      const double end = is_forward ? c.forward_end : c.gradient_end;
      if (end < 0.0) {
        (is_forward ? c.forward_waiter : c.gradient_waiter) = r;
        return -1.0;
      }
      // The cost model is asked for a delay only between two ranks, as its contract says.
      const double arrival =
          lists.rank_of(d.stage, d.microbatch) != r ? end + costs.comm_delay(d.stage, x.stage, shape) : end;
      ready = arrival > ready ? arrival : ready;
    }
    return ready;
  };
  auto finish = [&](const op& x, double end) {
    cell_state& c = cells[cell_of(x.stage, x.microbatch)];
    if (x.kind == op_kind::forward) {
      c.forward_end = end;
      wake(c.forward_waiter);
    }
    if (produces_input_gradient(x.kind)) {
      c.gradient_end = end;
      wake(c.gradient_waiter);
    }
  };

  while (!runnable.empty()) {
    const std::int32_t r = runnable.back();
    runnable.pop_back();
    const auto rank = static_cast<std::size_t>(r);
    const std::span<const op> list = lists.ops(r);
    std::size_t c = cursor[rank];
    double rank_free = free_at[rank];
    while (c < list.size()) {
      const op& o = list[c];
      if (o.overlapped && c + 1 < list.size()) {
        // An F&B pair: wait for the inputs of both ops, then run them as one unit.
        const op& partner = list[c + 1];
        double ready = inputs_ready(o, r, rank_free);
        if (ready >= 0.0) ready = inputs_ready(partner, r, ready);
        if (ready < 0.0) break;
        const double end = ready + overlap_time(costs, o, partner, shape);
        out.push_back(r, {o, ready, end});
        out.push_back(r, {partner, ready, end});
        finish(o, end);
        finish(partner, end);
        rank_free = end;
        c += 2;
        continue;
      }
      const double ready = inputs_ready(o, r, rank_free);
      if (ready < 0.0) break;
      const double end = ready + costs.duration(o, shape);
      out.push_back(r, {o, ready, end});
      finish(o, end);
      rank_free = end;
      ++c;
    }
    cursor[rank] = c;
    free_at[rank] = rank_free;
  }
  for (std::size_t r = 0; r < p; ++r)
    if (cursor[r] < lists.ops(static_cast<std::int32_t>(r)).size()) return false;
  return true;
}

}  // namespace detail

/**
@brief Simulates one step of `s` under `costs`.

Timing model (docs/timing-model.md; docs/schedules.md §0): each rank runs its ops in order; an op starts when its
rank is free and all of its dependencies (`dependencies_of`) are ready; a dependency produced on
another rank is ready `costs.comm_delay(...)` after its producer ends, one on the same rank at
once. Communication overlaps compute and links never contend. When the cost model prices the
optimizer (`cost_model_with_optimizer`), each rank's optimizer step follows its last op, after an
all-reduce barrier over all ranks when it is synchronised (docs/schedules.md §7.8).

@throws validation_error if `s` is not valid, with `validate(s)`'s message: the structural rules
are checked first, deadlock freedom by the run itself (a rank that never finishes).
**Complexity.** O(N) for N ops, validation included.
*/
template <cost_model Costs>
constexpr simulation simulate(const schedule& s, const Costs& costs, simulate_options options = {}) {
  // The simulation itself finds a deadlock, so only the structural rules are checked first;
  // `validate_deadlock` then only runs to word the error.
  if (auto check = stretto::detail::validate_structure(s); !check) throw validation_error(check.message);
  const pipeline_shape& shape = s.shape();
  simulation out;
  bool finished = false;
  try {
    finished = detail::run_timeline(s, shape, costs, out.events);
  } catch (...) {
    // The cost model threw. On a deadlocked schedule report the deadlock, as validating first
    // would have; otherwise the cost model's error is the caller's to see.
    if (validation_result check = stretto::detail::validate_deadlock(s); !check) throw validation_error(check.message);
    throw;
  }
  if (!finished) {
    // The run and `validate_deadlock` follow the same rules, so the second names the stuck ranks.
    validation_result check = stretto::detail::validate_deadlock(s);
    throw validation_error(check ? std::string("invalid schedule [deadlock]: the simulation did not finish")
                                 : check.message);
  }
  out.metrics = measure(out.events);
  out.step_time = out.metrics.span;

  const auto p = static_cast<std::size_t>(shape.num_ranks);
  if (options.record_memory) {
    // One pass for the curve and the peak (the same sums, in the same order, as `peak_memory`).
    out.memory.resize(p);
    out.peak_memory.assign(p, 0.0);
    for (std::size_t r = 0; r < p; ++r) {
      const std::span<const op_timing> events = out.events.ops(static_cast<std::int32_t>(r));
      auto& curve = out.memory[r];
      curve.reserve(events.size() + 1);
      double held = 0.0;
      double peak = 0.0;
      curve.push_back({events.empty() ? 0.0 : events.front().start, 0.0});
      for (const op_timing& t : events) {
        const double delta = costs.memory_delta(t.what, shape);
        held += delta;
        peak = held > peak ? held : peak;
        curve.push_back({delta > 0.0 ? t.start : t.end, held});
      }
      out.peak_memory[r] = peak;
    }
  } else {
    out.peak_memory = peak_memory(s, costs);
  }
  if (options.adds_buffers()) out.peak_memory = peak_memory(s, costs, options);
  out.parameter_memory = parameter_memory(s, costs);

  if constexpr (cost_model_with_optimizer<Costs>) {
    out.optimizer.resize(p);
    double barrier = 0.0;
    double first_start = 0.0;
    bool any = false;
    for (std::size_t r = 0; r < p; ++r) {
      const std::span<const op_timing> events = out.events.ops(static_cast<std::int32_t>(r));
      if (events.empty()) continue;
      barrier = !any || events.back().end > barrier ? events.back().end : barrier;
      first_start = !any || events.front().start < first_start ? events.front().start : first_start;
      any = true;
    }
    double step = 0.0;
    double last_end = first_start;
    for (std::size_t r = 0; r < p; ++r) {
      const std::span<const op_timing> events = out.events.ops(static_cast<std::int32_t>(r));
      const optimizer_step opt = costs.optimizer(static_cast<std::int32_t>(r), shape);
      const double own_end = events.empty() ? first_start : events.back().end;
      const double start = opt.synchronised ? barrier + opt.sync_latency : own_end;
      out.optimizer[r] = {start, start + opt.duration};
      const double own_start = events.empty() ? start : events.front().start;
      step = start + opt.duration - own_start > step ? start + opt.duration - own_start : step;
      last_end = start + opt.duration > last_end ? start + opt.duration : last_end;
    }
    const bool synchronised = p > 0 && costs.optimizer(0, shape).synchronised;
    out.step_time = synchronised ? last_end - first_start : step;
  }
  return out;
}

}  // namespace stretto::sim
