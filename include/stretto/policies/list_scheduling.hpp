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
#include "../core/errors.hpp"
#include "../core/op.hpp"
#include "../core/schedule.hpp"
#include "../detail/config.hpp"
#include "../detail/text.hpp"

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
  std::int32_t lane{0};       ///< index of its (stage, replica) lane; lanes are numbered rank by rank, then by stage and replica
  std::int32_t lane_rank{0};  ///< the rank it runs on
};

/**
@brief Fills `out` by simulating every rank at `costs` and letting each free rank start the
ready op of least `priority(candidate)` (an integer; lower runs first).

Each rank owns lanes, one per (stage, replica) it holds; within a lane F's, backwards and W's
each run in microbatch order (as in the Zero Bubble heuristic, docs/schedules.md §7.5). A forward is a
candidate only while the rank's activation memory stays within `memory_limit` (units of M_B, a
chunk's F holding M_B/v, B leaving M_W/v with M_W = M_B/2; ≤ 0 means no limit). `split` makes
backwards B with a W each, else fused BW. The microbatch replicas of `out` must be set first.
Dependencies follow `dependencies_of`; one between two ranks is ready `costs.comm` after its
producer ends.
@throws argument_error when an op time or `costs.comm` is negative; std::logic_error when no op
can start (every rank idle, nothing in flight: e.g. a memory limit below one microbatch).
*/
template <class Priority>
STRETTO_FLATTEN constexpr void list_schedule(schedule& out, bool split, unit_costs costs, double memory_limit, Priority priority) {
  const pipeline_shape& shape = out.shape();
  const std::int32_t p = shape.num_ranks, m = shape.num_microbatches, stages = shape.num_stages();
  if (costs.forward < 0 || costs.backward < 0 || costs.weight < 0 || costs.comm < 0)
    throw argument_error(stretto::detail::cat("list_schedule: op times and the message delay must be >= 0 (got F ",
                                              costs.forward, ", B ", costs.backward, ", W ", costs.weight,
                                              ", comm ", costs.comm, ")"));
  struct lane {
    std::int32_t stage, rank;
    std::vector<std::int32_t> microbatches;
    std::size_t next_f{0}, next_b{0}, next_w{0};
    // When the inputs of the next F, B and W are on this rank: `unknown` (not looked up since
    // the lane last moved or was woken), `waiting` (an input is not scheduled yet: skipped until
    // its producer is scheduled and wakes the lane), else a time. An input's end never changes
    // once known, so the hot loop looks each one up about once.
    std::int64_t inputs_f{-1}, inputs_b{-1}, inputs_w{-1};
  };
  constexpr std::int64_t unknown = -1, waiting = -2;
  // The lanes of rank r are lanes[first_lane[r] .. first_lane[r + 1]), by stage then replica.
  std::vector<lane> lanes;
  std::vector<std::size_t> first_lane(static_cast<std::size_t>(p) + 1, 0);
  std::vector<std::int32_t> lane_of(2 * static_cast<std::size_t>(stages), -1);  // [2·stage + replica]
  for (std::int32_t r = 0; r < p; ++r) {
    first_lane[static_cast<std::size_t>(r)] = lanes.size();
    for (std::int32_t s = 0; s < stages; ++s)
      for (std::int32_t replica = 0; replica < 2; ++replica) {
        if (rank_of_stage(out.placement(), shape, s, replica) != r) continue;
        lane l{s, r, {}};
        for (std::int32_t j = 0; j < m; ++j)
          if (out.replica_of(j) == replica) l.microbatches.push_back(j);
        if (l.microbatches.empty()) continue;
        lane_of[static_cast<std::size_t>(2 * s + replica)] = static_cast<std::int32_t>(lanes.size());
        lanes.push_back(l);
      }
  }
  first_lane[static_cast<std::size_t>(p)] = lanes.size();
  const auto cells = static_cast<std::size_t>(stages) * static_cast<std::size_t>(m);
  // Microbatch-major, F and B side by side: a B's two inputs, (s, j) and (s + 1, j), share a cache line.
  struct ends {
    std::int64_t f{-1}, b{-1};
  };
  std::vector<ends> end_of(cells);
  auto cell = [stages](std::int32_t s, std::int32_t j) { return static_cast<std::size_t>(j) * static_cast<std::size_t>(stages) + static_cast<std::size_t>(s); };
  // When the inputs of `o` (dependencies_of, spelled out for speed: this is the hot loop) are
  // on `rank`, or `waiting` while one of them has not been scheduled.
  auto arrival = [&](std::int64_t end, std::int32_t stage, std::int32_t mb, std::int32_t rank) -> std::int64_t {
    if (end < 0) return waiting;
    return costs.comm == 0 || out.rank_of(stage, mb) == rank ? end : end + costs.comm;
  };
  auto inputs_at = [&](const op& o, std::int32_t rank) -> std::int64_t {
    switch (o.kind) {
      case op_kind::forward:
        return o.stage == 0 ? 0 : arrival(end_of[cell(o.stage - 1, o.microbatch)].f, o.stage - 1, o.microbatch, rank);
      case op_kind::backward_weight:
        return arrival(end_of[cell(o.stage, o.microbatch)].b, o.stage, o.microbatch, rank);
      default: {
        const std::int64_t f = arrival(end_of[cell(o.stage, o.microbatch)].f, o.stage, o.microbatch, rank);
        if (f < 0 || o.stage + 1 == stages) return f;
        const std::int64_t g = arrival(end_of[cell(o.stage + 1, o.microbatch)].b, o.stage + 1, o.microbatch, rank);
        return g < 0 ? g : (f > g ? f : g);
      }
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
      for (std::size_t lane_index = first_lane[static_cast<std::size_t>(r)];
           lane_index < first_lane[static_cast<std::size_t>(r) + 1]; ++lane_index) {
        lane& l = lanes[lane_index];
        const auto li = static_cast<std::int32_t>(lane_index);
        // `inputs`: the lane's cached input time for this kind of op.
        auto consider = [&](op o, std::int64_t& inputs) {
          if (inputs == waiting || inputs > t) return;  // known not ready: no key, no lookup
          const candidate c{o, li, r};
          const std::int64_t key = priority(c);
          if (found && key >= best_key) return;  // could not win
          if (inputs == unknown) inputs = inputs_at(o, r);
          if (inputs < 0 || inputs > t) return;
          found = true, best_key = key, best = c;
        };
        if (l.next_f < l.microbatches.size()) {
          const bool first_half = costs.reserve_second_half && l.stage < p;
          const double need = held[static_cast<std::size_t>(r)] + reserved[static_cast<std::size_t>(r)] +
                              (first_half ? 2.0 * chunk : (costs.reserve_second_half ? 0.0 : chunk));
          if (memory_limit <= 0 || need <= memory_limit + 1e-9)
            consider(op{op_kind::forward, l.stage, l.microbatches[l.next_f]}, l.inputs_f);
        }
        if (l.next_b < l.next_f)
          consider(op{split ? op_kind::backward_input : op_kind::backward, l.stage, l.microbatches[l.next_b]}, l.inputs_b);
        if (split && l.next_w < l.next_b) consider(op{op_kind::backward_weight, l.stage, l.microbatches[l.next_w]}, l.inputs_w);
      }
      if (!found) continue;
      lane& l = lanes[static_cast<std::size_t>(best.lane)];
      const op& o = best.what;
      std::int64_t duration = costs.forward;
      if (o.kind == op_kind::forward) {
        ++l.next_f;
        l.inputs_f = unknown;
        held[static_cast<std::size_t>(r)] += chunk;
        if (costs.reserve_second_half) reserved[static_cast<std::size_t>(r)] += l.stage < p ? chunk : -chunk;
      } else if (o.kind == op_kind::backward_weight) {
        ++l.next_w;
        l.inputs_w = unknown;
        duration = costs.weight;
        held[static_cast<std::size_t>(r)] -= left_for_w;
      } else {
        ++l.next_b;
        l.inputs_b = unknown;
        duration = costs.backward;
        held[static_cast<std::size_t>(r)] -= split ? chunk - left_for_w : chunk;
      }
      out.push_back(r, o);
      const std::int64_t end = t + duration;
      // Record the end and wake the lane that may be waiting for it: the next stage's F, the
      // previous stage's B (a W or a B waits only for ops of its own lane, scheduled before it).
      // Spelled out twice on purpose: one lambda taking a member pointer measured 15% slower.
      const auto replica = static_cast<std::size_t>(out.replica_of(o.microbatch));
      if (o.kind == op_kind::forward) {
        end_of[cell(o.stage, o.microbatch)].f = end;
        if (o.stage + 1 < stages)
          if (const std::int32_t next = lane_of[2 * static_cast<std::size_t>(o.stage + 1) + replica]; next >= 0)
            if (std::int64_t& w = lanes[static_cast<std::size_t>(next)].inputs_f; w == waiting) w = unknown;
      }
      if (produces_input_gradient(o.kind)) {
        end_of[cell(o.stage, o.microbatch)].b = end;
        if (o.stage > 0)
          if (const std::int32_t previous = lane_of[2 * static_cast<std::size_t>(o.stage - 1) + replica]; previous >= 0)
            if (std::int64_t& w = lanes[static_cast<std::size_t>(previous)].inputs_b; w == waiting) w = unknown;
      }
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
