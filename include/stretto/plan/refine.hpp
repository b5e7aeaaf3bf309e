#pragma once
/**
@file
@brief An improvement pass for schedules with a split backward: move W ops within their rank's
list, within a memory limit, whenever that shortens the step (Zero Bubble, Qi et al. 2024, §6:
"W's can be shifted ... within the memory cap"; schedules.md §7.7).
*/

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "../core/op.hpp"
#include "../core/schedule.hpp"
#include "../sim/cost_model.hpp"
#include "../sim/simulator.hpp"
#include "../sim/timeline.hpp"

namespace stretto::plan {

using sim::cost_model;
using sim::timeline;
using sim::op_timing;

/** @brief Options of `refine_weights`. */
struct refine_options {
  /// Passes over every W of every rank; the pass stops earlier when one finds no improving move.
  std::int32_t max_rounds{16};
  /// Bound on the simulations tried in all (each is O(N) for N ops).
  std::int64_t max_evaluations{200'000};
  /// Bound on the ops simulated in all (evaluations × N): about 3 s at the simulator's 15 M ops/s,
  /// so that large shapes (p·m in the ten thousands) stay interactive.
  std::int64_t max_simulated_ops{50'000'000};
};

/** @brief The outcome of `refine_weights`. */
struct refine_result {
  schedule plan;
  double span{0.0};           ///< span of `plan` (never more than that of the input)
  std::int32_t moves{0};      ///< W moves applied
  std::int64_t evaluations{0};  ///< simulations run
};

namespace detail {

/** @brief Per-rank op lists that can be edited, with the rank mapping of a base schedule. */
struct editable_lists {
  const schedule* base{nullptr};
  std::vector<std::vector<op>> lists;

  std::span<const op> ops(std::int32_t rank) const { return lists[static_cast<std::size_t>(rank)]; }
  std::int32_t rank_of(std::int32_t stage, std::int32_t microbatch) const { return base->rank_of(stage, microbatch); }
};

/** @brief The objective of the refinement: the span first, then the sum of the ranks' spans. */
struct refine_score {
  double span{std::numeric_limits<double>::infinity()};
  double total{std::numeric_limits<double>::infinity()};
};

inline refine_score score_of(const timeline& t) {
  refine_score out{0.0, 0.0};
  for (std::int32_t r = 0; r < t.num_ranks(); ++r) {
    const std::span<const op_timing> events = t.ops(r);
    if (events.empty()) continue;
    const double rank_span = events.back().end - events.front().start;
    out.span = rank_span > out.span ? rank_span : out.span;
    out.total += rank_span;
  }
  return out;
}

}  // namespace detail

/**
@brief Moves W ops of `s` to shorten its span without breaking `memory_limit`.

For every W (rank by rank, in list order) it tries as new positions, after the W's own B and
without passing another W of its stage (W's keep microbatch order, as the paper's program
assumes, schedules.md §7.6): the
start of each idle gap before it, the start of each idle gap after it, and right after the op
that follows it. A move is kept when the simulated span does not grow and either the span or the
sum of the ranks' spans shrinks (by more than 1e-9 relative), and every rank's peak memory stays
within `memory_limit` (moving a W earlier never raises memory; later moves are checked). Passes
repeat until one keeps no move, or `options` bounds (evaluations, simulated ops) are reached.

**Guarantee.** The returned span is never larger than that of `s`, and the returned schedule is
valid whenever `s` is. Deterministic.
@param memory_limit in the cost model's memory unit; infinity for no limit. A schedule that
already exceeds it is only refined with earlier moves.
@throws validation_error if `s` is not valid.
*/
template <cost_model Costs>
refine_result refine_weights(const schedule& s, const Costs& costs, double memory_limit,
                             const refine_options& options = {}) {
  if (auto check = validate(s); !check) throw validation_error(check.message);
  const pipeline_shape& shape = s.shape();
  const std::int32_t p = shape.num_ranks;
  detail::editable_lists lists{&s, {}};
  lists.lists.resize(static_cast<std::size_t>(p));
  for (std::int32_t r = 0; r < p; ++r) lists.lists[static_cast<std::size_t>(r)].assign(s.ops(r).begin(), s.ops(r).end());

  timeline current;
  sim::detail::run_timeline(lists, shape, costs, current);
  detail::refine_score best = detail::score_of(current);
  const double span_eps = 1e-9 * (best.span > 0.0 ? best.span : 1.0);
  const double memory_eps = 1e-9 * (memory_limit > 0.0 && memory_limit < std::numeric_limits<double>::infinity()
                                        ? memory_limit
                                        : 1.0);
  refine_result out;
  timeline trial;
  const auto ops_per_evaluation = static_cast<std::int64_t>(s.num_ops());
  auto exhausted = [&] {
    return out.evaluations >= options.max_evaluations ||
           out.evaluations * ops_per_evaluation >= options.max_simulated_ops;
  };

  auto peak_of = [&](const std::vector<op>& list) {
    double held = 0.0, peak = 0.0;
    for (const op& o : list) {
      held += costs.memory_delta(o, shape);
      peak = held > peak ? held : peak;
    }
    return peak;
  };

  for (std::int32_t round = 0; round < options.max_rounds; ++round) {
    bool improved = false;
    for (std::int32_t r = 0; r < p; ++r) {
      auto& list = lists.lists[static_cast<std::size_t>(r)];
      for (std::size_t q = 0; q < list.size(); ++q) {
        if (list[q].kind != op_kind::backward_weight) continue;
        if (exhausted()) break;
        const std::span<const op_timing> events = current.ops(r);
        // The W's own B, and the W's of the same stage (which keep microbatch order), bound
        // where it may go.
        const op w = list[q];
        std::size_t first = 0;
        for (std::size_t k = q; k-- > 0;)
          if (list[k].stage == w.stage && ((list[k].kind == op_kind::backward_input && list[k].microbatch == w.microbatch) ||
                                           (list[k].kind == op_kind::backward_weight && list[k].microbatch < w.microbatch))) {
            first = k + 1;
            break;
          }
        std::size_t last = list.size();  // one past the last position the W may take, in the list without it
        for (std::size_t k = q + 1; k < list.size(); ++k)
          if (list[k].stage == w.stage && list[k].kind == op_kind::backward_weight && list[k].microbatch > w.microbatch) {
            last = k;
            break;
          }
        auto gap_before = [&](std::size_t k) {
          return k > 0 && k < events.size() && events[k].start > events[k - 1].end + span_eps;
        };
        // Candidate insert positions, as indices into the list without the W.
        std::vector<std::size_t> targets;
        for (std::size_t k = first; k < q; ++k)
          if (gap_before(k)) targets.push_back(k);
        if (q + 1 < last) targets.push_back(q + 1);
        for (std::size_t k = q + 2; k < last; ++k)
          if (gap_before(k)) targets.push_back(k - 1);

        for (const std::size_t target : targets) {
          if (exhausted()) break;
          std::vector<op> edited = list;
          edited.erase(edited.begin() + static_cast<std::ptrdiff_t>(q));
          edited.insert(edited.begin() + static_cast<std::ptrdiff_t>(target), w);
          if (target > q && peak_of(edited) > memory_limit + memory_eps) continue;
          std::swap(list, edited);
          ++out.evaluations;
          const bool finished = sim::detail::run_timeline(lists, shape, costs, trial);
          const detail::refine_score score = finished ? detail::score_of(trial) : detail::refine_score{};
          const bool better = finished && score.span <= best.span &&
                              (score.span < best.span - span_eps || score.total < best.total - span_eps);
          if (better) {
            best = score;
            std::swap(current, trial);
            ++out.moves;
            improved = true;
            break;  // the list changed: continue with the op now at q
          }
          std::swap(list, edited);  // undo
        }
      }
    }
    if (!improved || exhausted()) break;
  }

  schedule plan(shape, s.placement());
  for (std::int32_t j = 0; j < shape.num_microbatches; ++j) plan.set_replica(j, s.replica_of(j));
  for (std::int32_t r = 0; r < p; ++r)
    for (const op& o : lists.lists[static_cast<std::size_t>(r)]) plan.push_back(r, o);
  out.plan = std::move(plan);
  out.span = best.span;
  return out;
}

}  // namespace stretto::plan
