#pragma once
/**
@file
@brief The automatic zero-bubble scheduler: from costs and a memory limit to per-rank orders of
F, B and W (Zero Bubble, Qi, Wan, Huang, Lin, ICLR 2024, §3.1; docs/schedules.md §7.4–§7.5).

Unlike a `schedule_policy`, which needs only the shape, this scheduler needs the cost model and
a memory limit, so it has its own entry point, `auto_schedule`. ZB-1p and ZB-2p are its results
under the limits p·M_B and 2p·M_B (`zb_memory_limit`).
*/

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/op.hpp"
#include "../core/schedule.hpp"
#include "../core/shape.hpp"
#include "../detail/text.hpp"
#include "../sim/cost_model.hpp"
#include "deadline.hpp"
#include "refine.hpp"

namespace stretto::plan {

using sim::cost_model;
using sim::simulate;
using sim::uniform_costs;

/**
@brief The three binary knobs of the Zero Bubble heuristic (docs/schedules.md §7.5; the official
code's `allow_bubble_before_first_b`, `prioritize_b`, `no_bubble_greedy`).

- `allow_bubble_before_first_b`: in the warm-up, add an extra F only if it ends before B0's
  input arrives (true), or keep adding F's while the rank is still idle when B0's input would
  arrive, so that the last one may overrun and delay B0 by less than T_F (false).
- `prioritize_b`: a rank that is at least 2 F's ahead of the next one may skip its F in a round
  when the F (with the W's it needs to free memory) would delay the next B, or when skipping adds
  no more bubble than the most-idle rank already has.
- `no_bubble_greedy`: fill an idle gap shorter than T_W with a W even when leaving it idle would
  not raise the largest cumulative bubble of any rank.
*/
struct heuristic_switches {
  bool allow_bubble_before_first_b{true};
  bool prioritize_b{true};
  bool no_bubble_greedy{true};

  friend constexpr bool operator==(const heuristic_switches&, const heuristic_switches&) = default;
};

/** @brief Options of `auto_schedule`. */
struct auto_schedule_options {
  /// Try all 8 combinations of the switches and keep the shortest span (the paper's grid
  /// search); when false, run only `switches`.
  bool try_all_switches{true};
  heuristic_switches switches{};
  /// Run `refine_weights` after the heuristic (never lengthens the span).
  bool refine{true};
  refine_options refinement{};
  /// When to give up (default: never): checked once per heuristic round and, through
  /// `refinement.stop` when that has none of its own, once per refinement trial; past it the
  /// scheduler throws `stretto::deadline_exceeded`.
  deadline stop{};
};

/** @brief The outcome of `auto_schedule_detailed`. */
struct auto_schedule_result {
  schedule plan;                  ///< the per-rank orders (linear placement)
  heuristic_switches switches{};  ///< the combination whose schedule was kept
  double heuristic_span{0.0};     ///< span of the heuristic's schedule, before refinement
  double span{0.0};               ///< span of `plan` (after refinement when it ran)
  std::int32_t refine_moves{0};   ///< W moves the refinement applied
};

/**
@brief The memory limit of ZB-`factor`p: `factor`·p·M_B, with M_B the largest memory one
microbatch holds on any stage: the F's `memory_delta`, or after its B when that allocates
(M_W > M_B: F + B = M_W). ZB-1p: factor 1 (the peak of 1F1B); ZB-2p: factor 2, the least memory
that empirically gives a near-zero bubble (docs/schedules.md §7.4).
*/
template <cost_model Costs>
double zb_memory_limit(const pipeline_shape& shape, const Costs& costs, double factor) {
  double m_b = 0.0;
  for (std::int32_t s = 0; s < shape.num_stages(); ++s) {
    const double f = costs.memory_delta(op{op_kind::forward, s, 0}, shape);
    m_b = std::max({m_b, f, f + costs.memory_delta(op{op_kind::backward_input, s, 0}, shape)});
  }
  return factor * static_cast<double>(shape.num_ranks) * m_b;
}

namespace detail {

/**
@brief One run of the Zero Bubble heuristic for one combination of switches (docs/schedules.md §7.5,
"Precise rule"). Places ops stage by stage in rounds, tracking per stage the counts of F, B and
W placed, the end time, the memory held and the cumulative idle time since the first F; the
times it computes are those of the event model of docs/schedules.md §0 for the order it builds.
*/
template <cost_model Costs>
class zero_bubble_heuristic {
 public:
  zero_bubble_heuristic(const pipeline_shape& shape, const Costs& costs, double memory_limit,
                        heuristic_switches switches)
      : shape_(shape), costs_(costs), limit_(memory_limit), knobs_(switches),
        p_(shape.num_ranks), m_(shape.num_microbatches),
        f_(static_cast<std::size_t>(p_), 0), b_(f_), w_(f_),
        end_(static_cast<std::size_t>(p_), 0.0), held_(end_), bubble_(end_),
        t_f_(static_cast<std::size_t>(p_) * static_cast<std::size_t>(m_), 0.0), t_b_(t_f_), t_w_(t_f_),
        order_(static_cast<std::size_t>(p_)) {
    double time_scale = 0.0;
    double memory_scale = 0.0;
    for (std::int32_t j = 0; j < p_; ++j) {
      time_scale = std::max(time_scale, cost(op_kind::forward, j, 0) + cost(op_kind::backward_input, j, 0) +
                                            cost(op_kind::backward_weight, j, 0) + comm_f(j) + comm_b(j));
      memory_scale = std::max(memory_scale, mem(op_kind::forward, j, 0));
    }
    time_eps_ = 1e-9 * std::max(time_scale, 1e-300);
    memory_eps_ = 1e-9 * std::max(memory_scale, 1e-300);
  }

  /**
  @brief Builds the orders. @return false when the memory limit cannot be met.
  @throws deadline_exceeded when `stop` passes (checked before each round, every O(p) ops).
  */
  bool run(const deadline& stop = {}) {
    for (std::int32_t i = 0; i < m_; ++i) {
      stop.check("auto");
      if (i == 0 ? !first_round() : !round(i)) return false;
    }
    for (std::int32_t j = 0; j < p_; ++j)
      while (w(j) < m_) put(j, op_kind::backward_weight);
    return true;
  }

  /** @brief max over stages of (end of its last W − start of its first F). */
  double span() const {
    double best = 0.0;
    for (std::int32_t j = 0; j < p_; ++j)
      best = std::max(best, t_w_[at(j, m_ - 1)] - t_f_[at(j, 0)] + cost(op_kind::forward, j, 0));
    return best;
  }

  /** @brief The most memory any stage held while the orders were built (their peak memory). */
  double peak() const { return peak_; }

  /** @brief The orders as a schedule with linear placement. */
  schedule to_schedule() const {
    schedule out(shape_, placement_kind::linear);
    for (std::int32_t j = 0; j < p_; ++j)
      for (const op& o : order_[static_cast<std::size_t>(j)]) out.push_back(j, o);
    return out;
  }

 private:
  std::size_t at(std::int32_t stage, std::int32_t mb) const {
    return static_cast<std::size_t>(stage) * static_cast<std::size_t>(m_) + static_cast<std::size_t>(mb);
  }
  double cost(op_kind kind, std::int32_t stage, std::int32_t mb) const {
    return costs_.duration(op{kind, stage, mb}, shape_);
  }
  double mem(op_kind kind, std::int32_t stage, std::int32_t mb) const {
    return costs_.memory_delta(op{kind, stage, mb}, shape_);
  }
  /// Delay of F's input on stage j (from stage j − 1) and of B's input (from stage j + 1).
  double comm_f(std::int32_t j) const { return j > 0 ? costs_.comm_delay(j - 1, j, shape_) : 0.0; }
  double comm_b(std::int32_t j) const { return j + 1 < p_ ? costs_.comm_delay(j + 1, j, shape_) : 0.0; }

  // Comparisons with a tolerance relative to the costs, so that times given as decimals (18.522)
  // decide exactly as the same times in integer microseconds do.
  bool time_le(double a, double b) const { return a <= b + time_eps_; }
  bool time_lt(double a, double b) const { return a < b - time_eps_; }
  bool fits(double held, double delta) const { return held + delta <= limit_ + memory_eps_; }

  std::int32_t& f(std::int32_t j) { return f_[static_cast<std::size_t>(j)]; }
  std::int32_t& b(std::int32_t j) { return b_[static_cast<std::size_t>(j)]; }
  std::int32_t& w(std::int32_t j) { return w_[static_cast<std::size_t>(j)]; }
  double& end(std::int32_t j) { return end_[static_cast<std::size_t>(j)]; }
  double& held(std::int32_t j) { return held_[static_cast<std::size_t>(j)]; }

  double max_bubble() const { return max_bubble_; }
  double bubble_room(std::int32_t j) const { return max_bubble() - bubble_[static_cast<std::size_t>(j)]; }

  /** @brief Places the next op of `kind` on stage j at the earliest time the model allows. */
  void put(std::int32_t j, op_kind kind) {
    std::int32_t& count = kind == op_kind::forward ? f(j) : (kind == op_kind::backward_input ? b(j) : w(j));
    const std::int32_t mb = count;
    const double duration = cost(kind, j, mb);
    const double no_bubble = end(j) + duration;
    double finish = no_bubble;
    if (kind == op_kind::forward && j > 0) finish = std::max(finish, t_f_[at(j - 1, mb)] + comm_f(j) + duration);
    if (kind == op_kind::backward_input && j + 1 < p_)
      finish = std::max(finish, t_b_[at(j + 1, mb)] + comm_b(j) + duration);
    if (f(j) > 0) {
      // A stage's idle time only grows, so the largest is kept as a running maximum.
      bubble_[static_cast<std::size_t>(j)] += finish - no_bubble;
      max_bubble_ = std::max(max_bubble_, bubble_[static_cast<std::size_t>(j)]);
    }
    end(j) = finish;
    (kind == op_kind::forward ? t_f_ : (kind == op_kind::backward_input ? t_b_ : t_w_))[at(j, mb)] = finish;
    held(j) += mem(kind, j, mb);
    peak_ = std::max(peak_, held(j));
    ++count;
    order_[static_cast<std::size_t>(j)].push_back(op{kind, j, mb});
  }

  /** @brief Places W's until the next op of `kind` fits in memory. @return false if impossible. */
  bool make_room(std::int32_t j, op_kind kind, std::int32_t mb) {
    while (!fits(held(j), mem(kind, j, mb))) {
      if (w(j) >= b(j)) return false;
      put(j, op_kind::backward_weight);
    }
    return true;
  }

  /**
  @brief Fills the idle time before an input that arrives at `arrival` with W's: every W that
  ends by then, and one more that overruns when the gap is larger than the bubble room (or
  always, with `no_bubble_greedy`).
  */
  void fill_gap(std::int32_t j, double arrival) {
    while (w(j) < b(j) && time_le(end(j) + cost(op_kind::backward_weight, j, w(j)), arrival))
      put(j, op_kind::backward_weight);
    if (w(j) < b(j) && time_lt(end(j), arrival)) {
      if (time_le(arrival - end(j), bubble_room(j))) {
        if (knobs_.no_bubble_greedy) put(j, op_kind::backward_weight);
      } else {
        put(j, op_kind::backward_weight);
      }
    }
  }

  /** @brief Round 0: F0 everywhere, the warm-up F's that fit before B0 arrives, then B0. */
  bool first_round() {
    for (std::int32_t j = 0; j < p_; ++j) {
      if (!fits(held(j), mem(op_kind::forward, j, 0))) return false;
      put(j, op_kind::forward);
    }
    std::vector<std::int32_t> extra(static_cast<std::size_t>(p_), 0);
    double arrival = 0.0;  // when B0's output of the stage below is ready, before comm
    for (std::int32_t j = p_ - 1; j >= 0; --j) {
      if (j == p_ - 1) {
        arrival = t_f_[at(j, 0)] + cost(op_kind::backward_input, j, 0);
        continue;
      }
      auto& req = extra[static_cast<std::size_t>(j)];
      double memory = held(j);
      double local_end = end(j);
      // B0 follows the warm-up with no W to free memory before it: keep room for what it
      // allocates when M_W > M_B (nothing otherwise).
      const double b0 = std::max(0.0, mem(op_kind::backward_input, j, 0));
      while (f(j) + req < m_ && fits(memory + b0, mem(op_kind::forward, j, f(j) + req))) {
        const double duration = cost(op_kind::forward, j, f(j) + req);
        if (knobs_.allow_bubble_before_first_b) {
          if (!time_le(local_end + duration, arrival + comm_b(j))) break;
        } else if (time_le(arrival + comm_b(j), local_end)) {
          break;
        }
        memory += mem(op_kind::forward, j, f(j) + req);
        local_end += duration;
        ++req;
      }
      arrival = std::max(local_end, arrival + comm_b(j)) + cost(op_kind::backward_input, j, 0);
    }
    // Strictly fewer warm-up F's down the pipeline, except that two stages may both run all
    // m. (The official code keeps a stage's count whenever it reaches m, even above the count
    // of the stage before it, which then never gets to place its missing F's; here a stage
    // never gets more than the stage before it. The two rules agree whenever the official one
    // yields a valid schedule.)
    for (std::int32_t j = 1; j < p_; ++j) {
      auto& req = extra[static_cast<std::size_t>(j)];
      const std::int32_t before = extra[static_cast<std::size_t>(j - 1)];
      while (req > 0 && (req > before || (req == before && f(j) + req < m_))) --req;
    }
    for (std::int32_t j = 0; j < p_; ++j)
      for (std::int32_t k = 0; k < extra[static_cast<std::size_t>(j)]; ++k) put(j, op_kind::forward);
    for (std::int32_t j = p_ - 1; j >= 0; --j) put(j, op_kind::backward_input);
    return true;
  }

  /** @brief Round i ≥ 1: at most one F per stage (top down), then B_i on every stage (bottom up). */
  bool round(std::int32_t i) {
    std::vector<std::int32_t> wants_f(static_cast<std::size_t>(p_), 0);
    for (std::int32_t j = 0; j < p_; ++j) {
      if (f(j) >= m_) continue;
      if (knobs_.prioritize_b && j + 1 < p_ && f(j) >= f(j + 1) + 2) {
        // When would stage j+1's next B reach stage j if j+1 now ran one F and that B?
        const double next_b = end(j + 1) + cost(op_kind::forward, j + 1, f(j + 1)) +
                              cost(op_kind::backward_input, j + 1, b(j + 1)) + comm_b(j);
        if (time_le(next_b, end(j))) continue;
        double w_cost = 0.0;
        double memory = held(j) + mem(op_kind::forward, j, f(j));
        for (std::int32_t k = 0; memory > limit_ + memory_eps_ && w(j) + k < b(j); ++k) {
          w_cost += cost(op_kind::backward_weight, j, w(j) + k);
          memory += mem(op_kind::backward_weight, j, w(j) + k);
        }
        if (time_le(end(j) + cost(op_kind::forward, j, f(j)) + w_cost, next_b)) {
          wants_f[static_cast<std::size_t>(j)] = 1;
          continue;
        }
        if (time_le(next_b - end(j), bubble_room(j))) continue;
      }
      wants_f[static_cast<std::size_t>(j)] = 1;
    }
    // A stage runs an F only if the next stage does.
    for (std::int32_t j = p_ - 2; j >= 0; --j)
      wants_f[static_cast<std::size_t>(j)] =
          std::min(wants_f[static_cast<std::size_t>(j)], wants_f[static_cast<std::size_t>(j + 1)]);

    for (std::int32_t j = 0; j < p_; ++j) {
      if (wants_f[static_cast<std::size_t>(j)] == 0) continue;
      if (!make_room(j, op_kind::forward, f(j))) return false;
      if (j > 0) fill_gap(j, t_f_[at(j - 1, f(j))] + comm_f(j));
      put(j, op_kind::forward);
    }
    for (std::int32_t j = p_ - 1; j >= 0; --j) {
      if (!make_room(j, op_kind::backward_input, i)) return false;
      if (j + 1 < p_) fill_gap(j, t_b_[at(j + 1, i)] + comm_b(j));
      if (j == 0 && f(j) == m_)
        while (w(j) < b(j)) put(j, op_kind::backward_weight);
      put(j, op_kind::backward_input);
    }
    return true;
  }

  pipeline_shape shape_;
  const Costs& costs_;
  double limit_;
  heuristic_switches knobs_;
  std::int32_t p_, m_;
  std::vector<std::int32_t> f_, b_, w_;    // [stage] ops placed so far, by kind
  std::vector<double> end_, held_, bubble_;  // [stage] end time, memory held, idle since first F
  std::vector<double> t_f_, t_b_, t_w_;    // [stage * m + mb] end time of each placed op
  std::vector<std::vector<op>> order_;     // [stage] the order built
  double time_eps_{0.0}, memory_eps_{0.0};
  double max_bubble_{0.0};
  double peak_{0.0};
};

/** @brief Throws unless the auto scheduler accepts `shape` and `memory_limit`. */
template <cost_model Costs>
void check_auto_schedule_arguments(const pipeline_shape& shape, const Costs& costs, double memory_limit) {
  using stretto::detail::cat;
  if (shape.num_ranks < 1 || shape.num_microbatches < 1)
    throw shape_error(cat("auto: ranks and microbatches must be at least 1 (got p = ", shape.num_ranks,
                          ", m = ", shape.num_microbatches, ")"));
  if (shape.num_chunks != 1)
    throw shape_error(cat("auto: the Zero Bubble heuristic places one stage per rank, so chunks must be 1 (got ",
                          shape.num_chunks, "); use zb-v or interleaved-1f1b for several chunks per rank"));
  if (std::isnan(memory_limit)) throw argument_error("auto: the memory limit must be a number");
  for (std::int32_t s = 0; s < shape.num_stages(); ++s) {
    // What one microbatch holds: F's activations, or F + B's when B allocates (M_W > M_B).
    const double f = costs.memory_delta(op{op_kind::forward, s, 0}, shape);
    const double m_b = std::max(f, f + costs.memory_delta(op{op_kind::backward_input, s, 0}, shape));
    if (memory_limit < m_b * (1.0 - 1e-12))
      throw argument_error(std::string("auto: the memory limit ") + std::to_string(memory_limit) +
                           " is below one microbatch's activations on stage " + std::to_string(s) + " (M_B = " +
                           std::to_string(m_b) + "); every rank must hold at least M_B, e.g. use p*M_B (zb-1p)");
  }
}

}  // namespace detail

/**
@brief Runs the Zero Bubble heuristic (docs/schedules.md §7.5) with one combination of switches.

@param memory_limit the most activation memory any rank may hold, in the cost model's memory
unit (units of M_B for `uniform_costs`); infinity for no limit.
@return the per-rank orders (linear placement, one stage per rank), or no value when this
combination cannot keep to the memory limit.
@throws shape_error when v ≠ 1 or p, m < 1; argument_error when the limit is below M_B.
*/
template <cost_model Costs>
std::optional<schedule> zero_bubble_heuristic(const pipeline_shape& shape, const Costs& costs,
                                              double memory_limit, heuristic_switches switches) {
  detail::check_auto_schedule_arguments(shape, costs, memory_limit);
  detail::zero_bubble_heuristic<Costs> run(shape, costs, memory_limit, switches);
  if (!run.run()) return std::nullopt;
  return run.to_schedule();
}

/**
@brief The automatic scheduler with its report: the Zero Bubble heuristic under `memory_limit`
with all 8 combinations of its switches (or only `options.switches`), keeping the shortest
span (the first such combination, in the order of the official code: each switch true before
false), then `refine_weights` unless `options.refine` is false.

Costs may differ per stage and per microbatch (any `cost_model`); the span is that of the event
model (`simulate`). With the Zero Bubble paper's Table 9 costs and memory limits p·M_B (ZB-1p) and
2p·M_B (ZB-2p) it reproduces the paper's Table 5 bubble rates (docs/reference-numbers.md).

@throws shape_error when v ≠ 1 or p, m < 1; argument_error when the limit is below M_B or no
combination keeps to it; deadline_exceeded when `options.stop` passes before the plan is done.
**Complexity.** 8 heuristic runs of O(N·p) each for N = 3·p·m ops, plus the refinement.
*/
template <cost_model Costs>
auto_schedule_result auto_schedule_detailed(const pipeline_shape& shape, const Costs& costs, double memory_limit,
                                            const auto_schedule_options& options = {}) {
  detail::check_auto_schedule_arguments(shape, costs, memory_limit);
  std::optional<detail::zero_bubble_heuristic<Costs>> best;
  heuristic_switches best_switches{};
  double best_span = 0.0;
  for (const bool allow_bubble : {true, false})
    for (const bool prioritize_b : {true, false})
      for (const bool greedy : {true, false}) {
        const heuristic_switches knobs{allow_bubble, prioritize_b, greedy};
        if (!options.try_all_switches && !(knobs == options.switches)) continue;
        detail::zero_bubble_heuristic<Costs> run(shape, costs, memory_limit, knobs);
        if (!run.run(options.stop)) continue;
        // The heuristic's memory rules keep to the limit; this check keeps the promise for any
        // cost model.
        if (run.peak() > memory_limit * (1.0 + 1e-9)) continue;
        const double span = run.span();
        // Strictly shorter by more than rounding noise, so decimal and integer costs agree.
        if (!best || span < best_span - 1e-9 * best_span) {
          best.emplace(std::move(run));
          best_switches = knobs;
          best_span = span;
        }
      }
  if (!best)
    throw argument_error(std::string("auto: no schedule keeps every rank within the memory limit ") +
                         std::to_string(memory_limit) + "; raise it (p*M_B, as zb-1p, always suffices)");
  auto_schedule_result out{best->to_schedule(), best_switches, best_span, best_span, 0};
  if (options.refine) {
    refine_options refinement = options.refinement;
    if (refinement.stop.none()) refinement.stop = options.stop;
    refine_result refined = refine_weights(out.plan, costs, memory_limit, refinement);
    out.plan = std::move(refined.plan);
    out.span = refined.span;
    out.refine_moves = refined.moves;
  }
  return out;
}

/**
@brief The automatic scheduler: `auto_schedule_detailed(...).plan`.

@code
const stretto::pipeline_shape shape{8, 24, 1};
const stretto::sim::uniform_costs costs{18.522, 18.086, 9.337, 0.601};
const auto zb_2p = stretto::plan::auto_schedule(shape, costs, stretto::plan::zb_memory_limit(shape, costs, 2));
@endcode
*/
template <cost_model Costs>
schedule auto_schedule(const pipeline_shape& shape, const Costs& costs, double memory_limit,
                       const auto_schedule_options& options = {}) {
  return auto_schedule_detailed(shape, costs, memory_limit, options).plan;
}

}  // namespace stretto::plan
