#pragma once
/**
@file
@brief DualPipe and DualPipeV (DeepSeek-V3 technical report §3.2.1; the deepseek-ai/DualPipe
code; docs/schedules.md §9): bidirectional or V-shaped pipelines whose steady state runs overlapped
F&B pairs (`op::overlapped`).
*/

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/concepts.hpp"
#include "common.hpp"

namespace stretto::policies {

namespace detail {

/** One "phase" of a DualPipe rank: the stage it runs and the first microbatch that flows through it. */
struct dualpipe_phase {
  std::int32_t stage{0};
  std::int32_t first_microbatch{0};
};

/**
@brief Appends one rank's DualPipe order, the eight steps of docs/schedules.md §9, to `out`.

`n` ranks take part in one direction and this rank has index `h` among them (DualPipe:
n = p/2, h = min(r, p−1−r); DualPipeV: n = p, h = r); `count` microbatches flow through each of
the two phases (DualPipe: m/2; DualPipeV: m). Phase 0 is the rank's own direction (DualPipeV:
the down chunk), phase 1 the other (the up chunk); each phase runs its microbatches in order.
A zero-bubble backward is a B whose W goes to a FIFO queue, popped by the W steps; other
backwards are the fused BW. "F0 & B1" is an overlapped pair: F marked `overlapped`, then BW.

1. 2(n−h−1) × F0.  2. (h+1) × (F0, F1).  3. (n−h−1) × (B1 zero-bubble, W, F1).
4. (count − 2n + h + 1) × (F0 & B1, F1 & B0); on the rank with h = n−1 the first F0 and B1 run
   one after the other, not overlapped.  5. (n−h−1) × (B1, F1 & B0).
6. (h+1) × (B1, B0), zero-bubble from the middle on: at i = ⌊(h+1)/2⌋ before B1 when h is odd,
   after it when h is even, so that h+1 of the 2(h+1) backwards are split.
7. (n−h−1) × (W, B0 zero-bubble).  8. (h+1) × W.
@pre count ≥ 2n − h (step 4 runs at least once).
*/
constexpr void append_dualpipe(schedule& out, std::int32_t rank, std::int32_t n, std::int32_t h,
                               std::int32_t count, dualpipe_phase phase0, dualpipe_phase phase1) {
  const dualpipe_phase phases[2] = {phase0, phase1};
  std::int32_t next_f[2] = {0, 0}, next_b[2] = {0, 0};
  std::vector<op> weights;  // FIFO of the W's that zero-bubble backwards deferred
  std::size_t next_w = 0;
  auto forward = [&](int phase, bool overlapped) {
    const dualpipe_phase& ph = phases[phase];
    out.push_back(rank, op{op_kind::forward, ph.stage, ph.first_microbatch + next_f[phase]++, overlapped});
  };
  auto backward = [&](int phase, bool zero_bubble) {
    const dualpipe_phase& ph = phases[phase];
    const std::int32_t j = ph.first_microbatch + next_b[phase]++;
    out.push_back(rank, op{zero_bubble ? op_kind::backward_input : op_kind::backward, ph.stage, j});
    if (zero_bubble) weights.push_back(op{op_kind::backward_weight, ph.stage, j});
  };
  auto weight = [&] { out.push_back(rank, weights[next_w++]); };
  auto forward_backward = [&](int f_phase, int b_phase) {
    forward(f_phase, true);
    backward(b_phase, false);
  };

  for (std::int32_t i = 0; i < 2 * (n - h - 1); ++i) forward(0, false);  // 1
  for (std::int32_t i = 0; i < h + 1; ++i) forward(0, false), forward(1, false);  // 2
  for (std::int32_t i = 0; i < n - h - 1; ++i) backward(1, true), weight(), forward(1, false);  // 3
  for (std::int32_t i = 0; i < count - 2 * n + h + 1; ++i) {  // 4
    if (i == 0 && h == n - 1)
      forward(0, false), backward(1, false);
    else
      forward_backward(0, 1);
    forward_backward(1, 0);
  }
  for (std::int32_t i = 0; i < n - h - 1; ++i) backward(1, false), forward_backward(1, 0);  // 5
  bool zero_bubble = false;
  for (std::int32_t i = 0; i < h + 1; ++i) {  // 6
    if (i == (h + 1) / 2 && h % 2 == 1) zero_bubble = true;
    backward(1, zero_bubble);
    if (i == (h + 1) / 2 && h % 2 == 0) zero_bubble = true;
    backward(0, zero_bubble);
  }
  for (std::int32_t i = 0; i < n - h - 1; ++i) weight(), backward(0, true);  // 7
  for (std::int32_t i = 0; i < h + 1; ++i) weight();  // 8
}

/** The microbatch check both variants share: m ≥ `minimum` (and even when `even`), else a message naming `why` and a valid m. */
constexpr std::string check_dualpipe_microbatches(std::string_view name, const pipeline_shape& s, bool even,
                                                  std::int32_t minimum, std::string_view why) {
  const std::int32_t m = s.num_microbatches;
  if (m < minimum || (even && m % 2 != 0)) {
    std::int32_t use = m < minimum ? minimum : m + 1;
    return cat(name, ": ", why, " (got m = ", m, "); use m = ", use);
  }
  return {};
}

}  // namespace detail

/**
@brief DualPipe (DeepSeek-V3 technical report §3.2.1; deepseek-ai/DualPipe `dualpipe.py`;
docs/schedules.md §9): two replicas fed from both ends, as in Chimera, with the steady state made of
overlapped forward-and-backward pairs (F&B, `op::overlapped`).

**Shape.** p ranks (even), linear placement, v = 1 chunk per replica: replica 0 ("down") puts
stage s on rank s, replica 1 ("up", `set_replica`) on rank p−1−s, so every rank holds two stages
(parameters 2×). Microbatches 0..m/2−1 go down, m/2..m−1 go up. Rank r has
half_rank h = min(r, p−1−r) and n = p/2; its phase 0 is its own direction (down for r < n, up
otherwise), phase 1 the other one. Its order is the eight steps of docs/schedules.md §9 (see
`detail::append_dualpipe` for the counts), with the backward fused (BW) except where the code
turns on zero-bubble splitting: step 3, the second half of step 6 and step 7 run B and defer
W (FIFO). The middle ranks (h = n−1) run their first F0 and B1 of step 4 one after the other.

**Invariants.** Each rank runs m F's and m backwards (3m of work at F = B = W = 1 unit), and the
pairs of step 4 and 5 are overlapped. Bubble, measured as span − busy on the busiest rank
(the README's convention: idle time of one device in units of F, B, W, F&B), at
PP = p = 8, F = 1, B = 1, W = 1 (README's full backward B = 2), F&B = F + B + W = 3 and any
m ≥ 2p tested: (PP/2 − 1)(F&B + B_full − 3W) = 6, the README formula (ZB1P gives 7, 1F1B 21);
with F&B a cost-model parameter (`t_overlapped_fb`) 2.5 and 2 give 4.5 and 3, again the
formula, on the ranks that run the most pairs (the maximum over ranks, the convention used).
§9 is read literally, and that reading already lands on the formula: step 4 runs m/2 − p + h + 1
times, phase 0/1 = own/other direction, microbatches in order within each direction.

**Errors.** Needs p even (≥ 2), v = 1, m even and m ≥ 2p.
*/
struct dualpipe {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "dualpipe";
  static constexpr placement_kind placement = placement_kind::linear;

  static constexpr std::string check(const pipeline_shape& s) {
    using detail::cat;
    std::string e = detail::check_counts(name, s);
    if (!e.empty()) return e;
    if (s.num_ranks < 2 || s.num_ranks % 2 != 0)
      return cat(name, ": feeds the pipeline from both ends and pairs rank r with rank p-1-r, so the number of ranks p "
                 "must be even and at least 2 (got p = ", s.num_ranks, "); use p = ",
                 s.num_ranks < 2 ? 2 : s.num_ranks + 1, ", or dualpipev, which takes any p");
    if (s.num_chunks != 1)
      return cat(name, ": holds one stage of each replica per rank, so chunks must be 1 (got ", s.num_chunks,
                 "); dualpipev is the V-shaped variant with 2 chunks");
    return detail::check_dualpipe_microbatches(
        name, s, true, 2 * s.num_ranks,
        cat("sends half of the microbatches each way and needs at least p per direction to fill its warm-up, so m must "
            "be even and at least 2p = ", 2 * s.num_ranks));
  }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    const std::int32_t p = s.num_ranks, n = p / 2, half = s.num_microbatches / 2;
    for (std::int32_t j = half; j < s.num_microbatches; ++j) out.set_replica(j, 1);
    for (std::int32_t r = 0; r < p; ++r) {
      const std::int32_t h = r < p - 1 - r ? r : p - 1 - r;
      const detail::dualpipe_phase down{r, 0}, up{p - 1 - r, half};
      if (r < n)
        detail::append_dualpipe(out, r, n, h, half, down, up);
      else
        detail::append_dualpipe(out, r, n, h, half, up, down);
    }
    return out;
  }
};

/**
@brief DualPipeV, DualPipe "cut in half" (Sea AI Lab; deepseek-ai/DualPipe `dualpipev.py`;
docs/schedules.md §9): one input direction over a V-shaped placement, the same eight steps.

**Shape.** p ranks, V-shape placement with v = 2 chunks per rank: stage r (chunk 0, "phase 0")
and stage 2p−1−r (chunk 1, "phase 1") on rank r; every microbatch enters and leaves on rank 0.
Rank r runs the eight steps of docs/schedules.md §9 with (num_ranks, rank) = (p, r) in place of
(n, half_rank) and all m microbatches through each chunk: step 1 has 2(p−r−1) forwards, step 4
runs m − 2p + r + 1 times (F0 & B1, F1 & B0), the last rank (the bottom of the V) runs its first
F0 and B1 unoverlapped; see `detail::append_dualpipe`.

**Invariants.** The same per-stage structure as DualPipe on PP = 2p stages with half the
devices: at 2p stages, chunk F = 1, B = 1, W = 1, F&B = 3 the bubble (span − busy on the
busiest rank) is (PP/2 − 1)(F&B + B_full − 3W) = 3·2 = 6 for p = 4, as the README states.

**Errors.** Needs v = 2 and m ≥ 2p.
*/
struct dualpipev {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "dualpipev";
  static constexpr placement_kind placement = placement_kind::v_shape;

  static constexpr std::string check(const pipeline_shape& s) {
    using detail::cat;
    std::string e = detail::check_counts(name, s);
    if (!e.empty()) return e;
    if (s.num_chunks != 2)
      return cat(name, ": places 2 chunks per rank in a V, so chunks must be 2 (got ", s.num_chunks,
                 "); dualpipe is the variant with one stage per replica");
    return detail::check_dualpipe_microbatches(
        name, s, false, 2 * s.num_ranks,
        cat("needs 2(p - r - 1) + 2(r + 1) forwards in flight before its steady state, so m must be at least 2p = ",
            2 * s.num_ranks));
  }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    const std::int32_t p = s.num_ranks;
    for (std::int32_t r = 0; r < p; ++r)
      detail::append_dualpipe(out, r, p, r, s.num_microbatches, {r, 0}, {2 * p - 1 - r, 0});
    return out;
  }
};

static_assert(schedule_policy<dualpipe>);
static_assert(schedule_policy<dualpipev>);

}  // namespace stretto::policies
