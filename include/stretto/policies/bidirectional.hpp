#pragma once
/**
@file
@brief Bidirectional pipelines: two replicas of the model, one fed from each end.
*/

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/concepts.hpp"
#include "common.hpp"
#include "one_f_one_b.hpp"
#include "unit_timing.hpp"

namespace stretto::policies {

/**
@brief BitPipe, bidirectional interleaved pipeline parallelism (Wu, Chen, Yu, arXiv 2410.19367,
§3; the official code's per-device order; docs/schedules.md §8).

**Shape.** D = p ranks (even), two replicas, each V-shaped over 2D stages (v = 2 chunks per
rank per replica, 4 in all): replica 0 ("down") puts stage s < D on rank s and stage s ≥ D on
rank 2D−1−s; replica 1 ("up") mirrors it. Microbatches come in units of D: in unit k the first
D/2 go down, the others up. Per rank r, with u = D/2 and n0 = u−r (r < u) or r−u+1, the forward
order of a unit is A_own[0..n0), pairs (A_oth[t], A_own[t+n0]), pairs (A_oth[t+u−n0], C_oth[t]),
pairs (C_own[t], C_oth[t+n0]), C_own[u−n0..u), where A/C are the first/second-half chunks and
own/oth the rank's own/other direction; the backward order is the same pattern with
A_own→C_own, A_oth→C_oth, C_oth→A_oth, C_own→A_own. Concatenated over the m/D units these
give the rank's forward list and backward list (2m chunks each).

**Order** (the official code's, wuhouming/BitPipe `bitpipe_schedule.py`). Rank r runs
W_r = D + u + min(r, D−1−r) warm-up forwards and U_r = 2D − W_r steady pairs (D/2 on the edge
ranks, 1 in the middle). Per unit: U_r pairs (next forward, next backward); then, if another
unit follows, W_r − U_r + 1 backwards alone, U_r − 1 pairs of the next unit's first forwards
with this unit's last backwards, and the next unit's remaining W_r − U_r + 1 forwards, so the
next unit's warm-up overlaps this unit's cool-down; after the last unit, its remaining
backwards.

**Invariants.** For D = 4, N = 4 the per-device orders are exactly those of docs/schedules.md §8.3;
at chunk F = 1, chunk BW = 2, T_comm = 0 the span is 28 (bubble 1/7). In stage units
(T_F = T_B = T_W = 1, T_comm = 0) the span is 14, 27, 40 for D = 4 and m = 4, 8, 12, and
30, 57, 84 for D = 8 and m = 8, 16, 24: each unit after the first adds (D−2)/2 of bubble
instead of D−2. Rank r peaks at (W_r + 1)·M_B/2 for every m.

**Errors.** Needs p even (≥ 2), v = 2, and m a multiple of p.
*/
struct bitpipe {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "bitpipe";
  static constexpr placement_kind placement = placement_kind::v_shape;

  static constexpr std::string check(const pipeline_shape& s) {
    using detail::cat;
    std::string e = detail::check_counts(name, s);
    if (!e.empty()) return e;
    e = detail::check_paired_ranks(name, s);
    if (!e.empty()) return e;
    if (s.num_chunks != 2)
      return cat(name, ": each replica is V-shaped with 2 chunks per rank, so chunks must be 2 (got ", s.num_chunks,
                 ")");
    if (s.num_microbatches % s.num_ranks != 0)
      return cat(name, ": runs units of p microbatches (half down, half up), so the number of microbatches m must be a multiple of p = ",
                 s.num_ranks, " (got m = ", s.num_microbatches, "); use m = ",
                 (s.num_microbatches / s.num_ranks + 1) * s.num_ranks);
    return {};
  }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    const std::int32_t d = s.num_ranks, u = d / 2, m = s.num_microbatches;
    for (std::int32_t j = 0; j < m; ++j) out.set_replica(j, (j % d) < u ? 0 : 1);
    for (std::int32_t r = 0; r < d; ++r) {
      const bool own_down = r < u;
      const std::int32_t n0 = own_down ? u - r : r - u + 1;
      // First- and second-half stages of each replica on rank r.
      const std::int32_t down_a = r, down_c = 2 * d - 1 - r, up_a = d - 1 - r, up_c = d + r;
      const std::int32_t own_a = own_down ? down_a : up_a, own_c = own_down ? down_c : up_c;
      const std::int32_t oth_a = own_down ? up_a : down_a, oth_c = own_down ? up_c : down_c;
      const std::int32_t warmup = d + u + (r < d - 1 - r ? r : d - 1 - r), steady = 2 * d - warmup;
      // The rank's forward and backward chunk lists, unit after unit (2p entries per unit).
      std::vector<op> forwards(static_cast<std::size_t>(2 * m)), backwards(static_cast<std::size_t>(2 * m));
      for (std::int32_t unit = 0; unit < m / d; ++unit) {
        const std::int32_t own_mb = unit * d + (own_down ? 0 : u), oth_mb = unit * d + (own_down ? u : 0);
        // The five-part pattern over (first list, second list, third, fourth) = (a_own, a_oth, c_oth, c_own).
        auto pattern = [&](op_kind kind, std::int32_t a_own, std::int32_t a_oth, std::int32_t c_oth,
                           std::int32_t c_own, op* into) {
          std::int32_t n = 0;
          auto at = [&](std::int32_t stage, std::int32_t first_mb, std::int32_t t) {
            into[n++] = op{kind, stage, first_mb + t};
          };
          for (std::int32_t t = 0; t < n0; ++t) at(a_own, own_mb, t);
          for (std::int32_t t = 0; t < u - n0; ++t) at(a_oth, oth_mb, t), at(a_own, own_mb, t + n0);
          for (std::int32_t t = 0; t < n0; ++t) at(a_oth, oth_mb, t + u - n0), at(c_oth, oth_mb, t);
          for (std::int32_t t = 0; t < u - n0; ++t) at(c_own, own_mb, t), at(c_oth, oth_mb, t + n0);
          for (std::int32_t t = u - n0; t < u; ++t) at(c_own, own_mb, t);
        };
        pattern(op_kind::forward, own_a, oth_a, oth_c, own_c, forwards.data() + 2 * d * unit);
        pattern(op_kind::backward, own_c, oth_c, oth_a, own_a, backwards.data() + 2 * d * unit);
      }
      auto forward = [&](std::int32_t i) { out.push_back(r, forwards[static_cast<std::size_t>(i)]); };
      auto backward = [&](std::int32_t i) { out.push_back(r, backwards[static_cast<std::size_t>(i)]); };
      for (std::int32_t i = 0; i < warmup; ++i) forward(i);
      const std::int32_t units = m / d;
      for (std::int32_t unit = 0; unit < units; ++unit) {
        const std::int32_t o = 2 * d * unit;
        for (std::int32_t t = 0; t < steady; ++t) forward(o + warmup + t), backward(o + t);  // the unit's steady phase
        if (unit == units - 1) {
          for (std::int32_t i = o + steady; i < 2 * m; ++i) backward(i);  // the last unit's cool-down
          break;
        }
        // Boundary overlap: the unit's cool-down runs its first warmup - steady + 1 backwards
        // alone, then pairs its last steady - 1 backwards with the next unit's first forwards,
        // and the next unit's warm-up ends with the rest of its forwards.
        for (std::int32_t i = o + steady; i <= o + warmup; ++i) backward(i);
        for (std::int32_t t = 0; t < steady - 1; ++t) forward(o + 2 * d + t), backward(o + warmup + 1 + t);
        for (std::int32_t i = o + 2 * d + steady - 1; i < o + 2 * d + warmup; ++i) forward(i);
      }
    }
    return out;
  }
};

/**
@brief Chimera, bidirectional pipelines (Li & Hoefler, "Chimera: Efficiently Training
Large-Scale Neural Networks with Bidirectional Pipelines", SC 2021, §3.1–3.3; docs/schedules.md §5),
with direct concatenation of basic units.

**Shape.** D = p ranks (even), two replicas: the down pipeline puts stage s on rank s, the up
pipeline on rank D−1−s (linear placement, mirrored). A basic unit has D microbatches, the first
D/2 injected down and the others up. Each direction runs 1F1B-style and the two are merged so
that no rank runs two ops at once: here each rank's two 1F1B orders (D/2 microbatches each) are
merged by the start times they have when run alone at F = 1, BW = 2. For m > D the units are
concatenated on every rank (Chimera's "direct concatenation").

**Invariants.** Every rank holds one stage of each replica (weights 2·M_θ); the gradients of
the two copies of a stage must be all-reduced every step. For D = 4 one unit takes span 17 at
F = 1, BW = 2 (12 of work), against 1F1B's 21 for the same 4 microbatches. (The paper quotes a
bubble ratio (D−2)/(2N+D−2); docs/schedules.md marks that formula as unverified and this
construction does not reach it.)

**Errors.** Needs p even (≥ 2), v = 1, and m a positive multiple of p.
*/
struct chimera {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "chimera";
  static constexpr placement_kind placement = placement_kind::linear;

  static constexpr std::string check(const pipeline_shape& s) {
    using detail::cat;
    std::string e = detail::check_counts(name, s);
    if (!e.empty()) return e;
    e = detail::check_paired_ranks(name, s);
    if (!e.empty()) return e;
    if (s.num_chunks != 1)
      return cat(name, ": holds one stage of each replica per rank, so chunks must be 1 (got ", s.num_chunks,
                 "); bitpipe is the V-shaped bidirectional schedule");
    if (s.num_microbatches % s.num_ranks != 0)
      return cat(name, ": concatenates units of p microbatches (half down, half up), so the number of microbatches m must be a "
                 "multiple of p = ", s.num_ranks, " (got m = ", s.num_microbatches, "); use m = ",
                 (s.num_microbatches / s.num_ranks + 1) * s.num_ranks);
    return {};
  }

  static constexpr schedule generate(const pipeline_shape& s) {
    const std::int32_t d = s.num_ranks, half = d / 2;
    // One direction alone: 1F1B over the d stages with d/2 microbatches, timed at F = 1, BW = 2.
    const schedule direction = one_f_one_b::generate({d, half, 1});
    const auto starts = detail::unit_start_times(direction, {1, 1, 1, 0});
    // Rank r runs stage r of the down replica and stage d-1-r of the up replica: merge the two
    // directions' orders by their start times when run alone (down first on a tie).
    struct timed {
      std::int64_t start;
      std::int32_t direction, index;
      op what;
      constexpr bool operator<(const timed& o) const {
        return start != o.start ? start < o.start : (direction != o.direction ? direction < o.direction : index < o.index);
      }
    };
    schedule out(s, placement);
    for (std::int32_t j = 0; j < s.num_microbatches; ++j) out.set_replica(j, (j % d) < half ? 0 : 1);
    for (std::int32_t r = 0; r < d; ++r) {
      std::vector<timed> merged;
      std::int32_t index = 0;
      for (std::size_t i = 0; i < direction.ops(r).size(); ++i)
        merged.push_back({starts[static_cast<std::size_t>(r)][i], 0, index++, direction.ops(r)[i]});
      for (std::size_t i = 0; i < direction.ops(d - 1 - r).size(); ++i) {
        const op& o = direction.ops(d - 1 - r)[i];
        merged.push_back({starts[static_cast<std::size_t>(d - 1 - r)][i], 1, index++, op{o.kind, o.stage, o.microbatch + half}});
      }
      std::sort(merged.begin(), merged.end());
      for (std::int32_t unit = 0; unit < s.num_microbatches / d; ++unit)
        for (const timed& t : merged) out.push_back(r, op{t.what.kind, t.what.stage, t.what.microbatch + unit * d});
    }
    return out;
  }
};

static_assert(schedule_policy<bitpipe>);
static_assert(schedule_policy<chimera>);

}  // namespace stretto::policies
