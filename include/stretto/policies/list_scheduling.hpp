#pragma once
/**
@file
@brief Greedy list scheduling at integer unit costs: the construction behind the handcrafted
schedules that the papers describe by their behaviour (ZB-V, Chimera's merged directions).
*/

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "../core/dependencies.hpp"
#include "../core/op.hpp"
#include "../core/schedule.hpp"

namespace stretto::policies::detail {

/**
Integer op durations for list scheduling; `backward` is B (split) or BW (fused); `comm` is added
to every dependency between two ranks. `memory_forward` is what an F holds (negative: M_B/v) and
`memory_weight` what a B leaves for its W (negative: half of an F's).
*/
struct unit_costs {
  std::int64_t forward{1};
  std::int64_t backward{1};
  std::int64_t weight{1};
  std::int64_t comm{0};
  double memory_forward{-1.0};
  double memory_weight{-1.0};
  /// V-shape: a forward of the first chunk also reserves the memory of the same microbatch's
  /// second-chunk forward on this rank, so that ranks never fill up with first halves whose
  /// second halves then cannot start (a memory deadlock at tight limits).
  bool reserve_second_half{false};
};

/** What the priority function sees of a candidate op. */
struct candidate {
  op what{};
  std::int32_t lane{0};       ///< index of the (stage, replica) lane on this rank
  std::int32_t lane_rank{0};  ///< the rank it runs on
};

/**
@brief Fills `out` by simulating every rank at `costs` and letting each free rank start the
ready op of least `priority(candidate)` (an integer; lower runs first).

Each rank owns lanes, one per (stage, replica) it holds; within a lane F's, backwards and W's
each run in microbatch order (as in the Zero Bubble heuristic, schedules.md §7.5). A forward is a
candidate only while the rank's activation memory stays within `memory_limit` (units of M_B, a
chunk's F holding M_B/v, B leaving M_W/v with M_W = M_B/2; ≤ 0 means no limit). `split` makes
backwards B with a W each, else fused BW. The microbatch replicas of `out` must be set first.
Dependencies follow `dependencies_of` with zero communication time.
*/
template <class Priority>
constexpr void list_schedule(schedule& out, bool split, unit_costs costs, double memory_limit, Priority priority) {
  const pipeline_shape& shape = out.shape();
  const std::int32_t p = shape.num_ranks, m = shape.num_microbatches, stages = shape.num_stages();
  struct lane {
    std::int32_t stage, rank;
    std::vector<std::int32_t> microbatches;
    std::size_t next_f{0}, next_b{0}, next_w{0};
  };
  std::vector<lane> lanes;
  std::vector<std::vector<std::int32_t>> lanes_of(static_cast<std::size_t>(p));
  for (std::int32_t s = 0; s < stages; ++s)
    for (std::int32_t replica = 0; replica < 2; ++replica) {
      lane l{s, rank_of_stage(out.placement(), shape, s, replica), {}};
      for (std::int32_t j = 0; j < m; ++j)
        if (out.replica_of(j) == replica) l.microbatches.push_back(j);
      if (l.microbatches.empty()) continue;
      lanes_of[static_cast<std::size_t>(l.rank)].push_back(static_cast<std::int32_t>(lanes.size()));
      lanes.push_back(l);
    }
  const auto cells = static_cast<std::size_t>(stages) * static_cast<std::size_t>(m);
  std::vector<std::int64_t> f_end(cells, -1), b_end(cells, -1);
  auto cell = [m](std::int32_t s, std::int32_t j) { return static_cast<std::size_t>(s) * static_cast<std::size_t>(m) + static_cast<std::size_t>(j); };
  // Whether the inputs of `o` (dependencies_of, spelled out for speed: this is the hot loop)
  // are on `rank` by time t.
  auto arrived = [&](std::int64_t end, std::int32_t stage, std::int32_t mb, std::int32_t rank, std::int64_t t) {
    if (end < 0 || end > t) return false;
    return costs.comm == 0 || end + costs.comm <= t || out.rank_of(stage, mb) == rank;
  };
  auto ready_at = [&](const op& o, std::int32_t rank, std::int64_t t) {
    switch (o.kind) {
      case op_kind::forward:
        return o.stage == 0 || arrived(f_end[cell(o.stage - 1, o.microbatch)], o.stage - 1, o.microbatch, rank, t);
      case op_kind::backward_weight:
        return arrived(b_end[cell(o.stage, o.microbatch)], o.stage, o.microbatch, rank, t);
      default:
        return arrived(f_end[cell(o.stage, o.microbatch)], o.stage, o.microbatch, rank, t) &&
               (o.stage + 1 == stages ||
                arrived(b_end[cell(o.stage + 1, o.microbatch)], o.stage + 1, o.microbatch, rank, t));
    }
  };

  const double chunk = costs.memory_forward >= 0.0 ? costs.memory_forward : 1.0 / static_cast<double>(shape.num_chunks);
  const double left_for_w = costs.memory_weight >= 0.0 ? costs.memory_weight : chunk * 0.5;
  std::vector<double> held(static_cast<std::size_t>(p), 0.0);
  std::vector<double> reserved(static_cast<std::size_t>(p), 0.0);  // second halves still to come
  std::vector<std::int64_t> free_at(static_cast<std::size_t>(p), 0);
  std::vector<std::int64_t> arrivals;
  std::size_t remaining = 0;
  for (const lane& l : lanes) remaining += l.microbatches.size() * (split ? 3 : 2);
  for (std::int64_t t = 0; remaining > 0;) {
    std::int64_t next_t = -1;
    for (std::int32_t r = 0; r < p; ++r) {
      if (free_at[static_cast<std::size_t>(r)] > t) {
        next_t = next_t < 0 || free_at[static_cast<std::size_t>(r)] < next_t ? free_at[static_cast<std::size_t>(r)] : next_t;
        continue;
      }
      bool found = false;
      std::int64_t best_key = 0;
      candidate best{};
      for (std::int32_t li : lanes_of[static_cast<std::size_t>(r)]) {
        const lane& l = lanes[static_cast<std::size_t>(li)];
        auto consider = [&](op o) {
          const candidate c{o, li, r};
          const std::int64_t key = priority(c);
          // The key is cheaper than the readiness check: skip candidates that could not win.
          if (found && key >= best_key) return;
          if (!ready_at(o, r, t)) return;
          found = true, best_key = key, best = c;
        };
        if (l.next_f < l.microbatches.size()) {
          const bool first_half = costs.reserve_second_half && l.stage < p;
          const double need = held[static_cast<std::size_t>(r)] + reserved[static_cast<std::size_t>(r)] +
                              (first_half ? 2.0 * chunk : (costs.reserve_second_half ? 0.0 : chunk));
          if (memory_limit > 0 && need <= memory_limit + 1e-9) consider(op{op_kind::forward, l.stage, l.microbatches[l.next_f]});
        }
        if (memory_limit <= 0 && l.next_f < l.microbatches.size())
          consider(op{op_kind::forward, l.stage, l.microbatches[l.next_f]});
        if (l.next_b < l.next_f)
          consider(op{split ? op_kind::backward_input : op_kind::backward, l.stage, l.microbatches[l.next_b]});
        if (split && l.next_w < l.next_b) consider(op{op_kind::backward_weight, l.stage, l.microbatches[l.next_w]});
      }
      if (!found) continue;
      lane& l = lanes[static_cast<std::size_t>(best.lane)];
      const op& o = best.what;
      std::int64_t duration = costs.forward;
      if (o.kind == op_kind::forward) {
        ++l.next_f;
        held[static_cast<std::size_t>(r)] += chunk;
        if (costs.reserve_second_half) reserved[static_cast<std::size_t>(r)] += l.stage < p ? chunk : -chunk;
      } else if (o.kind == op_kind::backward_weight) {
        ++l.next_w;
        duration = costs.weight;
        held[static_cast<std::size_t>(r)] -= left_for_w;
      } else {
        ++l.next_b;
        duration = costs.backward;
        held[static_cast<std::size_t>(r)] -= split ? chunk - left_for_w : chunk;
      }
      out.push_back(r, o);
      const std::int64_t end = t + duration;
      if (o.kind == op_kind::forward) f_end[cell(o.stage, o.microbatch)] = end;
      if (produces_input_gradient(o.kind)) b_end[cell(o.stage, o.microbatch)] = end;
      free_at[static_cast<std::size_t>(r)] = end;
      if (costs.comm > 0) arrivals.push_back(end + costs.comm);
      next_t = next_t < 0 || end < next_t ? end : next_t;
      --remaining;
    }
    // Advance to the next completion. With a message delay, a free rank may wake when a message lands, before any rank is free:
    // `arrivals` keeps the landing times still ahead (ops end, then their messages arrive).
    if (costs.comm > 0) {
      std::size_t kept = 0;
      for (std::size_t k = 0; k < arrivals.size(); ++k)
        if (arrivals[k] > t) arrivals[kept++] = arrivals[k];
      arrivals.resize(kept);
      for (const std::int64_t a : arrivals) next_t = next_t <= t || a < next_t ? a : next_t;
    }
    // Every rank idle, nothing startable and nothing in flight: the rules cannot finish
    // (e.g. a memory limit below one microbatch). Report it instead of spinning.
    if (next_t <= t) throw std::logic_error("list_schedule: no op can start (memory limit too small?)");
    t = next_t;
  }
}

}  // namespace stretto::policies::detail
