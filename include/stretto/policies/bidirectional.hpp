#pragma once
/**
@file
@brief Bidirectional pipelines: two replicas of the model, one fed from each end.
*/

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/concepts.hpp"
#include "common.hpp"

namespace stretto::policies {

/**
@brief BitPipe, bidirectional interleaved pipeline parallelism (Wu, Chen, Yu, arXiv 2410.19367,
§3; the official code's per-device order; schedules.md §8).

**Shape.** D = p ranks (even), two replicas, each V-shaped over 2D stages (v = 2 chunks per
rank per replica, 4 in all): replica 0 ("down") puts stage s < D on rank s and stage s ≥ D on
rank 2D−1−s; replica 1 ("up") mirrors it. Microbatches come in units of D: in unit k the first
D/2 go down, the others up. Per rank r, with u = D/2 and n0 = u−r (r < u) or r−u+1, the forward
order of a unit is A_own[0..n0), pairs (A_oth[t], A_own[t+n0]), pairs (A_oth[t+u−n0], C_oth[t]),
pairs (C_own[t], C_oth[t+n0]), C_own[u−n0..u), where A/C are the first/second-half chunks and
own/oth the rank's own/other direction; the backward order is the same pattern with
A_own→C_own, A_oth→C_oth, C_oth→A_oth, C_own→A_own. A rank runs D + u + min(r, D−1−r) warm-up
forwards, then alternates F and BW, then the remaining BW's. Units are concatenated
(N > D, "direct concatenation").

**Invariants.** For D = 4, N = 4 the per-device orders are exactly those of schedules.md §8.3;
at chunk F = 1, chunk BW = 2, T_comm = 0 the span is 28 (bubble 1/7). Rank r peaks at
(D + u + min(r, D−1−r) + 1)·M_B/2.

**Errors.** Needs p even (≥ 2), v = 2, and m a multiple of p.
*/
struct bitpipe {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "bitpipe";
  static constexpr placement_kind placement = placement_kind::v_shape;

  static constexpr std::string check(const pipeline_shape& s) {
    using detail::cat;
    if (s.num_ranks < 2 || s.num_ranks % 2 != 0)
      return cat(name, ": pairs rank r with rank p-1-r, so the number of ranks must be even and at least 2 (got ",
                 s.num_ranks, ")");
    if (s.num_chunks != 2)
      return cat(name, ": each replica is V-shaped with 2 chunks per rank, so chunks must be 2 (got ", s.num_chunks,
                 ")");
    if (s.num_microbatches < 1 || s.num_microbatches % s.num_ranks != 0)
      return cat(name, ": runs units of p microbatches (half down, half up), so m must be a positive multiple of p = ",
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
      const std::int32_t warmup = d + u + (r < d - 1 - r ? r : d - 1 - r);
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
        std::vector<op> forwards(static_cast<std::size_t>(2 * d)), backwards(static_cast<std::size_t>(2 * d));
        pattern(op_kind::forward, own_a, oth_a, oth_c, own_c, forwards.data());
        pattern(op_kind::backward, own_c, oth_c, oth_a, own_a, backwards.data());
        std::size_t f = 0, b = 0;
        for (; f < static_cast<std::size_t>(warmup); ++f) out.push_back(r, forwards[f]);
        for (; f < forwards.size(); ++f, ++b) {
          out.push_back(r, forwards[f]);
          out.push_back(r, backwards[b]);
        }
        for (; b < backwards.size(); ++b) out.push_back(r, backwards[b]);
      }
    }
    return out;
  }
};

static_assert(schedule_policy<bitpipe>);

}  // namespace stretto::policies
