#pragma once
/**
@file
@brief Building blocks shared by the policy generators: the shape checks every policy starts
with, and the 1F1B-family order with an optional deferred W.
*/

#include <cstdint>
#include <string>
#include <string_view>

#include "../core/op.hpp"
#include "../core/schedule.hpp"
#include "../core/shape.hpp"
#include "../detail/text.hpp"

namespace stretto::policies::detail {

using stretto::detail::cat;

/** The largest p·v·m a policy accepts: beyond it a schedule would not fit in memory anyway. */
inline constexpr long long max_ops_per_step = 1LL << 28;

/**
@brief The checks every policy starts with: p ≥ 1, m ≥ 1, v ≥ 1 and p·v·m within
`max_ops_per_step`. Returns the empty string when they hold, else a message that starts with the
policy's name.
*/
constexpr std::string check_counts(std::string_view name, const pipeline_shape& s) {
  if (s.num_ranks < 1)
    return cat(name, ": the number of ranks must be at least 1 (got ", s.num_ranks, ")");
  if (s.num_microbatches < 1)
    return cat(name, ": the number of microbatches must be at least 1 (got ", s.num_microbatches,
               ")");
  if (s.num_chunks < 1)
    return cat(name, ": the number of chunks per rank must be at least 1 (got ", s.num_chunks, ")");
  if (static_cast<long long>(s.num_ranks) * s.num_chunks * s.num_microbatches > max_ops_per_step)
    return cat(name, ": p·v·m = ", static_cast<long long>(s.num_ranks) * s.num_chunks * s.num_microbatches,
               " is too large; at most ", max_ops_per_step, " are supported");
  return {};
}

/**
@brief The rank rule of the bidirectional policies, which pair rank r with rank p−1−r for the
two replicas: p even and at least 2.
*/
constexpr std::string check_paired_ranks(std::string_view name, const pipeline_shape& s) {
  if (s.num_ranks < 2 || s.num_ranks % 2 != 0)
    return cat(name, ": pairs rank r with rank p-1-r, so the number of ranks must be even and at least 2 (got ",
               s.num_ranks, ")");
  return {};
}

/**
@brief The checks shared by policies with one stage per rank: `check_counts` and v = 1.
*/
constexpr std::string check_linear(std::string_view name, const pipeline_shape& s) {
  std::string e = check_counts(name, s);
  if (!e.empty()) return e;
  if (s.num_chunks != 1)
    return cat(name, ": uses a linear placement with one chunk per rank, so chunks must be 1 (got ",
               s.num_chunks, "); use interleaved-1f1b for several chunks per rank");
  return {};
}

/**
@brief Appends to `out` one rank's ops in the 1F1B family order.

The order is: `warmup` forwards, then alternately one backward and one forward until the
forwards run out, then the remaining backwards (1F1B, Narayanan et al. 2021 §2.2 / Megatron-LM;
docs/schedules.md §2). With `split` the backward is B (`backward_input`) and W(j) is placed right after
B(j + `w_lag`); the W's that do not fit go at the end in microbatch order (Zero Bubble, Qi et al.
2024 §3.1 and §7.2/§7.3 of docs/schedules.md). Without `split` the backward is the fused BW.

@param stage the (only) stage of this rank.
@param m the number of microbatches.
@param warmup the number of forwards before the first backward, clamped to [1, m].
@param w_lag how many B's a W trails behind (ZB-H1: rank index; ZB-H2: twice the rank index).
*/
constexpr void append_one_f_one_b(schedule& out, std::int32_t rank, std::int32_t stage,
                                  std::int32_t m, std::int32_t warmup, bool split,
                                  std::int32_t w_lag) {
  warmup = warmup < 1 ? 1 : (warmup > m ? m : warmup);
  const op_kind backward = split ? op_kind::backward_input : op_kind::backward;
  std::int32_t next_f = 0;
  std::int32_t next_w = 0;
  auto emit_backward = [&](std::int32_t j) {
    out.push_back(rank, op{backward, stage, j});
    if (split && j - w_lag >= 0) {
      out.push_back(rank, op{op_kind::backward_weight, stage, j - w_lag});
      next_w = j - w_lag + 1;
    }
  };
  for (; next_f < warmup; ++next_f) out.push_back(rank, op{op_kind::forward, stage, next_f});
  for (std::int32_t j = 0; j < m; ++j) {
    emit_backward(j);
    if (next_f < m) out.push_back(rank, op{op_kind::forward, stage, next_f++});
  }
  if (split)
    for (; next_w < m; ++next_w) out.push_back(rank, op{op_kind::backward_weight, stage, next_w});
}

}  // namespace stretto::policies::detail
