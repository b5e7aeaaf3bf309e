#include "costs_file.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include <stretto/core/errors.hpp>

namespace stretto_plan {

stretto::sim::stage_costs parse_costs(std::string_view text, const stretto::pipeline_shape& shape,
                                      const std::string& where) {
  // Repeated keys: nlohmann keeps the last silently, so the parser callback checks each object's
  // keys as they arrive (one set per open object).
  // Nesting: a cost file is an object of numbers and arrays of numbers (depth 2); deeper values
  // are discarded while parsing and refused after it, so that no input builds a deep tree.
  constexpr int max_depth = 2;
  std::vector<std::set<std::string>> open_objects;
  std::string repeated;
  bool too_deep = false;
  const nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t event,
                                                         nlohmann::json& parsed) {
    using event_t = nlohmann::json::parse_event_t;
    if ((event == event_t::object_start || event == event_t::array_start) && depth >= max_depth) {
      too_deep = true;
      return false;
    }
    if (event == event_t::object_start) open_objects.emplace_back();
    if (event == event_t::object_end && !open_objects.empty()) open_objects.pop_back();
    if (event == event_t::key && !open_objects.empty() && repeated.empty() &&
        !open_objects.back().insert(parsed.get<std::string>()).second)
      repeated = parsed.get<std::string>();
    return true;
  };
  nlohmann::json doc;
  try {
    // parse() (unlike operator>>) rejects anything but white space after the value.
    doc = nlohmann::json::parse(text.begin(), text.end(), on_event);
  } catch (const nlohmann::json::exception& e) {
    std::string reason = e.what();
    if (const auto colon = reason.find("] "); colon != std::string::npos) reason = reason.substr(colon + 2);
    throw stretto::argument_error(where + "not one valid JSON object (" + reason + ")");
  }
  if (too_deep)
    throw stretto::argument_error(where + "values nest too deep; a value is a number, true/false, or an array of "
                                          "numbers");
  if (!repeated.empty())
    throw stretto::argument_error(where + "the key '" + repeated + "' is given twice; give each key once");
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
    else if (key == "parameter_memory") costs.parameter_memory = per_entry(key, value, stages, "stage");
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
                                    "parameter_memory, optimizer_time, synchronised_optimizer, sync_latency, overlapped_fb");
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

stretto::sim::stage_costs read_costs_file(const std::string& path, const stretto::pipeline_shape& shape) {
  const std::string where = "--costs " + path + ": ";
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (!std::filesystem::exists(status))
    throw stretto::argument_error(where + "no such file; give the path of a JSON file of per-stage costs");
  if (std::filesystem::is_directory(status))
    throw stretto::argument_error(where + "is a directory; give the path of a JSON file of per-stage costs");
  if (!std::filesystem::is_regular_file(status))
    throw stretto::argument_error(where + "is not a regular file; give the path of a JSON file of per-stage costs");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(where + "cannot open the file (" + std::strerror(errno) + ")");
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw io_error(where + "reading the file failed (" + std::strerror(errno) + ")");
  return parse_costs(text, shape, where);
}

}  // namespace stretto_plan
