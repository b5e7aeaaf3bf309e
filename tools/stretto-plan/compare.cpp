#include "compare.hpp"
#include "format.hpp"

#include <algorithm>
#include <iomanip>
#include <ostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include <stretto/core/errors.hpp>
#include <stretto/policies/registry.hpp>
#include <stretto/sim/simulator.hpp>

#include "automatic.hpp"

namespace stretto_plan {

namespace {

template <class Costs>
compare_row measure_row(std::string name, std::string_view placement, const stretto::schedule& s, const Costs& costs) {
  const stretto::sim::simulation run = stretto::sim::simulate(s, costs);
  compare_row row;
  row.schedule = std::move(name);
  row.placement = std::string(placement);
  row.chunks = s.shape().num_chunks;
  row.span = run.metrics.span;
  row.bubble_rate = run.metrics.bubble_rate;
  row.bubble_overhead = run.metrics.bubble_overhead;
  row.peak_memory = run.peak_memory;
  row.max_peak_memory = row.peak_memory.empty() ? 0.0 : *std::max_element(row.peak_memory.begin(), row.peak_memory.end());
  row.replicas = s.num_replicas();
  row.parameter_memory = run.parameter_memory;
  for (std::size_t r = 0; r < row.peak_memory.size(); ++r)
    row.max_memory_with_parameters = std::max(row.max_memory_with_parameters, row.peak_memory[r] + row.parameter_memory[r]);
  return row;
}

template <class Costs>
compare_result compare_with(const compare_request& request, const Costs& costs, bool fixed_chunks) {
  compare_result out;
  for (const auto& policy : stretto::policies::all_policies) {
    std::vector<std::int32_t> tries{fixed_chunks ? request.shape.num_chunks : 1};
    if (!fixed_chunks && policy.placement != stretto::placement_kind::linear) tries.push_back(2);
    std::string reason;
    for (std::int32_t v : tries) {
      const stretto::pipeline_shape shape{request.shape.num_ranks, request.shape.num_microbatches, v};
      reason = policy.check(shape);
      if (!reason.empty()) continue;
      out.rows.push_back(measure_row(std::string(policy.name), stretto::to_string(policy.placement),
                                     policy.generate(shape), costs));
      break;
    }
    if (!reason.empty()) out.skipped.push_back({std::string(policy.name), reason});
  }
  for (const automatic_schedule& a : automatic_schedules()) {
    if (a.memory_factor == 0.0 && !request.memory_limit) continue;
    const stretto::pipeline_shape shape{request.shape.num_ranks, request.shape.num_microbatches,
                                        fixed_chunks ? request.shape.num_chunks : a.info.default_chunks};
    if (std::string reason = a.info.check(shape); !reason.empty()) {
      out.skipped.push_back({std::string(a.info.name), reason});
      continue;
    }
    try {
      const automatic_plan plan =
          make_automatic(a, shape, costs, a.memory_factor == 0.0 ? request.memory_limit : std::nullopt, request.stop);
      compare_row row = measure_row(std::string(a.info.name), stretto::to_string(a.info.placement), plan.result.plan, costs);
      row.memory_limit = plan.memory_limit;
      out.rows.push_back(std::move(row));
    } catch (const stretto::argument_error& e) {
      // A bad --memory-limit is the user's error (auto, listed first, reports it); a limit auto
      // can keep to but auto-v cannot only skips the auto-v row.
      if (a.memory_factor == 0.0 && a.info.placement == stretto::placement_kind::linear) throw;
      out.skipped.push_back({std::string(a.info.name), e.what()});
    }
  }
  std::optional<double> baseline;
  for (const compare_row& row : out.rows)
    if (row.schedule == "1f1b") baseline = row.span;
  for (compare_row& row : out.rows) {
    if (baseline && row.span > 0.0) row.speedup = *baseline / row.span;
    // The same relative tolerance as the planners' memory checks.
    if (request.memory_limit)
      row.within_memory_limit = row.max_memory_with_parameters <= *request.memory_limit * (1.0 + 1e-9);
  }
  std::stable_sort(out.rows.begin(), out.rows.end(), [](const compare_row& a, const compare_row& b) {
    return a.span != b.span ? a.span < b.span : a.schedule < b.schedule;
  });
  return out;
}

}  // namespace

std::vector<std::pair<std::string_view, stretto::pipeline_shape>> compare_plans(const compare_request& request) {
  // The same choice of rows and chunks as compare_with.
  const bool fixed_chunks = request.stage_costs || request.chunks_given;
  std::vector<std::pair<std::string_view, stretto::pipeline_shape>> out;
  for (const auto& policy : stretto::policies::all_policies) {
    std::vector<std::int32_t> tries{fixed_chunks ? request.shape.num_chunks : 1};
    if (!fixed_chunks && policy.placement != stretto::placement_kind::linear) tries.push_back(2);
    for (std::int32_t v : tries) {
      const stretto::pipeline_shape shape{request.shape.num_ranks, request.shape.num_microbatches, v};
      if (!policy.check(shape).empty()) continue;
      out.emplace_back(policy.name, shape);
      break;
    }
  }
  for (const automatic_schedule& a : automatic_schedules()) {
    if (a.memory_factor == 0.0 && !request.memory_limit) continue;
    const stretto::pipeline_shape shape{request.shape.num_ranks, request.shape.num_microbatches,
                                        fixed_chunks ? request.shape.num_chunks : a.info.default_chunks};
    if (a.info.check(shape).empty()) out.emplace_back(a.info.name, shape);
  }
  return out;
}

compare_result run_compare(const compare_request& request) {
  if (request.stage_costs) return compare_with(request, *request.stage_costs, true);
  return compare_with(request, request.costs, request.chunks_given);
}

void write_compare_table(std::ostream& out, const compare_request& request, const compare_result& result) {
  out << "shape    " << request.shape.num_ranks << " ranks, " << request.shape.num_microbatches << " microbatches\n";
  if (request.stage_costs) {
    out << "costs    per stage, from --costs\n";
  } else {
    const auto& c = request.costs;
    out << "times    T_F " << format_number(c.t_forward) << ", T_B " << format_number(c.t_backward_input) << ", T_W "
        << format_number(c.t_backward_weight) << ", T_comm " << format_number(c.t_comm)
        << (c.t_overlapped_fb >= 0.0 ? ", F&B pair " + format_number(c.t_overlapped_fb) : std::string())
        << " (per full stage)\n";
    out << "memory   M_B " << format_number(c.activation_memory) << ", M_W " << format_number(c.weight_gradient_memory)
        << "\n";
  }
  out << "\n"
      << std::left << std::setw(24) << "schedule" << std::right << std::setw(7) << "chunks" << std::setw(14) << "span"
      << std::setw(13) << "bubble rate" << std::setw(10) << "vs 1f1b" << "  peak memory per rank\n";
  bool has_params = false;
  for (const compare_row& row : result.rows)
    for (double x : row.parameter_memory) has_params = has_params || x > 0.0;
  for (const compare_row& row : result.rows) {
    std::string peaks;
    for (double x : row.peak_memory) peaks += (peaks.empty() ? "" : " ") + format_number(x);
    std::string notes;
    if (has_params) {
      const double most = row.parameter_memory.empty()
                              ? 0.0
                              : *std::max_element(row.parameter_memory.begin(), row.parameter_memory.end());
      notes += "  params " + format_number(most) + ", total " + format_number(row.max_memory_with_parameters);
    } else if (row.replicas > 1) {
      notes += "  (" + std::to_string(row.replicas) + " replicas)";
    }
    if (row.within_memory_limit && !*row.within_memory_limit) notes += "  over " + format_number(*request.memory_limit);
    out << std::left << std::setw(24) << row.schedule << std::right << std::setw(7) << row.chunks << std::setw(14)
        << format_number(row.span) << std::setw(13) << format_fixed(row.bubble_rate, 4) << std::setw(10)
        << (row.speedup ? format_fixed(*row.speedup, 3) + "x" : std::string("-")) << "  " << peaks << notes << "\n";
  }
  const bool any_over = std::any_of(result.rows.begin(), result.rows.end(), [](const compare_row& row) {
    return row.within_memory_limit && !*row.within_memory_limit;
  });
  if (any_over)
    out << "\nover X: the row's largest per-rank peak" << (has_params ? " + parameters" : "")
        << " exceeds --memory-limit " << format_number(*request.memory_limit) << " (kept in the ranking)\n";
  if (!result.skipped.empty()) {
    out << "\nnot applicable:\n";
    for (const compare_skip& s : result.skipped) out << "  " << s.reason << "\n";
  }
}

void write_compare_json(std::ostream& out, const compare_request& request, const compare_result& result) {
  nlohmann::ordered_json report;
  report["ranks"] = request.shape.num_ranks;
  report["microbatches"] = request.shape.num_microbatches;
  report["baseline"] = "1f1b";
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const compare_row& row : result.rows) {
    nlohmann::ordered_json r;
    r["schedule"] = row.schedule;
    r["placement"] = row.placement;
    r["chunks"] = row.chunks;
    r["span"] = row.span;
    r["bubble_rate"] = row.bubble_rate;
    r["bubble_overhead"] = row.bubble_overhead;
    r["peak_memory"] = row.peak_memory;
    r["max_peak_memory"] = row.max_peak_memory;
    r["replicas"] = row.replicas;
    r["parameter_memory"] = row.parameter_memory;
    r["max_memory_with_parameters"] = row.max_memory_with_parameters;
    if (row.within_memory_limit) r["within_memory_limit"] = *row.within_memory_limit;
    r["speedup_over_1f1b"] = row.speedup ? nlohmann::ordered_json(*row.speedup) : nlohmann::ordered_json(nullptr);
    if (row.memory_limit) r["memory_limit"] = *row.memory_limit;
    rows.push_back(std::move(r));
  }
  report["schedules"] = std::move(rows);
  nlohmann::ordered_json skipped = nlohmann::ordered_json::array();
  for (const compare_skip& s : result.skipped) skipped.push_back({{"schedule", s.schedule}, {"reason", s.reason}});
  report["skipped"] = std::move(skipped);
  out << report.dump(2) << "\n";
}

}  // namespace stretto_plan
