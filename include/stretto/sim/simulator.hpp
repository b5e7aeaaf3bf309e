#pragma once
/**
@file
@brief The discrete-event simulator: runs a schedule under a cost model (DESIGN.md, "The timing
model"; schedules.md §0, which reproduces the Zero Bubble paper's Table 5).
*/

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/dependencies.hpp"
#include "../core/errors.hpp"
#include "../core/schedule.hpp"
#include "../graph/validate.hpp"
#include "cost_model.hpp"
#include "timeline.hpp"

namespace stretto::sim {

/** @brief What `simulate` returns: the timeline, its metrics, and the peak memory per rank. */
struct simulation {
  timeline events;
  timeline_metrics metrics;
  std::vector<double> peak_memory;  ///< per rank, units of M_B
};

/**
@brief Returns, per rank, the peak of activation memory held while it runs its list in order,
in units of M_B (the memory model of `cost_model`). It depends on the order only, not on times.
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
@brief Simulates one step of `s` under `costs`.

Timing model: each rank runs its ops in order; an op starts when its rank is free and all of
its dependencies (`dependencies_of`) are ready; a dependency produced on another rank is ready
`costs.comm_delay(...)` after its producer ends, one on the same rank at once. Communication
overlaps compute and links never contend.

@throws validation_error if `s` is not valid (see `validate`).
**Complexity.** O(N·p) for N ops.
*/
template <cost_model Costs>
constexpr simulation simulate(const schedule& s, const Costs& costs) {
  if (auto check = validate(s); !check) throw validation_error(check.message);
  const pipeline_shape& shape = s.shape();
  const auto m = static_cast<std::size_t>(shape.num_microbatches);
  const std::size_t cells = static_cast<std::size_t>(shape.num_stages()) * m;
  std::vector<double> forward_end(cells, -1.0), gradient_end(cells, -1.0);
  auto index = [m](std::int32_t stage, std::int32_t j) {
    return static_cast<std::size_t>(stage) * m + static_cast<std::size_t>(j);
  };

  simulation out;
  out.events.ranks.resize(static_cast<std::size_t>(shape.num_ranks));
  std::vector<std::size_t> cursor(static_cast<std::size_t>(shape.num_ranks), 0);
  std::vector<double> free_at(static_cast<std::size_t>(shape.num_ranks), 0.0);
  std::size_t remaining = s.num_ops();
  while (remaining > 0) {
    // validate() has ruled out deadlock, so every sweep makes progress.
    for (std::int32_t r = 0; r < shape.num_ranks; ++r) {
      const auto list = s.ops(r);
      auto& c = cursor[static_cast<std::size_t>(r)];
      auto& rank_free = free_at[static_cast<std::size_t>(r)];
      while (c < list.size()) {
        const op& o = list[c];
        double ready = rank_free;
        bool blocked = false;
        for (const dependency& d : dependencies_of(o, shape)) {
          const double end = d.kind == dependency_kind::forward ? forward_end[index(d.stage, d.microbatch)]
                                                                : gradient_end[index(d.stage, d.microbatch)];
          if (end < 0.0) {
            blocked = true;
            break;
          }
          const double delay = s.rank_of(d.stage, d.microbatch) != r ? costs.comm_delay(d.stage, o.stage, shape) : 0.0;
          ready = end + delay > ready ? end + delay : ready;
        }
        if (blocked) break;
        const double end = ready + costs.duration(o, shape);
        out.events.ranks[static_cast<std::size_t>(r)].push_back({o, ready, end});
        if (o.kind == op_kind::forward) forward_end[index(o.stage, o.microbatch)] = end;
        if (produces_input_gradient(o.kind)) gradient_end[index(o.stage, o.microbatch)] = end;
        rank_free = end;
        ++c;
        --remaining;
      }
    }
  }
  out.metrics = measure(out.events);
  out.peak_memory = peak_memory(s, costs);
  return out;
}

}  // namespace stretto::sim
