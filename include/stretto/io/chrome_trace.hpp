#pragma once
/**
@file
@brief Timelines as Chrome trace / Perfetto JSON (the Trace Event Format): one track per rank, one
complete event per op, one flow arrow per message between ranks.

Open the file in https://ui.perfetto.dev or chrome://tracing. The writer takes a
`stretto::sim::timeline` (start and end of every op), so it draws a simulated step and a measured
one (an executor's timeline gathered on one rank) alike.
*/

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <span>
#include <utility>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "../core/dependencies.hpp"
#include "../core/schedule.hpp"
#include "../sim/timeline.hpp"
#include "schedule_json.hpp"
#include "schedule_tokens.hpp"

namespace stretto::io {

/**
@brief What a timeline alone does not say: the shape and placement (for chunks and messages) and
each microbatch's replica, plus how to label and scale the trace.
*/
struct trace_context {
  pipeline_shape shape{};
  placement_kind placement{placement_kind::linear};
  std::vector<std::int32_t> replicas;  ///< [microbatch] 0 or 1; empty: all 0
  std::string name;                    ///< shown as the trace's process names' prefix and in otherData
  /// Microseconds per unit of the timeline (the trace format counts in µs): 1000 reads the
  /// cost model's unit as milliseconds, 1e6 reads a measured timeline's seconds.
  double microseconds_per_unit{1000.0};

  constexpr std::int32_t replica_of(std::int32_t microbatch) const noexcept {
    return microbatch >= 0 && static_cast<std::size_t>(microbatch) < replicas.size()
               ? replicas[static_cast<std::size_t>(microbatch)]
               : 0;
  }
};

/** @brief The context of `s`: its shape, placement and replicas. */
inline trace_context context_of(const schedule& s, std::string name = {}) {
  trace_context c;
  c.shape = s.shape();
  c.placement = s.placement();
  c.name = std::move(name);
  for (std::int32_t j = 0; j < s.num_microbatches(); ++j) c.replicas.push_back(s.replica_of(j));
  return c;
}

/** @brief The long name of an op kind for reports: "forward", "backward_input", ... */
constexpr std::string_view kind_name(op_kind kind) noexcept {
  switch (kind) {
    case op_kind::forward: return "forward";
    case op_kind::backward_input: return "backward_input";
    case op_kind::backward_weight: return "backward_weight";
    case op_kind::backward: return "backward";
  }
  return "?";
}

namespace detail {

/** @brief `value` in µs as a JSON number with up to 3 decimals (ns resolution). */
inline std::string trace_time(double value) {
  if (!std::isfinite(value)) return "0";
  std::ostringstream text;
  text.setf(std::ios::fixed);
  text.precision(3);
  text << value;
  std::string out = text.str();
  while (out.find('.') != std::string::npos && (out.back() == '0' || out.back() == '.')) {
    const bool dot = out.back() == '.';
    out.pop_back();
    if (dot) break;
  }
  return out == "-0" ? "0" : out;
}

}  // namespace detail

/**
@brief Writes `events` as one Trace Event Format JSON object:

- per rank r: metadata events naming process r "rank r" (`pid` r, `tid` 0), sorted by rank;
- per op: a complete event (`ph` "X") named like "F3" (kind and microbatch), `cat` its kind
  (F, B, W, BW), `ts`/`dur` in µs, `args` {stage, microbatch, kind, chunk, replica, overlapped};
- per message (a dependency produced on another rank, `dependencies_of`): a flow start (`ph`
  "s") at the end of the producing op and a flow end (`ph` "f", `bp` "e") at the start of the
  consumer, sharing an `id`, named "activation" or "gradient".

Ops whose producer is absent from `events` (a partial timeline) get no flow.
*/
namespace detail {
/// Writes `events`' trace events (no header) through `next`, its ranks as processes
/// `pid_offset + r` named `label + "rank r"`, its flows numbered on from `flow_id`.
template <class Next>
void write_trace_events(Next&& next, const sim::timeline& events, const trace_context& context, std::int32_t pid_offset,
                        const std::string& label, std::int64_t& flow_id) {
  const pipeline_shape& shape = context.shape;
  const double scale = context.microseconds_per_unit;
  const auto m = static_cast<std::size_t>(shape.num_microbatches > 0 ? shape.num_microbatches : 0);
  const auto stages = static_cast<std::size_t>(shape.num_stages() > 0 ? shape.num_stages() : 0);
  // [kind of dependency][stage * m + microbatch] = (rank, end) of the producing op.
  struct produced {
    std::int32_t rank{-1};
    double end{0.0};
    double start{0.0};
  };
  std::vector<produced> by_forward(stages * m), by_gradient(stages * m);
  const auto index = [m](std::int32_t stage, std::int32_t microbatch) {
    return static_cast<std::size_t>(stage) * m + static_cast<std::size_t>(microbatch);
  };
  const auto in_range = [&](std::int32_t stage, std::int32_t microbatch) {
    return stage >= 0 && microbatch >= 0 && static_cast<std::size_t>(stage) < stages && static_cast<std::size_t>(microbatch) < m;
  };
  for (std::int32_t r = 0; r < events.num_ranks(); ++r)
    for (const sim::op_timing& t : events.ops(r)) {
      if (!in_range(t.what.stage, t.what.microbatch)) continue;
      if (t.what.kind == op_kind::forward) by_forward[index(t.what.stage, t.what.microbatch)] = {r, t.end, t.start};
      if (produces_input_gradient(t.what.kind)) by_gradient[index(t.what.stage, t.what.microbatch)] = {r, t.end, t.start};
    }

  for (std::int32_t r = 0; r < events.num_ranks(); ++r) {
    const std::int32_t pid = pid_offset + r;
    next() << "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": " << pid << ", \"tid\": 0, \"args\": {\"name\": " << json_quote(label + "rank " + std::to_string(r)) << "}}";
    next() << "{\"name\": \"process_sort_index\", \"ph\": \"M\", \"pid\": " << pid << ", \"tid\": 0, \"args\": {\"sort_index\": " << pid << "}}";
    next() << "{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": " << pid << ", \"tid\": 0, \"args\": {\"name\": \"compute\"}}";
  }
  for (std::int32_t r = 0; r < events.num_ranks(); ++r) {
    const auto list = events.ops(r);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const sim::op_timing& t = list[i];
      const op& o = t.what;
      const bool overlapped = o.overlapped || (i > 0 && list[i - 1].what.overlapped);
      next() << "{\"name\": \"" << short_name(o.kind) << o.microbatch << "\", \"cat\": \"" << short_name(o.kind)
             << "\", \"ph\": \"X\", \"pid\": " << pid_offset + r << ", \"tid\": 0, \"ts\": " << detail::trace_time(t.start * scale)
             << ", \"dur\": " << detail::trace_time((t.end - t.start) * scale) << ", \"args\": {\"stage\": " << o.stage
             << ", \"microbatch\": " << o.microbatch << ", \"kind\": \"" << kind_name(o.kind)
             << "\", \"chunk\": " << detail::chunk_of(context.placement, shape, o.stage)
             << ", \"replica\": " << context.replica_of(o.microbatch) << ", \"overlapped\": " << (overlapped ? "true" : "false") << "}}";
      for (const dependency& d : dependencies_of(o, shape)) {
        if (!in_range(d.stage, d.microbatch)) continue;
        const produced& from = (d.kind == dependency_kind::forward ? by_forward : by_gradient)[index(d.stage, d.microbatch)];
        if (from.rank < 0 || from.rank == r) continue;
        const char* name = d.kind == dependency_kind::forward ? "activation" : "gradient";
        // The flow start sits just inside the producer's slice, so that viewers bind it there.
        const double start_at = from.end * scale - std::min(0.5 * (from.end - from.start) * scale, 0.001);
        ++flow_id;
        next() << "{\"name\": \"" << name << "\", \"cat\": \"message\", \"ph\": \"s\", \"id\": " << flow_id << ", \"pid\": " << pid_offset + from.rank
               << ", \"tid\": 0, \"ts\": " << detail::trace_time(start_at) << "}";
        next() << "{\"name\": \"" << name << "\", \"cat\": \"message\", \"ph\": \"f\", \"bp\": \"e\", \"id\": " << flow_id
               << ", \"pid\": " << pid_offset + r << ", \"tid\": 0, \"ts\": " << detail::trace_time(t.start * scale) << "}";
      }
    }
  }
}
}  // namespace detail

/**
@brief Writes several timelines into one trace, one after the other (e.g. a measured step and its
simulation): the ranks of timeline k are the processes after those of timeline k − 1, named with
that timeline's `trace_context::name` ("measured: rank 0", ...). The header describes the first.
*/
inline void write_chrome_traces(std::ostream& out, std::span<const std::pair<const sim::timeline*, trace_context>> parts) {
  if (parts.empty()) {
    out << "{\"traceEvents\": []}\n";
    return;
  }
  const trace_context& context = parts.front().second;
  const pipeline_shape& shape = context.shape;
  out << "{\"displayTimeUnit\": \"ms\",\n\"otherData\": {\"generator\": \"stretto\", \"schedule\": " << json_quote(context.name)
      << ", \"ranks\": " << shape.num_ranks << ", \"microbatches\": " << shape.num_microbatches << ", \"chunks\": " << shape.num_chunks
      << ", \"placement\": \"" << to_string(context.placement) << "\"},\n\"traceEvents\": [";
  bool first = true;
  const auto next = [&]() -> std::ostream& {
    out << (first ? "\n" : ",\n");
    first = false;
    return out;
  };
  std::int64_t flow_id = 0;
  std::int32_t pid_offset = 0;
  for (const auto& [events, part] : parts) {
    detail::write_trace_events(next, *events, part, pid_offset, parts.size() > 1 && !part.name.empty() ? part.name + ": " : std::string(), flow_id);
    pid_offset += events->num_ranks();
  }
  out << "\n]}\n";
}

inline void write_chrome_trace(std::ostream& out, const sim::timeline& events, const trace_context& context) {
  const std::pair<const sim::timeline*, trace_context> part{&events, context};
  write_chrome_traces(out, std::span(&part, 1));
}

/** @brief `write_chrome_trace` into a string. */
inline std::string to_chrome_trace(const sim::timeline& events, const trace_context& context) {
  std::ostringstream out;
  write_chrome_trace(out, events, context);
  return out.str();
}

}  // namespace stretto::io
