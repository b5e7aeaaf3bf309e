#pragma once
/**
@file
@brief An improvement pass for schedules with a split backward: move W ops within their rank's
list, within a memory limit, whenever that shortens the step (Zero Bubble, Qi et al. 2024, §6:
"W's can be shifted ... within the memory cap"; docs/schedules.md §7.7).
*/

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "../core/dependencies.hpp"
#include "../core/op.hpp"
#include "../core/schedule.hpp"
#include "../sim/cost_model.hpp"
#include "../sim/simulator.hpp"
#include "../sim/timeline.hpp"
#include "deadline.hpp"

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
  /// Up to this many ops in the schedule, W's on the critical path of every rank are tried, and
  /// a move that only shortens the sum of the ranks' spans is kept (it can open the way for a
  /// later move that shortens the step). Above it only W's on a critical path of a longest rank
  /// are tried, the only ones whose move can shorten the step: on the Zero Bubble rows both end
  /// at the same spans, and the second does a small fraction of the work at p = 32 and above.
  std::int64_t all_ranks_up_to_ops{8192};
  /// When to give up (default: never), checked before every trial; past it `refine_weights`
  /// throws `stretto::deadline_exceeded`.
  deadline stop{};
};

/** @brief The outcome of `refine_weights`. */
struct refine_result {
  schedule plan;
  double span{0.0};           ///< span of `plan` (never more than that of the input)
  std::int32_t moves{0};      ///< W moves applied
  std::int64_t evaluations{0};  ///< simulations run
};

namespace detail {

/** @brief The objective of the refinement: the span first, then the sum of the ranks' spans. */
struct refine_score {
  double span{std::numeric_limits<double>::infinity()};
  double total{std::numeric_limits<double>::infinity()};
};

/**
@brief Per-rank op lists with their timeline under the event model (the same arithmetic as
`sim::detail::run_timeline`), re-simulated incrementally after an edit of one rank's list.

**Incremental re-simulation.** When rank r's list changes from index `lo` on, let T0 be the end
of its op `lo − 1`. Every op that started before T0 depended only on ops that ended before T0,
none of them among r's ops from `lo` on (which start at T0 or later), so its times are unchanged:
a trial keeps, on every rank, the prefix of ops that started before T0, and simulates the rest.
A trial also stops as soon as it cannot beat the score it is given: each rank's span is at least
(end of its last simulated op + the time of the ops after it on its rank − its first start), and
once the largest of these bounds, or the bounds together with the sum of the ranks' spans, rule
out a better score, the rest is not simulated.
*/
template <cost_model Costs>
class weight_mover {
 public:
  enum class outcome { finished, deadlock, over_bound };

  weight_mover(const schedule& base, const Costs& costs)
      : base_(base), costs_(costs), shape_(base.shape()), p_(static_cast<std::size_t>(base.num_ranks())) {
    lists_.resize(p_);
    start_.resize(p_);
    end_.resize(p_);
    trial_start_.resize(p_);
    trial_end_.resize(p_);
    rest_.resize(p_);
    kept_.assign(p_, 0);
    for (std::size_t q = 0; q < p_; ++q) {
      const std::span<const op> ops = base.ops(static_cast<std::int32_t>(q));
      lists_[q].assign(ops.begin(), ops.end());
      const std::size_t n = ops.size();
      start_[q].assign(n, 0.0);
      end_[q].assign(n, 0.0);
      trial_start_[q].assign(n, 0.0);
      trial_end_[q].assign(n, 0.0);
      update_rest(q);
    }
    const std::size_t cells = static_cast<std::size_t>(shape_.num_stages()) *
                              static_cast<std::size_t>(shape_.num_microbatches);
    forward_end_.assign(cells, -1.0);
    gradient_end_.assign(cells, -1.0);
    forward_waiter_.assign(cells, -1);
    gradient_waiter_.assign(cells, -1);
  }

  /** @brief Simulates every list from the start. @return false on a deadlock. */
  bool run_all() {
    kept_.assign(p_, 0);
    if (simulate(nullptr, 0.0) != outcome::finished) return false;
    accept();
    return true;
  }

  std::vector<op>& list(std::size_t q) { return lists_[q]; }
  const std::vector<double>& starts(std::size_t q) const { return start_[q]; }
  const std::vector<double>& ends(std::size_t q) const { return end_[q]; }

  refine_score score() const {
    refine_score out{0.0, 0.0};
    for (std::size_t q = 0; q < p_; ++q) {
      if (lists_[q].empty()) continue;
      const double rank_span = end_[q].back() - start_[q].front();
      out.span = rank_span > out.span ? rank_span : out.span;
      out.total += rank_span;
    }
    return out;
  }

  /**
  @brief Re-simulates after rank r's list changed from index `lo` on (the caller edited
  `list(r)`), stopping early once the trial cannot beat `best` (see the class notes; `eps` is
  the tolerance of the comparison).
  @return the outcome, and in `score_out` the trial's score when it finished. The trial is kept
  only by `accept()`; `reject()` restores the state before it (after the caller undid its edit).
  */
  outcome try_edit(std::size_t r, std::size_t lo, const refine_score& best, double eps, refine_score& score_out) {
    update_rest(r);
    const double t0 = lo > 0 ? end_[r][lo - 1] : -std::numeric_limits<double>::infinity();
    for (std::size_t q = 0; q < p_; ++q) {
      const std::vector<double>& s = start_[q];
      const std::size_t keep = static_cast<std::size_t>(std::lower_bound(s.begin(), s.end(), t0) - s.begin());
      kept_[q] = q == r && keep > lo ? lo : keep;
      // The kept prefix never ends inside an F&B pair: keep both or neither.
      if (kept_[q] > 0 && lists_[q][kept_[q] - 1].overlapped) --kept_[q];
      for (std::size_t k = kept_[q]; k < lists_[q].size(); ++k) clear_cell(lists_[q][k]);
    }
    const outcome result = simulate(&best, eps);
    if (result == outcome::finished) {
      refine_score out{0.0, 0.0};
      for (std::size_t q = 0; q < p_; ++q) {
        const std::size_t n = lists_[q].size();
        if (n == 0) continue;
        const double first = kept_[q] > 0 ? start_[q][0] : trial_start_[q][0];
        const double last = kept_[q] < n ? trial_end_[q][n - 1] : end_[q][n - 1];
        out.span = last - first > out.span ? last - first : out.span;
        out.total += last - first;
      }
      score_out = out;
    }
    return result;
  }

  /** @brief Keeps the last trial's times. */
  void accept() {
    for (std::size_t q = 0; q < p_; ++q)
      for (std::size_t k = kept_[q]; k < lists_[q].size(); ++k) {
        start_[q][k] = trial_start_[q][k];
        end_[q][k] = trial_end_[q][k];
      }
  }

  /** @brief Drops the last trial: call after restoring rank r's list. */
  void reject(std::size_t r) {
    update_rest(r);
    for (std::size_t q = 0; q < p_; ++q)
      for (std::size_t k = kept_[q]; k < lists_[q].size(); ++k) {
        clear_cell(lists_[q][k]);
        set_cell(lists_[q][k], end_[q][k]);
      }
  }

  /** @brief Ops simulated by the last trial (those after the kept prefixes). */
  std::int64_t last_trial_ops() const {
    std::int64_t out = 0;
    for (std::size_t q = 0; q < p_; ++q) out += static_cast<std::int64_t>(lists_[q].size() - kept_[q]);
    return out;
  }

  /**
  @brief Marks, per rank and list index, the W's on a critical path of a longest rank: walking
  back from its last op, to the op before on the rank when there is no idle gap, else to the
  input that arrived last. Only moving such a W can shorten that rank; the others leave a chain
  of ops as long as the rank's span in place.
  */
  void critical_weights(double eps, bool longest_only, std::vector<std::vector<char>>& marks) const {
    marks.resize(p_);
    for (std::size_t q = 0; q < p_; ++q) marks[q].assign(lists_[q].size(), 0);
    const std::size_t stages = static_cast<std::size_t>(shape_.num_stages());
    auto cell_of = [stages](std::int32_t stage, std::int32_t mb) {
      return static_cast<std::size_t>(mb) * stages + static_cast<std::size_t>(stage);
    };
    constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
    std::vector<std::pair<std::size_t, std::size_t>> forward_at(forward_end_.size(), {none, none});
    std::vector<std::pair<std::size_t, std::size_t>> gradient_at(forward_at);
    for (std::size_t q = 0; q < p_; ++q)
      for (std::size_t k = 0; k < lists_[q].size(); ++k) {
        const op& o = lists_[q][k];
        if (o.kind == op_kind::forward) forward_at[cell_of(o.stage, o.microbatch)] = {q, k};
        if (produces_input_gradient(o.kind)) gradient_at[cell_of(o.stage, o.microbatch)] = {q, k};
      }
    const refine_score now = score();
    std::vector<std::vector<char>> seen(p_);
    for (std::size_t q = 0; q < p_; ++q) seen[q].assign(lists_[q].size(), 0);
    for (std::size_t rank = 0; rank < p_; ++rank) {
      if (lists_[rank].empty() || (longest_only && end_[rank].back() - start_[rank].front() < now.span - eps)) continue;
      std::size_t q = rank;
      std::size_t k = lists_[rank].size() - 1;
      while (!seen[q][k]) {
        seen[q][k] = 1;
        const op& o = lists_[q][k];
        if (o.kind == op_kind::backward_weight) marks[q][k] = 1;
        if (k > 0 && (lists_[q][k - 1].overlapped || start_[q][k] <= end_[q][k - 1] + eps)) {
          --k;
          continue;
        }
        // An idle gap (or the first op): follow the input that arrived last.
        double latest = -std::numeric_limits<double>::infinity();
        std::pair<std::size_t, std::size_t> from{none, none};
        auto consider = [&](const op& x) {
          for (const dependency& d : dependencies_of(x, shape_)) {
            const auto at = (d.kind == dependency_kind::forward ? forward_at : gradient_at)[cell_of(d.stage, d.microbatch)];
            if (at.first == none) continue;
            const double arrival = end_[at.first][at.second] +
                                   (at.first != q ? costs_.comm_delay(d.stage, x.stage, shape_) : 0.0);
            if (arrival > latest) {
              latest = arrival;
              from = at;
            }
          }
        };
        consider(o);
        if (o.overlapped && k + 1 < lists_[q].size()) consider(lists_[q][k + 1]);
        if (from.first == none) break;
        q = from.first;
        k = from.second;
      }
    }
  }

 private:
  std::size_t cell_index(const op& o) const {
    return static_cast<std::size_t>(o.microbatch) * static_cast<std::size_t>(shape_.num_stages()) +
           static_cast<std::size_t>(o.stage);
  }
  void clear_cell(const op& o) {
    const std::size_t c = cell_index(o);
    if (o.kind == op_kind::forward) {
      forward_end_[c] = -1.0;
      forward_waiter_[c] = -1;
    }
    if (produces_input_gradient(o.kind)) {
      gradient_end_[c] = -1.0;
      gradient_waiter_[c] = -1;
    }
  }
  void set_cell(const op& o, double end) {
    const std::size_t c = cell_index(o);
    if (o.kind == op_kind::forward) forward_end_[c] = end;
    if (produces_input_gradient(o.kind)) gradient_end_[c] = end;
  }
  /// rest_[q][k]: the time of rank q's ops from index k on (an F&B pair counted once).
  void update_rest(std::size_t q) {
    const std::vector<op>& l = lists_[q];
    rest_[q].assign(l.size() + 1, 0.0);
    for (std::size_t k = l.size(); k-- > 0;) {
      if (l[k].overlapped && k + 1 < l.size()) {
        rest_[q][k] = rest_[q][k + 2] + sim::overlap_time(costs_, l[k], l[k + 1], shape_);
        rest_[q][k + 1] = rest_[q][k + 2];
      } else if (!(k > 0 && l[k - 1].overlapped)) {
        rest_[q][k] = rest_[q][k + 1] + costs_.duration(l[k], shape_);
      }
    }
  }

  /// The event model of `sim::detail::run_timeline`, from the kept prefixes on.
  /// With `best`, stops (over_bound) once the trial's span must exceed best.span, or be no
  /// shorter while the sum of the ranks' spans is no smaller (the refinement's acceptance rule).
  outcome simulate(const refine_score* best, double eps) {
    std::vector<std::size_t>& cursor = cursor_;
    cursor.assign(kept_.begin(), kept_.end());
    free_at_.assign(p_, 0.0);
    first_.assign(p_, 0.0);
    bound_.assign(p_, 0.0);
    runnable_.clear();
    double bound_sum = 0.0, bound_max = 0.0;
    for (std::size_t q = p_; q-- > 0;) {
      if (kept_[q] > 0) {
        free_at_[q] = end_[q][kept_[q] - 1];
        first_[q] = start_[q][0];
        bound_[q] = free_at_[q] + rest_[q][kept_[q]] - first_[q];
        bound_sum += bound_[q];
        bound_max = bound_[q] > bound_max ? bound_[q] : bound_max;
      }
      runnable_.push_back(static_cast<std::int32_t>(q));
    }
    // Rounding in the bounds (a sum in another order) is far below eps: a small margin suffices.
    const double margin = 1e-3 * eps;
    auto cannot_win = [&] {
      return best != nullptr && (bound_max > best->span + margin ||
                                 (bound_max >= best->span - eps + margin &&
                                  bound_sum >= best->total - eps + margin * static_cast<double>(p_)));
    };
    if (cannot_win()) return outcome::over_bound;
    auto wake = [this](std::int32_t& waiter) {
      if (waiter >= 0) runnable_.push_back(waiter);
      waiter = -1;
    };
    auto inputs_ready = [&](const op& x, std::int32_t r, double ready) -> double {
      for (const dependency& d : dependencies_of(x, shape_)) {
        const std::size_t c = static_cast<std::size_t>(d.microbatch) * static_cast<std::size_t>(shape_.num_stages()) +
                              static_cast<std::size_t>(d.stage);
        const bool is_forward = d.kind == dependency_kind::forward;
        const double end = is_forward ? forward_end_[c] : gradient_end_[c];
        if (end < 0.0) {
          (is_forward ? forward_waiter_[c] : gradient_waiter_[c]) = r;
          return -1.0;
        }
        const double arrival = base_.rank_of(d.stage, d.microbatch) != r ? end + costs_.comm_delay(d.stage, x.stage, shape_) : end;
        ready = arrival > ready ? arrival : ready;
      }
      return ready;
    };
    auto finish = [&](const op& x, double end) {
      const std::size_t c = cell_index(x);
      if (x.kind == op_kind::forward) {
        forward_end_[c] = end;
        wake(forward_waiter_[c]);
      }
      if (produces_input_gradient(x.kind)) {
        gradient_end_[c] = end;
        wake(gradient_waiter_[c]);
      }
    };
    while (!runnable_.empty()) {
      const std::int32_t r = runnable_.back();
      runnable_.pop_back();
      const auto rank = static_cast<std::size_t>(r);
      const std::vector<op>& l = lists_[rank];
      std::size_t c = cursor[rank];
      double rank_free = free_at_[rank];
      while (c < l.size()) {
        const op& o = l[c];
        double end = 0.0;
        double ready = 0.0;
        std::size_t next = c + 1;
        if (o.overlapped && c + 1 < l.size()) {
          const op& partner = l[c + 1];
          ready = inputs_ready(o, r, rank_free);
          if (ready >= 0.0) ready = inputs_ready(partner, r, ready);
          if (ready < 0.0) break;
          end = ready + sim::overlap_time(costs_, o, partner, shape_);
          trial_start_[rank][c + 1] = ready;
          trial_end_[rank][c + 1] = end;
          finish(partner, end);
          next = c + 2;
        } else {
          ready = inputs_ready(o, r, rank_free);
          if (ready < 0.0) break;
          end = ready + costs_.duration(o, shape_);
        }
        trial_start_[rank][c] = ready;
        trial_end_[rank][c] = end;
        finish(o, end);
        if (c == 0) first_[rank] = ready;
        rank_free = end;
        c = next;
        if (best != nullptr) {
          const double b = end + rest_[rank][c] - first_[rank];
          bound_sum += b - bound_[rank];
          bound_[rank] = b;
          bound_max = b > bound_max ? b : bound_max;
          if (cannot_win()) {
            cursor[rank] = c;
            return outcome::over_bound;
          }
        }
      }
      cursor[rank] = c;
      free_at_[rank] = rank_free;
    }
    for (std::size_t q = 0; q < p_; ++q)
      if (cursor[q] < lists_[q].size()) return outcome::deadlock;
    return outcome::finished;
  }

  const schedule& base_;
  const Costs& costs_;
  pipeline_shape shape_;
  std::size_t p_;
  std::vector<std::vector<op>> lists_;
  std::vector<std::vector<double>> start_, end_;              // [rank][index] the kept timeline
  std::vector<std::vector<double>> trial_start_, trial_end_;  // [rank][index] the last trial
  std::vector<std::vector<double>> rest_;                     // [rank][index] time of the ops from index on
  std::vector<std::size_t> kept_;                             // [rank] prefix the last trial kept
  std::vector<double> forward_end_, gradient_end_;            // [microbatch * S + stage], −1 while not run
  std::vector<std::int32_t> forward_waiter_, gradient_waiter_;
  std::vector<std::size_t> cursor_;
  std::vector<double> free_at_, first_, bound_;
  std::vector<std::int32_t> runnable_;
};

}  // namespace detail

/**
@brief Moves W ops of `s` to shorten its span without breaking `memory_limit`.

Only W's on a critical path are tried (walking back from a rank's last op, to the op before it
on the rank when there is no idle gap, else to the input that arrived last): moving any other W
leaves a chain of ops as long as that rank's span in place, so it cannot shorten that rank. A W
never waits (its B is on its own rank, earlier), so it is on such a path exactly when the ops
around it are. On schedules of more than `options.all_ranks_up_to_ops` ops only the critical
paths of the longest ranks (those that set the step) are followed; on smaller ones those of
every rank, as the sum of the ranks' spans is also an objective. For each such W it tries as new positions, after the W's own B and
without passing another W of its stage (W's keep microbatch order, as the paper's program
assumes, docs/schedules.md §7.6): the start of each idle gap before it, the start of each idle gap
after it, and right after the op that follows it. A move is kept when the simulated span does not
grow and either the span or the sum of the ranks' spans shrinks (by more than 1e-9 relative),
and every rank's peak memory stays within `memory_limit` (moving a W earlier never raises memory;
later moves are checked). Passes repeat until one keeps no move, or `options` bounds
(evaluations, simulated ops) are reached.

Each trial re-simulates only what the move can change (the ops that start after the moved
W's new or old position, see `detail::weight_mover`) and stops as soon as one rank is sure to
end past the current span. When no W is on a critical path of a longest rank, nothing is tried.

**Guarantee.** The returned span is never larger than that of `s`, and the returned schedule is
valid whenever `s` is. Deterministic.
@param memory_limit in the cost model's memory unit; infinity for no limit. A schedule that
already exceeds it is only refined with earlier moves.
@throws validation_error if `s` is not valid; deadline_exceeded when `options.stop` passes.
**Complexity.** O(N) per trial at most, for N ops; usually much less (see above).
*/
template <cost_model Costs>
refine_result refine_weights(const schedule& s, const Costs& costs, double memory_limit,
                             const refine_options& options = {}) {
  if (auto check = validate(s); !check) throw validation_error(check.message);
  const pipeline_shape& shape = s.shape();
  const auto p = static_cast<std::size_t>(shape.num_ranks);
  detail::weight_mover<Costs> mover(s, costs);
  if (!mover.run_all()) throw validation_error("invalid schedule [deadlock]: the simulation did not finish");
  detail::refine_score best = mover.score();
  const double span_eps = 1e-9 * (best.span > 0.0 ? best.span : 1.0);
  const double memory_eps = 1e-9 * (memory_limit > 0.0 && memory_limit < std::numeric_limits<double>::infinity()
                                        ? memory_limit
                                        : 1.0);
  refine_result out;
  std::int64_t simulated = 0;
  auto exhausted = [&] {
    options.stop.check("refine_weights");
    return out.evaluations >= options.max_evaluations || simulated >= options.max_simulated_ops;
  };
  auto peak_of = [&](const std::vector<op>& list) {
    double held = 0.0, peak = 0.0;
    for (const op& o : list) {
      held += costs.memory_delta(o, shape);
      peak = held > peak ? held : peak;
    }
    return peak;
  };

  std::vector<std::vector<char>> critical;
  std::vector<std::size_t> targets;
  const bool longest_only = static_cast<std::int64_t>(s.num_ops()) > options.all_ranks_up_to_ops;
  options.stop.check("refine_weights");
  mover.critical_weights(span_eps, longest_only, critical);
  for (std::int32_t round = 0; round < options.max_rounds; ++round) {
    bool improved = false;
    for (std::size_t r = 0; r < p; ++r) {
      std::vector<op>& list = mover.list(r);
      for (std::size_t q = 0; q < list.size(); ++q) {
        if (list[q].kind != op_kind::backward_weight || !critical[r][q]) continue;
        if (exhausted()) break;
        const std::vector<double>& starts = mover.starts(r);
        const std::vector<double>& ends = mover.ends(r);
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
        auto gap_before = [&](std::size_t k) { return k > 0 && k < starts.size() && starts[k] > ends[k - 1] + span_eps; };
        // Candidate insert positions, as indices into the list without the W; never inside an
        // F&B pair.
        targets.clear();
        for (std::size_t k = first; k < q; ++k)
          if (gap_before(k) && !(k > 0 && list[k - 1].overlapped)) targets.push_back(k);
        if (q + 1 < last && !list[q + 1].overlapped) targets.push_back(q + 1);
        for (std::size_t k = q + 2; k < last; ++k)
          if (gap_before(k) && !list[k - 1].overlapped) targets.push_back(k - 1);

        for (const std::size_t target : targets) {
          if (exhausted()) break;
          // Move the W from q to target in place (a rotation of the range between them).
          auto rotate_to = [&](std::size_t from, std::size_t to) {
            if (to < from)
              std::rotate(list.begin() + static_cast<std::ptrdiff_t>(to), list.begin() + static_cast<std::ptrdiff_t>(from),
                          list.begin() + static_cast<std::ptrdiff_t>(from) + 1);
            else
              std::rotate(list.begin() + static_cast<std::ptrdiff_t>(from), list.begin() + static_cast<std::ptrdiff_t>(from) + 1,
                          list.begin() + static_cast<std::ptrdiff_t>(to) + 1);
          };
          rotate_to(q, target);
          if (target > q && peak_of(list) > memory_limit + memory_eps) {
            rotate_to(target, q);
            continue;
          }
          ++out.evaluations;
          detail::refine_score score;
          const auto result = mover.try_edit(r, target < q ? target : q, best, span_eps, score);
          simulated += mover.last_trial_ops();
          const bool better = result == detail::weight_mover<Costs>::outcome::finished && score.span <= best.span &&
                              (score.span < best.span - span_eps || score.total < best.total - span_eps);
          if (better) {
            mover.accept();
            best = score;
            ++out.moves;
            improved = true;
            options.stop.check("refine_weights");
            mover.critical_weights(span_eps, longest_only, critical);
            break;  // the list changed: continue after the op now at q
          }
          rotate_to(target, q);  // undo
          mover.reject(r);
        }
      }
    }
    if (!improved || exhausted()) break;
  }

  schedule plan(shape, s.placement());
  for (std::int32_t j = 0; j < shape.num_microbatches; ++j) plan.set_replica(j, s.replica_of(j));
  for (std::size_t r = 0; r < p; ++r)
    for (const op& o : mover.list(r)) plan.push_back(static_cast<std::int32_t>(r), o);
  out.plan = std::move(plan);
  out.span = best.span;
  return out;
}

}  // namespace stretto::plan
