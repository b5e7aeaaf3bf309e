#pragma once
/**
@file
@brief A timeline (when each op ran on each rank) and the metrics computed from it. The
simulator produces one; the executors record one from a real run; both use the same metrics
and exporters.
*/

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/op.hpp"

namespace stretto::sim {

/** @brief One op's interval on its rank. Times in the unit of the cost model (or seconds when measured). */
struct op_timing {
  op what{};
  double start{0.0};
  double end{0.0};
};

/** @brief Per rank, the intervals of its ops in execution order. */
struct timeline {
  std::vector<std::vector<op_timing>> ranks;

  constexpr std::int32_t num_ranks() const noexcept { return static_cast<std::int32_t>(ranks.size()); }
};

/**
@brief Metrics of a timeline (schedules.md §0, items 5–7).

- `span`: the longest rank's first start to last end (Zero Bubble §5.3, objective (3) of App. G).
- `busy[r]`: the sum of rank r's op durations; an overlapped F&B pair (`op::overlapped`) whose two
  events share one interval, as the simulator records it, counts once.
- `bubble_rate`: (p·span − Σ_r busy[r]) / (p·span), the idle fraction of the pipeline. With equal
  work per rank this is the Zero Bubble paper's (span − m·(T_F+T_B+T_W)) / span.
- `bubble_overhead`: idle time over ideal time, (p·span − Σ busy) / Σ busy: the Megatron/BFPP
  normalisation, (p−1)/m for GPipe and 1F1B.
*/
struct timeline_metrics {
  double span{0.0};
  double bubble_rate{0.0};
  double bubble_overhead{0.0};
  std::vector<double> busy;
};

/** @brief Computes `timeline_metrics` of `t`; all zero for an empty timeline. */
constexpr timeline_metrics measure(const timeline& t) {
  timeline_metrics out;
  out.busy.assign(t.ranks.size(), 0.0);
  double total_busy = 0.0;
  for (std::size_t r = 0; r < t.ranks.size(); ++r) {
    const auto& ops = t.ranks[r];
    if (ops.empty()) continue;
    double first = ops.front().start;
    double last = ops.front().end;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const auto& o = ops[i];
      // The two ops of a simulated F&B pair share one interval: count it once.
      const bool shared = o.what.overlapped && i + 1 < ops.size() && ops[i + 1].start == o.start &&
                          ops[i + 1].end == o.end;
      if (!shared) out.busy[r] += o.end - o.start;
      first = o.start < first ? o.start : first;
      last = o.end > last ? o.end : last;
    }
    out.span = last - first > out.span ? last - first : out.span;
    total_busy += out.busy[r];
  }
  const double capacity = out.span * static_cast<double>(t.ranks.size());
  if (capacity > 0.0) out.bubble_rate = (capacity - total_busy) / capacity;
  if (total_busy > 0.0) out.bubble_overhead = (capacity - total_busy) / total_busy;
  return out;
}

}  // namespace stretto::sim
