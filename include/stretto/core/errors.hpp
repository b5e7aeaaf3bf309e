#pragma once
/**
@file
@brief Exceptions thrown by Stretto. Every message names the rule broken and what would be valid.
*/

#include <stdexcept>
#include <string>

namespace stretto {

/** @brief A pipeline shape (ranks, microbatches, chunks) that a policy does not accept. */
class shape_error : public std::invalid_argument {
 public:
  explicit shape_error(const std::string& what) : std::invalid_argument(what) {}
};

/** @brief A schedule that breaks an invariant (see `stretto::validate`). */
class validation_error : public std::logic_error {
 public:
  explicit validation_error(const std::string& what) : std::logic_error(what) {}
};

/** @brief An unknown policy name, or a bad cost-model parameter. */
class argument_error : public std::invalid_argument {
 public:
  explicit argument_error(const std::string& what) : std::invalid_argument(what) {}
};

/**
@brief A long planner (`plan::auto_schedule`, `plan::refine_weights`, `plan::auto_schedule_v`)
ran past the deadline given in its options (`plan::deadline`) and stopped without a plan.
The message names the planner and how long the deadline allowed; retry with a later deadline
or a smaller shape.
*/
class deadline_exceeded : public std::runtime_error {
 public:
  explicit deadline_exceeded(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace stretto
