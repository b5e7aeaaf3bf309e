#pragma once
/**
@file
@brief A cooperative deadline for the long planners (`auto_schedule`, `refine_weights`,
`auto_schedule_v`): a point in time after which they stop at their next check and throw
`stretto::deadline_exceeded`. The default is no deadline, under which the planners behave exactly
as without one (the clock is not even read).
*/

#include <chrono>
#include <string>
#include <string_view>

#include "../core/errors.hpp"
#include "../detail/text.hpp"

namespace stretto::plan {

/**
@brief When a planner must give up: `at` on the steady clock, or never (the default).

Planners read the clock between units of work (a heuristic round, a simulated trial, a planner
run), so they stop at most one unit of work after `at`; a unit is well under a millisecond on the
shapes the tools accept, except one V planner run on a very large shape.

@code
stretto::plan::auto_schedule_options options;
options.stop = stretto::plan::deadline::after(std::chrono::seconds(10));
// throws stretto::deadline_exceeded if planning takes longer than about 10 s
@endcode
*/
struct deadline {
  using clock = std::chrono::steady_clock;
  clock::time_point at{clock::time_point::max()};
  /// The budget `at` was made from, in seconds (for the message); 0 when unknown.
  double seconds{0.0};

  /** @brief A deadline `budget` from now (`budget` ≥ 0; a negative one has already passed). */
  static deadline after(std::chrono::duration<double> budget) {
    return {clock::now() + std::chrono::duration_cast<clock::duration>(budget), budget.count()};
  }

  /** @brief Whether there is no deadline. */
  bool none() const { return at == clock::time_point::max(); }

  /** @brief Whether the deadline has passed (never, for no deadline). */
  bool passed() const { return !none() && clock::now() >= at; }

  /**
  @brief Throws once the deadline has passed.
  @throws stretto::deadline_exceeded naming `planner` and the budget.
  */
  void check(std::string_view planner) const {
    if (passed())
      throw deadline_exceeded(stretto::detail::cat(planner, ": planning ran past its deadline (",
                                                   static_cast<long long>(seconds * 1000.0),
                                                   " ms allowed); allow more time or plan a smaller shape"));
  }
};

}  // namespace stretto::plan
