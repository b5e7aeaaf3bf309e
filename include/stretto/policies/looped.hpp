#pragma once
/**
@file
@brief Looped placements, v chunks per rank: Megatron's interleaved 1F1B (depth-first), its
zero-bubble variant with split backwards, and breadth-first pipeline parallelism, one family
parameterised by the microbatch group size N.
*/

#include <cstdint>
#include <string>
#include <string_view>

#include "../core/concepts.hpp"
#include "common.hpp"

namespace stretto::policies {

namespace detail {

/** Shape checks shared by the looped policies: p, m ≥ 1 and v ≥ 2. */
constexpr std::string check_looped(std::string_view name, const pipeline_shape& s) {
  std::string e = check_counts(name, s);
  if (!e.empty()) return e;
  if (s.num_chunks < 2)
    return cat(name, ": loops the model over the ranks, so it needs at least 2 chunks per rank (got ",
               s.num_chunks, "); use --chunks 2 or more, or 1f1b for one stage per rank");
  return {};
}

/**
@brief Megatron-LM's rule for the microbatch group size N of the looped depth-first order
(`microbatch_group_size_per_vp_stage`): p ≤ N ≤ m, and the last group, m mod N microbatches,
is either empty or holds at least p (so that its forwards still cover the pipeline).
*/
constexpr bool megatron_group_size_ok(std::int32_t p, std::int32_t m, std::int32_t n) noexcept {
  return n >= p && n <= m && (m % n == 0 || m % n >= p);
}

/**
@brief The default group size of the looped depth-first orders: the smallest N that Megatron-LM
accepts (`megatron_group_size_ok`) when m ≥ p, else N = m. This is PyTorch's group size
G = m / R with R = max(1, ⌊m/p⌋) rounds whenever PyTorch accepts m (R divides m), p when p
divides m, and m itself when m < p (PyTorch's single round). N = m always qualifies for m ≥ p,
so every m ≥ 1 has a default.
*/
constexpr std::int32_t default_group_size(std::int32_t p, std::int32_t m) noexcept {
  if (m < p) return m;
  for (std::int32_t n = p; n < m; ++n)
    if (megatron_group_size_ok(p, m, n)) return n;
  return m;
}

/**
@brief Appends rank `r`'s ops of the depth-first looped order with group size `n`
(Narayanan et al., SC 2021, §2.2; Megatron-LM `forward_backward_pipelining_with_interleaving`,
PyTorch `ScheduleInterleaved1F1B` and `ScheduleInterleavedZeroBubble`; docs/schedules.md §3).

The microbatches form consecutive groups of n, the last one holding the m mod n left over
(when not zero). Virtual index k in [0, m·v) walks each group through chunks 0..v−1 in turn,
its microbatches ascending within a chunk; backward index k uses the same table with chunk
v−1−c. The rank runs `warmup` forwards (capped at m·v), then per step one forward (while any
remain) and one backward, then the remaining backwards. Without `split` the backward is the
fused BW. With `split` it is B, and after the k-th B (k counted from 0) with k ≥ `w_lag` one W
runs, for the oldest B still without its W; the `w_lag` W's still owed go at the end.
@pre 1 ≤ n ≤ m, and m mod n == 0 or m mod n ≥ 1 (any remainder group is well defined).
*/
constexpr void append_depth_first(schedule& out, const pipeline_shape& s, std::int32_t r, std::int32_t n,
                                  std::int32_t warmup, bool split = false, std::int32_t w_lag = 0) {
  const std::int32_t p = s.num_ranks, v = s.num_chunks, m = s.num_microbatches;
  const std::int32_t total = m * v, full_groups = m / n, last = m % n;
  struct slot {
    std::int32_t chunk, microbatch;
  };
  auto at = [&](std::int32_t k) {
    const std::int32_t g = k / (n * v);
    if (g < full_groups) return slot{(k % (n * v)) / n, g * n + k % n};
    const std::int32_t within = k - full_groups * n * v;
    return slot{within / last, full_groups * n + within % last};
  };
  auto forward = [&](std::int32_t k) {
    const slot x = at(k);
    return op{op_kind::forward, x.chunk * p + r, x.microbatch};
  };
  const op_kind backward_kind = split ? op_kind::backward_input : op_kind::backward;
  auto backward = [&](std::int32_t k, op_kind kind) {
    const slot x = at(k);
    return op{kind, (v - 1 - x.chunk) * p + r, x.microbatch};
  };
  warmup = warmup < total ? warmup : total;
  std::int32_t next_f = 0, next_w = 0;
  for (; next_f < warmup; ++next_f) out.push_back(r, forward(next_f));
  for (std::int32_t k = 0; k < total; ++k) {
    if (next_f < total) out.push_back(r, forward(next_f++));
    out.push_back(r, backward(k, backward_kind));
    if (split && k >= w_lag) out.push_back(r, backward(next_w++, op_kind::backward_weight));
  }
  if (split)
    for (; next_w < total; ++next_w) out.push_back(r, backward(next_w, op_kind::backward_weight));
}

}  // namespace detail

/**
@brief Interleaved 1F1B (Megatron-LM "1F1B-I", depth-first looping; Narayanan et al.,
"Efficient Large-Scale Language Model Training on GPU Clusters", SC 2021, §2.2;
docs/schedules.md §3), for any m, with the microbatch groups of Megatron-LM and PyTorch.

**Shape.** Looped placement: S = p·v stages, stage c·p + r on rank r. Microbatches run in
groups of N through one chunk before the next, the last group holding the m mod N left over;
rank r warms up with w_r = min(2(p−r−1) + (v−1)·N, m·v) forwards, then alternates F and BW;
see `detail::append_depth_first`.

**Group size.** With `GroupSize` = 0 (the registered `interleaved-1f1b`), N is
`detail::default_group_size`: the smallest N that Megatron-LM accepts (p ≤ N ≤ m, m mod N = 0
or ≥ p) for m ≥ p, else N = m. So N = p when p divides m (Megatron's default), and N = PyTorch's
G = m/⌊m/p⌋ whenever PyTorch accepts m; the per-rank orders are then exactly PyTorch's
`ScheduleInterleaved1F1B` (e.g. p = 4: m = 10 runs groups of 5, m = 6 one group of 6). Where
PyTorch raises (p = 4, m = 9: 2 rounds do not divide 9) the order is Megatron-LM's with
remainder groups (5 + 4). m < p runs one group of m, as PyTorch does. A nonzero `GroupSize` is
Megatron-LM's `microbatch_group_size_per_vp_stage`, with its rule.

**Invariants.** At T_comm = 0 and m ≥ p the bubble is (p−1)(T_F + T_BW)/v for every accepted N
(4.5 at p = 4, v = 2, T_F = T_B = T_W = 1: span 28.5 at m = 8, 34.5 at m = 10, 22.5 at m = 6);
N changes only memory: rank r peaks at (w_r + 1)·M_B/v, or m·M_B when w_r = m·v.

**Errors.** Needs v ≥ 2. With a fixed `GroupSize`, N must satisfy Megatron-LM's rule; the
message names the rule and the valid m (and breadth-first, which accepts any m).

@tparam GroupSize N, the microbatches run on one chunk before moving on; 0 means the default.
*/
template <std::int32_t GroupSize = 0>
struct interleaved_1f1b_group {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = GroupSize == 0 ? "interleaved-1f1b" : "interleaved-1f1b-group";
  static constexpr placement_kind placement = placement_kind::looped;

  static constexpr std::int32_t group_size(const pipeline_shape& s) noexcept {
    return GroupSize == 0 ? detail::default_group_size(s.num_ranks, s.num_microbatches) : GroupSize;
  }

  static constexpr std::string check(const pipeline_shape& s) {
    std::string e = detail::check_looped(name, s);
    if (!e.empty()) return e;
    if constexpr (GroupSize != 0) {
      const std::int32_t n = GroupSize, p = s.num_ranks, m = s.num_microbatches;
      if (n < p || n > m)
        return detail::cat(name, ": the microbatch group size N must satisfy p <= N <= m (got N = ", n, ", p = ", p,
                           ", m = ", m, "); use m >= ", n > p ? n : p,
                           ", or breadth-first, which accepts any m");
      if (!detail::megatron_group_size_ok(p, m, n)) {
        // The next m whose last group is empty or holds at least p microbatches.
        std::int32_t next = m + 1;
        while (!detail::megatron_group_size_ok(p, next, n)) ++next;
        return detail::cat(name, ": the last microbatch group, m mod N = ", m % n, ", must be 0 or at least p = ", p,
                           " (Megatron-LM's rule; got m = ", m, ", N = ", n, "); use m = ", m - m % n, " or ", next,
                           ", or interleaved-1f1b, which picks N for any m");
      }
    }
    return {};
  }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    const std::int32_t n = group_size(s), p = s.num_ranks, v = s.num_chunks;
    for (std::int32_t r = 0; r < p; ++r) detail::append_depth_first(out, s, r, n, 2 * (p - r - 1) + (v - 1) * n);
    return out;
  }
};

/** @brief Interleaved 1F1B with the default group size (`detail::default_group_size`). */
using interleaved_1f1b = interleaved_1f1b_group<0>;

/**
@brief Interleaved zero bubble: interleaved 1F1B with the backward split into B and W, W
trailing B as in ZB-H1 (PyTorch `ScheduleInterleavedZeroBubble`; Qi et al., "Zero Bubble
Pipeline Parallelism", ICLR 2024, §3.1 for the W lag).

**Shape.** Looped placement: S = p·v stages, stage c·p + r on rank r. The F and B orders are
those of interleaved 1F1B with the same group size N (`detail::default_group_size`: PyTorch's
G = m/⌊m/p⌋ whenever PyTorch accepts m, m when m < p, else Megatron-LM's remainder groups), but
rank r warms up with w_r = min((v−1)·N + p−1−r, m·v) forwards (B is about half a BW, so half
the lead). After its k-th B (k from 0), rank r runs one W if k ≥ r, for the oldest B still
without its W: W lags B by r, rank 0 runs F B W triples; the r W's still owed go at the end.

**Invariants.** At T_comm = 0 and m ≥ p the bubble is (p−1)(T_F + T_B − T_W)/v: at
T_F = T_B = T_W = 1, p = 4, v = 2 the span is 25.5 for m = 8 (1.5 of bubble; interleaved 1F1B:
28.5), 31.5 for m = 10 and 19.5 for m = 6; 24.75 at v = 4, m = 8. Rank r peaks at
(w_r + 1)·M_B/v when W's free half an F's memory (M_W = M_B/2): 4 on rank 0 at p = 4, v = 2, m = 8.
With communication the short warm-up can cost more than interleaved 1F1B (p = 3, m = 8, v = 2,
T = (1, 2, 1), T_comm = 0.5: span 41.5 against 39); the order is kept as PyTorch builds it.

**Errors.** Needs v ≥ 2; any m ≥ 1 is accepted (PyTorch raises unless ⌊m/p⌋ divides m; those
m run Megatron-LM's remainder groups here).
*/
struct interleaved_zb {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "interleaved-zb";
  static constexpr placement_kind placement = placement_kind::looped;

  static constexpr std::string check(const pipeline_shape& s) { return detail::check_looped(name, s); }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    const std::int32_t p = s.num_ranks, v = s.num_chunks, n = detail::default_group_size(p, s.num_microbatches);
    for (std::int32_t r = 0; r < p; ++r) detail::append_depth_first(out, s, r, n, (v - 1) * n + p - 1 - r, true, r);
    return out;
  }
};

/**
@brief Breadth-first pipeline parallelism (Lamy-Poirier, "Breadth-First Pipeline Parallelism",
MLSys 2023, §3; PyTorch `ScheduleLoopedBFS`; docs/schedules.md §4): the looped family with N = m.

**Shape.** Looped placement, v ≥ 2 chunks per rank. Rank r runs the forwards of all m
microbatches on its first chunk, then on its second, …; then the backwards chunk by chunk in
reverse, microbatches m−1..0 within a chunk.

**Invariants.** At T_comm = 0 and m ≥ p the bubble equals interleaved 1F1B's, (p−1)(T_F+T_BW)/v;
for m < p each loop boundary adds (p−m)(T_F+T_BW)/v. Peak activation memory m·M_B on every rank.

**Errors.** Needs v ≥ 2; any m ≥ 1 is accepted.
*/
struct breadth_first {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "breadth-first";
  static constexpr placement_kind placement = placement_kind::looped;

  static constexpr std::string check(const pipeline_shape& s) { return detail::check_looped(name, s); }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    const std::int32_t p = s.num_ranks, v = s.num_chunks, m = s.num_microbatches;
    for (std::int32_t r = 0; r < p; ++r) {
      for (std::int32_t c = 0; c < v; ++c)
        for (std::int32_t j = 0; j < m; ++j) out.push_back(r, op{op_kind::forward, c * p + r, j});
      for (std::int32_t c = v - 1; c >= 0; --c)
        for (std::int32_t j = m - 1; j >= 0; --j) out.push_back(r, op{op_kind::backward, c * p + r, j});
    }
    return out;
  }
};

static_assert(schedule_policy<interleaved_1f1b>);
static_assert(schedule_policy<interleaved_zb>);
static_assert(schedule_policy<breadth_first>);

}  // namespace stretto::policies
