#pragma once
/**
@file
@brief Discrete-event simulation of one SkipPipe iteration: every microbatch follows its path,
nodes run one op at a time from a queue, backward before forward (SkipPipe, Blagoev, Ersoy and
Chen, arXiv 2502.19913, §5, the execution model its planner evaluates candidates with;
docs/skippipe.md).

Model. Microbatch j runs, in order: a forward (w_n) on each node of its path, the loss
(loss_factor · w_d) on its stage-0 node d, and a backward (backward_factor · w_n) on each node
of the path in reverse. Between two ops on different nodes the activations (or gradients) travel
`setting::delay(a, b)`; messages overlap compute. Every microbatch is ready on its stage-0 node
at time 0.

A node runs one op at a time and never preempts. When it is free it starts, among the ops that
have arrived, a loss or backward before any forward, then the earliest arrival, then the lowest
microbatch; with `limit_memory`, a forward also needs a free activation slot on the node (at most
`memory` forwards whose backward has not ended). This is 1F1B's order on every node. The
iteration ends when the last backward ends (the stage replicas' gradient all-reduce is not
modelled).
*/

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "paths.hpp"
#include "setting.hpp"

namespace stretto::skippipe {

/** @brief One executed op: which microbatch, on which node, of which kind, when. */
struct executed_op {
  std::int32_t microbatch{0};
  std::int32_t node{0};
  op_type type{op_type::forward};
  double start{0.0};
  double end{0.0};
};

/** @brief The simulated iteration. */
struct simulation {
  double iteration_time{0.0};             ///< when the last backward ends (∞ when deadlocked)
  bool deadlocked{false};                 ///< with limit_memory, nodes waited on each other's slots forever
  std::vector<double> finish;             ///< per microbatch: when its last backward ends
  std::vector<executed_op> ops;           ///< in start order (ties: node order)
  std::vector<std::int32_t> forwards;     ///< per node: microbatches it ran a forward for (its load)
  std::vector<double> busy;               ///< per node: time spent computing
};

/**
@brief Simulates one iteration of `paths` (one path per microbatch) on setting `s`.
@param limit_memory whether a node holds at most `s.memory` activations at once (the paper's
simulation does); a plan whose nodes wait on each other's slots forever reports `deadlocked`.
@pre `s.check()` passes and every path is well formed (nodes in range, starting on its data node).
*/
inline simulation simulate(const setting& s, const std::vector<path>& paths, bool limit_memory = true) {
  struct step {
    std::int32_t node;
    op_type type;
    double length;
  };
  const std::size_t m = paths.size();
  const auto nodes = static_cast<std::size_t>(s.num_nodes());
  std::vector<std::vector<step>> route(m);
  for (std::size_t j = 0; j < m; ++j) {
    const path& p = paths[j];
    for (const std::int32_t n : p) route[j].push_back({n, op_type::forward, s.compute[static_cast<std::size_t>(n)]});
    if (!p.empty()) route[j].push_back({p[0], op_type::loss, s.loss_factor * s.compute[static_cast<std::size_t>(p[0])]});
    for (std::size_t k = p.size(); k-- > 0;)
      route[j].push_back({p[k], op_type::backward, s.backward_factor * s.compute[static_cast<std::size_t>(p[k])]});
  }
  simulation out;
  out.finish.assign(m, 0.0);
  out.forwards.assign(nodes, 0);
  out.busy.assign(nodes, 0.0);
  std::vector<std::size_t> next(m, 0);   // index of each microbatch's next op
  std::vector<double> ready(m, 0.0);     // when that op has arrived on its node
  std::vector<double> node_free(nodes, 0.0);
  std::vector<std::int32_t> held(nodes, 0);
  std::size_t done = 0;
  for (std::size_t j = 0; j < m; ++j)
    if (route[j].empty()) ++done;
  const double inf = std::numeric_limits<double>::infinity();
  auto memory_ok = [&](std::size_t j) {
    const step& st = route[j][next[j]];
    return !limit_memory || st.type != op_type::forward || held[static_cast<std::size_t>(st.node)] < s.memory;
  };
  // Activations held on a node are released when the backward on it ends; ends are processed in
  // time order together with starts so that a slot frees before a later start needs it.
  struct pending_release {
    double at;
    std::int32_t node;
  };
  std::vector<pending_release> releases;
  while (done < m) {
    // The earliest start over all nodes.
    double best_start = inf;
    std::size_t best_j = m;
    for (std::size_t j = 0; j < m; ++j) {
      if (next[j] >= route[j].size() || !memory_ok(j)) continue;
      const step& st = route[j][next[j]];
      const double start = std::max(ready[j], node_free[static_cast<std::size_t>(st.node)]);
      if (best_j == m || start < best_start) {
        best_start = start;
        best_j = j;
      }
    }
    // A release due before that start frees a slot first (and may enable an earlier forward).
    double first_release = inf;
    std::size_t release_at = releases.size();
    for (std::size_t r = 0; r < releases.size(); ++r)
      if (releases[r].at < first_release) {
        first_release = releases[r].at;
        release_at = r;
      }
    if (release_at < releases.size() && (best_j == m || first_release <= best_start)) {
      --held[static_cast<std::size_t>(releases[release_at].node)];
      releases.erase(releases.begin() + static_cast<std::ptrdiff_t>(release_at));
      continue;
    }
    if (best_j == m) {
      out.deadlocked = true;
      out.iteration_time = inf;
      return out;
    }
    // On the chosen node, pick among the ops that have arrived by then: loss/backward first,
    // then the earliest arrival, then the lowest microbatch.
    const std::int32_t node = route[best_j][next[best_j]].node;
    std::size_t pick = m;
    for (std::size_t j = 0; j < m; ++j) {
      if (next[j] >= route[j].size() || route[j][next[j]].node != node || !memory_ok(j)) continue;
      if (ready[j] > best_start) continue;
      if (pick == m) {
        pick = j;
        continue;
      }
      const bool fj = route[j][next[j]].type == op_type::forward;
      const bool fp = route[pick][next[pick]].type == op_type::forward;
      if (fj != fp ? !fj : ready[j] < ready[pick]) pick = j;
    }
    const step& st = route[pick][next[pick]];
    const double start = best_start;
    const double end = start + st.length;
    out.ops.push_back({static_cast<std::int32_t>(pick), node, st.type, start, end});
    out.busy[static_cast<std::size_t>(node)] += st.length;
    node_free[static_cast<std::size_t>(node)] = end;
    if (st.type == op_type::forward) {
      ++out.forwards[static_cast<std::size_t>(node)];
      ++held[static_cast<std::size_t>(node)];
    }
    if (st.type == op_type::backward) releases.push_back({end, node});
    ++next[pick];
    if (next[pick] == route[pick].size()) {
      out.finish[pick] = end;
      out.iteration_time = std::max(out.iteration_time, end);
      ++done;
    } else {
      ready[pick] = end + s.delay(node, route[pick][next[pick]].node);
    }
  }
  return out;
}

}  // namespace stretto::skippipe
