#pragma once
/**
@file
@brief Cost models: how long each op takes, how long a message takes, how much memory an op holds.

**Concept `cost_model`.** Notation: `C` a cost model, `c` a `const C`, `o` an `op`, `s` a
`pipeline_shape`, `a`, `b` stage indices.

| Valid expression | Type | Meaning |
|---|---|---|
| `c.duration(o, s)` | `double` | time the op runs (any consistent unit) |
| `c.comm_delay(a, b, s)` | `double` | time from the end of an op on stage `a` until its output is usable on stage `b`, when the two stages are on different ranks |
| `c.memory_delta(o, s)` | `double` | activation memory the op adds (+) or frees (−) on its rank, in units of M_B |

Optionally `c.parameter_memory_of(stage, s)` returns M_θ, the memory of the parameters (and
whatever else scales with them: gradients, optimizer state) of one stage, in the unit of
`memory_delta`; `stretto::sim::parameter_memory_of` reads it, 0 (unknown) when the model has
none. A rank holds M_θ once per (stage, replica) it runs: schedules with two model replicas
(Chimera, BitPipe, DualPipe) hold two stages' parameters per rank (`sim::parameter_memory`).
Optionally `c.optimizer(rank, s)` returns an `optimizer_step` (concept
`cost_model_with_optimizer`); `stage_costs` is the cost model with every feature. Optionally
`c.overlap_time(f, b, s)` prices an overlapped F&B pair (`op::overlapped`; DualPipe, docs/schedules.md
§9); `stretto::sim::overlap_time` falls back to the two durations added up (serial compute).

**Memory model** (docs/schedules.md §0; Zero Bubble, Qi et al. 2024, §3.1): F keeps M_B/v of
activations; B frees all but M_W/v (what W still needs), i.e. its delta is −(M_B − M_W)/v; W frees
M_W/v; BW frees M_B/v. Any M_W ≥ 0 is accepted: when W needs more than F kept (M_W > M_B, e.g. the
weight gradient's inputs outweigh the activations), B's delta is positive: B allocates
(M_W − M_B)/v and W frees it with the rest, so a microbatch holds at most max(M_B, M_W)/v.
*/

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/op.hpp"
#include "../core/shape.hpp"

namespace stretto::sim {

template <class C>
concept cost_model = requires(const C& c, const op& o, const pipeline_shape& s, std::int32_t a) {
  { c.duration(o, s) } -> std::convertible_to<double>;
  { c.comm_delay(a, a, s) } -> std::convertible_to<double>;
  { c.memory_delta(o, s) } -> std::convertible_to<double>;
};

namespace detail {
constexpr double memory_delta(op_kind kind, double m_b, double m_w) noexcept {
  switch (kind) {
    case op_kind::forward: return m_b;
    case op_kind::backward_input: return -(m_b - m_w);
    case op_kind::backward_weight: return -m_w;
    case op_kind::backward: return -m_b;
  }
  return 0.0;
}
}  // namespace detail

/**
@brief The same costs on every stage (docs/schedules.md §0).

**Units.** `t_forward`, `t_backward_input`, `t_backward_weight` are the times of one microbatch
on one rank's share of the model (a "full stage", 1/p of the model); an op on a chunk that is
1/v of that share takes T/v. A fused BW takes `t_backward_input + t_backward_weight`. `t_comm`
is paid by every dependency that crosses ranks. `activation_memory` is M_B and
`weight_gradient_memory` is M_W, both per full stage; the defaults M_B = 1, M_W = 0.5 follow
the Zero Bubble code (2 and 1 units). `t_overlapped_fb` is the time of one overlapped F&B pair
(DualPipe's "F&B", docs/schedules.md §9) per full stage, divided by v like the others; negative (the
default) means F + B: the two ops' times added up, serial compute with only communication
hidden, as the DualPipe figure is drawn. `parameter_memory` is M_θ per full stage (a chunk
holds M_θ/v), in the unit of M_B; 0, the default, means unknown and adds nothing.
*/
struct uniform_costs {
  double t_forward{1.0};
  double t_backward_input{1.0};
  double t_backward_weight{1.0};
  double t_comm{0.0};
  double activation_memory{1.0};
  double weight_gradient_memory{0.5};
  double t_overlapped_fb{-1.0};
  double parameter_memory{0.0};

  constexpr double duration(const op& o, const pipeline_shape& s) const noexcept {
    double t = 0.0;
    switch (o.kind) {
      case op_kind::forward: t = t_forward; break;
      case op_kind::backward_input: t = t_backward_input; break;
      case op_kind::backward_weight: t = t_backward_weight; break;
      case op_kind::backward: t = t_backward_input + t_backward_weight; break;
    }
    return t / static_cast<double>(s.num_chunks);
  }
  constexpr double comm_delay(std::int32_t, std::int32_t, const pipeline_shape&) const noexcept {
    return t_comm;
  }
  constexpr double memory_delta(const op& o, const pipeline_shape& s) const noexcept {
    return detail::memory_delta(o.kind, activation_memory, weight_gradient_memory) /
           static_cast<double>(s.num_chunks);
  }
  /** @brief The time of the overlapped pair (`f`, `b`): `t_overlapped_fb / v`, or the sum of their durations when negative. */
  constexpr double overlap_time(const op& f, const op& b, const pipeline_shape& s) const noexcept {
    return t_overlapped_fb < 0.0 ? duration(f, s) + duration(b, s) : t_overlapped_fb / static_cast<double>(s.num_chunks);
  }
  /** @brief M_θ of one stage: `parameter_memory / v`. */
  constexpr double parameter_memory_of(std::int32_t, const pipeline_shape& s) const noexcept {
    return parameter_memory / static_cast<double>(s.num_chunks);
  }

  /**
  @brief Throws `argument_error` unless every time is ≥ 0 (`t_overlapped_fb` may be negative,
  meaning F + B), M_B ≥ 0, M_W ≥ 0 (M_W > M_B is allowed: B then allocates) and M_θ ≥ 0.
  */
  void check() const {
    if (!(t_forward >= 0 && t_backward_input >= 0 && t_backward_weight >= 0 && t_comm >= 0))
      throw argument_error("cost model: times must be non-negative numbers");
    if (t_overlapped_fb != t_overlapped_fb)
      throw argument_error("cost model: t_overlapped_fb must be a number (negative: F + B)");
    if (!(activation_memory >= 0 && weight_gradient_memory >= 0))
      throw argument_error("cost model: memory must satisfy M_B >= 0 and M_W >= 0");
    if (!(parameter_memory >= 0.0 && parameter_memory <= std::numeric_limits<double>::max()))
      throw argument_error("cost model: parameter_memory (M_theta) must be a finite number >= 0 (0: unknown)");
  }
};

/**
@brief Costs given per stage, e.g. measured by an executor (see `stretto::sim::table_costs::from`).

**Units.** `forward[s]`, `backward_input[s]`, `backward_weight[s]` are the times of one op on
stage s (already per chunk: no division by v). A fused BW on stage s takes
`backward_input[s] + backward_weight[s]`. Memory as in `uniform_costs` (M_B, M_W and M_θ per
full stage, divided by v).
@pre every vector has `num_stages()` entries.
*/
struct table_costs {
  std::vector<double> forward;
  std::vector<double> backward_input;
  std::vector<double> backward_weight;
  double t_comm{0.0};
  double activation_memory{1.0};
  double weight_gradient_memory{0.5};
  double parameter_memory{0.0};

  /** @brief M_θ of one stage: `parameter_memory / v`. */
  constexpr double parameter_memory_of(std::int32_t, const pipeline_shape& s) const noexcept {
    return parameter_memory / static_cast<double>(s.num_chunks);
  }

  constexpr double duration(const op& o, const pipeline_shape&) const noexcept {
    const auto s = static_cast<std::size_t>(o.stage);
    switch (o.kind) {
      case op_kind::forward: return forward[s];
      case op_kind::backward_input: return backward_input[s];
      case op_kind::backward_weight: return backward_weight[s];
      case op_kind::backward: return backward_input[s] + backward_weight[s];
    }
    return 0.0;
  }
  constexpr double comm_delay(std::int32_t, std::int32_t, const pipeline_shape&) const noexcept {
    return t_comm;
  }
  constexpr double memory_delta(const op& o, const pipeline_shape& s) const noexcept {
    return detail::memory_delta(o.kind, activation_memory, weight_gradient_memory) /
           static_cast<double>(s.num_chunks);
  }
};

/**
@brief The optimizer step that ends a training step on one rank (docs/schedules.md §7.8; Zero Bubble,
Qi et al. 2024, §4 and Appendix C).

- `synchronised = true`: the step waits for a cross-rank all-reduce (global gradient-norm
  clipping, NaN/INF check) that starts when the last rank finishes its last op and takes
  `sync_latency`; every rank then runs its optimizer for `duration`.
- `synchronised = false`: the paper's *post-validation*: each rank steps its optimizer as soon as
  its own last op ends, and validates the step later; no barrier.

**Units.** `duration` and `sync_latency` are in the cost model's time unit.
*/
struct optimizer_step {
  double duration{0.0};
  bool synchronised{false};
  double sync_latency{0.0};

  friend constexpr bool operator==(const optimizer_step&, const optimizer_step&) = default;
};

/**
@brief A cost model that also prices the optimizer step: `c.optimizer(rank, shape)` returns the
`optimizer_step` of `rank`. `simulate` then reports when each rank's optimizer ran and the step
time (see `simulation::step_time`). Cost models without it (`uniform_costs`, `table_costs`) have
no optimizer step.
*/
template <class C>
concept cost_model_with_optimizer =
    cost_model<C> && requires(const C& c, std::int32_t rank, const pipeline_shape& s) {
      { c.optimizer(rank, s) } -> std::convertible_to<optimizer_step>;
    };

/**
@brief The general cost model: costs per stage (so stages, and the chunks of looped or V-shaped
placements, may differ), messages priced as latency plus bytes over bandwidth, memory per stage,
and the optimizer step (docs/architecture.md; docs/schedules.md §0 and §7.4, which notes that the Zero
Bubble scheduler's code also allows per-stage costs).

**Units.** Times in any one consistent unit (µs, ms, s, ...). Every per-stage vector is indexed
by the global stage s in `[0, S)`, S = p·v, and holds the value for one microbatch on that stage
(a chunk when v > 1): no division by v is applied, unlike `uniform_costs`.

- `forward[s]`, `backward_input[s]`, `backward_weight[s]`: T_F, T_B, T_W of stage s; a fused BW
  takes T_B + T_W.
- A message from stage a to stage b on another rank is ready
  `latency + bytes / bandwidth` after its producer ends, where bytes is `activation_bytes[a]`
  when it flows forward (a < b: F's output) and `gradient_bytes[a]` when it flows backward
  (a > b: B's or BW's input gradient). `bandwidth` is in bytes per time unit; 0 means unlimited
  (latency only). Empty byte vectors mean 0 bytes.
- `activation_memory[s]` is M_B of stage s (what one F keeps until its B), and
  `weight_gradient_memory[s]` M_W (what B leaves for W), in any one memory unit (bytes, or
  units of one full stage's M_B as in `uniform_costs`). Empty vectors mean M_B = 1, M_W = 0.5.
- `parameter_memory[s]` is M_θ of stage s (its parameters, gradients and optimizer state), in
  the same unit; empty means 0 (unknown).
- `optimizer_time[r]` is rank r's optimizer step (empty: 0 on every rank), with
  `synchronised_optimizer` and `sync_latency` as in `optimizer_step`.
- `t_overlapped_fb` is the time of one overlapped F&B pair (`op::overlapped`; DualPipe,
  docs/schedules.md §9), per chunk like the per-stage times; negative (the default) means the two
  ops' times added up (serial compute, only communication hidden).

**Errors.** `check(shape)` throws `argument_error` naming the field when a vector has the wrong
length, or a value is negative or not finite. M_W > M_B is allowed (B then allocates).
*/
struct stage_costs {
  std::vector<double> forward;
  std::vector<double> backward_input;
  std::vector<double> backward_weight;
  double latency{0.0};
  double bandwidth{0.0};
  std::vector<double> activation_bytes;
  std::vector<double> gradient_bytes;
  std::vector<double> activation_memory;
  std::vector<double> weight_gradient_memory;
  std::vector<double> parameter_memory;
  std::vector<double> optimizer_time;
  bool synchronised_optimizer{false};
  double sync_latency{0.0};
  double t_overlapped_fb{-1.0};

  constexpr double duration(const op& o, const pipeline_shape&) const noexcept {
    const auto s = static_cast<std::size_t>(o.stage);
    switch (o.kind) {
      case op_kind::forward: return forward[s];
      case op_kind::backward_input: return backward_input[s];
      case op_kind::backward_weight: return backward_weight[s];
      case op_kind::backward: return backward_input[s] + backward_weight[s];
    }
    return 0.0;
  }
  constexpr double comm_delay(std::int32_t from, std::int32_t to, const pipeline_shape&) const noexcept {
    const auto a = static_cast<std::size_t>(from);
    const std::vector<double>& bytes = to > from ? activation_bytes : gradient_bytes;
    if (bandwidth <= 0.0 || a >= bytes.size()) return latency;
    return latency + bytes[a] / bandwidth;
  }
  constexpr double memory_delta(const op& o, const pipeline_shape&) const noexcept {
    const auto s = static_cast<std::size_t>(o.stage);
    const double m_b = s < activation_memory.size() ? activation_memory[s] : 1.0;
    const double m_w = s < weight_gradient_memory.size() ? weight_gradient_memory[s] : 0.5;
    return detail::memory_delta(o.kind, m_b, m_w);
  }
  /** @brief The time of the overlapped pair (`f`, `b`): `t_overlapped_fb`, or the sum of their durations when negative. */
  constexpr double overlap_time(const op& f, const op& b, const pipeline_shape& s) const noexcept {
    return t_overlapped_fb < 0.0 ? duration(f, s) + duration(b, s) : t_overlapped_fb;
  }
  /** @brief M_θ of stage `stage`: `parameter_memory[stage]`, 0 when the vector is empty. */
  constexpr double parameter_memory_of(std::int32_t stage, const pipeline_shape&) const noexcept {
    const auto s = static_cast<std::size_t>(stage);
    return s < parameter_memory.size() ? parameter_memory[s] : 0.0;
  }
  constexpr optimizer_step optimizer(std::int32_t rank, const pipeline_shape&) const noexcept {
    const auto r = static_cast<std::size_t>(rank);
    return {r < optimizer_time.size() ? optimizer_time[r] : 0.0, synchronised_optimizer, sync_latency};
  }

  /**
  @brief The same costs as `u` on every stage of `shape`: times and memory divided by v (an op on
  a chunk does 1/v of a full stage's work), message latency `u.t_comm`, no optimizer step.
  @pre `shape.num_chunks >= 1`, `shape.num_stages() >= 1`.
  */
  static constexpr stage_costs from(const uniform_costs& u, const pipeline_shape& shape) {
    const auto n = static_cast<std::size_t>(shape.num_stages());
    const double v = static_cast<double>(shape.num_chunks);
    stage_costs out;
    out.forward.assign(n, u.t_forward / v);
    out.backward_input.assign(n, u.t_backward_input / v);
    out.backward_weight.assign(n, u.t_backward_weight / v);
    out.latency = u.t_comm;
    out.activation_memory.assign(n, u.activation_memory / v);
    out.weight_gradient_memory.assign(n, u.weight_gradient_memory / v);
    out.t_overlapped_fb = u.t_overlapped_fb < 0.0 ? -1.0 : u.t_overlapped_fb / v;
    if (u.parameter_memory > 0.0) out.parameter_memory.assign(n, u.parameter_memory / v);
    return out;
  }

  /** @brief The costs of `t` (already per stage), memory divided by v as `table_costs` does. */
  static constexpr stage_costs from(const table_costs& t, const pipeline_shape& shape) {
    const auto n = static_cast<std::size_t>(shape.num_stages());
    const double v = static_cast<double>(shape.num_chunks);
    stage_costs out;
    out.forward = t.forward;
    out.backward_input = t.backward_input;
    out.backward_weight = t.backward_weight;
    out.latency = t.t_comm;
    out.activation_memory.assign(n, t.activation_memory / v);
    out.weight_gradient_memory.assign(n, t.weight_gradient_memory / v);
    if (t.parameter_memory > 0.0) out.parameter_memory.assign(n, t.parameter_memory / v);
    return out;
  }

  /**
  @brief Throws `argument_error` unless every vector has the length `shape` needs (S per-stage
  entries; `optimizer_time` p entries; optional vectors may be empty), every number is finite and
  ≥ 0 (M_W may exceed M_B: B then allocates).
  */
  void check(const pipeline_shape& shape) const {
    const auto stages = static_cast<std::size_t>(shape.num_stages());
    const auto ranks = static_cast<std::size_t>(shape.num_ranks);
    auto fail = [](const char* field, const std::string& rule) {
      throw argument_error(std::string("cost model: ") + field + " " + rule);
    };
    auto check_values = [&](const char* field, const std::vector<double>& values, std::size_t n, bool optional) {
      if (!(optional && values.empty()) && values.size() != n)
        fail(field, "must have " + std::to_string(n) + " entries (got " + std::to_string(values.size()) + ")");
      for (double x : values)
        if (!(x >= 0.0) || x > std::numeric_limits<double>::max()) fail(field, "must be finite numbers >= 0");
    };
    check_values("forward", forward, stages, false);
    check_values("backward_input", backward_input, stages, false);
    check_values("backward_weight", backward_weight, stages, false);
    check_values("activation_bytes", activation_bytes, stages, true);
    check_values("gradient_bytes", gradient_bytes, stages, true);
    check_values("activation_memory", activation_memory, stages, true);
    check_values("weight_gradient_memory", weight_gradient_memory, stages, true);
    check_values("parameter_memory", parameter_memory, stages, true);
    check_values("optimizer_time", optimizer_time, ranks, true);
    for (double x : {latency, bandwidth, sync_latency})
      if (!(x >= 0.0) || x > std::numeric_limits<double>::max())
        fail("latency, bandwidth and sync_latency", "must be finite numbers >= 0");
    if (t_overlapped_fb != t_overlapped_fb || t_overlapped_fb > std::numeric_limits<double>::max())
      fail("t_overlapped_fb", "must be a finite number (negative: the F and B times added up)");
  }
};

/**
@brief The time an overlapped F&B pair (`first`, `second`) takes under `c`: `c.overlap_time(...)`
when the cost model has it, else the two durations added up.
*/
template <cost_model Costs>
constexpr double overlap_time(const Costs& c, const op& first, const op& second, const pipeline_shape& s) {
  if constexpr (requires { { c.overlap_time(first, second, s) } -> std::convertible_to<double>; })
    return c.overlap_time(first, second, s);
  else
    return c.duration(first, s) + c.duration(second, s);
}

/**
@brief M_θ of `stage` under `c`: `c.parameter_memory_of(stage, s)` when the cost model has it,
else 0 (unknown).
*/
template <cost_model Costs>
constexpr double parameter_memory_of(const Costs& c, std::int32_t stage, const pipeline_shape& s) {
  if constexpr (requires { { c.parameter_memory_of(stage, s) } -> std::convertible_to<double>; })
    return c.parameter_memory_of(stage, s);
  else
    return 0.0;
}

static_assert(cost_model<uniform_costs>);
static_assert(cost_model<table_costs>);
static_assert(cost_model_with_optimizer<stage_costs>);

}  // namespace stretto::sim
