#pragma once
/**
@file
@brief The `schedule_policy` concept: what a type must provide to be a Stretto schedule policy.

**Refinement of:** none. **Notation:** `P` a policy type, `s` a `pipeline_shape`.

| Valid expression | Type | Meaning |
|---|---|---|
| `typename P::policy_concept` | `schedule_policy_tag` | opt-in tag (stops accidental matches) |
| `P::name` | convertible to `std::string_view` | the policy's command-line name, e.g. "zb-h1" |
| `P::placement` | `placement_kind` | how stages map onto ranks |
| `P::check(s)` | `std::string` | empty if `s` is accepted, else the rule broken and a valid alternative |
| `P::generate(s)` | `schedule` | the per-rank op lists; `constexpr` |

**Complexity.** `generate` is linear in the number of ops, p·v·m·(2 or 3).
*/

#include <concepts>
#include <string>
#include <string_view>

#include "errors.hpp"
#include "schedule.hpp"
#include "shape.hpp"

namespace stretto {

/** @brief The opt-in tag a policy names as its nested `policy_concept`. */
struct schedule_policy_tag {};

template <class P>
concept schedule_policy = requires(const pipeline_shape& s) {
  typename P::policy_concept;
  requires std::same_as<typename P::policy_concept, schedule_policy_tag>;
  { P::name } -> std::convertible_to<std::string_view>;
  { P::placement } -> std::convertible_to<placement_kind>;
  { P::check(s) } -> std::same_as<std::string>;
  { P::generate(s) } -> std::same_as<schedule>;
};

/**
@brief Generates the schedule of policy `P` for `shape` after checking its constraints.
@throws shape_error naming the broken rule and a valid alternative when `P::check(shape)` fails.
In constant evaluation a rejected shape is a compile error.
*/
template <schedule_policy P>
constexpr schedule make_schedule(const pipeline_shape& shape) {
  if (std::string problem = P::check(shape); !problem.empty()) throw shape_error(problem);
  return P::generate(shape);
}

}  // namespace stretto
