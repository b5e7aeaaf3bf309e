#pragma once
/**
@file
@brief The runtime-inclusive peak memory: the activations of the memory model plus the buffers an
executor holds besides them (docs/timing-model.md, "Runtime memory").

The memory model (`peak_memory`, `simulation::peak_memory`) counts the activations one op keeps
for another, as the Zero Bubble paper does (Qi et al. 2024, §3.1), and is the number the paper
reproductions check. An executor that runs the schedule also holds, at each moment:

- the **receive buffers posted ahead**: the Kokkos executor posts the receive of every op up to
  `receive_lookahead` ops after the one it is about to run (one more for an F&B pair), so while
  op i runs it holds the buffers of the receiving ops among i + 1 … i + lookahead that have not
  run yet;
- the **gradient buffers of a running backward**: while B or BW runs, its incoming and outgoing
  gradients and any scratch it needs (e.g. the input gradients of a stage's inner layers), freed
  when it ends;
- a **send in flight**: the executor tests its sends after each op, so the buffer of a B's
  outgoing gradient to another rank is held until the end of the op after that B at least (an F's
  output is kept by the model for its backward anyway);
- inside a **BW that runs as B then W** (the executor's fused BW when the model has no fused
  backward), B's own allocation M_W − M_B when M_W > M_B, until W frees it.

`runtime_peak_memory` walks each rank's list in order, as the executor runs it, and returns the
most it holds at once. Like `peak_memory` it depends on the order only, not on times.
*/

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../core/dependencies.hpp"
#include "../core/errors.hpp"
#include "../core/schedule.hpp"
#include "../detail/text.hpp"
#include "cost_model.hpp"

namespace stretto::sim {

/**
@brief The buffers an executor holds besides the memory model's activations, per global stage s in
`[0, S)`, in the cost model's memory unit (bytes, or M_B).

- `receive_lookahead`: how many ops ahead receives are posted (`kokkos::executor_options`' field
  of the same name; 0: only the running op's own receive).
- `activation_message[s]`: the buffer that receives F(s)'s input when stage s − 1 is on another rank.
- `gradient_message[s]`: the buffer that receives B(s)'s or BW(s)'s output gradient when stage
  s + 1 is on another rank.
- `backward_transient[s]`: what B(s) or BW(s) holds while it runs besides the memory model's
  deltas (its incoming gradient, scratch, an outgoing gradient that stays on the rank), freed at
  its end.
- `gradient_send[s]`: B(s)'s or BW(s)'s outgoing gradient when stage s − 1 is on another rank,
  held from its start until the end of the next op (or F&B pair) of its rank.

An empty vector means 0 on every stage.
@throws argument_error from `check` when a vector is neither empty nor S long, a value is negative
or not finite, or the lookahead is negative.
*/
struct runtime_buffers {
  std::int32_t receive_lookahead{0};
  std::vector<double> activation_message;
  std::vector<double> gradient_message;
  std::vector<double> backward_transient;
  std::vector<double> gradient_send;

  /** @brief Throws `argument_error` naming the field unless every vector fits `shape` (see above). */
  void check(const pipeline_shape& shape) const {
    if (receive_lookahead < 0)
      throw argument_error(stretto::detail::cat("runtime_buffers: receive_lookahead must be >= 0 (got ",
                                                receive_lookahead, "); use 0 for no receives posted ahead"));
    const auto stages = static_cast<std::size_t>(shape.num_stages());
    auto check_values = [stages](const char* field, const std::vector<double>& values) {
      if (!values.empty() && values.size() != stages)
        throw argument_error(stretto::detail::cat("runtime_buffers: ", field, " must be empty or have ", stages,
                                                  " entries, one per stage (got ", values.size(), ")"));
      for (double x : values)
        if (!(x >= 0.0) || x > std::numeric_limits<double>::max())
          throw argument_error(stretto::detail::cat("runtime_buffers: ", field, " must be finite numbers >= 0"));
    };
    check_values("activation_message", activation_message);
    check_values("gradient_message", gradient_message);
    check_values("backward_transient", backward_transient);
    check_values("gradient_send", gradient_send);
  }
};

/**
@brief Per rank, the most memory it holds at once while it runs its list in order: the memory
model's activations (`costs.memory_delta`, as `peak_memory`) plus the executor's buffers of
`buffers` (see `runtime_buffers` and the file's description).

While op i runs (both ops of an F&B pair, which the executor runs as one unit) its rank holds
what the ops before it kept, the op's own allocation (an F's M_B; a B's M_W − M_B when M_W > M_B,
also inside a BW), `backward_transient` of a running B or BW, and the receive buffers of the
ops after it, up to i + `receive_lookahead` (+ 1 for a pair), that take their input from another
rank, and the `gradient_send` of a B or BW to another rank that is op i or the op (pair) before
it. With every buffer 0 and M_W ≤ M_B it equals `peak_memory(s, costs)`.
In the cost model's memory unit. **Complexity.** O(N·lookahead) for N ops.
@throws argument_error from `buffers.check(s.shape())`.
*/
template <cost_model Costs>
std::vector<double> runtime_peak_memory(const schedule& s, const Costs& costs, const runtime_buffers& buffers) {
  buffers.check(s.shape());
  const pipeline_shape& shape = s.shape();
  auto at = [](const std::vector<double>& values, std::int32_t stage) {
    return values.empty() ? 0.0 : values[static_cast<std::size_t>(stage)];
  };
  std::vector<double> peak(static_cast<std::size_t>(s.num_ranks()), 0.0);
  for (std::int32_t r = 0; r < s.num_ranks(); ++r) {
    const auto list = s.ops(r);
    // The memory of op j's receive buffer, 0 when its input is local or it has none.
    auto receive = [&](std::size_t j) {
      const op& o = list[j];
      if (o.kind == op_kind::forward)
        return o.stage > 0 && s.rank_of(o.stage - 1, o.microbatch) != r ? at(buffers.activation_message, o.stage) : 0.0;
      if (produces_input_gradient(o.kind) && o.stage + 1 < s.num_stages() && s.rank_of(o.stage + 1, o.microbatch) != r)
        return at(buffers.gradient_message, o.stage);
      return 0.0;
    };
    double held = 0.0;
    double most = 0.0;
    double sending = 0.0;  // gradients the previous op (pair) sent to another rank
    for (std::size_t i = 0; i < list.size();) {
      const std::size_t width = list[i].overlapped && i + 1 < list.size() ? 2 : 1;
      double running = held + sending;
      double delta = 0.0;
      sending = 0.0;
      for (std::size_t k = i; k < i + width; ++k) {
        const op& o = list[k];
        const double d = costs.memory_delta(o, shape);
        delta += d;
        running += d > 0.0 ? d : 0.0;
        if (o.kind == op_kind::backward) {  // B then W: B's allocation, if any, until W frees it
          const double b = costs.memory_delta(op{op_kind::backward_input, o.stage, o.microbatch}, shape);
          running += b > 0.0 ? b : 0.0;
        }
        if (produces_input_gradient(o.kind)) {
          running += at(buffers.backward_transient, o.stage);
          if (o.stage > 0 && s.rank_of(o.stage - 1, o.microbatch) != r) sending += at(buffers.gradient_send, o.stage);
        }
      }
      running += sending;
      const std::size_t last_posted = i + width - 1 + static_cast<std::size_t>(buffers.receive_lookahead);
      for (std::size_t j = i + width; j < list.size() && j <= last_posted; ++j) running += receive(j);
      most = running > most ? running : most;
      held += delta;
      most = held > most ? held : most;
      i += width;
    }
    peak[static_cast<std::size_t>(r)] = most;
  }
  return peak;
}

}  // namespace stretto::sim
