#pragma once
/**
@file
@brief Looped placements, v chunks per rank: Megatron's interleaved 1F1B (depth-first) and
breadth-first pipeline parallelism, one family parameterised by the microbatch group size N.
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
  if (std::string e = check_counts(name, s); !e.empty()) return e;
  if (s.num_chunks < 2)
    return cat(name, ": loops the model over the ranks, so it needs at least 2 chunks per rank (got ",
               s.num_chunks, "); use --chunks 2 or more, or 1f1b for one stage per rank");
  return {};
}

/**
@brief Appends rank `r`'s ops of the depth-first looped order with group size `n`
(Narayanan et al., SC 2021, §2.2; Megatron-LM / PyTorch `ScheduleInterleaved1F1B`; schedules.md §3):
virtual index k in [0, m·v) maps to local chunk ⌊k/n⌋ mod v (reversed for backwards) and
microbatch ⌊k/(n·v)⌋·n + k mod n; a warm-up of min(2(p−r−1) + (v−1)·n, m·v) forwards, then
one F and one BW per step, then the remaining BW's.
@pre m % n == 0.
*/
constexpr void append_depth_first(schedule& out, const pipeline_shape& s, std::int32_t r, std::int32_t n) {
  const std::int32_t p = s.num_ranks, v = s.num_chunks, m = s.num_microbatches;
  const std::int32_t total = m * v;
  auto microbatch = [&](std::int32_t k) { return (k / (n * v)) * n + k % n; };
  auto forward = [&](std::int32_t k) {
    return op{op_kind::forward, ((k / n) % v) * p + r, microbatch(k)};
  };
  auto backward = [&](std::int32_t k) {
    return op{op_kind::backward, (v - 1 - (k / n) % v) * p + r, microbatch(k)};
  };
  std::int32_t warmup = 2 * (p - r - 1) + (v - 1) * n;
  warmup = warmup < total ? warmup : total;
  std::int32_t next_f = 0;
  for (; next_f < warmup; ++next_f) out.push_back(r, forward(next_f));
  for (std::int32_t k = 0; k < total; ++k) {
    if (next_f < total) out.push_back(r, forward(next_f++));
    out.push_back(r, backward(k));
  }
}

}  // namespace detail

/**
@brief Interleaved 1F1B (Megatron-LM "1F1B-I", depth-first looping; Narayanan et al.,
"Efficient Large-Scale Language Model Training on GPU Clusters", SC 2021, §2.2;
schedules.md §3).

**Shape.** Looped placement: S = p·v stages, stage c on rank c mod p. Microbatches run in
groups of `GroupSize` (N, default p) through one chunk before the next; see
`detail::append_depth_first`.

**Invariants.** At T_comm = 0 the bubble overhead is (p−1)/(v·m); rank r peaks at
(w_r + 1)·M_B/v activations with w_r = min(2(p−r−1) + (v−1)·N, m·v), i.e. p + (p−1)/v on rank 0
for N = p.

**Errors.** Needs v ≥ 2 and m a multiple of N (Megatron: m % p == 0); the message names the
nearest valid m and breadth-first, which accepts any m.

@tparam GroupSize N, the microbatches run on one chunk before moving on; 0 means N = p.
*/
template <std::int32_t GroupSize = 0>
struct interleaved_1f1b_group {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = GroupSize == 0 ? "interleaved-1f1b" : "interleaved-1f1b-group";
  static constexpr placement_kind placement = placement_kind::looped;

  static constexpr std::int32_t group_size(const pipeline_shape& s) noexcept {
    return GroupSize == 0 ? s.num_ranks : GroupSize;
  }

  static constexpr std::string check(const pipeline_shape& s) {
    if (std::string e = detail::check_looped(name, s); !e.empty()) return e;
    const std::int32_t n = group_size(s);
    if (n < s.num_ranks || n > s.num_microbatches)
      return detail::cat(name, ": the microbatch group size N must satisfy p <= N <= m (got N = ", n, ", p = ",
                         s.num_ranks, ", m = ", s.num_microbatches, "); use m >= ", n > s.num_ranks ? n : s.num_ranks,
                         ", or breadth-first, which accepts any m");
    if (s.num_microbatches % n != 0)
      return detail::cat(name, ": the microbatches must be a multiple of the group size N = ", n,
                         " (Megatron-LM: m % p == 0), got m = ", s.num_microbatches, "; use m = ",
                         (s.num_microbatches / n) * n > 0 ? (s.num_microbatches / n) * n : n, " or ",
                         (s.num_microbatches / n + 1) * n, ", or breadth-first, which accepts any m");
    return {};
  }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    for (std::int32_t r = 0; r < s.num_ranks; ++r) detail::append_depth_first(out, s, r, group_size(s));
    return out;
  }
};

/** @brief Interleaved 1F1B with Megatron's group size N = p. */
using interleaved_1f1b = interleaved_1f1b_group<0>;

/**
@brief Breadth-first pipeline parallelism (Lamy-Poirier, "Breadth-First Pipeline Parallelism",
MLSys 2023, §3; PyTorch `ScheduleLoopedBFS`; schedules.md §4): the looped family with N = m.

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
static_assert(schedule_policy<breadth_first>);

}  // namespace stretto::policies
