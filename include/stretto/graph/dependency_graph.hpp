#pragma once
/**
@file
@brief The dependency graph of a schedule on Boost.Graph: ops (and, after lowering, sends and
receives) as vertices; data dependencies, per-rank program order and message matching as edges.
Topological order, deadlock cycles and the critical path under a cost model.

Needs Boost.Graph's headers (CMake target `stretto::boost_graph`, which links `Boost::headers`);
the rest of Stretto needs only the standard library.

**Edges** (an edge u → v: u must complete before v can complete):

| kind | from → to |
|---|---|
| `program_order` | an op → the next op on the same rank |
| `data` | the op producing a value → the op using it: on one rank (e.g. F → B), and, in a compute-only graph, across ranks (F(s) → F(s+1), B(s+1) → B(s)); in a lowered graph, producer → send and receive → consumer |
| `message` | a send → its receive |
| `rendezvous` | the op before a receive → its send, and the op before a send → its receive: a send completes only once its receive is posted, and a receive only once its send is |
| `overlap` | in a compute-only graph, the producer of an input of the second op of an overlapped F&B pair (`op::overlapped`) → the pair's first op: the pair starts once the inputs of both ops are there |

A compute-only schedule deadlocks (under blocking receives) exactly when its graph has a cycle;
a lowered schedule deadlocks under rendezvous semantics exactly when its graph has a cycle (a
matched send and receive complete together; contracting each such pair, the rendezvous edges are
the edges into the pair).
*/

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/depth_first_search.hpp>
#include <boost/graph/exception.hpp>
#include <boost/graph/topological_sort.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/dependencies.hpp"
#include "../core/errors.hpp"
#include "../core/op.hpp"
#include "../core/schedule.hpp"
#include "../detail/text.hpp"
#include "../sim/cost_model.hpp"
#include "lowering.hpp"
#include "../validate/validate.hpp"

namespace stretto::graph {

/** @brief Why one op must complete before another (see the file's table). */
enum class edge_kind : std::uint8_t { program_order, data, message, rendezvous, overlap };

/** @brief Returns "program_order", "data", "message", "rendezvous" or "overlap". */
constexpr std::string_view to_string(edge_kind kind) noexcept {
  switch (kind) {
    case edge_kind::program_order: return "program_order";
    case edge_kind::data: return "data";
    case edge_kind::message: return "message";
    case edge_kind::rendezvous: return "rendezvous";
    case edge_kind::overlap: return "overlap";
  }
  return "?";
}

/** @brief A vertex: one op, with its rank and position in that rank's list. */
struct vertex_properties {
  lowered_location where{};
};

/** @brief An edge: why its source must complete before its target. */
struct edge_properties {
  edge_kind kind{edge_kind::program_order};
};

/**
@brief The Boost.Graph type: vertices in rank-major order (rank 0's ops by position, then rank
1's, ...), so `vertex_descriptor`s are indices. Use any BGL algorithm on `dependency_graph::graph()`.
*/
using boost_graph =
    boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, vertex_properties, edge_properties>;
using vertex_id = boost::graph_traits<boost_graph>::vertex_descriptor;

/**
@brief Thrown when a schedule deadlocks: `cycle()` lists the ops that wait for each other, each
one (rank, position, op) before the next, the last before the first.
*/
class deadlock_error : public validation_error {
 public:
  deadlock_error(const std::string& what, std::vector<lowered_location> cycle)
      : validation_error(what), cycle_(std::move(cycle)) {}
  const std::vector<lowered_location>& cycle() const noexcept { return cycle_; }

 private:
  std::vector<lowered_location> cycle_;
};

/**
@brief The dependency graph of a compute-only or a lowered schedule.

**Shape.** One vertex per op; vertex `vertex_at(r, i)` is rank r's i-th op.
@throws validation_error (constructor) when the ops do not form a schedule whose dependencies
are defined: a compute-only schedule must pass `validate` except for its `deadlock` rule, a
lowered one `check_messages`. A deadlock is not an error here: it is a cycle of the graph.
**Complexity.** O(N) vertices and edges for N ops.
*/
class dependency_graph {
 public:
  /** @brief The graph of a compute-only schedule: program order and data edges. */
  explicit dependency_graph(const schedule& s) : layout_(s.shape(), s.placement()), lowered_(false) {
    if (const validation_result r = validate(s); !r.ok() && r.rule != schedule_rule::deadlock)
      throw validation_error(r.message);
    copy_replicas(s);
    add_vertices(s.num_ranks(), [&](std::int32_t r) {
      std::vector<lowered_op> list;
      for (const op& o : s.ops(r)) list.push_back(lowered_op::run(o));
      return list;
    });
    const std::int32_t m = s.num_microbatches();
    std::vector<vertex_id> forward(static_cast<std::size_t>(s.num_stages() * m)), gradient(forward.size());
    for_each_compute([&](vertex_id v, const op& o) {
      const auto cell = static_cast<std::size_t>(o.stage * m + o.microbatch);
      if (o.kind == op_kind::forward) forward[cell] = v;
      if (produces_input_gradient(o.kind)) gradient[cell] = v;
    });
    for_each_compute([&](vertex_id v, const op& o) {
      for (const dependency& d : dependencies_of(o, s.shape())) {
        const auto cell = static_cast<std::size_t>(d.stage * m + d.microbatch);
        add_edge(d.kind == dependency_kind::forward ? forward[cell] : gradient[cell], v, edge_kind::data);
        // The second op of an F&B pair: its inputs also hold back the pair's first op.
        if (graph_[v].where.position > 0 && graph_[v - 1].where.what.compute.overlapped)
          add_edge(d.kind == dependency_kind::forward ? forward[cell] : gradient[cell], v - 1, edge_kind::overlap);
      }
    });
  }

  /** @brief The graph of a lowered schedule: program order, data, message and rendezvous edges. */
  explicit dependency_graph(const lowered_schedule& l) : layout_(l.layout()), lowered_(true) {
    if (const lowering_result r = check_messages(l); !r.ok()) throw validation_error(r.message);
    add_vertices(l.num_ranks(), [&](std::int32_t r) { return std::vector<lowered_op>(l.ops(r).begin(), l.ops(r).end()); });
    const std::int32_t S = l.shape().num_stages();
    const std::int32_t m = l.shape().num_microbatches;
    const auto cells = static_cast<std::size_t>(S * m);
    std::vector<vertex_id> forward(cells), gradient(cells), send(2 * cells), receive(2 * cells);
    std::vector<unsigned char> has_send(2 * cells, 0);
    auto key_slot = [&](const message_key& k) {
      return (k.direction == message_direction::activation ? 0 : cells) +
             static_cast<std::size_t>(k.to_stage * m + k.microbatch);
    };
    for (vertex_id v = 0; v < boost::num_vertices(graph_); ++v) {
      const lowered_op& o = graph_[v].where.what;
      if (o.kind == lowered_kind::compute) {
        const auto cell = static_cast<std::size_t>(o.compute.stage * m + o.compute.microbatch);
        if (o.compute.kind == op_kind::forward) forward[cell] = v;
        if (produces_input_gradient(o.compute.kind)) gradient[cell] = v;
      } else if (o.kind == lowered_kind::send) {
        send[key_slot(o.message)] = v;
        has_send[key_slot(o.message)] = 1;
      } else {
        receive[key_slot(o.message)] = v;
      }
    }
    // Data: on one rank, producer -> consumer; across ranks, producer -> send, receive -> consumer.
    for_each_compute([&](vertex_id v, const op& o) {
      for (const dependency& d : dependencies_of(o, l.shape())) {
        const auto cell = static_cast<std::size_t>(d.stage * m + d.microbatch);
        const vertex_id producer = d.kind == dependency_kind::forward ? forward[cell] : gradient[cell];
        if (graph_[producer].where.rank == graph_[v].where.rank) {
          add_edge(producer, v, edge_kind::data);
          continue;
        }
        const message_key k{d.kind == dependency_kind::forward ? message_direction::activation
                                                               : message_direction::gradient,
                            d.stage, o.stage, o.microbatch};
        add_edge(producer, send[key_slot(k)], edge_kind::data);
        add_edge(receive[key_slot(k)], v, edge_kind::data);
      }
    });
    // Messages: send -> receive; rendezvous: the op before each end -> the other end.
    for (std::size_t slot = 0; slot < 2 * cells; ++slot) {
      if (!has_send[slot]) continue;
      const vertex_id s = send[slot];
      const vertex_id r = receive[slot];
      add_edge(s, r, edge_kind::message);
      if (graph_[r].where.position > 0) add_edge(r - 1, s, edge_kind::rendezvous);
      if (graph_[s].where.position > 0) add_edge(s - 1, r, edge_kind::rendezvous);
    }
  }

  /** @brief The Boost.Graph graph, for any BGL algorithm. */
  const boost_graph& graph() const noexcept { return graph_; }
  std::size_t num_vertices() const noexcept { return boost::num_vertices(graph_); }
  std::size_t num_edges() const noexcept { return boost::num_edges(graph_); }
  /** @brief The number of edges of kind `kind`. */
  std::size_t num_edges(edge_kind kind) const {
    std::size_t n = 0;
    for (auto [e, end] = boost::edges(graph_); e != end; ++e) n += graph_[*e].kind == kind ? 1 : 0;
    return n;
  }
  /** @brief The op of vertex `v`, with its rank and position. */
  const lowered_location& operator[](vertex_id v) const noexcept { return graph_[v].where; }
  /** @brief The vertex of rank `rank`'s op at `position`. */
  vertex_id vertex_at(std::int32_t rank, std::int32_t position) const noexcept {
    return first_of_rank_[static_cast<std::size_t>(rank)] + static_cast<std::size_t>(position);
  }
  /** @brief An empty schedule with the shape, placement and replicas (for `rank_of`). */
  const schedule& layout() const noexcept { return layout_; }
  const pipeline_shape& shape() const noexcept { return layout_.shape(); }
  /** @brief Whether the graph was built from a lowered schedule (with sends and receives). */
  bool is_lowered() const noexcept { return lowered_; }

 private:
  void copy_replicas(const schedule& s) {
    for (std::int32_t j = 0; j < s.num_microbatches(); ++j)
      if (s.replica_of(j) != 0) layout_.set_replica(j, s.replica_of(j));
  }

  template <class ListOf>
  void add_vertices(std::int32_t num_ranks, ListOf list_of) {
    first_of_rank_.assign(static_cast<std::size_t>(num_ranks) + 1, 0);
    for (std::int32_t r = 0; r < num_ranks; ++r) {
      const std::vector<lowered_op> list = list_of(r);
      first_of_rank_[static_cast<std::size_t>(r)] = boost::num_vertices(graph_);
      for (std::size_t i = 0; i < list.size(); ++i) {
        const vertex_id v = boost::add_vertex(vertex_properties{{r, static_cast<std::int32_t>(i), list[i]}}, graph_);
        if (i > 0) add_edge(v - 1, v, edge_kind::program_order);
      }
    }
    first_of_rank_[static_cast<std::size_t>(num_ranks)] = boost::num_vertices(graph_);
  }

  template <class Visit>
  void for_each_compute(Visit visit) const {
    for (vertex_id v = 0; v < boost::num_vertices(graph_); ++v)
      if (graph_[v].where.what.kind == lowered_kind::compute) visit(v, graph_[v].where.what.compute);
  }

  void add_edge(vertex_id from, vertex_id to, edge_kind kind) { boost::add_edge(from, to, edge_properties{kind}, graph_); }

  boost_graph graph_;
  schedule layout_;
  std::vector<std::size_t> first_of_rank_;
  bool lowered_{false};
};

namespace detail {

/** A cycle as vertices v0 → v1 → … → v0, and the kind of each edge (kinds[i]: v_i → v_{i+1}). */
struct vertex_cycle {
  std::vector<vertex_id> vertices;
  std::vector<edge_kind> kinds;
};

/** Records, during a depth-first search, each vertex's tree edge and the first back edge. */
class cycle_recorder : public boost::default_dfs_visitor {
 public:
  cycle_recorder(std::vector<std::pair<vertex_id, edge_kind>>* parent, bool* found,
                 std::pair<vertex_id, vertex_id>* back, edge_kind* back_kind)
      : parent_(parent), found_(found), back_(back), back_kind_(back_kind) {}

  template <class Edge, class Graph>
  void tree_edge(Edge e, const Graph& g) const {
    (*parent_)[boost::target(e, g)] = {boost::source(e, g), g[e].kind};
  }
  template <class Edge, class Graph>
  void back_edge(Edge e, const Graph& g) const {
    if (*found_) return;
    *found_ = true;
    *back_ = {boost::source(e, g), boost::target(e, g)};
    *back_kind_ = g[e].kind;
  }

 private:
  std::vector<std::pair<vertex_id, edge_kind>>* parent_;
  bool* found_;
  std::pair<vertex_id, vertex_id>* back_;
  edge_kind* back_kind_;
};

/** Returns a cycle of `g` found with Boost's depth_first_search, or an empty one. */
inline vertex_cycle find_vertex_cycle(const boost_graph& g) {
  std::vector<std::pair<vertex_id, edge_kind>> parent(boost::num_vertices(g), {0, edge_kind::program_order});
  bool found = false;
  std::pair<vertex_id, vertex_id> back{0, 0};
  edge_kind back_kind = edge_kind::program_order;
  boost::depth_first_search(g, boost::visitor(cycle_recorder(&parent, &found, &back, &back_kind)));
  vertex_cycle out;
  if (!found) return out;
  // back = (u, v) with v an ancestor of u on the search's stack: v -> ... -> u -> v.
  std::vector<std::pair<vertex_id, edge_kind>> path;  // (vertex, kind of the edge into it), u up to v
  for (vertex_id x = back.first; x != back.second; x = parent[x].first) path.push_back({x, parent[x].second});
  out.vertices.push_back(back.second);
  for (auto it = path.rbegin(); it != path.rend(); ++it) {
    out.kinds.push_back(it->second);
    out.vertices.push_back(it->first);
  }
  out.kinds.push_back(back_kind);
  return out;
}

/** "(b) follows (a) on rank 0" and the like: why op number `b` waits for op number `a`. */
inline std::string why(const dependency_graph& g, vertex_id from, vertex_id to, edge_kind kind, std::size_t a,
                       std::size_t b) {
  using stretto::detail::cat;
  const std::string first = cat("(", a, ")"), second = cat("(", b, ")");
  switch (kind) {
    case edge_kind::program_order: return cat(second, " follows ", first, " on rank ", g[to].rank);
    case edge_kind::data:
      return g[from].rank == g[to].rank
                 ? cat(second, " needs the output of ", first)
                 : cat(second, " needs the output of ", first, " from rank ", g[from].rank, " (receives block)");
    case edge_kind::message: return cat(second, " receives what ", first, " sends");
    case edge_kind::rendezvous:
      return cat(second, " cannot complete before rank ", g[from].rank, " posts its other end, which follows ", first);
    case edge_kind::overlap:
      return cat(second, " runs overlapped with the next op, which needs the output of ", first);
  }
  return "?";
}

/** Numbers the ops of the cycle, then says why each waits for the one before. */
inline std::string describe(const dependency_graph& g, const vertex_cycle& c) {
  using stretto::detail::cat;
  std::string text = g.is_lowered()
                         ? "deadlock under rendezvous semantics (a send completes only once its receive is posted): "
                         : "deadlock (receives block; ranks run their lists in order): ";
  text += "these ops wait for each other in a cycle:";
  const std::size_t n = c.vertices.size();
  for (std::size_t i = 0; i < n; ++i) text += cat(i == 0 ? " " : ", ", "(", i + 1, ") ", locate(g[c.vertices[i]]));
  text += "; ";
  for (std::size_t i = 0; i < n; ++i)
    text += cat(i == 0 ? "" : (i + 1 == n ? " and " : ", "),
                why(g, c.vertices[i], c.vertices[(i + 1) % n], c.kinds[i], i + 1, (i + 1) % n + 1));
  return text;
}

inline std::vector<lowered_location> locations(const dependency_graph& g, const vertex_cycle& c) {
  std::vector<lowered_location> out;
  for (vertex_id v : c.vertices) out.push_back(g[v]);
  return out;
}

}  // namespace detail

/**
@brief Returns a cycle of `g` (each op must complete before the next, the last before the first),
found with Boost's `depth_first_search`; empty when `g` is acyclic (the schedule cannot deadlock).
*/
inline std::vector<lowered_location> find_cycle(const dependency_graph& g) {
  return detail::locations(g, detail::find_vertex_cycle(g.graph()));
}

/**
@brief Returns the vertices of `g` in a topological order (every edge goes forward), computed
with Boost's `topological_sort` (which produces the reverse order; this returns it forwards).
@throws deadlock_error, naming the ops and ranks of a cycle, when `g` has one (Boost's
`not_a_dag` is not let through).
*/
inline std::vector<vertex_id> topological_order(const dependency_graph& g) {
  std::vector<vertex_id> reversed;
  reversed.reserve(g.num_vertices());
  try {
    boost::topological_sort(g.graph(), std::back_inserter(reversed));
  } catch (const boost::not_a_dag&) {
    const detail::vertex_cycle c = detail::find_vertex_cycle(g.graph());
    throw deadlock_error(detail::describe(g, c), detail::locations(g, c));
  }
  return {reversed.rbegin(), reversed.rend()};
}

/** @brief The longest path of a dependency graph under a cost model, and the span it implies. */
struct critical_path_result {
  double length{0.0};                  ///< the longest path: the earliest end of the step (time unit of the cost model)
  std::vector<lowered_location> path;  ///< its ops, first to last
  double span{0.0};                    ///< max over ranks of (end of its last op − start of its first op), every op at its earliest start
};

/**
@brief Returns the critical path of `g` under `costs`: the longest chain of ops, each waiting for
the one before, where an op takes `costs.duration(op, shape)`, a data edge between ranks (or a
message edge) takes `costs.comm_delay(from_stage, to_stage, shape)`, and sends, receives and
every other edge take 0.

Every op starts as early as its in-edges allow (the longest path to it), which is the timing
model of `sim::simulate`. `span` measures the result as the simulator's metric does: per rank,
from the start of its first op to the end of its last.

**Invariants.** For a compute-only schedule, with the same floating-point operations as the
simulator (so exactly): `length` equals the last end of `sim::simulate`'s timeline and `span` its
`metrics.span`, for every policy (checked by the tests over `policies::all_policies`). `length ≥
span`, with equality when the rank that ends last starts at time 0 (GPipe, 1F1B, ZB-H1; not
ZB-H2, whose last rank to finish starts late: 10 against 9 at p = 2, m = 3).
@throws deadlock_error when `g` has a cycle.
**Complexity.** O(V + E).
*/
template <sim::cost_model Costs>
critical_path_result critical_path(const dependency_graph& g, const Costs& costs) {
  const std::vector<vertex_id> order = topological_order(g);
  const boost_graph& bg = g.graph();
  const pipeline_shape& shape = g.shape();
  std::vector<double> start_at(g.num_vertices(), 0.0), finish(g.num_vertices(), 0.0);
  std::vector<vertex_id> before(g.num_vertices(), boost::graph_traits<boost_graph>::null_vertex());
  // In a compute-only graph an overlapped F&B pair takes `sim::overlap_time` on its first op and
  // nothing on its second, which starts when the first ends: both end together, as in `simulate`.
  auto pair_first = [&](vertex_id v) {
    const lowered_op& o = bg[v].where.what;
    return !g.is_lowered() && o.kind == lowered_kind::compute && o.compute.overlapped && v + 1 < g.num_vertices() &&
           bg[v + 1].where.rank == bg[v].where.rank;
  };
  auto duration = [&](vertex_id v) {
    const lowered_op& o = bg[v].where.what;
    if (o.kind != lowered_kind::compute) return 0.0;
    if (pair_first(v)) return sim::overlap_time(costs, o.compute, bg[v + 1].where.what.compute, shape);
    if (bg[v].where.position > 0 && pair_first(v - 1)) return 0.0;
    return costs.duration(o.compute, shape);
  };
  auto delay = [&](vertex_id from, vertex_id to, edge_kind kind) {
    const lowered_op& a = bg[from].where.what;
    const lowered_op& b = bg[to].where.what;
    if (kind == edge_kind::message) return costs.comm_delay(a.message.from_stage, a.message.to_stage, shape);
    if (kind == edge_kind::overlap)  // the input is the partner's (to + 1)
      return bg[from].where.rank != bg[to].where.rank
                 ? costs.comm_delay(a.compute.stage, bg[to + 1].where.what.compute.stage, shape)
                 : 0.0;
    if (kind == edge_kind::data && bg[from].where.rank != bg[to].where.rank)
      return costs.comm_delay(a.compute.stage, b.compute.stage, shape);
    return 0.0;
  };
  critical_path_result out;
  vertex_id last = boost::graph_traits<boost_graph>::null_vertex();
  for (vertex_id v : order) {
    double start = 0.0;  // as the simulator: max(end of the previous op, inputs ready), from 0
    for (auto [e, end] = boost::in_edges(v, bg); e != end; ++e) {
      const vertex_id u = boost::source(*e, bg);
      const double ready = finish[u] + delay(u, v, bg[*e].kind);
      if (before[v] == boost::graph_traits<boost_graph>::null_vertex() || ready > start) {
        start = ready > start ? ready : start;
        before[v] = u;
      }
    }
    start_at[v] = start;
    finish[v] = start + duration(v);
    if (last == boost::graph_traits<boost_graph>::null_vertex() || finish[v] > out.length) {
      out.length = finish[v];
      last = v;
    }
  }
  for (vertex_id v = last; v != boost::graph_traits<boost_graph>::null_vertex(); v = before[v])
    out.path.insert(out.path.begin(), bg[v].where);
  for (std::int32_t r = 0; r < shape.num_ranks; ++r) {
    const vertex_id first = g.vertex_at(r, 0);
    const vertex_id end = g.vertex_at(r + 1, 0);  // one past rank r's last op
    if (first == end) continue;
    const double window = finish[end - 1] - start_at[first];
    out.span = window > out.span ? window : out.span;
  }
  return out;
}

/**
@brief Checks a lowered schedule (written by hand, or by `lower`): every rule of `check_messages`,
then freedom from deadlock under rendezvous semantics. For `lowering_rule::deadlock` the message
names every op of a cycle with its rank and position, and `cycle` lists them.
*/
inline lowering_result validate(const lowered_schedule& l) {
  if (lowering_result r = check_messages(l); !r.ok()) return r;
  const dependency_graph g(l);
  const detail::vertex_cycle c = detail::find_vertex_cycle(g.graph());
  if (c.vertices.empty()) return {};
  lowering_result out;
  out.rule = lowering_rule::deadlock;
  out.cycle = detail::locations(g, c);
  out.where = out.cycle.front();
  out.message = stretto::detail::cat("invalid lowered schedule [deadlock]: ", detail::describe(g, c));
  return out;
}

/**
@brief Validates `l` and throws when it breaks a rule.
@throws deadlock_error (with the cycle) for a deadlock; validation_error for any other rule.
*/
inline void validate_or_throw(const lowered_schedule& l) {
  lowering_result r = validate(l);
  if (r.rule == lowering_rule::deadlock) throw deadlock_error(r.message, std::move(r.cycle));
  if (!r.ok()) throw validation_error(r.message);
}

}  // namespace stretto::graph
