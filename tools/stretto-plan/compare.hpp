#pragma once
/**
@file
@brief The work behind `stretto-plan compare`: every schedule that applies to one shape and cost
model, simulated and ranked by span, with its speed-up over 1F1B.
*/

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <stretto/core/shape.hpp>
#include <stretto/plan/deadline.hpp>
#include <stretto/sim/cost_model.hpp>

namespace stretto_plan {

/**
@brief What `stretto-plan compare` was asked for.

`shape.num_chunks` is used for every schedule when `chunks_given` (or with a cost file, whose
per-stage arrays fix p·v); otherwise each policy gets v = 1, or v = 2 when it rejects v = 1 and
places several chunks per rank (interleaved, breadth-first, V-shaped, bidirectional). Times are
per full stage as in `simulate`, so a chunk of a v-chunk rank costs T/v.
*/
struct compare_request {
  stretto::pipeline_shape shape{};
  bool chunks_given{false};
  stretto::sim::uniform_costs costs;                       ///< when no cost file
  std::optional<stretto::sim::stage_costs> stage_costs;    ///< from `--costs FILE`
  /// adds the `auto` and `auto-v` rows, and marks every row whose `max_memory_with_parameters`
  /// exceeds it (`compare_row::within_memory_limit`); such rows stay in the ranking
  std::optional<double> memory_limit;
  std::string format{"table"};
  stretto::plan::deadline stop{};  ///< when the automatic rows' planners give up (`--time-limit`)
};

/** @brief One compared schedule. */
struct compare_row {
  std::string schedule;
  std::string placement;
  std::int32_t chunks{1};
  double span{0.0};
  double bubble_rate{0.0};
  double bubble_overhead{0.0};
  std::vector<double> peak_memory;       ///< per rank, in the memory unit of the costs (M_B)
  double max_peak_memory{0.0};
  std::int32_t replicas{1};              ///< model replicas held (2: chimera, bitpipe, dualpipe)
  std::vector<double> parameter_memory;  ///< per rank: M_θ over the stages and replicas it holds (0: not given)
  double max_memory_with_parameters{0.0};  ///< max over ranks of peak_memory + parameter_memory
  std::optional<bool> within_memory_limit;  ///< with --memory-limit: max_memory_with_parameters <= the limit
  std::optional<double> speedup;         ///< 1F1B's span / this span, when 1F1B applies
  std::optional<double> memory_limit;    ///< for the automatic schedules
};

/** @brief A schedule that does not apply to the shape, and why. */
struct compare_skip {
  std::string schedule;
  std::string reason;
};

/** @brief Rows sorted by span (then name), and the schedules skipped. */
struct compare_result {
  std::vector<compare_row> rows;
  std::vector<compare_skip> skipped;
};

/**
@brief The schedules `run_compare` would plan for `request`, each with the shape it gets (the
rows of the report, before any planner runs): for `--time-limit`'s estimate.
*/
std::vector<std::pair<std::string_view, stretto::pipeline_shape>> compare_plans(const compare_request& request);

/**
@brief Simulates every policy of `stretto::policies::all_policies` whose `check` accepts the shape,
plus zb-1p and zb-2p (and `auto` and `auto-v` under `memory_limit` when given; auto-v needs
2 chunks per rank, its default).
@pre the request's numbers were checked (as `check_request` does for `simulate`).
*/
compare_result run_compare(const compare_request& request);

/**
@brief One line per row: schedule, chunks, span, bubble rate, speed-up, peak memory per rank;
then, when some row has parameter memory, `params P, total T` (largest per-rank parameter memory
and largest peak + parameters), else `(2 replicas)` for two-replica schedules; and `over X` when
the row exceeds `--memory-limit X`.
*/
void write_compare_table(std::ostream& out, const compare_request& request, const compare_result& result);

/**
@brief One JSON object: ranks, microbatches, baseline ("1f1b"), schedules (array of objects with
schedule, placement, chunks, span, bubble_rate, bubble_overhead, peak_memory, max_peak_memory,
replicas, parameter_memory, max_memory_with_parameters, within_memory_limit (with
--memory-limit), speedup_over_1f1b, and memory_limit for automatic ones), skipped (schedule,
reason).
*/
void write_compare_json(std::ostream& out, const compare_request& request, const compare_result& result);

}  // namespace stretto_plan
