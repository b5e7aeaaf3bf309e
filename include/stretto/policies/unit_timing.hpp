#pragma once
/**
@file
@brief The small timing helper that policy generators use when a construction is defined by
start times (Chimera's merge of two directions, the V-shaped blocks of V-Half and V-Min): an
as-soon-as-possible run of per-rank orders at integer op times. It sits below the simulator
(`stretto::sim`), which the policies never include.
*/

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "../core/dependencies.hpp"
#include "../core/op.hpp"
#include "../core/schedule.hpp"

namespace stretto::policies::detail {

/** Integer op times for `unit_start_times`; a fused BW takes `backward + weight`. */
struct unit_times {
  std::int64_t forward{1};
  std::int64_t backward{1};  ///< B (input gradient)
  std::int64_t weight{1};    ///< W
  std::int64_t comm{0};      ///< added to every dependency between two ranks
};

/**
@brief Returns every op's start time when each rank of `s` runs its list in order, an op
starting as soon as the rank is free and its dependencies (`dependencies_of`) have ended (plus
`times.comm` across ranks): the event model of the simulator, at integer times.

**Shape.** `result[r][i]` is the start of `s.ops(r)[i]`. Overlapped F&B pairs are timed as two
ops one after the other.

**Complexity.** O(N·p) for N ops in the worst case (each sweep over the ranks advances at
least one op); fine for the unit-sized schedules generators time.

@throws std::logic_error when no rank can advance (the orders deadlock).
*/
constexpr std::vector<std::vector<std::int64_t>> unit_start_times(const schedule& s, unit_times times) {
  const std::int32_t p = s.num_ranks(), m = s.num_microbatches(), stages = s.num_stages();
  const auto cells = static_cast<std::size_t>(stages) * static_cast<std::size_t>(m);
  // End of F(stage, mb) and of its input gradient (B or BW); -1 while not run.
  std::vector<std::int64_t> end_f(cells, -1), end_b(cells, -1);
  auto cell = [m](std::int32_t stage, std::int32_t mb) {
    return static_cast<std::size_t>(stage) * static_cast<std::size_t>(m) + static_cast<std::size_t>(mb);
  };
  std::vector<std::vector<std::int64_t>> start(static_cast<std::size_t>(p));
  std::vector<std::size_t> next(static_cast<std::size_t>(p), 0);
  std::vector<std::int64_t> free_at(static_cast<std::size_t>(p), 0);
  std::size_t remaining = s.num_ops();
  for (std::int32_t r = 0; r < p; ++r) start[static_cast<std::size_t>(r)].resize(s.ops(r).size());
  while (remaining > 0) {
    bool advanced = false;
    for (std::int32_t r = 0; r < p; ++r) {
      const auto ru = static_cast<std::size_t>(r);
      const auto list = s.ops(r);
      while (next[ru] < list.size()) {
        const op& o = list[next[ru]];
        std::int64_t ready = free_at[ru];
        bool ok = true;
        for (const dependency& d : dependencies_of(o, s.shape())) {
          const std::int64_t e = d.kind == dependency_kind::forward ? end_f[cell(d.stage, d.microbatch)]
                                                                    : end_b[cell(d.stage, d.microbatch)];
          if (e < 0) {
            ok = false;
            break;
          }
          const std::int64_t arrives = s.rank_of(d.stage, d.microbatch) == r ? e : e + times.comm;
          ready = arrives > ready ? arrives : ready;
        }
        if (!ok) break;
        std::int64_t duration = times.forward;
        if (o.kind == op_kind::backward_input) duration = times.backward;
        if (o.kind == op_kind::backward_weight) duration = times.weight;
        if (o.kind == op_kind::backward) duration = times.backward + times.weight;
        start[ru][next[ru]] = ready;
        free_at[ru] = ready + duration;
        if (o.kind == op_kind::forward) end_f[cell(o.stage, o.microbatch)] = ready + duration;
        if (produces_input_gradient(o.kind)) end_b[cell(o.stage, o.microbatch)] = ready + duration;
        ++next[ru];
        --remaining;
        advanced = true;
      }
    }
    if (!advanced) throw std::logic_error("unit_start_times: the per-rank orders deadlock");
  }
  return start;
}

}  // namespace stretto::policies::detail
