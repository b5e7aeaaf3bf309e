#pragma once
/**
@file
@brief ZB-V and the V-shaped zero-bubble planner behind it: the greedy two-chunk planner of the
Zero Bubble authors (Qi et al., "Zero Bubble Pipeline Parallelism", ICLR 2024, §6 "ZB-V"; its
official implementation `zbv.py`, `PipelineGraph.try_v_schedule`), re-implemented from its
description in integer time so that it runs in constant expressions. docs/v-schedules.md
describes the algorithm step by step.
*/

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/concepts.hpp"
#include "../core/op.hpp"
#include "../core/schedule.hpp"
#include "../core/shape.hpp"
#include "../detail/config.hpp"
#include "common.hpp"

namespace stretto::policies {

/**
@brief Integer inputs of the V planner (`plan_zb_v`): the time of one chunk's F, B and W, the
message delay between neighbouring ranks, and each op's change of a rank's activation memory.

**Units.** Times in any one integer unit (the planner is exact in it: scaling every time by the
same factor scales the plan's times and keeps its orders). Memory in any integer unit; the
default is the Zero Bubble code's: a chunk's F holds 2, its B frees 1 and its W the other 1, so a
full stage's activations M_B are 4 units and the default cap p·M_B is 4p.
*/
struct v_plan_costs {
  std::int64_t forward{1};
  std::int64_t backward{1};   ///< B, the input gradient
  std::int64_t weight{1};     ///< W, the weight gradient
  std::int64_t comm{0};       ///< added to every dependency between two ranks
  std::int64_t memory_forward{2};
  std::int64_t memory_backward{-1};
  std::int64_t memory_weight{-1};
};

/**
@brief One run of the V planner: the per-rank orders, each rank's idle time after its first F
(its bubble) and the largest of those.

`ok` is false when the planner could not place an op (a memory cap that leaves no room, or a
warm-up that asks for a forward whose input does not exist yet: the official code's assertion
failures); `plan` is then empty and `error` says why. When `ok`, the planner's step time is
2m(f + b + w) + `max_bubble`, which is also the span of `plan` when every op starts as soon as its
inputs have arrived and its rank is free.
*/
struct v_plan_result {
  schedule plan;
  std::vector<std::int64_t> bubbles;
  std::int64_t max_bubble{-1};
  bool ok{false};
  std::string error;
};

namespace detail {

/// The six lanes of a rank, in the planner's numbering: F of chunk A (stage r), F of chunk C
/// (stage 2p−1−r), B of C, B of A, W of C, W of A.
enum v_lane : std::int32_t { lane_fa = 0, lane_fc = 1, lane_bc = 2, lane_ba = 3, lane_wc = 4, lane_wa = 5 };

/** @brief The state of one planner pass (one setting of the two knobs and one approved bubble). */
class v_planner {
 public:
  constexpr v_planner(std::int32_t p, std::int32_t m, const v_plan_costs& c, std::int64_t cap, bool fill_f,
                      bool fill_b, const std::vector<std::int64_t>* approved)
      : p_(p), m_(m), c_(c), cap_(cap), fill_f_(fill_f), fill_b_(fill_b), approved_(approved),
        count_(static_cast<std::size_t>(p)), end_(6 * static_cast<std::size_t>(p) * static_cast<std::size_t>(m), -1),
        now_(static_cast<std::size_t>(p), 0), mem_(static_cast<std::size_t>(p), 0),
        bubble_(static_cast<std::size_t>(p), 0), pending_(static_cast<std::size_t>(p)),
        pending_head_(static_cast<std::size_t>(p), 0), order_(static_cast<std::size_t>(p)) {
    for (auto& c6 : count_) c6 = {0, 0, 0, 0, 0, 0};
    for (auto& q : pending_) q.reserve(2 * static_cast<std::size_t>(m));
    for (auto& o : order_) o.reserve(6 * static_cast<std::size_t>(m));
    if (approved_ != nullptr)
      for (const std::int64_t a : *approved_) max_approved_ = a > max_approved_ ? a : max_approved_;
  }

  /** @brief Runs the pass; false when an op could not be placed (`error()` says which). */
  STRETTO_FLATTEN constexpr bool run() {
    warm_up();
    for (std::int32_t round = 0; round < 2 * m_ && ok_; ++round) steady_round();
    for (std::int32_t i = 0; i < p_ && ok_; ++i)
      while (ok_ && has_pending(i)) place_w(i);
    for (std::int32_t i = 0; i < p_ && ok_; ++i)
      for (std::int32_t k = 0; k < 6; ++k)
        if (count(i, k) != m_) fail("a lane ended with fewer than m ops");
    return ok_;
  }

  constexpr std::int64_t max_bubble() const noexcept { return max_bubble_; }
  constexpr const std::vector<std::int64_t>& bubbles() const noexcept { return bubble_; }
  constexpr const std::string& error() const noexcept { return error_; }

  /** @brief The orders as a V-shaped schedule (stage r is chunk A of rank r, 2p−1−r its chunk C). */
  constexpr schedule to_schedule(const pipeline_shape& shape) const {
    schedule out(shape, placement_kind::v_shape);
    for (std::int32_t i = 0; i < p_; ++i)
      for (const entry& e : order_[static_cast<std::size_t>(i)]) {
        const bool chunk_a = e.lane == lane_fa || e.lane == lane_ba || e.lane == lane_wa;
        const op_kind kind = e.lane <= lane_fc ? op_kind::forward
                             : e.lane <= lane_ba ? op_kind::backward_input
                                                 : op_kind::backward_weight;
        out.push_back(i, op{kind, chunk_a ? i : 2 * p_ - 1 - i, e.microbatch});
      }
    return out;
  }

 private:
  struct entry {
    std::int32_t lane;
    std::int32_t microbatch;
  };

  std::int32_t p_, m_;
  v_plan_costs c_;
  std::int64_t cap_;
  bool fill_f_, fill_b_;
  const std::vector<std::int64_t>* approved_;
  std::int64_t max_approved_{-1};
  std::vector<std::array<std::int32_t, 6>> count_;
  std::vector<std::int64_t> end_;  // [(lane·p + rank)·m + microbatch], −1 until placed
  std::vector<std::int64_t> now_, mem_, bubble_;
  std::int64_t max_bubble_{0};
  std::vector<std::vector<std::int32_t>> pending_;  // FIFO of the W lanes (4 or 5) of the B's placed
  std::vector<std::size_t> pending_head_;
  std::vector<std::vector<entry>> order_;
  bool ok_{true};
  std::string error_;

  constexpr void fail(const char* why) {
    if (ok_) error_ = why;
    ok_ = false;
  }
  constexpr std::int32_t& count(std::int32_t i, std::int32_t lane) {
    return count_[static_cast<std::size_t>(i)][static_cast<std::size_t>(lane)];
  }
  constexpr std::int64_t& end(std::int32_t lane, std::int32_t i, std::int32_t mb) {
    return end_[(static_cast<std::size_t>(lane) * static_cast<std::size_t>(p_) + static_cast<std::size_t>(i)) *
                    static_cast<std::size_t>(m_) +
                static_cast<std::size_t>(mb)];
  }
  constexpr std::int64_t cost(std::int32_t lane) const noexcept {
    return lane <= lane_fc ? c_.forward : lane <= lane_ba ? c_.backward : c_.weight;
  }
  constexpr std::int64_t delta(std::int32_t lane) const noexcept {
    return lane <= lane_fc ? c_.memory_forward : lane <= lane_ba ? c_.memory_backward : c_.memory_weight;
  }
  constexpr bool has_pending(std::int32_t i) const {
    return pending_head_[static_cast<std::size_t>(i)] < pending_[static_cast<std::size_t>(i)].size();
  }
  /// The rank whose op of the same lane feeds lane `lane` on rank i, or −1 (no cross-rank input).
  constexpr std::int32_t producer_rank(std::int32_t lane, std::int32_t i) const noexcept {
    if ((lane == lane_fa || lane == lane_bc) && i > 0) return i - 1;
    if ((lane == lane_fc || lane == lane_ba) && i < p_ - 1) return i + 1;
    return -1;
  }
  /// The largest bubble rank i may still take: the largest so far, or what the approved
  /// bubbles of the previous pass leave to this rank.
  constexpr std::int64_t allowed_bubble(std::int32_t i) const {
    std::int64_t out = max_bubble_;
    if (approved_ != nullptr) {
      const std::int64_t a = max_approved_ - (*approved_)[static_cast<std::size_t>(i)];
      out = a > out ? a : out;
    }
    return out;
  }

  constexpr void place(std::int32_t lane, std::int32_t i) {
    if (!ok_) return;
    const std::int32_t mb = count(i, lane);
    if (mb >= m_) return fail("a lane has no microbatch left");
    const auto r = static_cast<std::size_t>(i);
    if (mem_[r] + delta(lane) > cap_) return fail("an op would exceed the memory cap");
    // The op before it of the same microbatch on this rank: F_A before F_C before B_C before
    // B_A, and a W after its own B.
    if (lane >= lane_fc && lane <= lane_ba && end(lane - 1, i, mb) < 0) return fail("an op's own-rank input is not placed");
    if (lane >= lane_wc && end(lane - 2, i, mb) < 0) return fail("a W's B is not placed");
    const std::int64_t earliest = now_[r] + cost(lane);
    std::int64_t t = earliest;
    if (const std::int32_t from = producer_rank(lane, i); from >= 0) {
      const std::int64_t input = end(lane, from, mb);
      if (input < 0) return fail("an op's input from the neighbouring rank is not placed");
      if (input + c_.comm + cost(lane) > t) t = input + c_.comm + cost(lane);
    }
    if (count(i, lane_fa) > 0) {  // idle time counts from the rank's first F on
      bubble_[r] += t - earliest;
      max_bubble_ = bubble_[r] > max_bubble_ ? bubble_[r] : max_bubble_;
    }
    end(lane, i, mb) = t;
    now_[r] = t;
    mem_[r] += delta(lane);
    order_[r].push_back(entry{lane, mb});
    if (lane == lane_bc || lane == lane_ba) pending_[r].push_back(lane + 2);
    ++count(i, lane);
  }

  constexpr void place_w(std::int32_t i) {
    if (!has_pending(i)) return fail("memory is full and no W is pending");
    const auto r = static_cast<std::size_t>(i);
    place(pending_[r][pending_head_[r]++], i);
  }

  /// Before placing an op of `lane` on rank i: run pending W's while they fit in the wait for
  /// its input, then one more if the wait exceeds what the rank may still idle.
  constexpr void fill_gap(std::int32_t lane, std::int32_t i) {
    if (count(i, lane) >= m_) return;  // nothing to place: `place` reports it
    const std::int32_t from = producer_rank(lane, i);
    const auto r = static_cast<std::size_t>(i);
    const std::int64_t input = from >= 0 ? end(lane, from, count(i, lane)) : -1;
    const std::int64_t arrival = input + c_.comm;
    while (ok_ && has_pending(i) && from >= 0 && arrival >= now_[r] + c_.weight) place_w(i);
    if (ok_ && has_pending(i) && arrival - now_[r] > allowed_bubble(i) - bubble_[r]) {
      const bool fill = lane == lane_ba || (lane == lane_bc && fill_b_) || (lane <= lane_fc && fill_f_);
      if (fill) place_w(i);
    }
  }

  constexpr void warm_up() {
    for (std::int32_t i = 0; i < p_; ++i) place(lane_fa, i);
    for (std::int32_t i = p_ - 1; i >= 0 && ok_; --i) {
      if (i < p_ - 1) {
        const std::int64_t arrival = end(lane_fc, i + 1, 0) + c_.comm;
        const auto r = static_cast<std::size_t>(i);
        while (ok_ && mem_[r] + c_.memory_forward * (2 + 2 * static_cast<std::int64_t>(i)) <= cap_ &&
               now_[r] + c_.forward <= arrival && count(i, lane_fa) < m_)
          for (std::int32_t j = 0; j <= i; ++j) place(lane_fa, j);
      }
      place(lane_fc, i);
    }
    // Each rank catches up with the forwards of the rank before it, alternating the lanes.
    std::int32_t lane = lane_fa;
    for (std::int32_t i = 1; i < p_ && ok_; ++i) {
      std::int32_t idle_sweeps = 0;
      while (ok_ && (count(i, lane_fa) + count(i, lane_fc) < count(i - 1, lane_fa) + count(i - 1, lane_fc) ||
                     (count(i, lane_fc) <= count(i - 1, lane_fc) && count(i - 1, lane_fc) < m_))) {
        bool placed = false;
        for (std::int32_t j = p_ - 1; j >= i; --j)
          if (count(j, lane) < m_) place(lane, j), placed = true;
        lane = 1 - lane;
        idle_sweeps = placed ? 0 : idle_sweeps + 1;
        if (idle_sweeps >= 2) fail("the warm-up cannot catch up with the previous rank");
      }
    }
  }

  constexpr void steady_round() {
    for (std::int32_t i = 0; i < p_ && ok_; ++i)
      while (ok_ && mem_[static_cast<std::size_t>(i)] + c_.memory_backward > cap_) place_w(i);
    // Each rank's B: of chunk C unless it is ahead of chunk A, or chunk A's input is there.
    std::vector<std::int32_t> lane_of(static_cast<std::size_t>(p_), lane_bc);
    for (std::int32_t i = 0; i < p_; ++i) {
      const std::int32_t done_a = count(i, lane_ba), done_c = count(i, lane_bc);
      if (done_a >= done_c) continue;
      if (i == p_ - 1 || end(lane_ba, i + 1, done_a) >= 0 || done_c >= m_) lane_of[static_cast<std::size_t>(i)] = lane_ba;
    }
    // Chunk A's B's from the last rank down, then chunk C's from rank 0 up.
    for (std::int32_t i = p_ - 1; i >= 0 && ok_; --i)
      if (lane_of[static_cast<std::size_t>(i)] == lane_ba) fill_gap(lane_ba, i), place(lane_ba, i);
    for (std::int32_t i = 0; i < p_ && ok_; ++i)
      if (lane_of[static_cast<std::size_t>(i)] == lane_bc) fill_gap(lane_bc, i), place(lane_bc, i);
    // One forward per rank where one is ready.
    for (std::int32_t i = 0; i < p_ && ok_; ++i) {
      const std::int32_t done_a = count(i, lane_fa), done_c = count(i, lane_fc);
      if (done_c >= m_) continue;
      std::int32_t lane = -1;
      if (done_c >= done_a)
        lane = lane_fa;
      else if (i == p_ - 1 || end(lane_fc, i + 1, done_c) >= 0)
        lane = lane_fc;
      else if (done_a < m_ && (i == 0 || end(lane_fa, i - 1, done_a) >= 0))
        lane = lane_fa;
      if (lane < 0) continue;
      while (ok_ && mem_[static_cast<std::size_t>(i)] + c_.memory_forward > cap_) place_w(i);
      fill_gap(lane, i);
      place(lane, i);
    }
  }
};

/// One pass and, as the official planner does, the passes that replay it with the bubbles it
/// found approved; a replay is kept only when its largest bubble is strictly smaller.
/// `strict`: a replay that fails fails the whole (as the official code's assertion would);
/// otherwise it only counts as no improvement.
constexpr v_plan_result v_plan_refined(const pipeline_shape& shape, const v_plan_costs& costs, std::int64_t cap,
                                       bool fill_f, bool fill_b, const std::vector<std::int64_t>* approved,
                                       bool strict) {
  v_planner pass(shape.num_ranks, shape.num_microbatches, costs, cap, fill_f, fill_b, approved);
  v_plan_result out;
  if (!pass.run()) {
    out.error = pass.error();
    return out;
  }
  std::int64_t max_approved = -1;
  if (approved != nullptr)
    for (const std::int64_t a : *approved) max_approved = a > max_approved ? a : max_approved;
  // A replay must be strictly better to be kept, so none follows a zero bubble (its replay with
  // all-zero approvals would repeat the pass exactly).
  if ((approved == nullptr && pass.max_bubble() > 0) || pass.max_bubble() < max_approved) {
    v_plan_result replay = v_plan_refined(shape, costs, cap, fill_f, fill_b, &pass.bubbles(), strict);
    if (!replay.ok && strict) return replay;
    if (replay.ok && replay.max_bubble < pass.max_bubble()) return replay;
  }
  out.plan = pass.to_schedule(shape);
  out.bubbles = pass.bubbles();
  out.max_bubble = pass.max_bubble();
  out.ok = true;
  return out;
}

}  // namespace detail

/**
@brief The V planner of the Zero Bubble authors for one setting of its two knobs: `fill_f`
(a rank that would idle longer than allowed before an F runs a pending W first) and `fill_b`
(the same before a B of chunk C; before a B of chunk A it always does), followed by its
approved-bubble refinement.

**Shape.** p = `shape.num_ranks` ranks, m = `shape.num_microbatches`, v = 2 chunks per rank in
the V placement (stage r and stage 2p−1−r on rank r); B/W split.

@param cap the most activation memory a rank may hold, in the units of `costs` (p·M_B is
2p·`costs.memory_forward`); ≤ 0 means that default.
@param strict as the official code: when a refinement replay cannot be planned, the whole run
fails; otherwise the replay is dropped.
@return `ok` false (with the reason) when an op cannot be placed; the shape itself is not
checked here (use `zb_v::check`).
*/
constexpr v_plan_result plan_zb_v_knobs(const pipeline_shape& shape, const v_plan_costs& costs, std::int64_t cap,
                                        bool fill_f, bool fill_b, bool strict = true) {
  if (cap <= 0) cap = 2 * static_cast<std::int64_t>(shape.num_ranks) * costs.memory_forward;
  return detail::v_plan_refined(shape, costs, cap, fill_f, fill_b, nullptr, strict);
}

/**
@brief The V planner of the Zero Bubble authors (Qi et al., ICLR 2024, §6; the official
`zbv.py`): `plan_zb_v_knobs` for fill_b ∈ (true, false) × fill_f ∈ (true, false), in that
order, keeping the first result with the strictly smallest largest bubble (it stops at a zero
bubble, which no later setting can beat).

**Shape and units** as `plan_zb_v_knobs`. At equal costs (f = b = w, c = 0) and the default cap it
is ZB-V: 2p chunk F's before each rank's first B, zero bubble for m ≥ 2p − 1, and a peak of
exactly p·M_B on every rank. A larger cap lets the warm-up run more forwards, which helps when
f, b and w differ.

@param strict as the official code: any knob setting that cannot be planned fails the whole
run. Otherwise such settings are skipped, and the run fails only when none can be planned.
*/
constexpr v_plan_result plan_zb_v(const pipeline_shape& shape, const v_plan_costs& costs, std::int64_t cap = 0,
                                  bool strict = true) {
  v_plan_result best;
  for (const bool fill_b : {true, false})
    for (const bool fill_f : {true, false}) {
      v_plan_result r = plan_zb_v_knobs(shape, costs, cap, fill_f, fill_b, strict);
      if (!r.ok) {
        if (strict) return r;
        if (best.error.empty()) best.error = r.error;
        continue;
      }
      if (!best.ok || r.max_bubble < best.max_bubble) best = std::move(r);
      if (best.max_bubble == 0) return best;  // no later setting can be strictly better
    }
  return best;
}

/**
@brief ZB-V, the V-shaped zero-bubble schedule with 1F1B's memory (Qi et al., "Zero Bubble
Pipeline Parallelism", ICLR 2024 §6 / arXiv v2 "ZB-V"; the official `zbv.py`).

**Shape.** V-shape placement, v = 2: stage s < p on rank s (chunk A), stage s ≥ p on rank
2p−1−s (chunk C); a microbatch's forward goes down A and back up C, its backward the reverse,
so both start and end on rank 0. The orders are those of the official V planner (`plan_zb_v`)
at equal chunk times (f = b = w = 1, no message delay) under its default cap p·M_B, the
schedule the paper draws; `stretto::plan::auto_schedule_v` plans with real costs instead.

**Invariants.** At T_F = T_B = T_W the span is 6m chunk units (zero bubble) for every
m ≥ 2p − 1, and every rank peaks at exactly p·M_B. For m < 2p − 1 some bubble remains (p = 4:
span 27 chunk units at m = 4, 37 at m = 6). At T_F, T_B, T_W = 1, 2, 1 and p = 4, m = 8 the span
is 35, the official order's.

**Errors.** Needs v = 2. Any p, m ≥ 1 is accepted.
*/
struct zb_v {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "zb-v";
  static constexpr placement_kind placement = placement_kind::v_shape;

  static constexpr std::string check(const pipeline_shape& s) {
    using detail::cat;
    std::string e = detail::check_counts(name, s);
    if (!e.empty()) return e;
    if (s.num_chunks != 2)
      return cat(name, ": places 2 chunks per rank in a V, so chunks must be 2 (got ", s.num_chunks, ")");
    return {};
  }

  static constexpr schedule generate(const pipeline_shape& s) {
    return plan_zb_v(s, v_plan_costs{}).plan;
  }
};

static_assert(schedule_policy<zb_v>);

}  // namespace stretto::policies
