#pragma once
/**
@file
@brief `stretto::partition`: cuts a chain of layers into contiguous pipeline stages so that the
slowest stage is as fast as possible, optionally under a memory cap per stage.

Standard library only; `constexpr`, so a partition of a fixed chain can be computed at compile
time.
*/

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <stretto/core/errors.hpp>
#include <stretto/detail/text.hpp>

namespace stretto {

/**
@brief A cut of a chain of L layers into k contiguous stages.

`boundaries` has k + 1 entries, 0 = b[0] < b[1] < … < b[k] = L: stage s holds layers
[b[s], b[s+1]) (every stage at least one layer). `max_cost` is the largest stage cost (the sum of
its layers' costs), `max_memory` the largest stage memory (0 when no memory was given).
*/
struct partition_result {
  std::vector<std::int32_t> boundaries;
  double max_cost{0.0};
  double max_memory{0.0};

  /** @brief Number of stages, k. */
  constexpr std::int32_t num_stages() const noexcept { return static_cast<std::int32_t>(boundaries.size()) - 1; }
  /** @brief The first layer of stage `s`; `first_layer(k)` = L. */
  constexpr std::int32_t first_layer(std::int32_t s) const { return boundaries[static_cast<std::size_t>(s)]; }
};

namespace detail {
inline std::string partition_number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", x);
  return text;
}

constexpr void check_values(std::span<const double> values, const char* what) {
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!(values[i] >= 0.0) || values[i] == std::numeric_limits<double>::infinity())
      throw argument_error(cat("stretto::partition: ", what, " of layer ", i,
                               " must be finite and >= 0 (got ", partition_number(values[i]), ")"));
}

// The exact DP behind `partition`: over prefixes, best[s][j] = the smallest possible largest
// stage cost when layers [0, j) form s stages, each stage's memory within `cap`. With
// `cost_cap` finite it minimises the sum of squared stage costs instead, among the cuts whose
// every stage costs at most `cost_cap` (the second pass: the most even of the optimal cuts).
// Returns the boundaries, or an empty vector when no cut meets the caps.
constexpr std::vector<std::int32_t> partition_dp(std::span<const double> costs, std::span<const double> memory,
                                                 std::int32_t stages, double cap,
                                                 double cost_cap = std::numeric_limits<double>::infinity()) {
  const bool even = cost_cap != std::numeric_limits<double>::infinity();
  const auto n = costs.size();
  const auto k = static_cast<std::size_t>(stages);
  std::vector<double> prefix(n + 1, 0.0), mem_prefix(n + 1, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    prefix[i + 1] = prefix[i] + costs[i];
    mem_prefix[i + 1] = mem_prefix[i] + (memory.empty() ? 0.0 : memory[i]);
  }
  constexpr double none = std::numeric_limits<double>::infinity();
  // best[s * (n + 1) + j], cut[s * (n + 1) + j]: the start of the last stage of that optimum.
  std::vector<double> best((k + 1) * (n + 1), none);
  std::vector<std::size_t> cut((k + 1) * (n + 1), 0);
  best[0] = 0.0;
  for (std::size_t s = 1; s <= k; ++s)
    for (std::size_t j = s; j + (k - s) <= n; ++j)    // stage s ends at j; later stages need a layer each
      for (std::size_t i = j; i-- > s - 1;) {          // stage s is [i, j); the earlier ones need i >= s - 1
        if (mem_prefix[j] - mem_prefix[i] > cap) break;  // longer stages only hold more memory
        const double before = best[(s - 1) * (n + 1) + i];
        if (before == none) continue;
        const double here = prefix[j] - prefix[i];
        if (even && here > cost_cap) break;  // longer stages only cost more
        const double worst = even ? before + here * here : (before > here ? before : here);
        if (worst < best[s * (n + 1) + j]) {
          best[s * (n + 1) + j] = worst;
          cut[s * (n + 1) + j] = i;
        }
      }
  if (best[k * (n + 1) + n] == none) return {};
  std::vector<std::int32_t> boundaries(k + 1, 0);
  std::size_t j = n;
  for (std::size_t s = k; s >= 1; --s) {
    boundaries[s] = static_cast<std::int32_t>(j);
    j = cut[s * (n + 1) + j];
  }
  return boundaries;
}

constexpr partition_result make_partition_result(std::vector<std::int32_t> boundaries, std::span<const double> costs,
                                                 std::span<const double> memory) {
  partition_result out{std::move(boundaries), 0.0, 0.0};
  for (std::int32_t s = 0; s < out.num_stages(); ++s) {
    double c = 0.0, m = 0.0;
    for (std::int32_t l = out.first_layer(s); l < out.first_layer(s + 1); ++l) {
      c += costs[static_cast<std::size_t>(l)];
      if (!memory.empty()) m += memory[static_cast<std::size_t>(l)];
    }
    out.max_cost = c > out.max_cost ? c : out.max_cost;
    out.max_memory = m > out.max_memory ? m : out.max_memory;
  }
  return out;
}
// The optimum, then the most even cut (least Σ stage cost²) among those that reach it. The
// second pass allows the optimum plus a relative 1e-12, so that rounding in the prefix sums
// never excludes the first pass's own cut.
constexpr partition_result best_even_cut(std::span<const double> costs, std::span<const double> memory,
                                         std::int32_t stages, double memory_cap) {
  const partition_result optimum = make_partition_result(partition_dp(costs, memory, stages, memory_cap), costs, memory);
  std::vector<std::int32_t> even =
      partition_dp(costs, memory, stages, memory_cap, optimum.max_cost * (1 + 1e-12) + 1e-300);
  if (even.empty()) return optimum;
  partition_result out = make_partition_result(std::move(even), costs, memory);
  return out.max_cost <= optimum.max_cost ? out : optimum;
}
}  // namespace detail

/**
@brief Cuts a chain of layers with costs `costs[l]` (any unit: seconds, flops) into `stages`
contiguous stages, each of at least one layer, minimising the largest stage cost (the pipeline's
slowest stage; the linear-partition problem).

Optimal: an exact dynamic program over prefixes (best[s][j] = min over i of
max(best[s−1][i], cost of layers [i, j))), O(k·L²) time and O(k·L) memory for L layers and k
stages (a 1000-layer, 64-stage chain: 6.4·10⁷ steps). A second pass of the same DP, limited to
stages that cost at most the optimum, returns of all optimal cuts the most even one (least sum
of squared stage costs), so that the stages which do not set the maximum are balanced too (it
matters when a rank holds several stages, as in looped and V-shaped placements). Stage costs are
compared through prefix sums; `max_cost` is summed directly.

@throws argument_error if `stages` < 1, if there are fewer layers than stages (naming both counts:
use at most L stages), or if a cost is negative, NaN or infinite.
*/
constexpr partition_result partition(std::span<const double> costs, std::int32_t stages) {
  if (stages < 1) throw argument_error(detail::cat("stretto::partition: stages must be at least 1 (got ", stages, ")"));
  if (costs.size() < static_cast<std::size_t>(stages))
    throw argument_error(detail::cat("stretto::partition: ", costs.size(), " layers cannot form ", stages,
                                     " stages of at least one layer each; use at most ", costs.size(), " stages"));
  detail::check_values(costs, "the cost");
  return detail::best_even_cut(costs, {}, stages, std::numeric_limits<double>::infinity());
}

/**
@brief As `partition(costs, stages)`, with the memory `memory[l]` of each layer (any unit, e.g.
bytes of weights and activations) and at most `memory_cap` per stage: the least largest stage
cost among the cuts whose every stage holds at most `memory_cap`. Same complexity.

@throws argument_error as the other overload; if `memory` and `costs` differ in length, a memory
value is negative, NaN or infinite, or `memory_cap` is negative or NaN; and, when no cut into
`stages` stages meets the cap, an error that states the cap and the smallest cap that can be met
(raise the cap to it, or use more stages).
*/
constexpr partition_result partition(std::span<const double> costs, std::int32_t stages, std::span<const double> memory,
                                     double memory_cap) {
  if (stages < 1) throw argument_error(detail::cat("stretto::partition: stages must be at least 1 (got ", stages, ")"));
  if (memory.size() != costs.size())
    throw argument_error(detail::cat("stretto::partition: ", costs.size(), " costs but ", memory.size(),
                                     " memory values; give one memory value per layer"));
  if (costs.size() < static_cast<std::size_t>(stages))
    throw argument_error(detail::cat("stretto::partition: ", costs.size(), " layers cannot form ", stages,
                                     " stages of at least one layer each; use at most ", costs.size(), " stages"));
  detail::check_values(costs, "the cost");
  detail::check_values(memory, "the memory");
  if (!(memory_cap >= 0.0))
    throw argument_error(detail::cat("stretto::partition: the memory cap must be >= 0 (got ",
                                     detail::partition_number(memory_cap), ")"));
  if (detail::partition_dp(costs, memory, stages, memory_cap).empty()) {
    // The smallest cap that can be met: the least largest stage memory over all cuts.
    const partition_result least = detail::make_partition_result(
        detail::partition_dp(memory, {}, stages, std::numeric_limits<double>::infinity()), memory, {});
    throw argument_error(detail::cat("stretto::partition: no cut of ", costs.size(), " layers into ", stages,
                                     " stages keeps every stage within the memory cap ",
                                     detail::partition_number(memory_cap), "; the smallest cap that ", stages,
                                     " stages can meet is ", detail::partition_number(least.max_cost),
                                     " (raise the cap, or use more stages)"));
  }
  return detail::best_even_cut(costs, memory, stages, memory_cap);
}

}  // namespace stretto
