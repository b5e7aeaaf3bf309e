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

**Memory model** (schedules.md §0; Zero Bubble, Qi et al. 2024, §3.1): F keeps M_B/v of
activations; B frees all but M_W/v (what W still needs); W frees the rest; BW frees M_B/v.
*/

#include <concepts>
#include <cstddef>
#include <cstdint>
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
@brief The same costs on every stage (schedules.md §0).

**Units.** `t_forward`, `t_backward_input`, `t_backward_weight` are the times of one microbatch
on one rank's share of the model (a "full stage", 1/p of the model); an op on a chunk that is
1/v of that share takes T/v. A fused BW takes `t_backward_input + t_backward_weight`. `t_comm`
is paid by every dependency that crosses ranks. `activation_memory` is M_B and
`weight_gradient_memory` is M_W, both per full stage; the defaults M_B = 1, M_W = 0.5 follow
the Zero Bubble code (2 and 1 units).
*/
struct uniform_costs {
  double t_forward{1.0};
  double t_backward_input{1.0};
  double t_backward_weight{1.0};
  double t_comm{0.0};
  double activation_memory{1.0};
  double weight_gradient_memory{0.5};

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

  /**
  @brief Throws `argument_error` unless every time is ≥ 0 and M_B ≥ M_W ≥ 0.
  */
  void check() const {
    if (!(t_forward >= 0 && t_backward_input >= 0 && t_backward_weight >= 0 && t_comm >= 0))
      throw argument_error("cost model: times must be non-negative numbers");
    if (!(activation_memory >= weight_gradient_memory && weight_gradient_memory >= 0))
      throw argument_error("cost model: memory must satisfy M_B >= M_W >= 0");
  }
};

/**
@brief Costs given per stage, e.g. measured by an executor (see `stretto::sim::table_costs::from`).

**Units.** `forward[s]`, `backward_input[s]`, `backward_weight[s]` are the times of one op on
stage s (already per chunk: no division by v). A fused BW on stage s takes
`backward_input[s] + backward_weight[s]`. Memory as in `uniform_costs`.
@pre every vector has `num_stages()` entries.
*/
struct table_costs {
  std::vector<double> forward;
  std::vector<double> backward_input;
  std::vector<double> backward_weight;
  double t_comm{0.0};
  double activation_memory{1.0};
  double weight_gradient_memory{0.5};

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

static_assert(cost_model<uniform_costs>);
static_assert(cost_model<table_costs>);

}  // namespace stretto::sim
