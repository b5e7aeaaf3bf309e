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
                              const Costs& costs, std::optional<double> memory_limit) {
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
    out.result.plan = stretto::plan::auto_schedule_v(shape, costs, out.memory_limit);
    out.result.span = stretto::sim::simulate(out.result.plan, costs).metrics.span;
    out.result.heuristic_span = out.result.span;
    out.refined = false;
    return out;
  }
  out.result = stretto::plan::auto_schedule_detailed(shape, costs, out.memory_limit);
  return out;
}

template automatic_plan make_automatic(const automatic_schedule&, const stretto::pipeline_shape&,
                                       const stretto::sim::uniform_costs&, std::optional<double>);
template automatic_plan make_automatic(const automatic_schedule&, const stretto::pipeline_shape&,
                                       const stretto::sim::stage_costs&, std::optional<double>);

stretto::sim::stage_costs read_costs_file(const std::string& path, const stretto::pipeline_shape& shape) {
  const std::string where = "--costs " + path + ": ";
  std::ifstream in(path);
  if (!in) throw stretto::argument_error(where + "cannot open the file");
  nlohmann::json doc;
  try {
    in >> doc;
  } catch (const nlohmann::json::exception& e) {
    throw stretto::argument_error(where + "not valid JSON (" + e.what() + ")");
  }
  if (!doc.is_object())
    throw stretto::argument_error(where + "must hold one JSON object with keys forward, backward_input, ...");

  const auto stages = static_cast<std::size_t>(shape.num_stages());
  const auto ranks = static_cast<std::size_t>(shape.num_ranks);
  auto number = [&](const std::string& key, const nlohmann::json& value) {
    if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0.0)
      throw stretto::argument_error(where + key + " must hold finite numbers >= 0");
    return value.get<double>();
  };
  auto per_entry = [&](const std::string& key, const nlohmann::json& value, std::size_t n, const char* what) {
    std::vector<double> out;
    if (value.is_array()) {
      if (value.size() != n)
        throw stretto::argument_error(where + key + " must have " + std::to_string(n) + " entries, one per " + what +
                                      " (got " + std::to_string(value.size()) + ")");
      for (const auto& x : value) out.push_back(number(key, x));
    } else {
      out.assign(n, number(key, value));
    }
    return out;
  };

  stretto::sim::stage_costs costs;
  for (const auto& [key, value] : doc.items()) {
    if (key == "forward") costs.forward = per_entry(key, value, stages, "stage");
    else if (key == "backward_input") costs.backward_input = per_entry(key, value, stages, "stage");
    else if (key == "backward_weight") costs.backward_weight = per_entry(key, value, stages, "stage");
    else if (key == "activation_bytes") costs.activation_bytes = per_entry(key, value, stages, "stage");
    else if (key == "gradient_bytes") costs.gradient_bytes = per_entry(key, value, stages, "stage");
    else if (key == "activation_memory") costs.activation_memory = per_entry(key, value, stages, "stage");
    else if (key == "weight_gradient_memory") costs.weight_gradient_memory = per_entry(key, value, stages, "stage");
    else if (key == "optimizer_time") costs.optimizer_time = per_entry(key, value, ranks, "rank");
    else if (key == "latency") costs.latency = number(key, value);
    else if (key == "bandwidth") costs.bandwidth = number(key, value);
    else if (key == "sync_latency") costs.sync_latency = number(key, value);
    else if (key == "overlapped_fb") {
      if (!value.is_number())
        throw stretto::argument_error(where + key + " must be one number >= 0, the time of an overlapped F&B pair "
                                                    "(per chunk, as every time in the file)");
      costs.t_overlapped_fb = number(key, value);
    }
    else if (key == "synchronised_optimizer") {
      if (!value.is_boolean()) throw stretto::argument_error(where + key + " must be true or false");
      costs.synchronised_optimizer = value.get<bool>();
    } else {
      throw stretto::argument_error(where + "unknown key '" + key +
                                    "'; valid keys are: forward, backward_input, backward_weight, latency, bandwidth, "
                                    "activation_bytes, gradient_bytes, activation_memory, weight_gradient_memory, "
                                    "optimizer_time, synchronised_optimizer, sync_latency, overlapped_fb");
    }
  }
  for (const char* key : {"forward", "backward_input", "backward_weight"})
    if (!doc.contains(key)) throw stretto::argument_error(where + "the key " + key + " is required");
  try {
    costs.check(shape);
  } catch (const stretto::argument_error& e) {
    throw stretto::argument_error(where + e.what());
  }
  return costs;
}

}  // namespace stretto_plan
