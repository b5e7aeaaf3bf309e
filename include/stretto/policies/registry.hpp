#pragma once
/**
@file
@brief Run-time selection of a policy by name, for command lines and configuration files.
*/

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "../core/concepts.hpp"
#include "../core/errors.hpp"
#include "bidirectional.hpp"
#include "controllable_memory.hpp"
#include "dualpipe.hpp"
#include "gpipe.hpp"
#include "looped.hpp"
#include "one_f_one_b.hpp"
#include "two_stage_backprop.hpp"
#include "zero_bubble.hpp"
#include "zb_v.hpp"

namespace stretto::policies {

/** @brief A policy seen through function pointers, so that it can be chosen at run time. */
struct policy_info {
  std::string_view name;
  std::string_view summary;
  placement_kind placement;
  std::string (*check)(const pipeline_shape&);
  schedule (*generate)(const pipeline_shape&);
  std::int32_t default_chunks;  ///< chunks per rank when the user gives none (1, or 2 for looped and V-shaped)
  bool bidirectional;           ///< runs two replicas of the model (their gradients must be all-reduced)
};

/** @brief Returns the `policy_info` of a compile-time policy. */
template <schedule_policy P>
constexpr policy_info info_of(std::string_view summary, std::int32_t default_chunks = 1, bool bidirectional = false) {
  return {P::name, summary, P::placement, &P::check, &P::generate, default_chunks, bidirectional};
}

/** @brief Every policy that can be selected by name, in the order `stretto-plan` lists them. */
inline constexpr std::array all_policies{
    info_of<gpipe>("GPipe: all forwards, then all backwards (Huang et al. 2019)"),
    info_of<one_f_one_b>("1F1B: one forward, one fused backward (PipeDream-Flush / DAPPLE)"),
    info_of<interleaved_1f1b>("interleaved 1F1B: looped placement, groups of p microbatches, any m (Narayanan et al. 2021)", 2),
    info_of<breadth_first>("breadth-first: looped placement, all microbatches per chunk (Lamy-Poirier 2023)", 2),
    info_of<zb_h1>("ZB-H1: 1F1B with B/W split, W trailing B by the rank index (Qi et al. 2024)"),
    info_of<zb_h2>("ZB-H2: longer warm-up, W trailing B by twice the rank index; zero bubble (Qi et al. 2024)"),
    info_of<zb_v>("ZB-V: V-shaped placement, zero bubble at 1F1B's memory (Qi et al. 2024, §6)", 2),
    info_of<v_half>("V-Half: V-shaped with B/W split at about half of 1F1B's memory (Qi et al. 2024, controllable memory)", 2),
    info_of<v_min>("V-Min: V-shaped with B/W split at about a third of 1F1B's memory (Qi et al. 2024, controllable memory)", 2),
    info_of<gpipe_2bp>("GPipe with 2BP: weight gradients deferred to the end of the step (Rae et al. 2024)"),
    info_of<one_f_one_b_2bp>("1F1B with 2BP: weight gradients deferred to the end of the step (Rae et al. 2024)"),
    info_of<chimera>("Chimera: two replicas fed from both ends, 1F1B each way (Li & Hoefler 2021)", 1, true),
    info_of<bitpipe>("BitPipe: two V-shaped replicas fed from both ends (Wu et al. 2024)", 2, true),
    info_of<dualpipe>("DualPipe: two replicas fed from both ends, overlapped F&B pairs (DeepSeek-V3 2024)", 1, true),
    info_of<dualpipev>("DualPipeV: DualPipe cut in half, V-shaped, overlapped F&B pairs (DeepSeek-V3 / Sea AI Lab)", 2),
    info_of<interleaved_zb>("interleaved ZB: interleaved 1F1B with B/W split, W trailing B by the rank index (PyTorch; Qi et al. 2024)", 2),
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
