#pragma once
/**
@file
@brief The exact zero-bubble scheduler: the integer program of the Zero Bubble paper (Qi, Wan,
Huang, Lin, ICLR 2024, Appendix G; docs/schedules.md §7.6) solved with COIN-OR CBC, warm-started from
the heuristic (`stretto::plan::auto_schedule`), under a time limit.

Target `stretto::cbc` (Debian `coinor-libcbc-dev`); the core target stays standard-library only.
*/

#include <Cbc_C_Interface.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <stretto/core/errors.hpp>
#include <stretto/core/op.hpp>
#include <stretto/core/schedule.hpp>
#include <stretto/core/shape.hpp>
#include <stretto/plan/auto_schedule.hpp>
#include <stretto/sim/cost_model.hpp>
#include <stretto/sim/simulator.hpp>

namespace stretto::cbc {

/** @brief Options of `exact_schedule`. */
struct exact_options {
  /// CBC's wall-clock limit; the best schedule so far is returned. CBC checks it between its
  /// steps, so a large program (p·m in the hundreds) can overrun it by seconds at the root.
  double time_limit_seconds{10.0};
  double relative_gap{1e-6};        ///< stop (and call it optimal) when (span − bound) / span is below this
  plan::auto_schedule_options warm_start{};  ///< how the heuristic that seeds CBC runs
  bool log{false};                  ///< let CBC print its log on stdout
};

/**
@brief The outcome of `exact_schedule`.

`span` is the simulated span of `plan` (the event model of `stretto::sim::simulate`);
`lower_bound` is a proven lower bound on the span of every schedule that keeps to the memory
limit, so `gap()` is how far `plan` can at most be from the optimum.
*/
struct exact_result {
  schedule plan;
  double span{0.0};            ///< simulated span of `plan`, ≤ `heuristic_span`
  double lower_bound{0.0};     ///< no schedule of the program's class (see `exact_schedule`) within the limit is shorter
  double heuristic_span{0.0};  ///< span of the warm start
  bool optimal{false};         ///< CBC closed the gap (to `relative_gap`)
  bool time_limit_reached{false};
  double seconds{0.0};         ///< time spent in CBC
  std::int64_t binaries{0};    ///< binary ordering variables of the program
  std::int64_t constraints{0};

  /** @brief (span − lower_bound) / span, 0 when proven optimal. */
  double gap() const noexcept { return span > 0.0 ? std::max(0.0, (span - lower_bound) / span) : 0.0; }
};

namespace detail {

/** @brief Owns a `Cbc_Model`. */
struct model_deleter {
  void operator()(Cbc_Model* m) const noexcept { Cbc_deleteModel(m); }
};
using model_ptr = std::unique_ptr<Cbc_Model, model_deleter>;

/** @brief Node numbering of the program: kind k ∈ {F = 0, B = 1, W = 2}, stage i, microbatch j. */
struct node_index {
  std::int32_t p, m;
  std::int32_t operator()(std::int32_t kind, std::int32_t stage, std::int32_t mb) const noexcept {
    return (kind * p + stage) * m + mb;
  }
  std::int32_t size() const noexcept { return 3 * p * m; }
};

constexpr op_kind kind_of(std::int32_t k) noexcept {
  return k == 0 ? op_kind::forward : (k == 1 ? op_kind::backward_input : op_kind::backward_weight);
}

}  // namespace detail

/**
@brief Finds a shortest-span schedule with split backward (F, B, W) within `memory_limit`, or
the best CBC finds in the time limit together with a lower bound.

**Program** (docs/schedules.md §7.6, in the event model of `simulate`). Variables: the end time E of
every op (continuous) and, per stage, one binary for every pair of ops whose order is not
already implied (F_a vs B_b, F_a vs W_b and B_a vs W_b with a > b: within a stage the F's, B's
and W's each keep microbatch order, and F_j, B_j, W_j run in that order). Constraints: the data
dependencies with the message delay (F from the stage before, B from the stage after), no two
ops of a stage overlapping (a big-M disjunction per binary, with M from the ops' time windows),
the memory after every F at most `memory_limit`, each stage's first F starting as early as the
forward chain allows (the event model starts every op as soon as it can), and the span of each
stage at most the objective. Valid inequalities strengthen the relaxation: every op ends no
earlier than its stage's start plus the work that must precede it, and the objective is at
least every op's end plus the work that must follow it. Only schedules at least as good as the
heuristic's are searched (their span bounds every time window).

**Class.** Like the paper's program, it searches the schedules that run each kind (F, B, W) of a
stage in microbatch order; `lower_bound` holds for that class. A combinatorial bound (the busiest
stage's work, and the path through the last stage's F's and B's up to a stage's last W) is tried
first: when the heuristic meets it, CBC is not run.

**Result.** Never worse than the heuristic: CBC starts from it, and it is returned unchanged
when CBC finds nothing better.

@pre `shape.num_chunks == 1`; all op times > 0 for the ordering to be strict.
@throws shape_error or argument_error as `stretto::plan::auto_schedule`; std::runtime_error if
CBC fails.
*/
template <sim::cost_model Costs>
exact_result exact_schedule(const pipeline_shape& shape, const Costs& costs, double memory_limit,
                            const exact_options& options = {}) {
  plan::auto_schedule_result warm = plan::auto_schedule_detailed(shape, costs, memory_limit, options.warm_start);
  const std::int32_t p = shape.num_ranks;
  const std::int32_t m = shape.num_microbatches;
  const detail::node_index id{p, m};
  const std::int32_t n = id.size();
  const double horizon = warm.span;
  const double tol = 1e-7 * std::max(horizon, 1.0);

  // Per node: duration, memory delta, stage.
  std::vector<double> duration(static_cast<std::size_t>(n)), delta(static_cast<std::size_t>(n));
  for (std::int32_t k = 0; k < 3; ++k)
    for (std::int32_t i = 0; i < p; ++i)
      for (std::int32_t j = 0; j < m; ++j) {
        const op o{detail::kind_of(k), i, j};
        duration[static_cast<std::size_t>(id(k, i, j))] = costs.duration(o, shape);
        delta[static_cast<std::size_t>(id(k, i, j))] = costs.memory_delta(o, shape);
      }
  auto T = [&](std::int32_t node) { return duration[static_cast<std::size_t>(node)]; };
  auto comm_f = [&](std::int32_t i) { return i > 0 ? costs.comm_delay(i - 1, i, shape) : 0.0; };
  auto comm_b = [&](std::int32_t i) { return i + 1 < p ? costs.comm_delay(i + 1, i, shape) : 0.0; };

  // Fixed precedence edges (u, v, delay): E_v ≥ E_u + delay + T_v.
  struct edge {
    std::int32_t from, to;
    double delay;
  };
  std::vector<edge> edges;
  for (std::int32_t i = 0; i < p; ++i)
    for (std::int32_t j = 0; j < m; ++j) {
      if (i > 0) edges.push_back({id(0, i - 1, j), id(0, i, j), comm_f(i)});
      if (i + 1 < p) edges.push_back({id(1, i + 1, j), id(1, i, j), comm_b(i)});
      edges.push_back({id(0, i, j), id(1, i, j), 0.0});
      edges.push_back({id(1, i, j), id(2, i, j), 0.0});
      if (j > 0)
        for (std::int32_t k = 0; k < 3; ++k) edges.push_back({id(k, i, j - 1), id(k, i, j), 0.0});
    }
  // Same-stage order implied by the fixed edges: before(u, v) for u of kind a, mb x and v of kind
  // b, mb y: F_x<F_y, B_x<B_y, W_x<W_y when x<y, and kind a<b when x ≤ y.
  auto fixed_before = [](std::int32_t ka, std::int32_t x, std::int32_t kb, std::int32_t y) {
    return ka == kb ? x < y : (ka < kb && x <= y);
  };
  // Work on a stage that must run before / after a node.
  std::vector<double> work_before(static_cast<std::size_t>(n), 0.0), work_after(static_cast<std::size_t>(n), 0.0);
  std::vector<double> stage_work(static_cast<std::size_t>(p), 0.0);
  for (std::int32_t i = 0; i < p; ++i)
    for (std::int32_t ka = 0; ka < 3; ++ka)
      for (std::int32_t x = 0; x < m; ++x) {
        const std::int32_t u = id(ka, i, x);
        stage_work[static_cast<std::size_t>(i)] += T(u);
        for (std::int32_t kb = 0; kb < 3; ++kb)
          for (std::int32_t y = 0; y < m; ++y) {
            const std::int32_t v = id(kb, i, y);
            if (fixed_before(kb, y, ka, x)) work_before[static_cast<std::size_t>(u)] += T(v);
            if (fixed_before(ka, x, kb, y)) work_after[static_cast<std::size_t>(u)] += T(v);
          }
      }

  // Each stage starts with F_0 as early as the forward chain allows.
  std::vector<double> start(static_cast<std::size_t>(p), 0.0);
  for (std::int32_t i = 1; i < p; ++i)
    start[static_cast<std::size_t>(i)] = start[static_cast<std::size_t>(i - 1)] + T(id(0, i - 1, 0)) + comm_f(i);

  // Time windows [lb, ub] of every end time, by longest paths over the fixed edges.
  std::vector<double> lb(static_cast<std::size_t>(n)), ub(static_cast<std::size_t>(n));
  for (std::int32_t k = 0; k < 3; ++k)
    for (std::int32_t i = 0; i < p; ++i)
      for (std::int32_t j = 0; j < m; ++j) {
        const auto u = static_cast<std::size_t>(id(k, i, j));
        lb[u] = start[static_cast<std::size_t>(i)] + work_before[u] + T(id(k, i, j));
        ub[u] = start[static_cast<std::size_t>(i)] + horizon - work_after[u] + tol;
      }
  // Topological order of the fixed graph (Kahn), then relax forwards and backwards.
  std::vector<std::int32_t> indegree(static_cast<std::size_t>(n), 0), order;
  std::vector<std::vector<std::size_t>> out_edges(static_cast<std::size_t>(n));
  for (std::size_t e = 0; e < edges.size(); ++e) {
    ++indegree[static_cast<std::size_t>(edges[e].to)];
    out_edges[static_cast<std::size_t>(edges[e].from)].push_back(e);
  }
  for (std::int32_t u = 0; u < n; ++u)
    if (indegree[static_cast<std::size_t>(u)] == 0) order.push_back(u);
  for (std::size_t q = 0; q < order.size(); ++q)
    for (std::size_t e : out_edges[static_cast<std::size_t>(order[q])])
      if (--indegree[static_cast<std::size_t>(edges[e].to)] == 0) order.push_back(edges[e].to);
  for (std::int32_t u : order)
    for (std::size_t e : out_edges[static_cast<std::size_t>(u)]) {
      const edge& d = edges[e];
      auto& to = lb[static_cast<std::size_t>(d.to)];
      to = std::max(to, lb[static_cast<std::size_t>(u)] + d.delay + T(d.to));
    }
  for (auto it = order.rbegin(); it != order.rend(); ++it)
    for (std::size_t e : out_edges[static_cast<std::size_t>(*it)]) {
      const edge& d = edges[e];
      auto& from = ub[static_cast<std::size_t>(*it)];
      from = std::min(from, ub[static_cast<std::size_t>(d.to)] - T(d.to) - d.delay);
    }
  for (std::int32_t i = 0; i < p; ++i) {
    const auto first = static_cast<std::size_t>(id(0, i, 0));
    lb[first] = ub[first] = start[static_cast<std::size_t>(i)] + T(id(0, i, 0));
  }

  // A combinatorial lower bound: stage k cannot finish B_{m−1} before it has run all of its F's
  // and B's, and that B then climbs to stage i, which still runs W_{m−1}; and no stage takes less
  // than its own work. When the heuristic meets it, it is optimal and CBC is not needed.
  const double work_bound = *std::max_element(stage_work.begin(), stage_work.end());
  double path_bound = work_bound;
  for (std::int32_t k = 0; k < p; ++k) {
    double b_done = start[static_cast<std::size_t>(k)];
    for (std::int32_t j = 0; j < m; ++j) b_done += T(id(0, k, j)) + T(id(1, k, j));
    for (std::int32_t i = k; i >= 0; --i) {
      if (i < k) b_done += comm_b(i) + T(id(1, i, m - 1));
      path_bound = std::max(path_bound, b_done + T(id(2, i, m - 1)) - start[static_cast<std::size_t>(i)]);
    }
  }
  exact_result out;
  out.plan = warm.plan;
  out.span = warm.span;
  out.heuristic_span = warm.span;
  if (warm.span <= path_bound * (1.0 + options.relative_gap) + tol) {
    out.lower_bound = std::min(path_bound, warm.span);
    out.optimal = true;
    return out;
  }

  // ---- build the program ---------------------------------------------------------------------
  detail::model_ptr model(Cbc_newModel());
  if (!model) throw std::runtime_error("stretto::cbc: Cbc_newModel failed");
  Cbc_Model* cbc = model.get();
  Cbc_setProblemName(cbc, "stretto_zero_bubble");
  // Columns 0..n−1: end times; column n: the objective (the longest stage span).
  // Columns are named: CBC 2.10 matches a MIP start to columns by name, even given by index.
  for (std::int32_t u = 0; u < n; ++u)
    Cbc_addCol(cbc, ("e" + std::to_string(u)).c_str(), lb[static_cast<std::size_t>(u)], std::max(lb[static_cast<std::size_t>(u)], ub[static_cast<std::size_t>(u)]),
               0.0, 0, 0, nullptr, nullptr);
  const std::int32_t z = n;
  // (Its lower bound is the work bound: the path bound here slows CBC's search down, measured.)
  Cbc_addCol(cbc, "span", work_bound, horizon + tol, 1.0, 0, 0, nullptr, nullptr);

  // Binaries: pair (u, v) with u = F_a or B_a, v = B_b or W_b, a > b; x = 1 when u runs first.
  struct pair {
    std::int32_t u, v, column;
  };
  std::vector<pair> pairs;
  std::vector<std::vector<std::int32_t>> pairs_of(static_cast<std::size_t>(n));  // node → indices into pairs
  std::int32_t column = n + 1;
  for (std::int32_t i = 0; i < p; ++i)
    for (auto [ka, kb] : {std::pair{0, 1}, std::pair{0, 2}, std::pair{1, 2}})
      for (std::int32_t a = 1; a < m; ++a)
        for (std::int32_t b = 0; b < a; ++b) {
          pairs.push_back({id(ka, i, a), id(kb, i, b), column});
          Cbc_addCol(cbc, ("x" + std::to_string(column++)).c_str(), 0.0, 1.0, 0.0, 1, 0, nullptr, nullptr);
          pairs_of[static_cast<std::size_t>(pairs.back().u)].push_back(static_cast<std::int32_t>(pairs.size() - 1));
          pairs_of[static_cast<std::size_t>(pairs.back().v)].push_back(static_cast<std::int32_t>(pairs.size() - 1));
        }

  std::int64_t rows = 0;
  std::vector<int> cols;
  std::vector<double> coefs;
  auto add_row = [&](char sense, double rhs) {
    Cbc_addRow(cbc, "", static_cast<int>(cols.size()), cols.data(), coefs.data(), sense, rhs);
    cols.clear();
    coefs.clear();
    ++rows;
  };
  auto term = [&](std::int32_t col, double coef) {
    cols.push_back(col);
    coefs.push_back(coef);
  };

  for (const edge& d : edges) {  // E_to − E_from ≥ delay + T_to
    term(d.to, 1.0);
    term(d.from, -1.0);
    add_row('G', d.delay + T(d.to));
  }
  for (const pair& q : pairs) {
    const double lu = lb[static_cast<std::size_t>(q.u)], uu = ub[static_cast<std::size_t>(q.u)];
    const double lv = lb[static_cast<std::size_t>(q.v)], uv = ub[static_cast<std::size_t>(q.v)];
    // x = 1 (u first): E_v − E_u ≥ T_v, relaxed by M_v(1 − x): E_v − E_u − M_v x ≥ T_v − M_v.
    const double big_v = std::max(0.0, uu - lv + T(q.v));
    term(q.v, 1.0);
    term(q.u, -1.0);
    term(q.column, -big_v);
    add_row('G', T(q.v) - big_v);
    // x = 0 (v first): E_u − E_v ≥ T_u, relaxed by M_u x: E_u − E_v + M_u x ≥ T_u.
    const double big_u = std::max(0.0, uv - lu + T(q.u));
    term(q.u, 1.0);
    term(q.v, -1.0);
    term(q.column, big_u);
    add_row('G', T(q.u));
  }
  // Memory after each F_k of stage i: fixed part (F_0..F_k) plus the B's and W's (mb < k) that
  // run before it (x = 0 for the pair (F_k, ·)): Σ_{pairs} δ_v (1 − x) ≤ limit − fixed.
  if (memory_limit < std::numeric_limits<double>::infinity()) {
    for (std::int32_t i = 0; i < p; ++i)
      for (std::int32_t k = 0; k < m; ++k) {
        const std::int32_t f = id(0, i, k);
        double fixed = 0.0;
        for (std::int32_t a = 0; a <= k; ++a) fixed += delta[static_cast<std::size_t>(id(0, i, a))];
        double constant = 0.0;
        for (std::int32_t qi : pairs_of[static_cast<std::size_t>(f)]) {
          const pair& q = pairs[static_cast<std::size_t>(qi)];
          if (q.u != f) continue;
          const double d = delta[static_cast<std::size_t>(q.v)];
          constant += d;
          term(q.column, -d);
        }
        if (cols.empty()) {
          if (fixed > memory_limit * (1.0 + 1e-12)) throw argument_error("auto: memory limit below M_B");
          continue;
        }
        add_row('L', memory_limit - fixed - constant + 1e-9 * std::max(1.0, std::abs(memory_limit)));
      }
  }
  // Spans and valid inequalities. For node u on stage i:
  //   E_u ≥ start_i + T_u + work before u + Σ_{free pairs} T_other · [other first]
  //   Z ≥ E_u + work after u + Σ_{free pairs} T_other · [u first] − start_i
  for (std::int32_t u = 0; u < n; ++u) {
    const std::int32_t i = (u / m) % p;
    const double s = start[static_cast<std::size_t>(i)];
    double constant = 0.0;
    term(u, 1.0);
    for (std::int32_t qi : pairs_of[static_cast<std::size_t>(u)]) {
      const pair& q = pairs[static_cast<std::size_t>(qi)];
      const std::int32_t other = q.u == u ? q.v : q.u;
      // [other first] = x if other is q.u, else 1 − x.
      if (other == q.u) {
        term(q.column, -T(other));
      } else {
        term(q.column, T(other));
        constant += T(other);
      }
    }
    add_row('G', s + T(u) + work_before[static_cast<std::size_t>(u)] + constant);

    term(z, 1.0);
    term(u, -1.0);
    double after_constant = 0.0;
    for (std::int32_t qi : pairs_of[static_cast<std::size_t>(u)]) {
      const pair& q = pairs[static_cast<std::size_t>(qi)];
      const std::int32_t other = q.u == u ? q.v : q.u;
      // [u first] = x if u is q.u, else 1 − x.
      if (q.u == u) {
        term(q.column, -T(other));
      } else {
        term(q.column, T(other));
        after_constant += T(other);
      }
    }
    add_row('G', work_after[static_cast<std::size_t>(u)] + after_constant - s);
  }
  for (std::int32_t i = 0; i < p; ++i) {  // Z ≥ E(W_{i,m−1}) − E(F_{i,0}) + T(F_{i,0})
    term(z, 1.0);
    term(id(2, i, m - 1), -1.0);
    term(id(0, i, 0), 1.0);
    add_row('G', T(id(0, i, 0)));
  }

  // ---- warm start from the heuristic ---------------------------------------------------------
  std::vector<std::int32_t> position(static_cast<std::size_t>(n), 0);
  for (std::int32_t r = 0; r < p; ++r) {
    const auto list = warm.plan.ops(r);
    for (std::size_t q = 0; q < list.size(); ++q) {
      const std::int32_t k = list[q].kind == op_kind::forward ? 0 : (list[q].kind == op_kind::backward_input ? 1 : 2);
      position[static_cast<std::size_t>(id(k, list[q].stage, list[q].microbatch))] = static_cast<std::int32_t>(q);
    }
  }
  {
    // Every column: CBC 2.10 maps a start with only the binaries wrongly through its
    // preprocessing ("mipstart values could not be used"), so the end times (the heuristic's
    // simulated ones) and the objective are given too.
    std::vector<int> start_cols;
    std::vector<double> start_values;
    const sim::simulation warm_run = sim::simulate(warm.plan, costs, {false});
    for (std::int32_t r = 0; r < p; ++r)
      for (const sim::op_timing& t : warm_run.events.ops(r)) {
        const std::int32_t k = t.what.kind == op_kind::forward ? 0 : (t.what.kind == op_kind::backward_input ? 1 : 2);
        start_cols.push_back(id(k, t.what.stage, t.what.microbatch));
        start_values.push_back(t.end);
      }
    start_cols.push_back(z);
    start_values.push_back(horizon);
    for (const pair& q : pairs) {
      start_cols.push_back(q.column);
      start_values.push_back(position[static_cast<std::size_t>(q.u)] < position[static_cast<std::size_t>(q.v)] ? 1.0 : 0.0);
    }
    Cbc_setMIPStartI(cbc, static_cast<int>(start_cols.size()), start_cols.data(), start_values.data());
  }

  Cbc_setObjSense(cbc, 1.0);
  // CBC 2.10's preprocessing crashes in CglPreProcess::postProcess when the time limit stops the
  // search, and it slows these programs down; the valid inequalities above do its job.
  Cbc_setParameter(cbc, "preprocess", "off");
  Cbc_setLogLevel(cbc, options.log ? 1 : 0);
  if (!options.log) Cbc_setParameter(cbc, "log", "0");
  Cbc_setMaximumSeconds(cbc, options.time_limit_seconds);
  Cbc_setAllowableFractionGap(cbc, options.relative_gap);
  const auto began = std::chrono::steady_clock::now();
  Cbc_solve(cbc);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();

  out.seconds = seconds;
  out.binaries = static_cast<std::int64_t>(pairs.size());
  out.constraints = rows;
  out.time_limit_reached = Cbc_isSecondsLimitReached(cbc) != 0;
  const double bound = Cbc_getBestPossibleObjValue(cbc);

  // Read back the order: sort each stage's ops by end time (ties: F, B, W, then microbatch).
  const double* solution = Cbc_bestSolution(cbc);
  if (solution != nullptr) {
    schedule candidate(shape, placement_kind::linear);
    for (std::int32_t i = 0; i < p; ++i) {
      std::vector<std::int32_t> nodes;
      for (std::int32_t k = 0; k < 3; ++k)
        for (std::int32_t j = 0; j < m; ++j) nodes.push_back(id(k, i, j));
      std::stable_sort(nodes.begin(), nodes.end(), [&](std::int32_t a, std::int32_t b) {
        const double ea = solution[a] - 0.5 * T(a), eb = solution[b] - 0.5 * T(b);
        if (ea < eb - tol || eb < ea - tol) return ea < eb;
        return a / (p * m) < b / (p * m);
      });
      for (std::int32_t u : nodes) candidate.push_back(i, op{detail::kind_of(u / (p * m)), i, u % m});
    }
    if (validate(candidate)) {
      const double span = sim::simulate(candidate, costs, {false}).metrics.span;
      const auto peak = sim::peak_memory(candidate, costs);
      const bool fits = *std::max_element(peak.begin(), peak.end()) <= memory_limit * (1.0 + 1e-9) + 1e-12;
      if (fits && span < out.span) {
        out.plan = std::move(candidate);
        out.span = span;
      }
    }
  }
  // A completed search proves the incumbent optimal even when CBC's reported bound is still the
  // root one (it prunes on the incumbent); `plan` is feasible in the program, so its span is then
  // the optimum.
  const bool proven = Cbc_isProvenOptimal(cbc) != 0 && !out.time_limit_reached;
  out.lower_bound = proven ? out.span : std::min(out.span, std::max(bound, path_bound));
  out.optimal = proven || out.gap() <= options.relative_gap;
  return out;
}

}  // namespace stretto::cbc
