#pragma once
/**
@file
@brief The V-shaped counterpart of the automatic scheduler: ZB-V planned from a cost model
under a memory limit (Qi et al., "Zero Bubble Pipeline Parallelism", §6; the official V planner,
`policies::plan_zb_v`), improved by list-scheduled alternatives and a local search, never worse
than the official planner on the same costs. docs/v-schedules.md describes the search.
*/

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../core/schedule.hpp"
#include "../detail/text.hpp"
#include "../policies/controllable_memory.hpp"
#include "../policies/list_scheduling.hpp"
#include "../policies/zb_v.hpp"
#include "../sim/cost_model.hpp"
#include "../sim/simulator.hpp"
#include "../validate/validate.hpp"
#include "deadline.hpp"
#include "refine.hpp"

namespace stretto::plan {

using sim::cost_model;
using sim::simulate;
using sim::simulation;

/** @brief Options of `auto_schedule_v`. */
struct auto_v_options {
  /// Further V-shaped orders of the same shape to consider beside the built-in candidates (for
  /// example other V schedules); each is simulated under the costs and kept only if valid and
  /// within the memory limit.
  std::vector<schedule> extra_candidates;
  /// Run the local search (planner variations, then W moves) after the candidates.
  bool local_search{true};
  /// Bound on the work of the local search, in ops planned or simulated (half for the planner
  /// variations, the rest for W moves). Negative: automatic, 8·10^6 for shapes of at most 4096
  /// ops (a fraction of a second), else 10^6 (p = 32, m = 96: one planner run and about 30
  /// simulations). The candidates themselves are always planned.
  std::int64_t search_budget{-1};
  /// When to give up (default: never): checked between candidate generators, planner runs and
  /// simulated trials of the local search; past it `auto_schedule_v` throws
  /// `stretto::deadline_exceeded`. One run of the official planner is not interrupted.
  deadline stop{};
};

/**
@brief The integer inputs that the V planner gets from a cost model, and how they map back.

`costs` are chunk times in ticks: exactly the chunk times scaled by the smallest factor in
{1, 2, ..., 64, 100, 1000, 10^4, 10^5, 10^6} that makes all of them integers (`exact`), or else
rounded at 10^6 ticks for the longest op. `cap` is the memory limit in the planner's memory units
(a chunk's F holds 2, its B and W free 1 each when the W keeps half of the activations, as the
official code counts; else 1000 per F and the B and W rounded).
*/
struct v_planner_inputs {
  policies::v_plan_costs costs;
  std::int64_t cap{0};
  bool exact{false};
};

namespace detail {

/** @brief Converts `costs` (stage 0's times, the message delay) and `memory_limit` to planner units. */
template <cost_model Costs>
v_planner_inputs v_inputs_of(const pipeline_shape& shape, const Costs& costs, double memory_limit) {
  const double t[4] = {costs.duration(op{op_kind::forward, 0, 0}, shape),
                       costs.duration(op{op_kind::backward_input, 0, 0}, shape),
                       costs.duration(op{op_kind::backward_weight, 0, 0}, shape),
                       costs.comm_delay(shape.num_ranks - 1, shape.num_ranks, shape)};
  const double longest = std::max({t[0], t[1], t[2], t[3]});
  v_planner_inputs out;
  std::int64_t ticks[4] = {0, 0, 0, 0};
  auto integral_at = [&](double scale) {
    if (longest * scale > 1e15) return false;
    for (int k = 0; k < 4; ++k) {
      const double x = t[k] * scale;
      if (std::abs(x - std::round(x)) > 1e-9 * std::max(1.0, longest * scale)) return false;
      ticks[k] = static_cast<std::int64_t>(std::llround(x));
    }
    return true;
  };
  std::vector<double> scales;
  for (int s = 1; s <= 64; ++s) scales.push_back(s);
  for (double s : {100.0, 1e3, 1e4, 1e5, 1e6}) scales.push_back(s);
  for (double s : scales)
    if (integral_at(s)) {
      out.exact = true;
      break;
    }
  if (!out.exact) {
    const double scale = longest > 0.0 ? 1e6 / longest : 1.0;
    for (int k = 0; k < 4; ++k) ticks[k] = static_cast<std::int64_t>(std::llround(t[k] * scale));
  }
  out.costs.forward = ticks[0], out.costs.backward = ticks[1], out.costs.weight = ticks[2], out.costs.comm = ticks[3];
  const double f = costs.memory_delta(op{op_kind::forward, 0, 0}, shape);
  const double b = costs.memory_delta(op{op_kind::backward_input, 0, 0}, shape);
  const double w = costs.memory_delta(op{op_kind::backward_weight, 0, 0}, shape);
  const bool halves = std::abs(b + f / 2) <= 1e-12 * f && std::abs(w + f / 2) <= 1e-12 * f;
  const double per_f = halves ? 2.0 : 1000.0;
  out.costs.memory_forward = static_cast<std::int64_t>(per_f);
  out.costs.memory_backward = halves ? -1 : static_cast<std::int64_t>(std::llround(per_f * b / f));
  out.costs.memory_weight = halves ? -1 : static_cast<std::int64_t>(std::llround(per_f * w / f));
  out.cap = static_cast<std::int64_t>(std::floor(memory_limit / f * per_f + 1e-9));
  return out;
}

/** @brief The best schedule found so far by simulated span (ties: lower peak memory), and a
few runners-up of distinct spans that the local search also starts from. */
template <cost_model Costs>
struct v_best {
  const Costs* costs;
  double memory_limit;
  schedule plan;
  double span{std::numeric_limits<double>::infinity()};
  double peak{0.0};
  std::int64_t work{0};  // ops simulated
  std::vector<std::pair<double, schedule>> pool{};  // the best spans seen, distinct, shortest first
  std::size_t pool_size{4};

  /// Simulates `s` and keeps it if valid (checked with `validate` when `check`; the planners'
  /// orders are valid by construction), within the limit and better. Returns whether it became the best.
  bool offer(const schedule& s, bool check = false) {
    if (s.shape().num_ranks < 1 || (check && !validate(s).ok())) return false;
    const simulation result = simulate(s, *costs);
    work += static_cast<std::int64_t>(s.num_ops());
    double top = 0.0;
    for (double x : result.peak_memory) top = x > top ? x : top;
    if (top > memory_limit * (1.0 + 1e-9)) return false;  // never return a plan over the limit
    const double t = result.metrics.span;
    const bool seen = std::any_of(pool.begin(), pool.end(), [t](const auto& e) { return e.first == t; });
    if (!seen && (pool.size() < pool_size || t < pool.back().first)) {
      pool.emplace_back(t, s);
      std::sort(pool.begin(), pool.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      if (pool.size() > pool_size) pool.pop_back();
    }
    if (t < span || (t == span && top < peak)) {
      plan = s, span = t, peak = top;
      return true;
    }
    return false;
  }
};

/** @brief The list-scheduled orders of earlier versions: a ready op by a fixed priority of lanes. */
template <cost_model Costs>
void list_scheduled_v(const pipeline_shape& shape, const v_planner_inputs& in, double memory_limit,
                      const Costs& costs, const std::function<void(const schedule&)>& offer) {
  const std::int32_t p = shape.num_ranks;
  const double f_memory = costs.memory_delta(op{op_kind::forward, 0, 0}, shape);
  const double w_memory = -costs.memory_delta(op{op_kind::backward_weight, 0, 0}, shape);
  policies::detail::unit_costs units{in.costs.forward, in.costs.backward, in.costs.weight, in.costs.comm, f_memory,
                                     w_memory};
  // Priority classes of (B_C, F_C, B_A, F_A, W) in each order tried; lower runs first.
  constexpr std::int64_t orders[3][5] = {{0, 1, 2, 3, 4}, {0, 2, 1, 3, 4}, {0, 1, 2, 4, 3}};
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
      offer(candidate);
    }
}

/** @brief The official planner's four knob settings (each refined) at `c` under `cap`. */
inline void official_v(const pipeline_shape& shape, const policies::v_plan_costs& c, std::int64_t cap,
                       const std::function<void(const schedule&)>& offer) {
  for (const bool fill_b : {true, false})
    for (const bool fill_f : {true, false}) {
      const auto r = policies::plan_zb_v_knobs(shape, c, cap, fill_f, fill_b, false);
      if (r.ok) offer(r.plan);
    }
}

/** @brief Per-rank op lists that can be edited, with the rank mapping of a base schedule. */
struct v_edit_lists {
  const schedule* base{nullptr};
  std::vector<std::vector<op>> lists;

  std::span<const op> ops(std::int32_t rank) const { return lists[static_cast<std::size_t>(rank)]; }
  std::int32_t rank_of(std::int32_t stage, std::int32_t microbatch) const { return base->rank_of(stage, microbatch); }
};

/** @brief The span and the sum of the ranks' spans of a simulated timeline. */
inline refine_score v_score_of(const sim::timeline& t) {
  refine_score out{0.0, 0.0};
  for (std::int32_t r = 0; r < t.num_ranks(); ++r) {
    const std::span<const sim::op_timing> events = t.ops(r);
    if (events.empty()) continue;
    const double rank_span = events.back().end - events.front().start;
    out.span = rank_span > out.span ? rank_span : out.span;
    out.total += rank_span;
  }
  return out;
}

/**
@brief Swaps of adjacent ops on a rank (never two of the same microbatch, never two W's: those are
`refine_weights`'s moves), kept when the simulated span shrinks, or stays and the sum of the
ranks' spans shrinks, and every rank stays within `memory_limit`. Passes over all ranks repeat
while one improves, within `max_simulated_ops`. Returns the improved schedule.
*/
template <cost_model Costs>
schedule swap_adjacent(const schedule& s, const Costs& costs, double memory_limit, std::int64_t max_simulated_ops,
                       const deadline& stop = {}) {
  const pipeline_shape& shape = s.shape();
  const std::int32_t p = shape.num_ranks;
  v_edit_lists lists{&s, {}};
  lists.lists.resize(static_cast<std::size_t>(p));
  for (std::int32_t r = 0; r < p; ++r) lists.lists[static_cast<std::size_t>(r)].assign(s.ops(r).begin(), s.ops(r).end());
  sim::timeline trial;
  if (!sim::detail::run_timeline(lists, shape, costs, trial)) return s;
  refine_score best = v_score_of(trial);
  const double eps = 1e-9 * (best.span > 0.0 ? best.span : 1.0);
  const double memory_eps = 1e-9 * memory_limit;
  const auto per_evaluation = static_cast<std::int64_t>(s.num_ops());
  std::int64_t spent = 0;
  bool improved = true;
  while (improved && spent + per_evaluation <= max_simulated_ops) {
    improved = false;
    for (std::int32_t r = 0; r < p && spent + per_evaluation <= max_simulated_ops; ++r) {
      auto& list = lists.lists[static_cast<std::size_t>(r)];
      for (std::size_t k = 0; k + 1 < list.size() && spent + per_evaluation <= max_simulated_ops; ++k) {
        const op a = list[k], b = list[k + 1];
        if (a.microbatch == b.microbatch) continue;
        if (a.kind == op_kind::backward_weight && b.kind == op_kind::backward_weight) continue;
        // Memory: only the level between the two changes, to (level before) + b's delta.
        if (costs.memory_delta(b, shape) > costs.memory_delta(a, shape)) {
          double held = 0.0;
          for (std::size_t q = 0; q < k; ++q) held += costs.memory_delta(list[q], shape);
          if (held + costs.memory_delta(b, shape) > memory_limit + memory_eps) continue;
        }
        stop.check("auto-v");
        std::swap(list[k], list[k + 1]);
        spent += per_evaluation;
        const bool finished = sim::detail::run_timeline(lists, shape, costs, trial);
        const refine_score score = finished ? v_score_of(trial) : refine_score{};
        if (finished && score.span <= best.span && (score.span < best.span - eps || score.total < best.total - eps)) {
          best = score;
          improved = true;
        } else {
          std::swap(list[k], list[k + 1]);  // undo
        }
      }
    }
  }
  schedule out(shape, s.placement());
  for (std::int32_t j = 0; j < shape.num_microbatches; ++j) out.set_replica(j, s.replica_of(j));
  for (std::int32_t r = 0; r < p; ++r)
    for (const op& o : lists.lists[static_cast<std::size_t>(r)]) out.push_back(r, o);
  return out;
}

}  // namespace detail

/**
@brief Plans a V-shaped zero-bubble schedule for `shape` under `costs` with at most
`memory_limit` of activations per rank.

**Shape.** V-shape placement, v = 2 (stage s < p on rank s, stage s ≥ p on rank 2p−1−s); B/W
split.

**Method.** Candidates (the list `candidate generators` below; add new ones there):
1. the official V planner (`policies::plan_zb_v`: its four knob settings, each with its
   approved-bubble refinement) at the chunk times of `costs` in integer ticks
   (`v_planner_inputs`: exact when the times are integers or simple fractions, e.g. µs) under the
   limit;
2. the list-scheduled orders of earlier versions (a rank starts its ready op of highest priority
   in one of six fixed lane orders, a forward only within the limit);
3. V-Half and V-Min (`policies::v_half`, `policies::v_min`; Qi et al. 2024, "Pipeline
   Parallelism with Controllable Memory") when the limit is below p·M_B or the shape is small;
4. `options.extra_candidates`.
Each is simulated with `costs` (`sim::simulate`); the shortest span within the limit wins (ties:
lower peak). Then, with `options.local_search`, a local search keeps any improvement: the planner
again under every smaller memory cap down to p·M_B and with perturbed times (W × 0.5 / 1.5, the
message delay × 0 / 2, B and F swapped); then, from each of the best four orders of distinct
spans, W moves (`refine_weights`), swaps of adjacent ops (`detail::swap_adjacent`) and W moves
again. Its work is bounded by `options.search_budget`; above 4096 ops only W moves on the best
order run.

**Guarantee.** The result is valid, its simulated peak is within `memory_limit`, and its
simulated span is never longer than that of the official planner's choice on the same costs
(candidate 1 is always tried), nor than V-Half's or V-Min's when the limit is below p·M_B and
their peak fits it. At equal chunk times with no message delay and `memory_limit`
= p·M_B it is ZB-V's zero-bubble schedule (span 6m chunk units for m ≥ 2p − 1).

**Units.** `memory_limit` in the cost model's memory unit (M_B per full stage, so p·M_B is
1F1B's peak). Planned with the op times of stage 0 (`costs.duration`); the plan is then
simulated, and the orders compared, with every stage's own times. Every stage must have the same
activation memory (F's and W's `memory_delta`), since the plan keeps the limit by that size.

@throws shape_error unless v = 2 and p, m ≥ 1; argument_error when `memory_limit` is below one
microbatch's activations on a rank (both chunks' F), when the stages' activation memories
differ, when an op time or the message delay is negative, or when no candidate finishes within
the limit; deadline_exceeded when `options.stop` passes before the plan is done.
*/
template <cost_model Costs>
schedule auto_schedule_v(const pipeline_shape& shape, const Costs& costs, double memory_limit,
                         const auto_v_options& options = {}) {
  using stretto::detail::cat;
  if (shape.num_ranks < 1 || shape.num_microbatches < 1 || shape.num_chunks != 2)
    throw shape_error(cat("auto-v: plans the V-shaped placement with 2 chunks per rank and needs p, m >= 1 (got p = ",
                          shape.num_ranks, ", m = ", shape.num_microbatches, ", chunks = ", shape.num_chunks, ")"));
  const double f_memory = costs.memory_delta(op{op_kind::forward, 0, 0}, shape);
  const double w_memory = -costs.memory_delta(op{op_kind::backward_weight, 0, 0}, shape);
  // The planners account memory with one F size and one W size for every chunk: refuse
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
  const v_planner_inputs in = detail::v_inputs_of(shape, costs, memory_limit);
  detail::v_best<Costs> best{&costs, memory_limit, {}, std::numeric_limits<double>::infinity(), 0.0, 0};
  const std::function<void(const schedule&)> offer = [&](const schedule& s) { best.offer(s); };

  // ---- candidate generators: each offers whole V-shaped orders ------------------------------
  const std::vector<std::function<void()>> candidate_generators = {
      [&] { detail::official_v(shape, in.costs, in.cap, offer); },
      [&] { detail::list_scheduled_v(shape, in, memory_limit, costs, offer); },
      // The controllable-memory V schedules (V-Half about (p+2)/2·M_B, V-Min about (p+4)/3·M_B):
      // below p·M_B, where the official planner cannot run, they are the orders to beat; above
      // it they are tried on small shapes only (their generator costs more than the planner).
      [&] {
        if (memory_limit < 2.0 * f_memory * shape.num_ranks || 6LL * shape.num_ranks * shape.num_microbatches <= 4096) {
          best.offer(policies::v_half::generate(shape));
          best.offer(policies::v_min::generate(shape));
        }
      },
      [&] {
        for (const schedule& s : options.extra_candidates)
          if (s.shape() == shape && s.placement() == placement_kind::v_shape) best.offer(s, true);
      },
  };
  for (const auto& generate : candidate_generators) {
    options.stop.check("auto-v");
    generate();
  }
  if (best.span == std::numeric_limits<double>::infinity())
    throw argument_error(cat("auto-v: no candidate order finishes within the memory limit for p = ", shape.num_ranks,
                             ", m = ", shape.num_microbatches, " (forwards wait for memory that only later "
                             "backwards free); raise the limit, e.g. to 2p·M_B"));
  if (!options.local_search) return best.plan;

  // ---- local search ---------------------------------------------------------------------------
  // The planner is ~6 ops of work per op planned and ~3 passes per knob setting.
  const std::int64_t ops = 6 * static_cast<std::int64_t>(shape.num_ranks) * shape.num_microbatches;
  const std::int64_t planner_run = 4 * 3 * ops + 4 * ops;  // four knobs with refinement, four simulations
  const std::int64_t budget = options.search_budget >= 0 ? options.search_budget : ops <= 4096 ? 8'000'000 : 1'000'000;
  std::int64_t spent = 0;
  auto try_planner = [&](const policies::v_plan_costs& c, std::int64_t cap) {
    if (spent + planner_run > budget / 2) return false;
    options.stop.check("auto-v");
    spent += planner_run;
    detail::official_v(shape, c, cap, offer);
    return true;
  };
  // Smaller caps (the planner's warm-up and its W's react to the cap; a smaller one is sometimes
  // better), largest first, down to p·M_B, in steps of half a chunk F.
  const std::int64_t floor_cap = 2 * static_cast<std::int64_t>(shape.num_ranks) * in.costs.memory_forward;
  const std::int64_t step = std::max<std::int64_t>(1, in.costs.memory_forward / 2);
  for (std::int64_t cap = in.cap - step; cap >= floor_cap; cap -= step)
    if (!try_planner(in.costs, cap)) break;
  // Perturbed times: the planner's greedy choices depend on how the times compare.
  {
    policies::v_plan_costs c = in.costs;
    std::vector<policies::v_plan_costs> variants;
    c.weight = in.costs.weight / 2, variants.push_back(c);
    c.weight = in.costs.weight + in.costs.weight / 2, variants.push_back(c);
    c = in.costs, c.comm = 0, variants.push_back(c);
    c = in.costs, c.comm = 2 * in.costs.comm, variants.push_back(c);
    c = in.costs, std::swap(c.forward, c.backward), variants.push_back(c);
    for (const auto& v : variants)
      if (!try_planner(v, in.cap)) break;
  }
  // W moves from the best few orders (their local optima differ), the budget shared.
  // Large shapes (over 4096 ops): W moves on the best order only.
  const std::int64_t left = budget - spent;
  if (ops > 4096) {
    refine_options moves;
    moves.max_simulated_ops = left;
    moves.stop = options.stop;
    if (left > ops) best.offer(refine_weights(best.plan, costs, memory_limit, moves).plan);
    return best.plan;
  }
  const std::vector<std::pair<double, schedule>> starts = best.pool;
  // Each start: W moves, then adjacent swaps, then W moves again, a third of its share each.
  for (const auto& start : starts) {
    const std::int64_t share = left / static_cast<std::int64_t>(starts.size()) / 3;
    if (share <= static_cast<std::int64_t>(start.second.num_ops())) break;
    refine_options moves;
    moves.max_simulated_ops = share;
    moves.stop = options.stop;
    schedule current = refine_weights(start.second, costs, memory_limit, moves).plan;
    best.offer(current);
    current = detail::swap_adjacent(current, costs, memory_limit, share, options.stop);
    best.offer(current, true);
    best.offer(refine_weights(current, costs, memory_limit, moves).plan);
  }
  return best.plan;
}

}  // namespace stretto::plan
