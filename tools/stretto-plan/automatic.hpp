#pragma once
/**
@file
@brief The schedules `stretto-plan` plans from costs rather than from the shape alone: ZB-1p,
ZB-2p and `auto` (the Zero Bubble heuristic under a memory limit, `stretto::plan::auto_schedule`;
docs/schedules.md §7.4–§7.5), `auto-v` (ZB-V under a memory limit, `stretto::plan::auto_schedule_v`;
docs/schedules.md §7.7), and the per-stage cost file that `--costs` reads.
*/

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <stretto/core/schedule.hpp>
#include <stretto/core/shape.hpp>
#include <stretto/policies/registry.hpp>
#include <stretto/plan/auto_schedule.hpp>
#include <stretto/plan/auto_schedule_v.hpp>
#include <stretto/plan/deadline.hpp>
#include <stretto/sim/cost_model.hpp>

namespace stretto_plan {

/**
@brief A schedule found by the automatic scheduler, seen as a `policy_info` so that reports
treat it like any policy (`info.generate` is null: it needs costs, see `make_automatic`).

`memory_factor` k sets the memory limit k·p·M_B (ZB-1p: 1, ZB-2p: 2); 0 means the limit comes
from `--memory-limit` (`auto`).
*/
struct automatic_schedule {
  stretto::policies::policy_info info;
  double memory_factor;
};

/** @brief zb-1p, zb-2p, auto and auto-v, in the order `stretto-plan` lists them. */
std::span<const automatic_schedule> automatic_schedules();

/** @brief The automatic schedule called `name`, or null. */
const automatic_schedule* find_automatic(std::string_view name);

/** @brief Every valid `--schedule` name: the policies' and the automatic ones, joined by ", ". */
std::string schedule_names();

/** @brief The policy or automatic schedule called `name`, or null. */
const stretto::policies::policy_info* schedule_info(std::string_view name);

/**
@brief Returns the policy or automatic schedule called `name`.
@throws stretto::argument_error listing every valid name when there is none.
*/
const stretto::policies::policy_info& find_schedule(std::string_view name);

/** @brief The outcome of `make_automatic`. */
struct automatic_plan {
  stretto::plan::auto_schedule_result result;
  double memory_limit{0.0};  ///< the limit used, in the cost model's memory unit
  bool refined{true};        ///< whether W moves (`refine_weights`) ran after the heuristic as a separate step (auto-v: its search includes them)
};

/**
@brief Plans `which` for `shape` under `costs` (`uniform_costs` or `stage_costs`).
@param memory_limit `--memory-limit`, required for `auto` and `auto-v`, rejected for zb-1p / zb-2p.
@param stop when the planner gives up (`--time-limit`); default: never.
@throws stretto::argument_error for a missing, superfluous or too small limit;
stretto::shape_error for a shape the scheduler rejects; stretto::deadline_exceeded past `stop`.
*/
template <class Costs>
automatic_plan make_automatic(const automatic_schedule& which, const stretto::pipeline_shape& shape,
                              const Costs& costs, std::optional<double> memory_limit,
                              const stretto::plan::deadline& stop = {});

extern template automatic_plan make_automatic(const automatic_schedule&, const stretto::pipeline_shape&,
                                              const stretto::sim::uniform_costs&, std::optional<double>,
                                              const stretto::plan::deadline&);
extern template automatic_plan make_automatic(const automatic_schedule&, const stretto::pipeline_shape&,
                                              const stretto::sim::stage_costs&, std::optional<double>,
                                              const stretto::plan::deadline&);



}  // namespace stretto_plan
