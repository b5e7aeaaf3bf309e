#include "automatic.hpp"
#include "format.hpp"

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <stretto/core/errors.hpp>

namespace stretto_plan {

namespace {

/** @brief The shape rule of the automatic scheduler, as a shape-only check. */
std::string check_automatic(std::string_view name, const stretto::pipeline_shape& s) {
  if (s.num_ranks < 1 || s.num_microbatches < 1)
    return std::string(name) + ": ranks and microbatches must be at least 1";
  if (s.num_chunks != 1)
    return std::string(name) + ": the Zero Bubble scheduler places one stage per rank, so chunks must be 1 (got " +
           std::to_string(s.num_chunks) + "); use zb-v or interleaved-1f1b for several chunks per rank";
  return {};
}
std::string check_zb_1p(const stretto::pipeline_shape& s) { return check_automatic("zb-1p", s); }
std::string check_zb_2p(const stretto::pipeline_shape& s) { return check_automatic("zb-2p", s); }
std::string check_auto(const stretto::pipeline_shape& s) { return check_automatic("auto", s); }
std::string check_auto_v(const stretto::pipeline_shape& s) {
  if (s.num_ranks < 1 || s.num_microbatches < 1) return "auto-v: ranks and microbatches must be at least 1";
  if (s.num_chunks != 2)
    return "auto-v: plans ZB-V's V-shaped placement, 2 chunks per rank, so chunks must be 2 (got " +
           std::to_string(s.num_chunks) + "); use auto for one stage per rank";
  return {};
}

const automatic_schedule entries[4] = {
    {{"zb-1p", "ZB-1p: Zero Bubble heuristic planned from the costs, memory limit p*M_B (Qi et al. 2024)",
      stretto::placement_kind::linear, &check_zb_1p, nullptr, 1, false},
     1.0},
    {{"zb-2p", "ZB-2p: Zero Bubble heuristic planned from the costs, memory limit 2p*M_B (Qi et al. 2024)",
      stretto::placement_kind::linear, &check_zb_2p, nullptr, 1, false},
     2.0},
    {{"auto", "auto: Zero Bubble heuristic planned from the costs under --memory-limit (Qi et al. 2024)",
      stretto::placement_kind::linear, &check_auto, nullptr, 1, false},
     0.0},
    {{"auto-v", "auto-v: ZB-V planned from the costs under --memory-limit: the official V planner, list scheduling and a local search (Qi et al. 2024, Sec. 6)",
      stretto::placement_kind::v_shape, &check_auto_v, nullptr, 2, false},
     0.0},
};

}  // namespace

std::span<const automatic_schedule> automatic_schedules() { return entries; }

const automatic_schedule* find_automatic(std::string_view name) {
  for (const automatic_schedule& a : entries)
    if (a.info.name == name) return &a;
  return nullptr;
}

std::string schedule_names() {
  std::string out = stretto::policies::policy_names();
  for (const automatic_schedule& a : entries) out += ", " + std::string(a.info.name);
  return out;
}

const stretto::policies::policy_info* schedule_info(std::string_view name) {
  if (const automatic_schedule* a = find_automatic(name)) return &a->info;
  for (const auto& p : stretto::policies::all_policies)
    if (p.name == name) return &p;
  return nullptr;
}

const stretto::policies::policy_info& find_schedule(std::string_view name) {
  if (const stretto::policies::policy_info* info = schedule_info(name)) return *info;
  throw stretto::argument_error("unknown schedule '" + std::string(name) + "'; valid schedules are: " +
                                schedule_names());
}

template <class Costs>
automatic_plan make_automatic(const automatic_schedule& which, const stretto::pipeline_shape& shape,
                              const Costs& costs, std::optional<double> memory_limit,
                              const stretto::plan::deadline& stop) {
  if (std::string problem = which.info.check(shape); !problem.empty()) throw stretto::shape_error(problem);
  automatic_plan out;
  if (which.memory_factor > 0.0) {
    if (memory_limit)
      throw stretto::argument_error("--memory-limit applies to --schedule auto and auto-v only; " +
                                    std::string(which.info.name) + " uses " + format_number(which.memory_factor) +
                                    "p*M_B");
    out.memory_limit = stretto::plan::zb_memory_limit(shape, costs, which.memory_factor);
  } else {
    if (!memory_limit)
      throw stretto::argument_error(
          "--schedule " + std::string(which.info.name) +
          " needs --memory-limit X (activation memory per rank, in the unit of --activation-memory; "
          "e.g. p for 1F1B's peak, 2p for ZB-2p's)");
    out.memory_limit = *memory_limit;
  }
  if (which.info.placement == stretto::placement_kind::v_shape) {
    // The V planner's search includes its own W moves: its result's span is the span.
    stretto::plan::auto_v_options options;
    options.stop = stop;
    out.result.plan = stretto::plan::auto_schedule_v(shape, costs, out.memory_limit, options);
    out.result.span = stretto::sim::simulate(out.result.plan, costs).metrics.span;
    out.result.heuristic_span = out.result.span;
    out.refined = false;
    return out;
  }
  stretto::plan::auto_schedule_options options;
  options.stop = stop;
  out.result = stretto::plan::auto_schedule_detailed(shape, costs, out.memory_limit, options);
  return out;
}

template automatic_plan make_automatic(const automatic_schedule&, const stretto::pipeline_shape&,
                                       const stretto::sim::uniform_costs&, std::optional<double>,
                                       const stretto::plan::deadline&);
template automatic_plan make_automatic(const automatic_schedule&, const stretto::pipeline_shape&,
                                       const stretto::sim::stage_costs&, std::optional<double>,
                                       const stretto::plan::deadline&);

}  // namespace stretto_plan
