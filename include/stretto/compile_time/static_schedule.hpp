#pragma once
/**
@file
@brief `static_schedule<Policy, Shape>`: a policy's whole per-rank op table, generated and
validated while compiling, stored as a constant of exactly the size it needs.
*/

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "../core/concepts.hpp"
#include "../core/op.hpp"
#include "../core/schedule.hpp"
#include "../core/shape.hpp"
#include "../detail/text.hpp"
#include "../validate/validate.hpp"
#include "fixed_string.hpp"
#include "static_validate.hpp"

namespace stretto::compile_time {

namespace detail {

/// The longest failure message carried into a diagnostic; longer ones are cut with "...".
inline constexpr std::size_t message_capacity = 400;

/**
@brief The counting pass: whether `Policy` at `Shape` is valid, why not, and how many ops its
schedule has. One constant evaluation: check, generate, validate, count.
*/
struct schedule_summary {
  diag::failure failure{diag::failure::none};
  schedule_rule rule{schedule_rule::valid};
  std::size_t num_ops{0};
  std::size_t message_length{0};
  char message[message_capacity]{};

  constexpr bool ok() const noexcept { return failure == diag::failure::none; }
};

constexpr void set_message(schedule_summary& out, std::string_view text) {
  const std::string_view cut = "...";
  const bool fits = text.size() <= message_capacity;
  const std::size_t keep = fits ? text.size() : message_capacity - cut.size();
  for (std::size_t i = 0; i < keep; ++i) out.message[i] = text[i];
  if (!fits)
    for (std::size_t i = 0; i < cut.size(); ++i) out.message[keep + i] = cut[i];
  out.message_length = fits ? keep : message_capacity;
}

template <schedule_policy Policy, pipeline_shape Shape>
constexpr schedule_summary summarize() {
  using stretto::detail::cat;
  schedule_summary out;
  const std::string where = cat(Policy::name, " at (p, m, v) = (", Shape.num_ranks, ", ", Shape.num_microbatches,
                                ", ", Shape.num_chunks, "): ");
  // Declared before each `if`, not in it: nvcc's front end reports "access to uninitialized
  // object" when a constant evaluation returns from inside `if (T x = ...; cond)` with a string.
  const std::string problem = Policy::check(Shape);
  if (!problem.empty()) {
    out.failure = diag::failure::shape_rejected;
    set_message(out, where + problem);
    return out;
  }
  const schedule s = Policy::generate(Shape);
  if (s.shape() != Shape || s.placement() != Policy::placement) {
    out.failure = diag::failure::contract;
    set_message(out, cat(where, "generate returned a schedule of shape (", s.shape().num_ranks, ", ",
                         s.shape().num_microbatches, ", ", s.shape().num_chunks, ") and placement ",
                         to_string(s.placement()), "; expected placement ", to_string(Policy::placement)));
    return out;
  }
  const validation_result result = validate(s);
  if (!result) {
    out.failure = diag::failure::invariant;
    out.rule = result.rule;
    set_message(out, where + result.message);
    return out;
  }
  out.num_ops = s.num_ops();
  return out;
}

template <schedule_policy Policy, pipeline_shape Shape>
inline constexpr schedule_summary summary_v = summarize<Policy, Shape>();

template <const schedule_summary& Summary>
constexpr fixed_string<Summary.message_length> message_of() noexcept {
  return to_fixed_string<Summary.message_length>(std::string_view(Summary.message, Summary.message_length));
}

/**
@brief The op table: rank r's ops are `ops[offsets[r] .. offsets[r + 1])`; `replica[j]` is the
model replica of microbatch j.
*/
template <std::size_t NumOps, std::size_t NumRanks, std::size_t NumMicrobatches>
struct op_table {
  std::array<op, NumOps> ops{};                      // [offsets[r] + i]: rank r's i-th op
  std::array<std::uint32_t, NumRanks + 1> offsets{};  // [r]: first op of rank r; [p]: NumOps
  std::array<std::uint8_t, NumMicrobatches> replica{};  // [j]: 0, or 1 for the mirrored replica
};

/** The table pass: generates the schedule once more and copies it into exactly-sized storage. */
template <schedule_policy Policy, pipeline_shape Shape>
constexpr auto tabulate() {
  constexpr const schedule_summary& summary = summary_v<Policy, Shape>;
  constexpr bool ok = summary.ok();
  op_table<ok ? summary.num_ops : 0, ok ? static_cast<std::size_t>(Shape.num_ranks) : 0,
           ok ? static_cast<std::size_t>(Shape.num_microbatches) : 0>
      out{};
  if constexpr (ok) {
    const schedule s = Policy::generate(Shape);
    std::size_t k = 0;
    for (std::int32_t r = 0; r < Shape.num_ranks; ++r) {
      out.offsets[static_cast<std::size_t>(r)] = static_cast<std::uint32_t>(k);
      for (const op& o : s.ops(r)) out.ops[k++] = o;
    }
    out.offsets[static_cast<std::size_t>(Shape.num_ranks)] = static_cast<std::uint32_t>(k);
    for (std::int32_t j = 0; j < Shape.num_microbatches; ++j)
      out.replica[static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(s.replica_of(j));
  }
  return out;
}

template <schedule_policy Policy, pipeline_shape Shape>
inline constexpr auto table_v = tabulate<Policy, Shape>();

}  // namespace detail

/** @brief True when `Policy` accepts `Shape` and generates a valid schedule for it; never a hard error. */
template <schedule_policy Policy, pipeline_shape Shape>
inline constexpr bool is_valid_v = detail::summary_v<Policy, Shape>.ok();

/** @brief The rule `Policy`'s schedule at `Shape` breaks (`valid` if none, or if the shape is rejected). */
template <schedule_policy Policy, pipeline_shape Shape>
inline constexpr schedule_rule broken_rule_v = detail::summary_v<Policy, Shape>.rule;

/**
@brief The schedule of `Policy` for `Shape`, generated, validated and stored at compile time.

The same `constexpr` generator that `make_schedule<Policy>(Shape)` runs at run time runs while
compiling: a counting pass (check, generate, validate, count the ops), then a table pass that
copies the ops into a constant of exactly that many ops. Naming `static_schedule<P, S>` in a way
that needs its definition (an object, a member) performs every check.

@tparam Policy any `schedule_policy`, e.g. `stretto::policies::zb_h1` or a user's own.
@tparam Shape the pipeline shape, e.g. `pipeline_shape{8, 64, 1}`.

**Shape.** `ops(r)` is rank r's op list, a `std::span<const op>` into static storage; the
interface mirrors `stretto::schedule` (`shape()`, `placement()`, `rank_of`, `num_ops`, ...),
and `to_schedule()` returns the equal run-time `schedule`.

**Invariants.** `to_schedule() == make_schedule<Policy>(Shape)`; `validate(to_schedule()).ok()`.

**Errors.** Compile errors, one failure site per problem (see `static_validate.hpp`): the policy
rejects the shape (`stretto policy rejected the shape`, with the policy's message); the generator
breaks its contract; or the schedule breaks a rule (`stretto invariant violated: <rule>`, with
`stretto::validate`'s message, rank and op, as a template argument of the failing instantiation).

**Units / cost.** Object size: 16 bytes per op (ZB-H1 at p = 16, m = 256: 192 KiB), emitted only
when `ops()` is used at run time. Compile time grows linearly in the number of ops (GCC 12, -O2:
+0.5 s at (8, 64), +3.0 s at (16, 256); README.md, "Compile-time schedules"). The counting pass,
the larger of the two constant evaluations, costs about 1 600 of GCC's constexpr operations per
op (19.3 M at (16, 256)), so schedules of up to about 21 000 ops fit GCC's default
`-fconstexpr-ops-limit` of 2^25; for larger ones raise it on the target that instantiates the
schedule (`target_compile_options(my_target PRIVATE -fconstexpr-ops-limit=268435456)`), or
generate them at run time with `make_schedule`.

@code{.cpp}
using plan = stretto::compile_time::static_schedule<stretto::policies::zb_h1, stretto::pipeline_shape{8, 64, 1}>;
static_assert(plan::num_ops() == 8 * 64 * 3);
for (const stretto::op& o : plan::ops(rank)) run(o);
@endcode
*/
template <schedule_policy Policy, pipeline_shape Shape>
class static_schedule {
  // A pointer, not a reference: nvcc's front end rejects a constexpr reference member of a class
  // template ("has already been initialized").
  static constexpr const detail::schedule_summary* summary_ = &detail::summary_v<Policy, Shape>;
  static_assert(diag::require_valid<summary_->failure, summary_->rule,
                                    detail::message_of<detail::summary_v<Policy, Shape>>()>());

 public:
  using policy_type = Policy;

  /** @brief Rank `rank`'s ops in execution order. @pre `0 <= rank < num_ranks()`. */
  static constexpr std::span<const op> ops(std::int32_t rank) noexcept {
    const auto& t = detail::table_v<Policy, Shape>;
    const std::uint32_t first = t.offsets[static_cast<std::size_t>(rank)];
    const std::uint32_t last = t.offsets[static_cast<std::size_t>(rank) + 1];
    return std::span<const op>(t.ops).subspan(first, last - first);
  }

  static constexpr pipeline_shape shape() noexcept { return Shape; }
  static constexpr placement_kind placement() noexcept { return Policy::placement; }
  static constexpr std::int32_t num_ranks() noexcept { return Shape.num_ranks; }
  static constexpr std::int32_t num_stages() noexcept { return Shape.num_stages(); }
  static constexpr std::int32_t num_microbatches() noexcept { return Shape.num_microbatches; }
  static constexpr std::size_t num_ops() noexcept { return summary_->num_ops; }

  /** @brief The longest per-rank list. */
  static constexpr std::size_t max_ops_per_rank() noexcept {
    std::size_t n = 0;
    for (std::int32_t r = 0; r < Shape.num_ranks; ++r) n = ops(r).size() > n ? ops(r).size() : n;
    return n;
  }

  /** @brief The model replica (0, or 1 in bidirectional schedules) that `microbatch` flows through. */
  static constexpr std::int32_t replica_of(std::int32_t microbatch) noexcept {
    return detail::table_v<Policy, Shape>.replica[static_cast<std::size_t>(microbatch)];
  }
  /** @brief The rank that runs `stage` of replica 0. */
  static constexpr std::int32_t rank_of(std::int32_t stage) noexcept {
    return rank_of_stage(Policy::placement, Shape, stage, 0);
  }
  /** @brief The rank that runs `stage` for `microbatch`. */
  static constexpr std::int32_t rank_of(std::int32_t stage, std::int32_t microbatch) noexcept {
    return rank_of_stage(Policy::placement, Shape, stage, replica_of(microbatch));
  }

  /** @brief Returns the equal run-time `schedule` (a copy; usable in constant evaluation). */
  static constexpr schedule to_schedule() {
    schedule out(Shape, Policy::placement);
    for (std::int32_t j = 0; j < Shape.num_microbatches; ++j)
      if (replica_of(j) != 0) out.set_replica(j, replica_of(j));
    for (std::int32_t r = 0; r < Shape.num_ranks; ++r)
      for (const op& o : ops(r)) out.push_back(r, o);
    return out;
  }
};

/** @brief True for the specialisations of `static_schedule`. */
template <class T>
inline constexpr bool is_static_schedule_v = false;
template <schedule_policy Policy, pipeline_shape Shape>
inline constexpr bool is_static_schedule_v<static_schedule<Policy, Shape>> = true;

}  // namespace stretto::compile_time
