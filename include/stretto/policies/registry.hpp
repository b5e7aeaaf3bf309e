#pragma once
/**
@file
@brief Run-time selection of a policy by name, for command lines and configuration files.
*/

#include <array>
#include <string>
#include <string_view>

#include "../core/concepts.hpp"
#include "../core/errors.hpp"
#include "gpipe.hpp"
#include "one_f_one_b.hpp"
#include "zero_bubble.hpp"

namespace stretto::policies {

/** @brief A policy seen through function pointers, so that it can be chosen at run time. */
struct policy_info {
  std::string_view name;
  std::string_view summary;
  placement_kind placement;
  std::string (*check)(const pipeline_shape&);
  schedule (*generate)(const pipeline_shape&);
};

/** @brief Returns the `policy_info` of a compile-time policy. */
template <schedule_policy P>
constexpr policy_info info_of(std::string_view summary) {
  return {P::name, summary, P::placement, &P::check, &P::generate};
}

/** @brief Every policy that can be selected by name, in the order `stretto-plan` lists them. */
inline constexpr std::array all_policies{
    info_of<gpipe>("GPipe: all forwards, then all backwards (Huang et al. 2019)"),
    info_of<one_f_one_b>("1F1B: one forward, one fused backward (PipeDream-Flush / DAPPLE)"),
    info_of<zb_h1>("ZB-H1: 1F1B with B/W split, W trailing B by the rank index (Qi et al. 2024)"),
};

/** @brief Returns the valid policy names joined by ", ", for error messages and `--help`. */
inline std::string policy_names() {
  std::string out;
  for (const auto& p : all_policies) {
    if (!out.empty()) out += ", ";
    out += p.name;
  }
  return out;
}

/**
@brief Returns the policy called `name`.
@throws argument_error listing the valid names when there is none.
*/
inline const policy_info& find_policy(std::string_view name) {
  for (const auto& p : all_policies)
    if (p.name == name) return p;
  throw argument_error(std::string("unknown schedule '") + std::string(name) +
                       "'; valid schedules are: " + policy_names());
}

/**
@brief Generates the schedule of the policy called `name` for `shape`.
@throws argument_error for an unknown name; shape_error when the policy rejects the shape.
*/
inline schedule make_schedule(std::string_view name, const pipeline_shape& shape) {
  const policy_info& policy = find_policy(name);
  if (std::string problem = policy.check(shape); !problem.empty()) throw shape_error(problem);
  return policy.generate(shape);
}

}  // namespace stretto::policies
