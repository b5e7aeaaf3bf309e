#pragma once
/**
@file
@brief SkipPipe's paths, their constraints and a validator (SkipPipe, Blagoev, Ersoy and Chen,
arXiv 2502.19913, §4: convergence constraints CC and throughput constraints TC1, TC2;
docs/skippipe.md).

A path is the list of nodes a microbatch visits forward, its stage-0 node first: `{d, n1, ...,
n_{L−1}}` with L = `path_length`. After the last node the microbatch returns to d for the loss,
then retraces the nodes backward (n_{L−1} ... n1, d). A plan holds one path per microbatch, in
microbatch order (microbatch j starts on `setting::data_node(j)`).

Rules (each violation names the microbatch, the node and the rule):

| rule            | what it requires                                                                 |
| --------------- | -------------------------------------------------------------------------------- |
| `node-range`    | every node is in 0..N−1                                                          |
| `start`         | the path starts on the microbatch's own stage-0 node (stage 0 first and last)     |
| `stage-once`    | every stage at most once (stage 0 only at the start)                             |
| `path-length`   | exactly `path_length` nodes                                                      |
| `swap-adjacent` | a swap (a stage below the highest so far) goes back at most 1 stage              |
| `swap-count`    | at most `max_swaps` swaps                                                        |
| `swap-distance` | the swaps' distances add up to at most `max_swap_distance`                       |
| `jump`          | a forward step goes at most `max_jump` stages past the highest so far            |
| `stage-cap`     | a stage s > 0 gets at most |stage s| · memory · waves visits                       |
| `node-memory`   | TC1: a node gets at most memory · waves visits                                   |
| `collision`     | TC2 (when asked): the planned agents do not overlap on a node, one of them in F  |

`waves` = ⌈microbatches / min(microbatches, memory)⌉: the planner routes min(microbatches,
memory) agents per stage-0 node and the other microbatches repeat their paths (as the paper's
code does), so the caps are the paper's per-agent caps times the waves.
*/

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "setting.hpp"

namespace stretto::skippipe {

/** @brief The nodes a microbatch visits forward, its stage-0 node first. */
using path = std::vector<std::int32_t>;

/** @brief One broken rule: which microbatch, on which node, which rule, and why. */
struct violation {
  std::int32_t microbatch{-1};
  std::int32_t node{-1};
  std::string rule;     ///< one of the rule names of the table above
  std::string message;  ///< "microbatch j, node n: rule R: ..."
};

/** @brief Kind of one op of a microbatch's round trip. */
enum class op_type : std::uint8_t { forward, loss, backward };

/** @brief One op of a free-running (unqueued) round trip: its node, kind and interval. */
struct timed_op {
  std::int32_t node{0};
  op_type type{op_type::forward};
  double start{0.0};
  double end{0.0};
};

/** @brief A time window [from, until) in which one agent may not compute on `node`. */
struct window {
  std::int32_t node{0};
  double from{0.0};
  double until{0.0};
};

/**
@brief The round trip of one microbatch alone on the network (no queueing behind others):
forward on each node of `p`, the hops between them, the hop back to p[0], the loss there
(loss_factor · w), and the backward (backward_factor · w) on the nodes in reverse with the same
hops. An op that would overlap one of `windows` on its node starts at the window's end.
@param release when the first forward may start.
@returns the ops in execution order; the round trip ends at `back().end`.
*/
inline std::vector<timed_op> round_trip(const setting& s, const path& p, double release,
                                        const std::vector<window>& windows = {}) {
  std::vector<timed_op> ops;
  ops.reserve(p.size() * 2 + 1);
  double t = release;
  std::int32_t at = p.empty() ? 0 : p[0];
  auto run = [&](std::int32_t node, op_type type, double length) {
    t += s.delay(at, node);
    at = node;
    for (bool moved = true; moved;) {  // windows may chain: repeat until none overlaps
      moved = false;
      for (const window& w : windows)
        if (w.node == node && t < w.until && t + length > w.from) {
          t = w.until;
          moved = true;
        }
    }
    ops.push_back({node, type, t, t + length});
    t += length;
  };
  for (const std::int32_t node : p) run(node, op_type::forward, s.compute[static_cast<std::size_t>(node)]);
  if (!p.empty()) run(p[0], op_type::loss, s.loss_factor * s.compute[static_cast<std::size_t>(p[0])]);
  for (std::size_t k = p.size(); k-- > 0;)
    run(p[k], op_type::backward, s.backward_factor * s.compute[static_cast<std::size_t>(p[k])]);
  return ops;
}

/**
@brief When agent `k` of its stage-0 node `d` is released in the planner's model: after the
forwards of the agents before it on d, k · w_d (the paper's stagger).
*/
inline double agent_release(const setting& s, std::int32_t d, std::int32_t k) {
  return k * s.compute[static_cast<std::size_t>(d)];
}

namespace detail {

inline violation make_violation(std::int32_t j, std::int32_t node, const char* rule, const std::string& why) {
  return {j, node, rule, "microbatch " + std::to_string(j) + ", node " + std::to_string(node) + ": rule " + rule + ": " + why};
}

/** @brief The per-path rules (all but the caps and TC2) for path `p` of microbatch `j`. */
inline void check_one_path(const setting& s, std::int32_t j, std::int32_t start, const path& p,
                           std::vector<violation>& out) {
  const std::int32_t n = s.num_nodes();
  for (const std::int32_t node : p)
    if (node < 0 || node >= n) {
      out.push_back(make_violation(j, node, "node-range", "no such node; nodes are 0.." + std::to_string(n - 1)));
      return;
    }
  if (static_cast<std::int32_t>(p.size()) != s.path_length)
    out.push_back(make_violation(j, p.empty() ? start : p.back(), "path-length",
                                 "the path visits " + std::to_string(p.size()) + " stages; every path visits exactly " +
                                     std::to_string(s.path_length) + " (path_length), stage 0 included"));
  if (p.empty()) return;
  if (p[0] != start) {
    out.push_back(make_violation(j, p[0], "start",
                                 "the path must start (and end) on its own stage-0 node " + std::to_string(start)));
    return;
  }
  std::uint64_t seen = 1;  // stage 0
  std::int32_t highest = 0, swaps = 0, distance = 0;
  for (std::size_t k = 1; k < p.size(); ++k) {
    const std::int32_t node = p[k];
    const std::int32_t st = s.stage_of(node);
    if (seen & (std::uint64_t{1} << st)) {
      out.push_back(make_violation(j, node, "stage-once",
                                   "stage " + std::to_string(st) + " is visited twice; a path visits each stage at most once" +
                                       (st == 0 ? " (stage 0 only at the start)" : "")));
      continue;
    }
    seen |= std::uint64_t{1} << st;
    if (st < highest) {
      if (highest - st > 1)
        out.push_back(make_violation(j, node, "swap-adjacent",
                                     "stage " + std::to_string(st) + " comes after stage " + std::to_string(highest) +
                                         ": a swap may go back only 1 stage (adjacent stages)"));
      ++swaps;
      distance += highest - st;
      if (swaps == s.max_swaps + 1)
        out.push_back(make_violation(j, node, "swap-count",
                                     "swap " + std::to_string(swaps) + " of the path; at most " +
                                         std::to_string(s.max_swaps) + " swaps are allowed"));
      if (distance > s.max_swap_distance && distance - (highest - st) <= s.max_swap_distance)
        out.push_back(make_violation(j, node, "swap-distance",
                                     "the swaps' distances add up to " + std::to_string(distance) + "; at most " +
                                         std::to_string(s.max_swap_distance) + " are allowed"));
    } else {
      if (st - highest > s.max_jump)
        out.push_back(make_violation(j, node, "jump",
                                     "stage " + std::to_string(st) + " follows stage " + std::to_string(highest) +
                                         ": a forward step may go at most " + std::to_string(s.max_jump) +
                                         " stages past the highest so far"));
      highest = st;
    }
  }
}

}  // namespace detail

/**
@brief Every rule of the table that `paths` breaks, in microbatch order, then the caps, then TC2.
@param paths one path per microbatch (`s.num_microbatches()` of them).
@param collisions whether to check TC2 (on the agents: the first min(microbatches, memory)
microbatches of each stage-0 node, released as `agent_release` says).
@pre `s.check()` passes.
*/
inline std::vector<violation> find_violations(const setting& s, const std::vector<path>& paths, bool collisions = false) {
  std::vector<violation> out;
  const std::int32_t m = s.num_microbatches();
  if (static_cast<std::int32_t>(paths.size()) != m) {
    out.push_back({-1, -1, "path-count",
                   "the plan has " + std::to_string(paths.size()) + " paths; it needs one per microbatch, " +
                       std::to_string(m) + " (|stage 0| · microbatches)"});
    return out;
  }
  for (std::int32_t j = 0; j < m; ++j) detail::check_one_path(s, j, s.data_node(j), paths[static_cast<std::size_t>(j)], out);
  if (!out.empty()) return out;  // the caps and TC2 count only well-formed paths

  const std::int32_t waves = s.waves();
  std::vector<std::int32_t> node_visits(static_cast<std::size_t>(s.num_nodes()), 0);
  std::vector<std::int32_t> stage_visits(static_cast<std::size_t>(s.num_stages()), 0);
  for (std::int32_t j = 0; j < m; ++j) {
    const path& p = paths[static_cast<std::size_t>(j)];
    for (std::size_t k = 1; k < p.size(); ++k) {
      const std::int32_t node = p[k];
      const std::int32_t st = s.stage_of(node);
      const std::int32_t stage_cap = static_cast<std::int32_t>(s.stages[static_cast<std::size_t>(st)].size()) * s.memory * waves;
      if (++stage_visits[static_cast<std::size_t>(st)] == stage_cap + 1)
        out.push_back(detail::make_violation(j, node, "stage-cap",
                                             "stage " + std::to_string(st) + " gets more than " + std::to_string(stage_cap) +
                                                 " visits (nodes of the stage · memory · waves); send some microbatches to "
                                                 "other stages"));
      const std::int32_t node_cap = s.memory * waves;
      if (++node_visits[static_cast<std::size_t>(node)] == node_cap + 1)
        out.push_back(detail::make_violation(j, node, "node-memory",
                                             "TC1: the node gets more than " + std::to_string(node_cap) +
                                                 " visits (memory · waves); send some microbatches to its stage's other nodes"));
    }
  }
  if (!collisions) return out;
  // TC2 on the agents' free-running round trips.
  struct busy {
    std::int32_t j;
    timed_op op;
  };
  std::vector<std::vector<busy>> on_node(static_cast<std::size_t>(s.num_nodes()));
  const std::int32_t agents = s.agents_per_data_node();
  for (std::int32_t j = 0; j < m; ++j) {
    const std::int32_t k = j % s.microbatches;
    if (k >= agents) continue;
    for (const timed_op& op : round_trip(s, paths[static_cast<std::size_t>(j)], agent_release(s, s.data_node(j), k)))
      on_node[static_cast<std::size_t>(op.node)].push_back({j, op});
  }
  for (std::size_t node = 0; node < on_node.size(); ++node) {
    const auto& list = on_node[node];
    bool reported = false;
    for (std::size_t a = 0; a < list.size() && !reported; ++a)
      for (std::size_t b = a + 1; b < list.size() && !reported; ++b) {
        const busy& x = list[a];
        const busy& y = list[b];
        if (x.j == y.j) continue;
        if (x.op.type != op_type::forward && y.op.type != op_type::forward) continue;
        if (x.op.start < y.op.end && y.op.start < x.op.end) {
          out.push_back(detail::make_violation(
              std::max(x.j, y.j), static_cast<std::int32_t>(node), "collision",
              "TC2: it overlaps microbatch " + std::to_string(std::min(x.j, y.j)) +
                  " on the node with one of them in forward; delay one or route it to another node"));
          reported = true;
        }
      }
  }
  return out;
}

/**
@brief Checks `paths` against every rule of the table (TC2 when `collisions`).
@throws stretto::validation_error with the first violation's message ("microbatch j, node n:
rule R: ...") and how many more there are.
*/
inline void validate_paths(const setting& s, const std::vector<path>& paths, bool collisions = false) {
  const std::vector<violation> found = find_violations(s, paths, collisions);
  if (found.empty()) return;
  std::string text = "skippipe paths: " + found.front().message;
  if (found.size() > 1) text += " (and " + std::to_string(found.size() - 1) + " more violations)";
  throw validation_error(text);
}

}  // namespace stretto::skippipe
