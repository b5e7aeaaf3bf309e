#pragma once
/**
@file
@brief Validation at compile time: every invariant of `stretto::validate`, each failing at a
failure site of its own, so that the compiler's error names the broken rule.

Two ways to use it:

1. **On a value.** `static_assert(stretto::compile_time::check(s))` for any constant schedule `s`
   (built by hand, or by `make_schedule`). When `s` breaks a rule, constant evaluation reaches
   the rule's own non-`constexpr` function, and the compiler reports the call, e.g.
   `call to non-'constexpr' function 'void stretto::compile_time::diag::invariant_violated_order(...)'`.
2. **On a policy and a shape** given as template arguments (`stretto::compile_time::static_schedule`):
   the failure is a `static_assert` of its own per rule, e.g.
   `static assertion failed: stretto invariant violated: order ...`, and the instantiation
   it fails in carries the full message of `stretto::validate` (ranks, ops, positions) as a
   `fixed_string` template argument.

Searchable tokens: `invariant_violated_<rule>` (value path) and `stretto invariant violated: <rule>`
(template path), with `<rule>` the name of a `stretto::schedule_rule`; `policy_rejected_shape` /
`stretto policy rejected the shape`, and `stretto policy contract broken` for a generator whose
schedule does not have the shape or placement it was asked for.

**Compilers.** Needs a standard library whose `std::string` and `std::vector` are usable in
constant evaluation with that compiler (GCC 12 with libstdc++ 12; Clang 14 with libstdc++ 12
cannot evaluate `std::string`).
*/

#include <cstdint>

#include "../core/op.hpp"
#include "../core/schedule.hpp"
#include "../validate/validate.hpp"
#include "fixed_string.hpp"

namespace stretto::compile_time {

/**
@brief The failure sites of compile-time validation. Each function is deliberately *not*
`constexpr`: constant evaluation that reaches one of them stops there, and the compiler's error
names the function, hence the rule. They do nothing at run time and are never called there.
*/
namespace diag {
inline void invariant_violated_bad_shape(std::int32_t /*rank*/, op /*culprit*/) noexcept {}
inline void invariant_violated_stage_out_of_range(std::int32_t /*rank*/, op /*culprit*/) noexcept {}
inline void invariant_violated_microbatch_out_of_range(std::int32_t /*rank*/, op /*culprit*/) noexcept {}
inline void invariant_violated_wrong_rank(std::int32_t /*rank*/, op /*culprit*/) noexcept {}
inline void invariant_violated_duplicate_op(std::int32_t /*rank*/, op /*culprit*/) noexcept {}
inline void invariant_violated_mixed_backward(std::int32_t /*rank*/, op /*culprit*/) noexcept {}
inline void invariant_violated_missing_op(std::int32_t /*rank*/, op /*culprit*/) noexcept {}
inline void invariant_violated_order(std::int32_t /*rank*/, op /*culprit*/) noexcept {}
inline void invariant_violated_overlap(std::int32_t /*rank*/, op /*culprit*/) noexcept {}
inline void invariant_violated_deadlock(std::int32_t /*rank*/, op /*culprit*/) noexcept {}
/// Reached only for a `schedule_rule` added without a failure site of its own here.
inline void invariant_violated_rule_without_failure_site(std::int32_t /*rank*/, op /*culprit*/) noexcept {}

/** @brief Which stage of compile-time checking failed (template path). */
enum class failure : std::uint8_t {
  none,            ///< the schedule is valid
  shape_rejected,  ///< `Policy::check(shape)` returned a message
  contract,        ///< `Policy::generate(shape)` returned another shape or placement
  invariant,       ///< `stretto::validate` reported a broken `schedule_rule`
};

template <auto>
inline constexpr bool dependent_false = false;

/**
@brief Compiles when `Failure` is `failure::none`; otherwise fails with a `static_assert` of
its own for the policy's shape check, the policy contract, and each `schedule_rule`. `Message`
(the full text of the failure) is not used, except to appear in the diagnostic.
*/
template <failure Failure, schedule_rule Rule, fixed_string Message>
consteval bool require_valid() {
  if constexpr (Failure == failure::none) {
    return true;
  } else if constexpr (Failure == failure::shape_rejected) {
    static_assert(dependent_false<Message>,
                  "stretto policy rejected the shape: Policy::check(shape) returned the message in the Message "
                  "template argument");
  } else if constexpr (Failure == failure::contract) {
    static_assert(dependent_false<Message>,
                  "stretto policy contract broken: Policy::generate(shape) must return a schedule of that shape "
                  "and of Policy::placement");
  } else if constexpr (Rule == schedule_rule::bad_shape) {
    static_assert(dependent_false<Message>,
                  "stretto invariant violated: bad_shape (ranks, microbatches and chunks must all be at least 1)");
  } else if constexpr (Rule == schedule_rule::stage_out_of_range) {
    static_assert(dependent_false<Message>,
                  "stretto invariant violated: stage_out_of_range (an op names a stage outside [0, p*v))");
  } else if constexpr (Rule == schedule_rule::microbatch_out_of_range) {
    static_assert(dependent_false<Message>,
                  "stretto invariant violated: microbatch_out_of_range (an op names a microbatch outside [0, m))");
  } else if constexpr (Rule == schedule_rule::wrong_rank) {
    static_assert(dependent_false<Message>,
                  "stretto invariant violated: wrong_rank (an op sits on a rank that does not hold its stage)");
  } else if constexpr (Rule == schedule_rule::duplicate_op) {
    static_assert(dependent_false<Message>,
                  "stretto invariant violated: duplicate_op (the same kind, stage and microbatch appear twice)");
  } else if constexpr (Rule == schedule_rule::mixed_backward) {
    static_assert(dependent_false<Message>,
                  "stretto invariant violated: mixed_backward (a stage and microbatch have a fused BW and a split "
                  "B or W)");
  } else if constexpr (Rule == schedule_rule::missing_op) {
    static_assert(dependent_false<Message>,
                  "stretto invariant violated: missing_op (a stage and microbatch lack their F, or their BW, or "
                  "their B and W)");
  } else if constexpr (Rule == schedule_rule::order) {
    static_assert(dependent_false<Message>,
                  "stretto invariant violated: order (on a stage, B before its F, or W before its B)");
  } else if constexpr (Rule == schedule_rule::overlap) {
    static_assert(dependent_false<Message>,
                  "stretto invariant violated: overlap (an op marked overlapped is not followed by a partner that "
                  "makes one F&B pair)");
  } else if constexpr (Rule == schedule_rule::deadlock) {
    static_assert(dependent_false<Message>,
                  "stretto invariant violated: deadlock (ranks running their lists in order never finish)");
  } else {
    static_assert(dependent_false<Message>,
                  "stretto invariant violated: a schedule_rule without a failure site of its own (add one to "
                  "stretto/compile_time/static_validate.hpp)");
  }
  return false;
}

}  // namespace diag

/**
@brief Returns `true` when `s` is a valid schedule; in constant evaluation, stops at the failure
site of the first invariant `s` breaks (see `stretto::validate` for the invariants and their order).

**Errors.** Use it as `static_assert(check(s))`. When `s` breaks rule `R`, the compiler reports a
call to the non-`constexpr` function `stretto::compile_time::diag::invariant_violated_R`.
For the full message (ranks, ops, positions), use `stretto::validate(s).message` at run time, or
`static_schedule`, whose diagnostic carries it.

**Complexity.** That of `stretto::validate`: O(N) memory and O(N·p) time for N ops.
*/
consteval bool check(const schedule& s) {
  const validation_result result = validate(s);
  switch (result.rule) {
    case schedule_rule::valid: return true;
    case schedule_rule::bad_shape: diag::invariant_violated_bad_shape(result.rank, result.culprit); break;
    case schedule_rule::stage_out_of_range:
      diag::invariant_violated_stage_out_of_range(result.rank, result.culprit);
      break;
    case schedule_rule::microbatch_out_of_range:
      diag::invariant_violated_microbatch_out_of_range(result.rank, result.culprit);
      break;
    case schedule_rule::wrong_rank: diag::invariant_violated_wrong_rank(result.rank, result.culprit); break;
    case schedule_rule::duplicate_op: diag::invariant_violated_duplicate_op(result.rank, result.culprit); break;
    case schedule_rule::mixed_backward: diag::invariant_violated_mixed_backward(result.rank, result.culprit); break;
    case schedule_rule::missing_op: diag::invariant_violated_missing_op(result.rank, result.culprit); break;
    case schedule_rule::order: diag::invariant_violated_order(result.rank, result.culprit); break;
    case schedule_rule::overlap: diag::invariant_violated_overlap(result.rank, result.culprit); break;
    case schedule_rule::deadlock: diag::invariant_violated_deadlock(result.rank, result.culprit); break;
  }
  diag::invariant_violated_rule_without_failure_site(result.rank, result.culprit);
  return false;
}

}  // namespace stretto::compile_time
