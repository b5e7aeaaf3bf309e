#pragma once
/**
@file
@brief SkipPipe settings as JSON (schema in docs/skippipe.md), read strictly with the same
RFC 8259 reader as schedule files: every error names the key's path (e.g. `latency[2][3]`), the
line and the column.

@code{.json}
{
  "format": "stretto-skippipe-setting", "version": 1,
  "compute": [1.0, 1.0, 2.0],
  "latency": 0.1,
  "bandwidth": [[0, 1e9, 1e9], [1e9, 0, 5e8], [1e9, 5e8, 0]],
  "activation_bytes": 1e8,
  "stages": [[0], [1], [2]],
  "memory": 2, "path_length": 2, "microbatches": 2
}
@endcode

Keys: `compute` (N forward times > 0), `latency` and `bandwidth` (an N × N matrix, or one number
for every pair), `stages` (node lists per stage) or `stage_sizes` (nodes per stage; the nodes are
then assigned by `skippipe::assign_stages`) — these are required; `activation_bytes`, `names`,
`backward_factor`, `loss_factor`, `memory`, `path_length`, `microbatches`, `max_swaps`,
`max_swap_distance`, `max_jump` (numbers), `collision_avoidance` (true/false) are optional with
`skippipe::setting`'s defaults; `format` ("stretto-skippipe-setting") and `version` (1) may be
given. Any other key, a key given twice, or a value of the wrong type is refused.
*/

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "../skippipe/setting.hpp"
#include "schedule_json.hpp"

namespace stretto::io {

namespace detail {

/** @brief Typed access to a parsed setting, failing with the value's path, line and column. */
struct setting_reader {
  std::string_view source;

  [[noreturn]] void fail(const json_value& v, const std::string& path, const std::string& message) const {
    fail_at(source, v.line, v.column, path + ": " + message);
  }
  double number(const json_value& v, const std::string& path) const {
    if (v.kind != json_value::type::number || !std::isfinite(v.number)) fail(v, path, "must be a finite number");
    return v.number;
  }
  std::int32_t count(const json_value& v, const std::string& path) const {
    if (v.kind != json_value::type::number || std::floor(v.number) != v.number || v.number < 0.0 || v.number > 1e6)
      fail(v, path, "must be a whole number from 0 to 1000000");
    return static_cast<std::int32_t>(v.number);
  }
  const std::vector<json_value>& array(const json_value& v, const std::string& path) const {
    if (v.kind != json_value::type::array) fail(v, path, "must be an array");
    return v.items;
  }
  std::vector<double> numbers(const json_value& v, const std::string& path) const {
    std::vector<double> out;
    const auto& items = array(v, path);
    for (std::size_t k = 0; k < items.size(); ++k) out.push_back(number(items[k], path + "[" + std::to_string(k) + "]"));
    return out;
  }
  std::vector<std::int32_t> counts(const json_value& v, const std::string& path) const {
    std::vector<std::int32_t> out;
    const auto& items = array(v, path);
    for (std::size_t k = 0; k < items.size(); ++k) out.push_back(count(items[k], path + "[" + std::to_string(k) + "]"));
    return out;
  }
  /** @brief An N × N matrix, or one number for every pair (the diagonal is set to 0). */
  std::vector<std::vector<double>> matrix(const json_value& v, const std::string& path, std::size_t n) const {
    if (v.kind == json_value::type::number) {
      const double x = number(v, path);
      std::vector<std::vector<double>> out(n, std::vector<double>(n, x));
      for (std::size_t k = 0; k < n; ++k) out[k][k] = 0.0;
      return out;
    }
    if (v.kind != json_value::type::array) fail(v, path, "must be an array of rows (one per node) or one number for every pair");
    if (v.items.size() != n)
      fail(v, path, "must have " + std::to_string(n) + " rows, one per node of compute (got " + std::to_string(v.items.size()) + ")");
    std::vector<std::vector<double>> out;
    for (std::size_t a = 0; a < n; ++a) {
      const std::string row = path + "[" + std::to_string(a) + "]";
      out.push_back(numbers(v.items[a], row));
      if (out.back().size() != n)
        fail(v.items[a], row, "must have " + std::to_string(n) + " entries, one per node (got " + std::to_string(out.back().size()) + ")");
    }
    return out;
  }
};

}  // namespace detail

/**
@brief Reads a SkipPipe setting from the JSON schema above and checks it (`setting::check`).
@param source the file name used in messages.
@throws format_error naming the key's path, line and column for a syntax error, an unknown or
repeated key, a value of the wrong type or a missing key; or the `setting::check` rule broken.
*/
inline skippipe::setting read_skippipe_setting(std::string_view text, std::string_view source = "") {
  using detail::json_value;
  const json_value doc = detail::json_reader(text, source).read_document();
  const detail::setting_reader in{source};
  if (doc.kind != json_value::type::object)
    detail::fail_at(source, doc.line, doc.column, "a SkipPipe setting is one JSON object with the keys compute, latency, bandwidth, stages");
  const json_value* compute = nullptr;
  const json_value* latency = nullptr;
  const json_value* bandwidth = nullptr;
  const json_value* stages = nullptr;
  const json_value* sizes = nullptr;
  skippipe::setting s;
  for (std::size_t k = 0; k < doc.keys.size(); ++k) {
    const std::string& key = doc.keys[k];
    const json_value& v = doc.items[k];
    if (key == "format") {
      if (v.kind != json_value::type::string || v.text != "stretto-skippipe-setting")
        in.fail(v, key, "must be \"stretto-skippipe-setting\"");
    } else if (key == "version") {
      if (v.kind != json_value::type::number || v.number != 1.0) in.fail(v, key, "must be 1");
    } else if (key == "compute") {
      compute = &v;
    } else if (key == "latency") {
      latency = &v;
    } else if (key == "bandwidth") {
      bandwidth = &v;
    } else if (key == "stages") {
      stages = &v;
    } else if (key == "stage_sizes") {
      sizes = &v;
    } else if (key == "activation_bytes") {
      s.activation_bytes = in.number(v, key);
    } else if (key == "backward_factor") {
      s.backward_factor = in.number(v, key);
    } else if (key == "loss_factor") {
      s.loss_factor = in.number(v, key);
    } else if (key == "memory") {
      s.memory = in.count(v, key);
    } else if (key == "path_length") {
      s.path_length = in.count(v, key);
    } else if (key == "microbatches") {
      s.microbatches = in.count(v, key);
    } else if (key == "max_swaps") {
      s.max_swaps = in.count(v, key);
    } else if (key == "max_swap_distance") {
      s.max_swap_distance = in.count(v, key);
    } else if (key == "max_jump") {
      s.max_jump = in.count(v, key);
    } else if (key == "collision_avoidance") {
      if (v.kind != json_value::type::boolean) in.fail(v, key, "must be true or false");
      s.collision_avoidance = v.boolean;
    } else if (key == "names") {
      const auto& items = in.array(v, key);
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (items[i].kind != json_value::type::string) in.fail(items[i], key + "[" + std::to_string(i) + "]", "must be a string");
        s.names.push_back(items[i].text);
      }
    } else {
      in.fail(v, key,
              "unknown key; valid keys: format, version, compute, latency, bandwidth, activation_bytes, stages, stage_sizes, "
              "names, backward_factor, loss_factor, memory, path_length, microbatches, max_swaps, max_swap_distance, "
              "max_jump, collision_avoidance");
    }
  }
  for (const auto& [value, key] : {std::pair{compute, "compute"}, std::pair{latency, "latency"}, std::pair{bandwidth, "bandwidth"}})
    if (value == nullptr) detail::fail_at(source, 0, 0, std::string("the key ") + key + " is required");
  if ((stages == nullptr) == (sizes == nullptr))
    detail::fail_at(source, 0, 0, "give exactly one of stages (node lists per stage) and stage_sizes (nodes per stage)");
  s.compute = in.numbers(*compute, "compute");
  const std::size_t n = s.compute.size();
  if (n > skippipe::setting::max_nodes)
    in.fail(*compute, "compute", "lists " + std::to_string(n) + " nodes; at most " + std::to_string(skippipe::setting::max_nodes) +
                                     " are supported");
  s.latency = in.matrix(*latency, "latency", n);
  s.bandwidth = in.matrix(*bandwidth, "bandwidth", n);
  try {
    if (stages != nullptr) {
      const auto& lists = in.array(*stages, "stages");
      for (std::size_t st = 0; st < lists.size(); ++st) s.stages.push_back(in.counts(lists[st], "stages[" + std::to_string(st) + "]"));
    } else {
      // The heuristic needs valid delays: check the matrices with a placeholder assignment first.
      skippipe::setting probe = s;
      probe.stages = {{}, {}};
      for (std::size_t a = 0; a < n; ++a) probe.stages[a % 2].push_back(static_cast<std::int32_t>(a));
      probe.path_length = 1;
      probe.check();
      const std::vector<std::int32_t> wanted = in.counts(*sizes, "stage_sizes");
      s.stages = skippipe::assign_stages(s, wanted);
    }
    s.check();
  } catch (const format_error&) {
    throw;
  } catch (const argument_error& e) {
    detail::fail_at(source, 0, 0, e.what());
  }
  return s;
}

/** @brief Writes `s` in the schema above (full matrices, explicit stages); `read_skippipe_setting` reads it back equal. */
inline void write_skippipe_setting(std::ostream& out, const skippipe::setting& s) {
  std::ostringstream text;
  text.precision(17);
  auto list = [&](const auto& values) {
    text << '[';
    for (std::size_t k = 0; k < values.size(); ++k) text << (k > 0 ? ", " : "") << values[k];
    text << ']';
  };
  auto rows = [&](const auto& matrix) {
    text << '[';
    for (std::size_t k = 0; k < matrix.size(); ++k) {
      text << (k > 0 ? ",\n    " : "\n    ");
      list(matrix[k]);
    }
    text << ']';
  };
  text << "{\n  \"format\": \"stretto-skippipe-setting\",\n  \"version\": 1,\n  \"compute\": ";
  list(s.compute);
  text << ",\n  \"latency\": ";
  rows(s.latency);
  text << ",\n  \"bandwidth\": ";
  rows(s.bandwidth);
  text << ",\n  \"activation_bytes\": " << s.activation_bytes << ",\n  \"stages\": ";
  rows(s.stages);
  if (!s.names.empty()) {
    text << ",\n  \"names\": [";
    for (std::size_t k = 0; k < s.names.size(); ++k) text << (k > 0 ? ", " : "") << json_quote(s.names[k]);
    text << ']';
  }
  text << ",\n  \"backward_factor\": " << s.backward_factor << ",\n  \"loss_factor\": " << s.loss_factor
       << ",\n  \"memory\": " << s.memory << ",\n  \"path_length\": " << s.path_length << ",\n  \"microbatches\": "
       << s.microbatches << ",\n  \"max_swaps\": " << s.max_swaps << ",\n  \"max_swap_distance\": " << s.max_swap_distance
       << ",\n  \"max_jump\": " << s.max_jump << ",\n  \"collision_avoidance\": " << (s.collision_avoidance ? "true" : "false")
       << "\n}\n";
  out << text.str();
}

}  // namespace stretto::io
