#pragma once
/**
@file
@brief Validation of a schedule: op counts, per-stage order and freedom from deadlock.
*/

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../core/errors.hpp"
#include "../core/op.hpp"
#include "../core/schedule.hpp"
#include "../detail/text.hpp"
#include "../core/dependencies.hpp"

namespace stretto {

/** @brief The invariant a schedule breaks; each has its own searchable name. */
enum class schedule_rule : std::uint8_t {
  valid,
  bad_shape,            ///< p, m or v below 1
  stage_out_of_range,   ///< an op names a stage outside [0, S)
  microbatch_out_of_range,  ///< an op names a microbatch outside [0, m)
  wrong_rank,           ///< an op sits on a rank that does not hold its stage
  duplicate_op,         ///< the same (kind, stage, microbatch) appears twice
  mixed_backward,       ///< a (stage, microbatch) has both a fused BW and a split B or W
  missing_op,           ///< a (stage, microbatch) lacks its F, or its backward (BW, or B and W)
  order,                ///< on a stage, B before its F, or W before its B
  overlap,              ///< an overlapped op not followed, on its rank, by a partner that makes one F&B pair
  deadlock,             ///< ranks executing in order with blocking receives never finish
};

/** @brief The rule's name, e.g. "duplicate_op". */
constexpr std::string_view to_string(schedule_rule rule) noexcept {
  switch (rule) {
    case schedule_rule::valid: return "valid";
    case schedule_rule::bad_shape: return "bad_shape";
    case schedule_rule::stage_out_of_range: return "stage_out_of_range";
    case schedule_rule::microbatch_out_of_range: return "microbatch_out_of_range";
    case schedule_rule::wrong_rank: return "wrong_rank";
    case schedule_rule::duplicate_op: return "duplicate_op";
    case schedule_rule::mixed_backward: return "mixed_backward";
    case schedule_rule::missing_op: return "missing_op";
    case schedule_rule::order: return "order";
    case schedule_rule::overlap: return "overlap";
    case schedule_rule::deadlock: return "deadlock";
  }
  return "?";
}

/**
@brief The outcome of `validate`: the first rule broken, where, and a full message.

`rank` and `culprit` locate the offending op (rank −1 when the op is missing from every rank).
*/
struct validation_result {
  schedule_rule rule{schedule_rule::valid};
  std::int32_t rank{-1};
  op culprit{};
  std::string message;

  constexpr bool ok() const noexcept { return rule == schedule_rule::valid; }
  constexpr explicit operator bool() const noexcept { return ok(); }
};

namespace detail {

/**
Per (stage, microbatch), the position of each op kind in its rank's list (−1: absent), indexed
`stage * m + microbatch`. Kept to one array: constant evaluation pays for every element.
*/
struct op_census {
  std::int32_t position[4]{-1, -1, -1, -1};

  constexpr bool has(op_kind kind) const noexcept { return position[static_cast<int>(kind)] >= 0; }
};

constexpr validation_result fail(schedule_rule rule, std::int32_t rank, op culprit, std::string text) {
  return {rule, rank, culprit, stretto::detail::cat("invalid schedule [", to_string(rule), "]: ", text)};
}

/**
@brief Rules 1 to 5 of `validate` (shape, ranges, placement, op set, per-stage order, F&B pairs):
everything but deadlock freedom. A schedule that passes can be run in list order by
`validate_deadlock` or by the simulator, which find a deadlock themselves.
*/
constexpr validation_result validate_structure(const schedule& s) {
  using stretto::detail::cat;
  const pipeline_shape& shape = s.shape();
  if (shape.num_ranks < 1 || shape.num_microbatches < 1 || shape.num_chunks < 1)
    return detail::fail(schedule_rule::bad_shape, -1, op{},
                        cat("ranks, microbatches and chunks must all be at least 1 (got p = ",
                            shape.num_ranks, ", m = ", shape.num_microbatches, ", v = ",
                            shape.num_chunks, ")"));
  const std::int32_t S = shape.num_stages();
  const std::int32_t m = shape.num_microbatches;
  std::vector<detail::op_census> census(static_cast<std::size_t>(S) * static_cast<std::size_t>(m));
  auto at = [&](const op& o) -> detail::op_census& {
    return census[static_cast<std::size_t>(o.stage) * static_cast<std::size_t>(m) +
                  static_cast<std::size_t>(o.microbatch)];
  };

  // 2 and 3: ranges, placement, duplicates.
  for (std::int32_t r = 0; r < shape.num_ranks; ++r) {
    const auto list = s.ops(r);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const op& o = list[i];
      if (o.stage < 0 || o.stage >= S)
        return detail::fail(schedule_rule::stage_out_of_range, r, o,
                            cat(to_string(o), " on rank ", r, " names stage ", o.stage,
                                "; valid stages are 0..", S - 1));
      if (o.microbatch < 0 || o.microbatch >= m)
        return detail::fail(schedule_rule::microbatch_out_of_range, r, o,
                            cat(to_string(o), " on rank ", r, " names microbatch ", o.microbatch,
                                "; valid microbatches are 0..", m - 1));
      if (s.rank_of(o.stage, o.microbatch) != r) {
        // Not `cond ? cat(...) : std::string()`: GCC 12 cannot constant-evaluate the destructor
        // of that temporary, which made this rule unreportable at compile time.
        std::string replica;
        if (s.num_replicas() > 1) replica = cat(" of replica ", s.replica_of(o.microbatch));
        return detail::fail(schedule_rule::wrong_rank, r, o,
                            cat(to_string(o), " is on rank ", r, " but the ", to_string(s.placement()),
                                " placement puts stage ", o.stage, replica, " on rank ",
                                s.rank_of(o.stage, o.microbatch)));
      }
      auto& c = at(o);
      const auto k = static_cast<std::size_t>(o.kind);
      if (c.position[k] >= 0)
        return detail::fail(schedule_rule::duplicate_op, r, o,
                            cat(to_string(o), " appears twice on rank ", r, " (positions ",
                                c.position[k], " and ", i, ")"));
      c.position[k] = static_cast<std::int32_t>(i);
    }
  }
  for (std::int32_t stage = 0; stage < S; ++stage) {
    for (std::int32_t j = 0; j < m; ++j) {
      const auto& c = at(op{op_kind::forward, stage, j});
      const std::int32_t r = s.rank_of(stage, j);
      const bool fused = c.has(op_kind::backward);
      const bool has_b = c.has(op_kind::backward_input);
      const bool has_w = c.has(op_kind::backward_weight);
      if (!c.has(op_kind::forward))
        return detail::fail(schedule_rule::missing_op, r, op{op_kind::forward, stage, j},
                            cat(to_string(op{op_kind::forward, stage, j}), " is missing from rank ", r));
      if (fused && (has_b || has_w)) {
        const op fused_op{op_kind::backward, stage, j};
        const op extra{has_b ? op_kind::backward_input : op_kind::backward_weight, stage, j};
        return detail::fail(schedule_rule::mixed_backward, r, fused_op,
                            cat(to_string(fused_op), " and ", to_string(extra), " are both on rank ", r,
                                "; use either one BW or one B and one W per stage and microbatch"));
      }
      if (!fused && !(has_b && has_w)) {
        // A lone W means the B is missing; a lone B, the W; neither, the whole backward (BW).
        const op missing{has_w ? op_kind::backward_input : (has_b ? op_kind::backward_weight : op_kind::backward),
                         stage, j};
        return detail::fail(schedule_rule::missing_op, r, missing,
                            cat(to_string(missing), " is missing from rank ", r,
                                " (each F needs one BW, or one B and one W)"));
      }
      // 4: per-stage order.
      const std::int32_t f_pos = c.position[static_cast<int>(op_kind::forward)];
      const std::int32_t b_pos = c.position[static_cast<int>(fused ? op_kind::backward : op_kind::backward_input)];
      if (b_pos < f_pos)
        return detail::fail(schedule_rule::order, r, op{fused ? op_kind::backward : op_kind::backward_input, stage, j},
                            cat(fused ? "BW" : "B", "(stage ", stage, ", mb ", j, ") at position ", b_pos,
                                " on rank ", r, " runs before its F at position ", f_pos));
      if (!fused && c.position[static_cast<int>(op_kind::backward_weight)] < b_pos)
        return detail::fail(schedule_rule::order, r, op{op_kind::backward_weight, stage, j},
                            cat("W(stage ", stage, ", mb ", j, ") at position ",
                                c.position[static_cast<int>(op_kind::backward_weight)], " on rank ", r,
                                " runs before its B at position ", b_pos));
    }
  }

  // 5: overlapped F&B pairs.
  for (std::int32_t r = 0; r < shape.num_ranks; ++r) {
    const auto list = s.ops(r);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const op& o = list[i];
      if (!o.overlapped) continue;
      if (i + 1 >= list.size())
        return detail::fail(schedule_rule::overlap, r, o,
                            cat(to_string(o), " at position ", i, " on rank ", r,
                                " is marked overlapped but is the last op of its rank; an F&B pair needs a partner op "
                                "right after it (unmark it to run it alone)"));
      const op& next = list[i + 1];
      const bool f_first = o.kind == op_kind::forward && produces_input_gradient(next.kind);
      const bool b_first = produces_input_gradient(o.kind) && next.kind == op_kind::forward;
      if (next.overlapped || !(f_first || b_first) || (o.stage == next.stage && o.microbatch == next.microbatch))
        return detail::fail(schedule_rule::overlap, r, o,
                            cat(to_string(o), " at position ", i, " on rank ", r, " is marked overlapped with ",
                                to_string(next), "; an F&B pair must be one F and one B or BW of different stage or "
                                "microbatch, and its second op must not be marked overlapped itself"));
    }
  }

  return {};
}

/**
@brief Rule 6 of `validate` (deadlock freedom) for a schedule that passes `validate_structure`.
*/
constexpr validation_result validate_deadlock(const schedule& s) {
  using stretto::detail::cat;
  const pipeline_shape& shape = s.shape();
  const std::int32_t m = shape.num_microbatches;
  const std::size_t cells = static_cast<std::size_t>(shape.num_stages()) * static_cast<std::size_t>(m);
  // 6: deadlock freedom. done[k] marks, per (stage, microbatch), the F and the input-gradient
  // producer (B or BW) and the B alone, as they complete.
  std::vector<unsigned char> f_done(cells, 0), grad_done(cells, 0);
  auto index = [&](std::int32_t stage, std::int32_t j) {
    return static_cast<std::size_t>(stage) * static_cast<std::size_t>(m) + static_cast<std::size_t>(j);
  };
  auto is_done = [&](const dependency& d) {
    return d.kind == dependency_kind::forward ? f_done[index(d.stage, d.microbatch)] != 0
                                              : grad_done[index(d.stage, d.microbatch)] != 0;
  };
  std::vector<std::size_t> cursor(static_cast<std::size_t>(shape.num_ranks), 0);
  std::size_t remaining = s.num_ops();
  bool progress = true;
  while (remaining > 0 && progress) {
    progress = false;
    for (std::int32_t r = 0; r < shape.num_ranks; ++r) {
      const auto list = s.ops(r);
      auto& c = cursor[static_cast<std::size_t>(r)];
      while (c < list.size()) {
        // An overlapped pair (rule 5 guarantees the partner) runs as one unit.
        const std::size_t width = list[c].overlapped ? 2 : 1;
        bool ready = true;
        for (std::size_t k = 0; k < width; ++k) {
          const auto deps = dependencies_of(list[c + k], shape);
          for (std::size_t d = 0; d < deps.size; ++d) ready = ready && is_done(deps.items[d]);
        }
        if (!ready) break;
        for (std::size_t k = 0; k < width; ++k) {
          const op& o = list[c + k];
          if (o.kind == op_kind::forward) f_done[index(o.stage, o.microbatch)] = 1;
          if (produces_input_gradient(o.kind)) grad_done[index(o.stage, o.microbatch)] = 1;
        }
        c += width;
        remaining -= width;
        progress = true;
      }
    }
  }
  if (remaining > 0) {
    std::string text = "ranks executing their lists in order never finish:";
    std::int32_t first_rank = -1;
    op first{};
    for (std::int32_t r = 0; r < shape.num_ranks; ++r) {
      const auto list = s.ops(r);
      const auto c = cursor[static_cast<std::size_t>(r)];
      if (c >= list.size()) continue;
      const op& o = list[c];
      if (first_rank < 0) {
        first_rank = r;
        first = o;
      }
      text += cat(" rank ", r, " is stuck at ", to_string(o), " (position ", c, ")");
      if (o.overlapped) text += cat(" overlapped with ", to_string(list[c + 1]));
      text += " waiting for";
      for (std::size_t k = 0; k < (o.overlapped ? 2u : 1u); ++k) {
        const auto deps = dependencies_of(list[c + k], shape);
        for (std::size_t d = 0; d < deps.size; ++d)
          if (!is_done(deps.items[d])) text += cat(" ", to_string(deps.items[d]), " on rank ",
                                                            s.rank_of(deps.items[d].stage, deps.items[d].microbatch));
      }
      text += ";";
    }
    return detail::fail(schedule_rule::deadlock, first_rank, first, text);
  }
  return {};
}

}  // namespace detail

/**
@brief Checks every invariant of a schedule and returns the first one broken.

Invariants, in the order checked:
1. `bad_shape`: p ≥ 1, m ≥ 1, v ≥ 1.
2. `stage_out_of_range`, `microbatch_out_of_range`, `wrong_rank`: each op names an existing
   stage and microbatch and sits on the rank that holds its stage under the placement.
3. `duplicate_op`, `mixed_backward`, `missing_op`: each (stage, microbatch) has exactly one F and
   either exactly one BW or exactly one B and one W.
4. `order`: per stage, F before B (or BW) before W in the rank's list.
5. `overlap`: an op marked `overlapped` is followed on its rank by a partner, not itself marked,
   such that the two are one F and one B or BW of different (stage, microbatch): an F&B pair
   (DualPipe, docs/schedules.md §9).
6. `deadlock`: every rank executing its list in order, where an op blocks until the ops it depends
   on (`stretto::dependencies_of`) have run on their ranks (receives block, sends are buffered),
   runs to completion; an overlapped pair runs as one unit, once the inputs of both ops are there.
   The message names each stuck rank's op and what it waits for.

**Complexity.** O(N) memory and O(N·p) time for N ops. Usable in `static_assert`.
*/
constexpr validation_result validate(const schedule& s) {
  validation_result result = detail::validate_structure(s);
  if (!result) return result;
  return detail::validate_deadlock(s);
}

/**
@brief Validates `s` and throws when it breaks an invariant.
@throws validation_error with `validate(s).message`.
*/
inline void validate_or_throw(const schedule& s) {
  if (auto result = validate(s); !result) throw validation_error(result.message);
}

}  // namespace stretto
