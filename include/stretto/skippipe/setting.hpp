#pragma once
/**
@file
@brief SkipPipe's setting as data: heterogeneous nodes, the network between them, the stages
each node serves, and the knobs of the path model (SkipPipe, Blagoev, Ersoy and Chen,
arXiv 2502.19913, §3 "setting" and §4 "path model"; docs/skippipe.md).

A model of S stages is trained by N nodes. Each stage s is served by the nodes `stages[s]`
(data-parallel replicas of that stage's layers). The nodes of stage 0 hold the data: each of
them starts `microbatches` microbatches, each of which travels forward through `path_length`
distinct stages (stage 0 included, one node per visited stage), returns to its own stage-0 node
for the loss, and retraces the same nodes backward.

Units: times in any one unit (the presets use seconds), sizes in bytes, bandwidths in bytes per
time unit. Sending one microbatch's activations (or their gradients) from node a to node b takes
`delay(a, b) = latency[a][b] + activation_bytes / bandwidth[a][b]` (0 when a == b).
*/

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../core/errors.hpp"

namespace stretto::skippipe {

/**
@brief The setting: nodes, network, stages and the path model's parameters.

Shapes: `compute` has N entries; `latency` and `bandwidth` are N × N (the diagonal is ignored);
`stages` has S ≥ 2 lists that together hold every node 0..N−1 exactly once.
*/
struct setting {
  std::vector<double> compute;                    ///< w_n: forward time of one microbatch on node n's layers (> 0)
  std::vector<std::vector<double>> latency;       ///< latency[a][b] ≥ 0, per message
  std::vector<std::vector<double>> bandwidth;     ///< bandwidth[a][b] > 0, bytes per time unit
  double activation_bytes{0.0};                   ///< bytes of one microbatch's activations (≥ 0)
  std::vector<std::vector<std::int32_t>> stages;  ///< stages[s]: the nodes serving stage s
  std::vector<std::string> names;                 ///< optional node names (regions); empty or N entries
  double backward_factor{1.5};                    ///< a backward on node n takes backward_factor · w_n
  double loss_factor{0.25};                       ///< the loss on the data node takes loss_factor · w_n
  std::int32_t memory{3};                         ///< activations one node may hold at once (microbatches)
  std::int32_t path_length{4};                    ///< stages each microbatch visits, stage 0 included
  std::int32_t microbatches{6};                   ///< microbatches started by each stage-0 node
  std::int32_t max_swaps{2};                      ///< at most this many swaps per path (§4, CC)
  std::int32_t max_swap_distance{2};              ///< total distance of a path's swaps
  std::int32_t max_jump{4};                       ///< a forward step goes at most this many stages past the highest so far
  bool collision_avoidance{true};                 ///< TC2: the planner avoids collisions

  static constexpr std::size_t max_nodes = 1024;  ///< most nodes a setting may have (N × N matrices)

  std::int32_t num_nodes() const { return static_cast<std::int32_t>(compute.size()); }
  std::int32_t num_stages() const { return static_cast<std::int32_t>(stages.size()); }
  /** @brief Microbatches in one iteration: |stage 0| · microbatches. */
  std::int32_t num_microbatches() const { return static_cast<std::int32_t>(stages.empty() ? 0 : stages[0].size()) * microbatches; }
  /** @brief The stage-0 node that starts (and ends) microbatch `j`: stages[0][j / microbatches]. */
  std::int32_t data_node(std::int32_t j) const { return stages[0][static_cast<std::size_t>(j / microbatches)]; }

  /** @brief Sending time of one microbatch's activations from `a` to `b` (0 when a == b). */
  double delay(std::int32_t a, std::int32_t b) const {
    if (a == b) return 0.0;
    const auto ua = static_cast<std::size_t>(a), ub = static_cast<std::size_t>(b);
    return latency[ua][ub] + activation_bytes / bandwidth[ua][ub];
  }

  /** @brief The stage node `n` serves (−1 when it serves none; `check` refuses that). */
  std::int32_t stage_of(std::int32_t n) const {
    for (std::size_t s = 0; s < stages.size(); ++s)
      if (std::find(stages[s].begin(), stages[s].end(), n) != stages[s].end()) return static_cast<std::int32_t>(s);
    return -1;
  }

  /** @brief Agents the planner routes per stage-0 node: min(microbatches, memory) (§5, as the paper). */
  std::int32_t agents_per_data_node() const { return std::min(microbatches, memory); }
  /** @brief Waves: microbatches that share one agent's path, ⌈microbatches / agents⌉. */
  std::int32_t waves() const {
    const std::int32_t a = agents_per_data_node();
    return a == 0 ? 0 : (microbatches + a - 1) / a;
  }

  /**
  @brief Checks the shapes and ranges above.
  @throws stretto::argument_error naming the field and the rule, with a valid alternative.
  */
  void check() const {
    auto fail = [](const std::string& m) { throw argument_error("skippipe setting: " + m); };
    const std::size_t n = compute.size();
    if (n < 2 || n > max_nodes)
      fail("compute must list 2 to " + std::to_string(max_nodes) + " nodes (got " + std::to_string(n) + ")");
    for (std::size_t a = 0; a < n; ++a)
      if (!std::isfinite(compute[a]) || !(compute[a] > 0.0))
        fail("compute[" + std::to_string(a) + "] must be a finite time > 0");
    for (const auto* matrix : {&latency, &bandwidth}) {
      const char* what = matrix == &latency ? "latency" : "bandwidth";
      if (matrix->size() != n)
        fail(std::string(what) + " must have " + std::to_string(n) + " rows, one per node (got " +
             std::to_string(matrix->size()) + ")");
      for (std::size_t a = 0; a < n; ++a) {
        if ((*matrix)[a].size() != n)
          fail(std::string(what) + "[" + std::to_string(a) + "] must have " + std::to_string(n) + " entries (got " +
               std::to_string((*matrix)[a].size()) + ")");
        for (std::size_t b = 0; b < n; ++b) {
          const double x = (*matrix)[a][b];
          const bool ok = matrix == &latency ? std::isfinite(x) && x >= 0.0 : (std::isfinite(x) && x > 0.0) || a == b;
          if (!ok)
            fail(std::string(what) + "[" + std::to_string(a) + "][" + std::to_string(b) + "] must be " +
                 (matrix == &latency ? "a finite time >= 0" : "a finite rate > 0 (the diagonal may be 0)"));
        }
      }
    }
    if (!std::isfinite(activation_bytes) || activation_bytes < 0.0) fail("activation_bytes must be a finite size >= 0");
    if (!names.empty() && names.size() != n)
      fail("names must have " + std::to_string(n) + " entries, one per node, or be left out");
    if (stages.size() < 2) fail("stages must list at least 2 stages (got " + std::to_string(stages.size()) + ")");
    if (stages.size() > 62) fail("at most 62 stages are supported (got " + std::to_string(stages.size()) + ")");
    std::vector<int> seen(n, 0);
    for (std::size_t s = 0; s < stages.size(); ++s) {
      if (stages[s].empty()) fail("stage " + std::to_string(s) + " has no node; give every stage at least one");
      for (const std::int32_t node : stages[s]) {
        if (node < 0 || static_cast<std::size_t>(node) >= n)
          fail("stage " + std::to_string(s) + " names node " + std::to_string(node) + ", which is not in 0.." +
               std::to_string(n - 1));
        if (seen[static_cast<std::size_t>(node)]++ > 0)
          fail("node " + std::to_string(node) + " serves two stages (or one twice); a node serves exactly one stage");
      }
    }
    for (std::size_t a = 0; a < n; ++a)
      if (seen[a] == 0) fail("node " + std::to_string(a) + " serves no stage; list it in one of stages");
    for (const auto& [value, what] : {std::pair{backward_factor, "backward_factor"}, std::pair{loss_factor, "loss_factor"}})
      if (!std::isfinite(value) || value < 0.0) fail(std::string(what) + " must be a finite number >= 0");
    if (memory < 1) fail("memory must be >= 1 microbatch (got " + std::to_string(memory) + ")");
    if (microbatches < 1) fail("microbatches must be >= 1 (got " + std::to_string(microbatches) + ")");
    if (path_length < 1 || path_length > num_stages())
      fail("path_length must be in 1.." + std::to_string(num_stages()) + " (the stages, stage 0 included; got " +
           std::to_string(path_length) + ")");
    if (max_swaps < 0 || max_swap_distance < 0 || max_jump < 1)
      fail("max_swaps and max_swap_distance must be >= 0 and max_jump >= 1");
  }
};

/**
@brief Assigns nodes to stages when a setting gives only the stage sizes (docs/skippipe.md,
"node-to-stage assignment"): a documented heuristic, not the paper's genetic algorithm.

1. Order the nodes by a greedy nearest-neighbour tour over `delay` from node 0 (ties: lowest
   index), so that close nodes are neighbours in the order.
2. Fill "columns": k = min(sizes) pipelines, column c takes the next S nodes of the tour, one per
   stage 0..S−1, so each full pipeline sits on close nodes.
3. The nodes left over fill the stages that still have room, lowest stage first.

@param sizes nodes per stage; they add up to `s.num_nodes()`.
@returns the node lists per stage; position c of every stage is column c (the full pipeline's
columns follow it).
@throws stretto::argument_error when the sizes do not add up or one is < 1.
*/
inline std::vector<std::vector<std::int32_t>> assign_stages(const setting& s, const std::vector<std::int32_t>& sizes) {
  const std::int32_t n = s.num_nodes();
  std::int64_t total = 0;
  for (const std::int32_t k : sizes) {
    if (k < 1) throw argument_error("skippipe setting: every stage size must be >= 1");
    total += k;
  }
  if (total != n)
    throw argument_error("skippipe setting: stage_sizes add up to " + std::to_string(total) + " but there are " +
                         std::to_string(n) + " nodes; make them add up to the node count");
  std::vector<std::int32_t> tour{0};
  std::vector<char> used(static_cast<std::size_t>(n), 0);
  used[0] = 1;
  while (static_cast<std::int32_t>(tour.size()) < n) {
    std::int32_t best = -1;
    for (std::int32_t b = 0; b < n; ++b)
      if (!used[static_cast<std::size_t>(b)] && (best < 0 || s.delay(tour.back(), b) < s.delay(tour.back(), best))) best = b;
    used[static_cast<std::size_t>(best)] = 1;
    tour.push_back(best);
  }
  std::vector<std::vector<std::int32_t>> stages(sizes.size());
  const std::int32_t columns = *std::min_element(sizes.begin(), sizes.end());
  std::size_t next = 0;
  for (std::int32_t c = 0; c < columns; ++c)
    for (auto& stage : stages) stage.push_back(tour[next++]);
  for (std::size_t st = 0; st < stages.size(); ++st)
    while (static_cast<std::int32_t>(stages[st].size()) < sizes[st]) stages[st].push_back(tour[next++]);
  return stages;
}

}  // namespace stretto::skippipe
