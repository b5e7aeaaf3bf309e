#include "plan.hpp"
#include "format.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include <stretto/core/errors.hpp>
#include <stretto/core/schedule.hpp>

#include "automatic.hpp"
#include "exchange.hpp"

namespace stretto_plan {

namespace {

void require_at_least_one(std::string_view option, std::int32_t value) {
  if (value < 1)
    throw stretto::argument_error(std::string(option) + " must be an integer of at least 1 (got " +
                                  std::to_string(value) + ")");
}

void require_non_negative(std::string_view option, double value) {
  if (!std::isfinite(value) || value < 0.0)
    throw stretto::argument_error(std::string(option) + " must be a finite number >= 0 (got " +
                                  format_number(value) + ")");
}

}  // namespace

output_format check_request(const simulate_request& request, bool check_shape_rules) {
  const stretto::policies::policy_info& policy =
      request.imported ? imported_policy(request.schedule_file, *request.imported) : find_schedule(request.schedule_name);

  const stretto::pipeline_shape& shape = request.shape;
  require_at_least_one("--ranks", shape.num_ranks);
  require_at_least_one("--microbatches", shape.num_microbatches);
  require_at_least_one("--chunks", shape.num_chunks);
  // In double: the int32 product can overflow, and only the comparison matters.
  const double pairs = static_cast<double>(shape.num_ranks) * static_cast<double>(shape.num_chunks) *
                       static_cast<double>(shape.num_microbatches);
  if (pairs > static_cast<double>(max_stage_microbatch_pairs))
    throw stretto::argument_error(
        "ranks x chunks x microbatches must be at most " + std::to_string(max_stage_microbatch_pairs) +
        " (got " + std::to_string(shape.num_ranks) + " x " + std::to_string(shape.num_chunks) + " x " +
        std::to_string(shape.num_microbatches) + "); every (stage, microbatch) pair is simulated");

  const stretto::sim::uniform_costs& costs = request.costs;
  require_non_negative("--t-forward", costs.t_forward);
  require_non_negative("--t-backward", costs.t_backward_input);
  require_non_negative("--t-weight", costs.t_backward_weight);
  require_non_negative("--t-comm", costs.t_comm);
  require_non_negative("--activation-memory", costs.activation_memory);
  require_non_negative("--weight-memory", costs.weight_gradient_memory);
  require_non_negative("--parameter-memory", costs.parameter_memory);
  costs.check();  // the cost model's own rules; the checks above are stricter and name the option

  output_format format{};
  if (request.format == "table")
    format = output_format::table;
  else if (request.format == "json")
    format = output_format::json;
  else
    throw stretto::argument_error("--format must be table or json (got '" + request.format + "')");

  if (request.memory_limit && !(*request.memory_limit > 0.0))
    throw stretto::argument_error("--memory-limit must be a number > 0 (got " + format_number(*request.memory_limit) + ")");

  if (check_shape_rules && !request.imported)
    if (std::string problem = policy.check(shape); !problem.empty()) throw stretto::shape_error(problem);
  return format;
}

namespace {

/** @brief Generates (or plans) and simulates the request's schedule under `costs`. */
template <class Costs>
void simulate_with(const simulate_request& request, const Costs& costs, simulate_result& result,
                   stretto::schedule& schedule) {
  if (request.imported) {
    if (request.memory_limit)
      throw stretto::argument_error("--memory-limit applies to --schedule auto and auto-v only, not to --schedule-file");
    schedule = *request.imported;
  } else if (const automatic_schedule* automatic = find_automatic(request.schedule_name)) {
    automatic_plan plan = make_automatic(*automatic, request.shape, costs, request.memory_limit, request.stop);
    result.memory_limit = plan.memory_limit;
    result.heuristic_span = plan.result.heuristic_span;
    result.refined = plan.refined;
    schedule = std::move(plan.result.plan);
  } else {
    if (request.memory_limit)
      throw stretto::argument_error("--memory-limit applies to --schedule auto and auto-v only (got --schedule " +
                                    request.schedule_name + ")");
    schedule = stretto::policies::make_schedule(request.schedule_name, request.shape);
  }
  if (request.costs.t_overlapped_fb >= 0.0 && !request.stage_costs) {
    bool has_pairs = false;
    for (std::int32_t r = 0; r < schedule.num_ranks() && !has_pairs; ++r)
      for (const stretto::op& o : schedule.ops(r)) has_pairs = has_pairs || o.overlapped;
    if (!has_pairs)
      throw stretto::argument_error("--t-overlapped-fb applies to schedules with overlapped F&B pairs (dualpipe, "
                                    "dualpipev); " + request.schedule_name + " has none");
  }
  result.run = stretto::sim::simulate(schedule, costs);  // validates first
}

}  // namespace

simulate_result run_simulation(const simulate_request& request) {
  simulate_result result;
  result.policy = request.imported ? &imported_policy(request.schedule_file, *request.imported)
                                   : &find_schedule(request.schedule_name);
  stretto::schedule schedule;
  if (request.stage_costs)
    simulate_with(request, *request.stage_costs, result, schedule);
  else
    simulate_with(request, request.costs, result, schedule);
  result.ops_per_rank.reserve(static_cast<std::size_t>(schedule.num_ranks()));
  for (std::int32_t r = 0; r < schedule.num_ranks(); ++r) result.ops_per_rank.push_back(schedule.ops(r).size());
  result.replicas = schedule.num_replicas();
  result.schedule = std::move(schedule);
  // Times so large that the span overflows: refused here, before any report or picture is
  // drawn from an infinite timeline (simulate, show and export all come through here).
  for (const auto& [what, value] : {std::pair{"the simulated span", result.run.metrics.span},
                                    std::pair{"the bubble rate", result.run.metrics.bubble_rate}})
    if (!std::isfinite(value))
      throw stretto::argument_error(std::string(what) +
                                    " is not a finite number: the times are too large for double precision; give them "
                                    "in a larger unit (e.g. ms instead of ns) so that the step's total time stays below "
                                    "1e308");
  return result;
}

void write_table(std::ostream& out, const simulate_request& request, const simulate_result& result) {
  const stretto::pipeline_shape& shape = request.shape;
  const stretto::sim::uniform_costs& costs = request.costs;
  const stretto::sim::timeline_metrics& metrics = result.run.metrics;
  const auto label = [&out](std::string_view name) -> std::ostream& {
    return out << std::left << std::setw(17) << name << std::right;
  };

  label("schedule") << result.policy->name << "  (" << result.policy->summary << ")\n";
  label("shape") << shape.num_ranks << " ranks, " << shape.num_microbatches << " microbatches, "
                 << shape.num_chunks << (shape.num_chunks == 1 ? " chunk" : " chunks") << " per rank ("
                 << stretto::to_string(result.policy->placement) << " placement)\n";
  if (request.stage_costs) {
    label("costs") << "per stage, from " << request.costs_file << "\n";
  } else {
    label("times") << "T_F " << format_number(costs.t_forward) << ", T_B " << format_number(costs.t_backward_input)
                   << ", T_W " << format_number(costs.t_backward_weight) << " (fused BW "
                   << format_number(costs.t_backward_input + costs.t_backward_weight) << "), T_comm "
                   << format_number(costs.t_comm)
                   << (costs.t_overlapped_fb >= 0.0 ? ", F&B pair " + format_number(costs.t_overlapped_fb) : std::string())
                   << "\n";
    label("memory") << "M_B " << format_number(costs.activation_memory) << ", M_W "
                    << format_number(costs.weight_gradient_memory)
                    << (costs.parameter_memory > 0.0 ? ", M_theta " + format_number(costs.parameter_memory) : std::string())
                    << "\n";
  }
  const std::vector<double>& params = result.run.parameter_memory;
  const bool has_params = std::any_of(params.begin(), params.end(), [](double x) { return x > 0.0; });
  if (result.replicas > 1)
    label("replicas") << result.replicas << "  (every rank holds the parameters of two stages"
                      << (has_params ? "" : "; --parameter-memory adds them to the peak") << ")\n";
  if (result.memory_limit)
    label("memory limit") << format_number(*result.memory_limit)
                          << (result.refined ? "  (heuristic span " + format_number(result.heuristic_span) + ", refined)"
                                             : std::string("  (V planner and local search)"))
                          << "\n";
  label("span") << format_number(metrics.span) << "\n";
  label("bubble rate") << format_fixed(metrics.bubble_rate, 4) << "  (idle / (ranks x span))\n";
  label("bubble overhead") << format_fixed(metrics.bubble_overhead, 4) << "  (idle / busy)\n";
  if (!result.run.optimizer.empty())
    label("step time") << format_number(result.run.step_time) << "  (with the optimizer step)\n";
  out << "\n";

  out << std::setw(6) << "rank" << std::setw(10) << "ops" << std::setw(14) << "busy" << std::setw(14) << "idle"
      << std::setw(20) << "peak memory (M_B)";
  if (has_params) out << std::setw(10) << "params" << std::setw(14) << "peak+params";
  out << "\n";
  for (std::size_t r = 0; r < result.ops_per_rank.size(); ++r) {
    const double busy = metrics.busy[r];
    out << std::setw(6) << r << std::setw(10) << result.ops_per_rank[r] << std::setw(14) << format_number(busy)
        << std::setw(14) << format_number(metrics.span - busy) << std::setw(20)
        << format_number(result.run.peak_memory[r]);
    if (has_params)
      out << std::setw(10) << format_number(params[r]) << std::setw(14)
          << format_number(result.run.peak_memory[r] + params[r]);
    out << "\n";
  }
}

void write_json(std::ostream& out, const simulate_request& request, const simulate_result& result) {
  const stretto::sim::uniform_costs& costs = request.costs;
  const stretto::sim::timeline_metrics& metrics = result.run.metrics;
  nlohmann::ordered_json report;
  report["schedule"] = std::string(result.policy->name);
  report["ranks"] = request.shape.num_ranks;
  report["microbatches"] = request.shape.num_microbatches;
  report["chunks"] = request.shape.num_chunks;
  report["replicas"] = result.replicas;
  if (request.stage_costs) {
    const stretto::sim::stage_costs& c = *request.stage_costs;
    report["costs"] = {
        {"file", request.costs_file},
        {"forward", c.forward},
        {"backward_input", c.backward_input},
        {"backward_weight", c.backward_weight},
        {"latency", c.latency},
        {"bandwidth", c.bandwidth},
        {"activation_memory", c.activation_memory},
        {"weight_gradient_memory", c.weight_gradient_memory},
    };
    if (c.t_overlapped_fb >= 0.0) report["costs"]["overlapped_fb"] = c.t_overlapped_fb;
    if (!c.parameter_memory.empty()) report["costs"]["parameter_memory"] = c.parameter_memory;
  } else {
    report["costs"] = {
        {"t_forward", costs.t_forward},
        {"t_backward", costs.t_backward_input},
        {"t_weight", costs.t_backward_weight},
        {"t_comm", costs.t_comm},
        {"activation_memory", costs.activation_memory},
        {"weight_memory", costs.weight_gradient_memory},
    };
    if (costs.t_overlapped_fb >= 0.0) report["costs"]["t_overlapped_fb"] = costs.t_overlapped_fb;
    if (costs.parameter_memory > 0.0) report["costs"]["parameter_memory"] = costs.parameter_memory;
  }
  report["span"] = metrics.span;
  report["bubble_rate"] = metrics.bubble_rate;
  report["bubble_overhead"] = metrics.bubble_overhead;
  report["peak_memory"] = result.run.peak_memory;
  report["parameter_memory"] = result.run.parameter_memory;
  if (std::any_of(result.run.parameter_memory.begin(), result.run.parameter_memory.end(), [](double x) { return x > 0.0; })) {
    std::vector<double> total = result.run.peak_memory;
    for (std::size_t r = 0; r < total.size(); ++r) total[r] += result.run.parameter_memory[r];
    report["peak_memory_with_parameters"] = std::move(total);
  }
  report["busy"] = metrics.busy;
  report["ops_per_rank"] = result.ops_per_rank;
  if (result.memory_limit) {
    report["memory_limit"] = *result.memory_limit;
    report["heuristic_span"] = result.heuristic_span;
  }
  if (!result.run.optimizer.empty()) {
    report["step_time"] = result.run.step_time;
    nlohmann::ordered_json optimizer = nlohmann::ordered_json::array();
    for (const auto& step : result.run.optimizer) optimizer.push_back({step.start, step.end});
    report["optimizer"] = std::move(optimizer);
  }
  out << report.dump(2) << "\n";
}

void write_policy_list(std::ostream& out) {
  std::size_t width = 0;
  for (const auto& policy : stretto::policies::all_policies) width = std::max(width, policy.name.size());
  for (const auto& policy : stretto::policies::all_policies)
    out << std::left << std::setw(static_cast<int>(width + 2)) << policy.name << std::setw(10)
        << stretto::to_string(policy.placement) << std::right << policy.summary << "\n";
  for (const automatic_schedule& a : automatic_schedules())  // planned from the costs
    out << std::left << std::setw(static_cast<int>(width + 2)) << a.info.name << std::setw(10)
        << stretto::to_string(a.info.placement) << std::right << a.info.summary << "\n";
}

}  // namespace stretto_plan
