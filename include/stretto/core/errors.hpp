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

}  // namespace stretto
