#pragma once
/**
@file
@brief The activation memory `mlp_model` holds on each rank under the Kokkos executor, predicted
from the schedule (`stretto::sim::runtime_peak_memory`), and the demo's report of it beside the
measured peak (`mlp_model::peak_activation_bytes`).

**What is counted** (bytes, for microbatches of `rows` samples, value size e, stage s holding
layers [a, b) of a network of L layers with widths w):
- M_B(s), what F keeps until W: its input (a received buffer; none on stage 0, whose input is the
  batch, and none when stage s − 1 is on the same rank, whose output buffer it is), every layer's
  output, and on the last stage the loss gradient: e·rows·([s > 0, input received] w_a +
  Σ_{l=a}^{b−1} w_{l+1} + [s = S − 1] w_L);
- M_W(s) = M_B(s) + the ReLU gradients B keeps for W (every layer but the network's last):
  e·rows·Σ_{l=a}^{b−1} [l + 1 < L] w_{l+1}, above M_B, so B allocates and W frees all;
- while B runs: its incoming gradient (but on the last stage, where it is the loss gradient)
  and its inner layers' input gradients, e·rows·([s < S − 1] w_b + Σ_{l=a+1}^{b−1} w_l), and its
  outgoing gradient e·rows·w_a (not on stage 0): to another rank it is held until the end of the
  next op (the executor releases a completed send after each op), else while B runs;
- the receive buffers posted ahead (e·rows·w_a for an F's input, e·rows·w_b for a B's gradient).

The executor's buffers are counted whole (`buffer_pool::bytes_in_use`). A send still in flight
after its op (its receiver has not taken it yet) is not in the prediction. One model replica is
assumed (stage s − 1 and s share a rank for every microbatch or for none).
*/

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <stretto/stretto.hpp>

namespace stretto::examples {

/** @brief The memory model and executor buffers of `mlp_model` (see the file), and each rank's predicted peak in bytes. */
struct activation_memory_prediction {
  sim::stage_costs costs;          ///< only the memory fields are set (bytes per stage)
  sim::runtime_buffers buffers;    ///< receive buffers and a running B's gradients (bytes per stage)
  std::vector<double> peak;        ///< per rank: `sim::runtime_peak_memory(plan, costs, buffers)`
  std::vector<double> activations; ///< per rank: the memory model's peak alone (`sim::peak_memory`)
};

/**
@brief Predicts the activation bytes each rank holds at most while the executor runs `plan` on an
`mlp_model` with layer `widths` cut at stage `boundaries` (stage s holds layers
[boundaries[s], boundaries[s+1])), microbatches of `rows` samples, `value_bytes` per value and
the executor's `receive_lookahead`.
@pre `boundaries` has S + 1 entries for the S stages of `plan`.
*/
inline activation_memory_prediction predict_activation_memory(const std::vector<std::int64_t>& widths,
                                                              const std::vector<std::int32_t>& boundaries,
                                                              const schedule& plan, std::int64_t rows,
                                                              std::size_t value_bytes, std::int32_t receive_lookahead) {
  const std::int32_t stages = plan.num_stages();
  const auto layers = static_cast<std::int32_t>(widths.size()) - 1;
  auto bytes = [&](std::int32_t layer_width_index) {
    return static_cast<double>(value_bytes) * static_cast<double>(rows) *
           static_cast<double>(widths[static_cast<std::size_t>(layer_width_index)]);
  };
  activation_memory_prediction out;
  const auto n = static_cast<std::size_t>(stages);
  out.costs.forward.assign(n, 0.0);
  out.costs.backward_input.assign(n, 0.0);
  out.costs.backward_weight.assign(n, 0.0);
  out.buffers.receive_lookahead = receive_lookahead;
  for (std::int32_t s = 0; s < stages; ++s) {
    const std::int32_t a = boundaries[static_cast<std::size_t>(s)];
    const std::int32_t b = boundaries[static_cast<std::size_t>(s) + 1];
    const bool local_input = s > 0 && plan.rank_of(s - 1, 0) == plan.rank_of(s, 0);
    double m_b = s > 0 && !local_input ? bytes(a) : 0.0;
    double relu = 0.0;
    for (std::int32_t l = a; l < b; ++l) {
      m_b += bytes(l + 1);
      if (l + 1 < layers) relu += bytes(l + 1);
    }
    if (s + 1 == stages) m_b += bytes(layers);  // the loss gradient
    const bool local_output_gradient = s > 0 && plan.rank_of(s - 1, 0) == plan.rank_of(s, 0);
    double transient = (local_output_gradient ? bytes(a) : 0.0) + (s + 1 < stages ? bytes(b) : 0.0);
    for (std::int32_t l = a + 1; l < b; ++l) transient += bytes(l);
    out.costs.activation_memory.push_back(m_b);
    out.costs.weight_gradient_memory.push_back(m_b + relu);
    out.buffers.activation_message.push_back(bytes(a));
    out.buffers.gradient_message.push_back(bytes(b));
    out.buffers.backward_transient.push_back(transient);
    out.buffers.gradient_send.push_back(s > 0 ? bytes(a) : 0.0);  // counted when stage s − 1 is on another rank
  }
  out.peak = sim::runtime_peak_memory(plan, out.costs, out.buffers);
  out.activations = sim::peak_memory(plan, out.costs);
  return out;
}

/**
@brief Gathers every rank's measured and predicted peak activation bytes on rank 0 of `comm`, which
prints them per rank (KiB) with the largest deviation |measured − predicted| / predicted.
Collective. Returns that largest deviation on every rank.
*/
inline double report_activation_memory(MPI_Comm comm, double measured, double predicted) {
  int rank = 0, size = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const double mine[2] = {measured, predicted};
  std::vector<double> all(2 * static_cast<std::size_t>(size));
  MPI_Allgather(mine, 2, MPI_DOUBLE, all.data(), 2, MPI_DOUBLE, comm);
  double worst = 0.0;
  std::string measured_text, predicted_text;
  for (int r = 0; r < size; ++r) {
    const double m = all[2 * static_cast<std::size_t>(r)], p = all[2 * static_cast<std::size_t>(r) + 1];
    worst = std::max(worst, p > 0.0 ? std::abs(m - p) / p : (m > 0.0 ? 1.0 : 0.0));
    measured_text += (r ? " " : "") + std::to_string(static_cast<long long>(std::llround(m / 1024.0)));
    predicted_text += (r ? " " : "") + std::to_string(static_cast<long long>(std::llround(p / 1024.0)));
  }
  if (rank == 0) {
    std::printf("peak activation memory per rank (KiB): measured %s, predicted %s (largest deviation %.1f %%)\n",
                measured_text.c_str(), predicted_text.c_str(), 100.0 * worst);
    std::fflush(stdout);
  }
  return worst;
}

}  // namespace stretto::examples
