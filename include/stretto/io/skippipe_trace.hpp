#pragma once
/**
@file
@brief A simulated SkipPipe iteration (`skippipe::simulate`) as a Chrome trace / Perfetto JSON
file and as an SVG picture: one row per node, one box per op, and, in the trace, one flow arrow
per message along each microbatch's path.

A SkipPipe microbatch does not cross the stages in order on fixed ranks: it follows its own path
of nodes (some stages skipped, stage replicas chosen per microbatch; SkipPipe, Blagoev, Ersoy and
Chen, arXiv 2502.19913, §4), so the messages are drawn from the paths, not from a placement. Its
ops are, in this order: a forward on each node of the path, the loss on its stage-0 (data) node,
a backward on each node of the path in reverse (docs/skippipe.md, "Simulation"). A message joins
two consecutive ops of a microbatch that ran on different nodes.
*/

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "../core/schedule.hpp"
#include "../sim/timeline.hpp"
#include "../skippipe/paths.hpp"
#include "../skippipe/setting.hpp"
#include "../skippipe/simulate.hpp"
#include "chrome_trace.hpp"
#include "svg.hpp"

namespace stretto::io {

namespace detail {

constexpr const char* skippipe_kind_name(skippipe::op_type type) noexcept {
  switch (type) {
    case skippipe::op_type::forward: return "forward";
    case skippipe::op_type::loss: return "loss";
    case skippipe::op_type::backward: return "backward";
  }
  return "?";
}

// Each microbatch's ops in the order it runs them (forwards, loss, backwards): indices into
// `run.ops`. The simulation gives the ops in start order, and a microbatch's ops follow each other.
inline std::vector<std::vector<std::size_t>> skippipe_ops_by_microbatch(const skippipe::simulation& run, std::int32_t microbatches) {
  std::vector<std::vector<std::size_t>> out(static_cast<std::size_t>(std::max(microbatches, 0)));
  for (std::size_t i = 0; i < run.ops.size(); ++i) {
    const std::int32_t j = run.ops[i].microbatch;
    if (j >= 0 && j < microbatches) out[static_cast<std::size_t>(j)].push_back(i);
  }
  return out;
}

}  // namespace detail

/**
@brief `run` as a `sim::timeline` with one row ("rank") per node, for `to_svg`: a forward is an F
of its node's stage, a backward a fused backward (BW), and the loss, which the data node runs
between a microbatch's forwards and backwards, is drawn as a BW of stage 0 (SkipPipe has no B/W
split). Times in the setting's unit.
*/
inline sim::timeline skippipe_timeline(const skippipe::setting& s, const skippipe::simulation& run) {
  std::vector<std::vector<sim::op_timing>> rows(static_cast<std::size_t>(s.num_nodes()));
  for (const skippipe::executed_op& e : run.ops) {
    const bool forward = e.type == skippipe::op_type::forward;
    const std::int32_t stage = e.type == skippipe::op_type::loss ? 0 : s.stage_of(e.node);
    rows[static_cast<std::size_t>(e.node)].push_back(
        {op{forward ? op_kind::forward : op_kind::backward, stage, e.microbatch}, e.start, e.end});
  }
  for (auto& row : rows) std::stable_sort(row.begin(), row.end(), [](const sim::op_timing& a, const sim::op_timing& b) { return a.start < b.start; });
  return sim::timeline(std::span<const std::vector<sim::op_timing>>(rows));
}

/** @brief The context `to_svg` needs for `skippipe_timeline(s, run)`: one "rank" per node, one chunk. */
inline trace_context skippipe_context(const skippipe::setting& s, std::string name = {}) {
  trace_context c;
  c.shape = pipeline_shape{s.num_nodes(), s.num_microbatches(), 1};
  c.placement = placement_kind::linear;
  c.name = std::move(name);
  return c;
}

/**
@brief Writes `run` (a simulated iteration of `s`) as one Trace Event Format JSON object:

- per node n: metadata naming process n "node n" (with its name from the setting, if any);
- per op: a complete event (`ph` "X") named like "F3", "L3" or "B3" (kind and microbatch), `cat`
  F, L or B, `ts`/`dur` in µs (`microseconds_per_unit` per unit of the setting's time: 1e6 for
  the presets' seconds), `args` {stage, microbatch, kind, node};
- per message (two consecutive ops of a microbatch on different nodes): a flow start (`ph` "s")
  inside the producing op and a flow end (`ph` "f", `bp` "e") at the consumer's start, named
  "activation" (into a forward or the loss) or "gradient" (into a backward).

`name` goes into `otherData.schedule`.
*/
inline void write_skippipe_chrome_trace(std::ostream& out, const skippipe::setting& s, const skippipe::simulation& run,
                                        const std::string& name, double microseconds_per_unit = 1e6) {
  out << "{\"displayTimeUnit\": \"ms\",\n\"otherData\": {\"generator\": \"stretto\", \"schedule\": " << json_quote(name)
      << ", \"nodes\": " << s.num_nodes() << ", \"stages\": " << s.num_stages() << ", \"microbatches\": " << s.num_microbatches()
      << ", \"iteration_time\": " << detail::trace_time(run.iteration_time * microseconds_per_unit) << "},\n\"traceEvents\": [";
  bool first = true;
  const auto next = [&]() -> std::ostream& {
    out << (first ? "\n" : ",\n");
    first = false;
    return out;
  };
  for (std::int32_t n = 0; n < s.num_nodes(); ++n) {
    std::string label = "node " + std::to_string(n);
    if (!s.names.empty()) label += " (" + s.names[static_cast<std::size_t>(n)] + ")";
    next() << "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": " << n << ", \"tid\": 0, \"args\": {\"name\": " << json_quote(label) << "}}";
    next() << "{\"name\": \"process_sort_index\", \"ph\": \"M\", \"pid\": " << n << ", \"tid\": 0, \"args\": {\"sort_index\": " << n << "}}";
  }
  const auto letter = [](skippipe::op_type t) {
    return t == skippipe::op_type::forward ? "F" : t == skippipe::op_type::loss ? "L" : "B";
  };
  for (const skippipe::executed_op& e : run.ops)
    next() << "{\"name\": \"" << letter(e.type) << e.microbatch << "\", \"cat\": \"" << letter(e.type) << "\", \"ph\": \"X\", \"pid\": "
           << e.node << ", \"tid\": 0, \"ts\": " << detail::trace_time(e.start * microseconds_per_unit)
           << ", \"dur\": " << detail::trace_time((e.end - e.start) * microseconds_per_unit) << ", \"args\": {\"stage\": "
           << (e.type == skippipe::op_type::loss ? 0 : s.stage_of(e.node)) << ", \"microbatch\": " << e.microbatch << ", \"kind\": \""
           << detail::skippipe_kind_name(e.type) << "\", \"node\": " << e.node << "}}";
  std::int64_t flow_id = 0;
  for (const auto& list : detail::skippipe_ops_by_microbatch(run, s.num_microbatches()))
    for (std::size_t k = 1; k < list.size(); ++k) {
      const skippipe::executed_op& from = run.ops[list[k - 1]];
      const skippipe::executed_op& to = run.ops[list[k]];
      if (from.node == to.node) continue;
      const char* what = to.type == skippipe::op_type::backward ? "gradient" : "activation";
      const double start_at = from.end * microseconds_per_unit - std::min(0.5 * (from.end - from.start) * microseconds_per_unit, 0.001);
      ++flow_id;
      next() << "{\"name\": \"" << what << "\", \"cat\": \"message\", \"ph\": \"s\", \"id\": " << flow_id << ", \"pid\": " << from.node
             << ", \"tid\": 0, \"ts\": " << detail::trace_time(start_at) << "}";
      next() << "{\"name\": \"" << what << "\", \"cat\": \"message\", \"ph\": \"f\", \"bp\": \"e\", \"id\": " << flow_id << ", \"pid\": " << to.node
             << ", \"tid\": 0, \"ts\": " << detail::trace_time(to.start * microseconds_per_unit) << "}";
    }
  out << "\n]}\n";
}

/** @brief `run` as a standalone SVG document: one row per node (see `skippipe_timeline`). */
inline std::string skippipe_to_svg(const skippipe::setting& s, const skippipe::simulation& run, svg_options options = {}) {
  if (options.row_label == "rank") options.row_label = "node";
  return to_svg(skippipe_timeline(s, run), skippipe_context(s), options);
}

}  // namespace stretto::io
