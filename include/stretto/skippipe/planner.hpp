#pragma once
/**
@file
@brief SkipPipe's planner: A* per agent under the path constraints, conflict-based search (CBS)
over the three conflict kinds, candidates evaluated by the discrete-event simulation (SkipPipe,
Blagoev, Ersoy and Chen, arXiv 2502.19913, §5; docs/skippipe.md). Also the two baselines the
paper compares with: the full pipeline and random skipping at the same ratio.

Agents. Each stage-0 node d routes a = min(microbatches, memory) agents; agent k is released at
k · w_d (`agent_release`). Microbatch k of d follows agent k mod a (later waves repeat the
paths, as the paper's code does). An agent's cost is the end of its free-running round trip
(`round_trip`).

Low level (`route_agent`): A* over partial paths, ordered by the time so far plus a lower bound
of the rest (the exact backward of the visited part, and for each stage still to visit the
fastest compute and hop of the setting), under the path constraints and the agent's own
constraints: forbidden nodes, forbidden stages, and time windows on nodes that delay an op to
the window's end. The first complete round trip popped is the cheapest (the bound never
overestimates).

High level (`plan`): best-first over candidate solutions keyed by (makespan = the largest agent
cost, the conflicts left, the sum of the costs). A popped candidate is checked in three tiers:
 (i) a stage s > 0 used by more than |stage s| · memory agents: the children forbid s to one of
     the cap + 1 slowest agents using it, one child each;
 (ii) only when (i) holds everywhere: a node used by more than `memory` agents (TC1): the same
     with the node;
 (iii) with `collision_avoidance`, the earliest collision (TC2): two agents overlap on a node,
     one in forward. For a forward and a backward (or loss) the later arrival waits for the
     other's op (one child); for two forwards one child delays the faster agent and a second
     delays the slower one unless it is among the slowest quarter of the agents.
Each child re-plans its agent with A*. Branching on (i) and (ii) is complete (any valid plan
leaves one of any cap + 1 agents off the stage or node), so without TC2 the first conflict-free
candidate has the least makespan of all plans that satisfy the constraints; TC2's branching is
the paper's heuristic and carries no bound. When this makespan-first search finds nothing within
`exact_expansions` candidates (tight caps: in the paper's default configuration every node must
get exactly `memory` agents), a conflict-first search (key: conflicts left, newest first) runs for
`max_expansions`, and there each child re-plans its agent around the stages and nodes the other
agents already fill to their caps when a path exists that way. Conflict-free candidates are simulated
(`simulate`); the search stops after `max_solutions` (the paper: 8) of them, when one simulates
below `early_stop` (0.88) × the first one's time, or after `max_expansions` candidates; the
plan is the candidate with the shortest simulated iteration. When TC2 leaves no conflict-free
candidate within the budgets, both searches run again without it (`collision_free` is then false).

The seed only breaks ties (between equal-cost agents, nodes and candidates): the same setting and
seed give the same plan.
*/

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <queue>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../plan/deadline.hpp"
#include "paths.hpp"
#include "setting.hpp"
#include "simulate.hpp"

namespace stretto::skippipe {

/** @brief One agent's own constraints, added by CBS branches. */
struct agent_constraints {
  std::vector<char> forbidden_nodes;  ///< per node (empty: none)
  std::uint64_t forbidden_stages{0};  ///< bit s: stage s is forbidden
  std::vector<window> windows;        ///< time windows in which the agent may not compute on a node
};

/** @brief An agent's route: its path, its free-running round trip and that trip's end. */
struct agent_route {
  path nodes;
  std::vector<timed_op> trip;
  double cost{0.0};
};

namespace detail {

/** @brief A small deterministic generator (splitmix64): the same numbers on every platform. */
struct splitmix {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  /** @brief Uniform in [0, n), n ≥ 1 (modulo bias below 2^-40 for the sizes used here). */
  std::int32_t below(std::int32_t n) { return static_cast<std::int32_t>(next() % static_cast<std::uint64_t>(n)); }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

/** @brief Start time of an op of `length` on `node` arriving at `t`, after every window it would overlap. */
inline double place(std::int32_t node, double t, double length, const std::vector<window>& windows) {
  for (bool moved = true; moved;) {
    moved = false;
    for (const window& w : windows)
      if (w.node == node && t < w.until && t + length > w.from) {
        t = w.until;
        moved = true;
      }
  }
  return t;
}

}  // namespace detail

/**
@brief The cheapest round trip of the agent released at `release` on stage-0 node `d` under the
path constraints and `c` (A*, see the file comment).
@param tie per node, a rank that breaks ties between equal-priority partial paths (seeded).
@returns nothing when no path satisfies the constraints.
*/
inline std::optional<agent_route> route_agent(const setting& s, std::int32_t d, double release, const agent_constraints& c,
                                              const std::vector<std::int32_t>& tie = {}) {
  struct state {
    path nodes;
    double t;      // end of the forward on the last node
    double bsum;   // backward compute of the visited nodes plus the backward hops between them
    std::uint64_t seen;
    std::int32_t highest, swaps, distance;
    bool complete;
  };
  const std::int32_t n = s.num_nodes();
  const double bf = s.backward_factor;
  double wmin = std::numeric_limits<double>::infinity(), dmin = std::numeric_limits<double>::infinity();
  for (std::int32_t a = 0; a < n; ++a) {
    if (s.stage_of(a) != 0) wmin = std::min(wmin, s.compute[static_cast<std::size_t>(a)]);
    for (std::int32_t b = 0; b < n; ++b)
      if (a != b) dmin = std::min(dmin, s.delay(a, b));
  }
  if (!std::isfinite(wmin)) wmin = 0.0;
  const double wd = s.compute[static_cast<std::size_t>(d)];
  const double loss = s.loss_factor * wd;
  auto allowed_node = [&](std::int32_t node) {
    return c.forbidden_nodes.empty() || !c.forbidden_nodes[static_cast<std::size_t>(node)];
  };
  if (!allowed_node(d)) return std::nullopt;
  std::vector<state> states;
  using item = std::pair<std::pair<double, std::int64_t>, std::size_t>;  // ((f, tie key), state)
  std::priority_queue<item, std::vector<item>, std::greater<>> open;
  auto key_of = [&](const path& p) {
    std::int64_t k = 0;
    for (const std::int32_t node : p) k = k * (n + 1) + (tie.empty() ? node : tie[static_cast<std::size_t>(node)]);
    return k;
  };
  auto push = [&](state st) {
    double f = 0.0;
    if (st.complete) {
      f = round_trip(s, st.nodes, release, c.windows).back().end;
    } else {
      const auto k = static_cast<double>(s.path_length - static_cast<std::int32_t>(st.nodes.size()));
      const std::int32_t last = st.nodes.back();
      f = st.t + loss + st.bsum +
          (k == 0.0 ? s.delay(last, d) + s.delay(d, last) : 2.0 * (k + 1.0) * dmin + k * (1.0 + bf) * wmin);
    }
    const std::int64_t key = key_of(st.nodes);
    states.push_back(std::move(st));
    open.push({{f, key}, states.size() - 1});
  };
  {
    const double start = detail::place(d, release, wd, c.windows);
    push({{d}, start + wd, bf * wd, 1, 0, 0, 0, s.path_length == 1});
  }
  while (!open.empty()) {
    const std::size_t at = open.top().second;
    open.pop();
    if (states[at].complete) {
      agent_route r;
      r.nodes = states[at].nodes;
      r.trip = round_trip(s, r.nodes, release, c.windows);
      r.cost = r.trip.back().end;
      return r;
    }
    const state cur = states[at];
    const std::int32_t last = cur.nodes.back();
    for (std::int32_t st = 1; st < s.num_stages(); ++st) {
      const std::uint64_t bit = std::uint64_t{1} << st;
      if ((cur.seen & bit) || (c.forbidden_stages & bit)) continue;
      std::int32_t swaps = cur.swaps, distance = cur.distance, highest = cur.highest;
      if (st < cur.highest) {
        if (cur.highest - st > 1 || swaps + 1 > s.max_swaps || distance + (cur.highest - st) > s.max_swap_distance) continue;
        ++swaps;
        distance += cur.highest - st;
      } else {
        if (st - cur.highest > s.max_jump) continue;
        highest = st;
      }
      for (const std::int32_t node : s.stages[static_cast<std::size_t>(st)]) {
        if (!allowed_node(node)) continue;
        const double w = s.compute[static_cast<std::size_t>(node)];
        const double start = detail::place(node, cur.t + s.delay(last, node), w, c.windows);
        state next{cur.nodes, start + w, cur.bsum + bf * w + s.delay(node, last), cur.seen | bit, highest, swaps, distance,
                   false};
        next.nodes.push_back(node);
        next.complete = static_cast<std::int32_t>(next.nodes.size()) == s.path_length;
        push(std::move(next));
      }
    }
  }
  return std::nullopt;
}

/** @brief The planner's knobs (defaults: the paper's). */
struct planner_options {
  std::uint64_t seed{1};              ///< breaks ties; the same seed gives the same plan
  std::int32_t exact_expansions{1000};  ///< candidates the makespan-first search pops before it gives up
  std::int32_t max_expansions{4000};    ///< candidates the conflict-first search then pops before it stops
  std::int32_t max_solutions{8};      ///< conflict-free candidates simulated before it stops (paper: 8)
  double early_stop{0.88};            ///< stop when one simulates below early_stop × the first (paper: 0.88)
  bool limit_memory{true};            ///< the simulation's per-node activation slots (see `simulate`)
  /// When to give up: checked before each candidate is expanded (one agent's A* re-plan and, for a
  /// conflict-free candidate, one simulation), after which `plan` throws `stretto::deadline_exceeded`.
  plan::deadline stop{};
};

/** @brief A plan and how the search went. */
struct plan_result {
  std::vector<path> paths;            ///< one per microbatch
  std::vector<path> agent_paths;      ///< one per agent (stage-0 node d's agents are d·a .. d·a + a − 1)
  std::vector<double> agent_costs;    ///< each agent's free-running round trip end
  double makespan{0.0};               ///< the largest agent cost
  simulation run;                     ///< the simulated iteration of `paths`
  std::int32_t expansions{0};         ///< candidates popped
  std::int32_t solutions{0};          ///< conflict-free candidates simulated
  bool collision_free{false};         ///< TC2 holds among the agents (false when TC2 is off or had to be dropped)
  bool exact{false};                  ///< found by the makespan-first search without TC2: least makespan under the caps
};

/**
@brief Expands agent paths to one path per microbatch: microbatch k of stage-0 node number i
follows agent i·a + (k mod a).
*/
inline std::vector<path> microbatch_paths(const setting& s, const std::vector<path>& agent_paths) {
  const std::int32_t a = s.agents_per_data_node();
  std::vector<path> out;
  for (std::int32_t j = 0; j < s.num_microbatches(); ++j)
    out.push_back(agent_paths[static_cast<std::size_t>((j / s.microbatches) * a + (j % s.microbatches) % a)]);
  return out;
}

namespace detail {

struct cbs_node {
  std::vector<agent_route> routes;
  std::vector<agent_constraints> constraints;
  double makespan{0.0};
  double sum{0.0};
  std::int64_t conflicts{0};
};

struct branch {
  std::int32_t agent;
  std::int32_t stage{-1};
  std::int32_t node{-1};
  std::optional<window> wait;
};

inline std::vector<branch> cbs_conflict(const setting& s, const cbs_node& c, bool tc2, const std::vector<std::int32_t>& agent_tie,
                                        std::int64_t& score) {
  const auto agents = static_cast<std::int32_t>(c.routes.size());
  std::vector<branch> out;
  score = 0;
  // Slowest first; ties by the seeded rank.
  auto slowest_first = [&](std::vector<std::int32_t>& list) {
    std::sort(list.begin(), list.end(), [&](std::int32_t x, std::int32_t y) {
      const double cx = c.routes[static_cast<std::size_t>(x)].cost, cy = c.routes[static_cast<std::size_t>(y)].cost;
      return cx != cy ? cx > cy : agent_tie[static_cast<std::size_t>(x)] < agent_tie[static_cast<std::size_t>(y)];
    });
  };
  // (i) stage caps.
  for (std::int32_t st = 1; st < s.num_stages(); ++st) {
    const auto cap = static_cast<std::int32_t>(s.stages[static_cast<std::size_t>(st)].size()) * s.memory;
    std::vector<std::int32_t> users;
    for (std::int32_t a = 0; a < agents; ++a)
      for (const std::int32_t node : c.routes[static_cast<std::size_t>(a)].nodes)
        if (s.stage_of(node) == st) users.push_back(a);
    const auto over = static_cast<std::int32_t>(users.size()) - cap;
    if (over <= 0) continue;
    score += over;
    if (out.empty()) {
      slowest_first(users);
      for (std::int32_t k = 0; k <= cap && k < static_cast<std::int32_t>(users.size()); ++k)
        out.push_back({users[static_cast<std::size_t>(k)], st, -1, std::nullopt});
    }
  }
  // (ii) TC1, node memory: branched on only when (i) holds; counted in the score always.
  for (std::int32_t node = 0; node < s.num_nodes(); ++node) {
    if (s.stage_of(node) == 0) continue;
    std::vector<std::int32_t> users;
    for (std::int32_t a = 0; a < agents; ++a)
      for (const std::int32_t x : c.routes[static_cast<std::size_t>(a)].nodes)
        if (x == node) users.push_back(a);
    const auto over = static_cast<std::int32_t>(users.size()) - s.memory;
    if (over <= 0) continue;
    score += over;
    if (out.empty()) {
      slowest_first(users);
      for (std::int32_t k = 0; k <= s.memory && k < static_cast<std::int32_t>(users.size()); ++k)
        out.push_back({users[static_cast<std::size_t>(k)], -1, node, std::nullopt});
    }
  }
  if (!tc2) return out;
  // (iii) TC2: the earliest collision; branched on only when (i) and (ii) hold.
  struct busy {
    std::int32_t agent;
    timed_op op;
  };
  std::vector<std::vector<busy>> on_node(static_cast<std::size_t>(s.num_nodes()));
  for (std::int32_t a = 0; a < agents; ++a)
    for (const timed_op& op : c.routes[static_cast<std::size_t>(a)].trip)
      on_node[static_cast<std::size_t>(op.node)].push_back({a, op});
  double first = std::numeric_limits<double>::infinity();
  busy fx{}, fy{};
  for (const auto& list : on_node)
    for (std::size_t i = 0; i < list.size(); ++i)
      for (std::size_t k = i + 1; k < list.size(); ++k) {
        const busy& x = list[i];
        const busy& y = list[k];
        if (x.agent == y.agent || (x.op.type != op_type::forward && y.op.type != op_type::forward)) continue;
        if (!(x.op.start < y.op.end && y.op.start < x.op.end)) continue;
        ++score;
        const double at = std::max(x.op.start, y.op.start);
        if (at < first) {
          first = at;
          fx = x;
          fy = y;
        }
      }
  if (!std::isfinite(first) || !out.empty()) return out;
  const auto wait_for = [&](const busy& waiting, const busy& other) {
    return branch{waiting.agent, -1, -1, window{other.op.node, other.op.start, other.op.end}};
  };
  const bool x_forward = fx.op.type == op_type::forward, y_forward = fy.op.type == op_type::forward;
  if (x_forward != y_forward) {
    // The later arrival waits; on a tie, the forward waits.
    const bool x_waits = fx.op.start != fy.op.start ? fx.op.start > fy.op.start : x_forward;
    out.push_back(x_waits ? wait_for(fx, fy) : wait_for(fy, fx));
    return out;
  }
  const double cx = c.routes[static_cast<std::size_t>(fx.agent)].cost, cy = c.routes[static_cast<std::size_t>(fy.agent)].cost;
  const bool x_faster = cx != cy ? cx < cy : agent_tie[static_cast<std::size_t>(fx.agent)] < agent_tie[static_cast<std::size_t>(fy.agent)];
  const busy& faster = x_faster ? fx : fy;
  const busy& slower = x_faster ? fy : fx;
  out.push_back(wait_for(faster, slower));
  // The slower agent may wait too unless it is among the slowest quarter.
  std::vector<double> costs;
  for (const auto& r : c.routes) costs.push_back(r.cost);
  std::sort(costs.begin(), costs.end(), std::greater<>());
  const auto quarter = std::max<std::size_t>(1, costs.size() / 4);
  if (c.routes[static_cast<std::size_t>(slower.agent)].cost < costs[quarter - 1]) out.push_back(wait_for(slower, faster));
  return out;
}

inline plan_result run_cbs(const setting& s, const planner_options& o, bool tc2, bool greedy, std::int32_t budget) {
  const std::int32_t per = s.agents_per_data_node();
  const auto data_nodes = static_cast<std::int32_t>(s.stages[0].size());
  const std::int32_t agents = per * data_nodes;
  splitmix rng{o.seed};
  std::vector<std::int32_t> node_tie(static_cast<std::size_t>(s.num_nodes()));
  for (std::size_t k = 0; k < node_tie.size(); ++k) node_tie[k] = static_cast<std::int32_t>(k);
  std::vector<std::int32_t> agent_tie(static_cast<std::size_t>(agents));
  for (std::size_t k = 0; k < agent_tie.size(); ++k) agent_tie[k] = static_cast<std::int32_t>(k);
  for (auto* v : {&node_tie, &agent_tie})
    for (std::size_t k = v->size(); k > 1; --k) std::swap((*v)[k - 1], (*v)[static_cast<std::size_t>(rng.below(static_cast<std::int32_t>(k)))]);

  auto start_of = [&](std::int32_t a) { return s.stages[0][static_cast<std::size_t>(a / per)]; };
  auto release_of = [&](std::int32_t a) { return agent_release(s, start_of(a), a % per); };
  auto summarize = [&](cbs_node& c) {
    c.makespan = 0.0;
    c.sum = 0.0;
    for (const auto& r : c.routes) {
      c.makespan = std::max(c.makespan, r.cost);
      c.sum += r.cost;
    }
  };

  std::vector<cbs_node> nodes;
  cbs_node root;
  root.constraints.resize(static_cast<std::size_t>(agents));
  for (std::int32_t a = 0; a < agents; ++a) {
    auto r = route_agent(s, start_of(a), release_of(a), root.constraints[static_cast<std::size_t>(a)], node_tie);
    if (!r)
      throw argument_error("skippipe planner: stage-0 node " + std::to_string(start_of(a)) +
                           " has no path of path_length " + std::to_string(s.path_length) +
                           " under the swap and jump rules; raise max_jump or lower path_length");
    root.routes.push_back(std::move(*r));
  }
  summarize(root);
  using key = std::tuple<double, std::int64_t, double, std::size_t>;
  std::priority_queue<key, std::vector<key>, std::greater<>> open;
  {
    std::int64_t score = 0;
    (void)cbs_conflict(s, root, tc2, agent_tie, score);
    root.conflicts = score;
  }
  nodes.push_back(std::move(root));
  auto key_of = [&](const cbs_node& c, std::size_t index) {
    return greedy ? key{static_cast<double>(c.conflicts), -static_cast<std::int64_t>(index), c.makespan, index}
                  : key{c.makespan, c.conflicts, c.sum, index};
  };
  open.push(key_of(nodes[0], 0));

  plan_result best;
  best.run.iteration_time = std::numeric_limits<double>::infinity();
  double first_time = -1.0;
  std::int32_t expansions = 0, solutions = 0;
  bool found = false;
  while (!open.empty() && expansions < budget && solutions < o.max_solutions) {
    o.stop.check("skippipe planner");
    const std::size_t at = std::get<3>(open.top());
    open.pop();
    ++expansions;
    std::int64_t score = 0;
    const std::vector<branch> children = cbs_conflict(s, nodes[at], tc2, agent_tie, score);
    if (children.empty()) {
      plan_result r;
      for (const auto& route : nodes[at].routes) {
        r.agent_paths.push_back(route.nodes);
        r.agent_costs.push_back(route.cost);
      }
      r.makespan = nodes[at].makespan;
      r.paths = microbatch_paths(s, r.agent_paths);
      r.run = simulate(s, r.paths, o.limit_memory);
      ++solutions;
      found = true;
      if (first_time < 0.0) first_time = r.run.iteration_time;
      const bool better = r.run.iteration_time < best.run.iteration_time || best.paths.empty();
      if (better) best = std::move(r);
      if (std::isfinite(first_time) && best.run.iteration_time < o.early_stop * first_time) break;
      continue;
    }
    for (const branch& b : children) {
      cbs_node child = nodes[at];
      agent_constraints& c = child.constraints[static_cast<std::size_t>(b.agent)];
      if (b.stage >= 0) c.forbidden_stages |= std::uint64_t{1} << b.stage;
      if (b.node >= 0) {
        c.forbidden_nodes.resize(static_cast<std::size_t>(s.num_nodes()), 0);
        c.forbidden_nodes[static_cast<std::size_t>(b.node)] = 1;
      }
      if (b.wait) c.windows.push_back(*b.wait);
      std::optional<agent_route> r;
      if (greedy) {
        // Conflict-first search: re-plan around the stages and nodes the other agents already
        // fill to their caps when a path exists that way (soft; not a constraint of the child).
        agent_constraints avoid = c;
        avoid.forbidden_nodes.resize(static_cast<std::size_t>(s.num_nodes()), 0);
        std::vector<std::int32_t> stage_use(static_cast<std::size_t>(s.num_stages()), 0), node_use(static_cast<std::size_t>(s.num_nodes()), 0);
        for (std::int32_t a = 0; a < agents; ++a) {
          if (a == b.agent) continue;
          const path& p = child.routes[static_cast<std::size_t>(a)].nodes;
          for (std::size_t k = 1; k < p.size(); ++k) {
            ++node_use[static_cast<std::size_t>(p[k])];
            ++stage_use[static_cast<std::size_t>(s.stage_of(p[k]))];
          }
        }
        for (std::int32_t st = 1; st < s.num_stages(); ++st)
          if (stage_use[static_cast<std::size_t>(st)] >= static_cast<std::int32_t>(s.stages[static_cast<std::size_t>(st)].size()) * s.memory)
            avoid.forbidden_stages |= std::uint64_t{1} << st;
        for (std::int32_t x = 0; x < s.num_nodes(); ++x)
          if (s.stage_of(x) != 0 && node_use[static_cast<std::size_t>(x)] >= s.memory) avoid.forbidden_nodes[static_cast<std::size_t>(x)] = 1;
        r = route_agent(s, start_of(b.agent), release_of(b.agent), avoid, node_tie);
      }
      if (!r) r = route_agent(s, start_of(b.agent), release_of(b.agent), c, node_tie);
      if (!r) continue;
      child.routes[static_cast<std::size_t>(b.agent)] = std::move(*r);
      summarize(child);
      std::int64_t child_score = 0;
      (void)cbs_conflict(s, child, tc2, agent_tie, child_score);
      child.conflicts = child_score;
      nodes.push_back(std::move(child));
      const cbs_node& pushed = nodes.back();
      open.push(key_of(pushed, nodes.size() - 1));
    }
    // Free the expanded candidate's storage; its index stays valid.
    nodes[at].routes.clear();
    nodes[at].routes.shrink_to_fit();
    nodes[at].constraints.clear();
    nodes[at].constraints.shrink_to_fit();
  }
  best.expansions = expansions;
  best.solutions = solutions;
  best.collision_free = tc2 && found;
  if (!found) best.paths.clear();
  return best;
}

}  // namespace detail

/**
@brief Plans one SkipPipe iteration on `s` (see the file comment).
@returns the plan with the shortest simulated iteration among the conflict-free candidates.
@throws stretto::argument_error when `s` is invalid or no plan satisfies the caps within the
budget (give more memory, a longer budget, or fewer microbatches per node).
@throws stretto::deadline_exceeded when `o.stop` passes before the search ends.
*/
inline plan_result plan(const setting& s, const planner_options& o = {}) {
  s.check();
  std::int32_t spent = 0;
  for (const bool tc2 : {true, false}) {
    if (tc2 && !s.collision_avoidance) continue;
    for (const bool greedy : {false, true}) {
      plan_result r = detail::run_cbs(s, o, tc2, greedy, greedy ? o.max_expansions : o.exact_expansions);
      spent += r.expansions;
      if (r.paths.empty()) continue;
      r.expansions = spent;
      r.exact = !greedy && !tc2;
      return r;
    }
  }
  throw argument_error("skippipe planner: no plan meets the stage caps and TC1 within " + std::to_string(spent) +
                       " candidates; raise memory, lower path_length or give more nodes to the crowded stages");
}

/**
@brief The full pipeline on the same nodes: every microbatch visits every stage in order;
microbatch j's node at stage s is column j mod |stage s| (`assign_stages`' columns), so the
microbatches spread evenly over each stage's nodes. 1F1B's order on every node comes from the
simulation (backward first, `memory` activation slots).
*/
inline std::vector<path> full_pipeline_paths(const setting& s) {
  std::vector<path> out;
  for (std::int32_t j = 0; j < s.num_microbatches(); ++j) {
    path p{s.data_node(j)};
    for (std::size_t st = 1; st < s.stages.size(); ++st) p.push_back(s.stages[st][static_cast<std::size_t>(j) % s.stages[st].size()]);
    out.push_back(std::move(p));
  }
  return out;
}

/**
@brief Random skipping at the same ratio (the paper's "random" baseline): every microbatch
visits stage 0 and path_length − 1 other stages drawn at random, in increasing order (no swaps),
each on a random node of the stage. Draws prefer stages and nodes below their caps (the stage
cap and TC1 of `find_violations`), so the load stays close to balanced (the caps are preferred,
not guaranteed); the network is ignored. Deterministic for `seed`.
*/
inline std::vector<path> random_skip_paths(const setting& s, std::uint64_t seed) {
  detail::splitmix rng{seed ^ 0x5EEDULL};
  const std::int32_t waves = s.waves();
  std::vector<std::int32_t> node_load(static_cast<std::size_t>(s.num_nodes()), 0);
  std::vector<std::int32_t> stage_load(static_cast<std::size_t>(s.num_stages()), 0);
  std::vector<path> out;
  const std::int32_t k = s.path_length - 1;
  for (std::int32_t j = 0; j < s.num_microbatches(); ++j) {
    std::vector<std::int32_t> chosen;
    for (int attempt = 0; attempt < 64; ++attempt) {
      std::vector<std::int32_t> pool;
      for (std::int32_t st = 1; st < s.num_stages(); ++st) pool.push_back(st);
      chosen.clear();
      for (std::int32_t t = 0; t < k; ++t) {
        const std::int32_t at = rng.below(static_cast<std::int32_t>(pool.size()));
        chosen.push_back(pool[static_cast<std::size_t>(at)]);
        pool.erase(pool.begin() + at);
      }
      std::sort(chosen.begin(), chosen.end());
      bool jump_ok = true;
      std::int32_t prev = 0;
      for (const std::int32_t st : chosen) {
        jump_ok = jump_ok && st - prev <= s.max_jump;
        prev = st;
      }
      bool room = true;
      for (const std::int32_t st : chosen)
        room = room && stage_load[static_cast<std::size_t>(st)] <
                           static_cast<std::int32_t>(s.stages[static_cast<std::size_t>(st)].size()) * s.memory * waves;
      if (jump_ok && (room || attempt == 63)) break;
    }
    path p{s.data_node(j)};
    for (const std::int32_t st : chosen) {
      ++stage_load[static_cast<std::size_t>(st)];
      const auto& stage = s.stages[static_cast<std::size_t>(st)];
      std::vector<std::int32_t> open_nodes;
      for (const std::int32_t node : stage)
        if (node_load[static_cast<std::size_t>(node)] < s.memory * waves) open_nodes.push_back(node);
      const auto& from = open_nodes.empty() ? stage : open_nodes;
      const std::int32_t node = from[static_cast<std::size_t>(rng.below(static_cast<std::int32_t>(from.size())))];
      ++node_load[static_cast<std::size_t>(node)];
      p.push_back(node);
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace stretto::skippipe
