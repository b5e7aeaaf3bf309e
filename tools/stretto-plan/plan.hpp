#pragma once
/**
@file
@brief The work behind `stretto-plan simulate`: check the request, generate, validate and simulate
the schedule, and write the report as a table or as JSON. Kept apart from the command line so
that `main.cpp` only parses arguments and maps exceptions to exit codes.
*/

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <stretto/core/schedule.hpp>
#include <stretto/plan/deadline.hpp>
#include <stretto/policies/registry.hpp>
#include <stretto/sim/cost_model.hpp>
#include <stretto/sim/simulator.hpp>

namespace stretto_plan {

/** @brief How `simulate` writes its report. */
enum class output_format : std::uint8_t { table, json };

/**
@brief Everything `stretto-plan simulate` was asked for, as parsed from the command line.

**Units.** Times are in any one consistent unit (the report uses the same unit); memory is in
units of M_B (`costs.activation_memory` is M_B itself, 1 by default).
*/
struct simulate_request {
  std::string schedule_name;          ///< a name from `stretto::policies::all_policies`, or zb-1p, zb-2p, auto, auto-v
  stretto::pipeline_shape shape{};    ///< p, m, v as given
  stretto::sim::uniform_costs costs;  ///< T_F, T_B, T_W, T_comm, M_B, M_W as given
  std::string format{"table"};        ///< "table" or "json"
  std::string costs_file;             ///< `--costs FILE`; empty when the times were given as options
  std::optional<stretto::sim::stage_costs> stage_costs;  ///< read from `costs_file`; replaces `costs`
  std::optional<double> memory_limit;  ///< `--memory-limit`, for `--schedule auto` and `auto-v`
  std::string schedule_file;                  ///< `--schedule-file FILE`; empty when a schedule is named
  std::optional<stretto::schedule> imported;  ///< the schedule read from `schedule_file` (replaces the name)
  stretto::plan::deadline stop{};             ///< when an automatic schedule's planner gives up (`--time-limit`)
};

/**
@brief The largest number of (stage, microbatch) pairs, p·v·m, that `simulate` accepts.

The generator, validator and simulator each hold a few dozen bytes per pair, so this keeps a
mistyped size from exhausting memory (about 2 GB at the limit) instead of failing cleanly.
*/
inline constexpr std::int64_t max_stage_microbatch_pairs = 10'000'000;

/** @brief The result of one simulated step, ready to be reported. */
struct simulate_result {
  const stretto::policies::policy_info* policy{nullptr};
  stretto::schedule schedule;             ///< the schedule simulated (for export and show)
  stretto::sim::simulation run;
  std::vector<std::size_t> ops_per_rank;  ///< [rank] number of ops in that rank's list
  std::int32_t replicas{1};               ///< model replicas the schedule holds (2: chimera, bitpipe, dualpipe)
  std::optional<double> memory_limit;     ///< the limit an automatic schedule (zb-1p, zb-2p, auto, auto-v) kept to
  double heuristic_span{0.0};             ///< an automatic schedule's span before its refinement (auto-v: the span)
  bool refined{true};                     ///< whether W moves ran after the heuristic as a separate step (auto-v: its search includes them)
};

/**
@brief Checks `request` and returns its output format.

Checks, in order: the schedule name; ranks, microbatches and chunks ≥ 1; p·v·m within
`max_stage_microbatch_pairs`; every time finite and ≥ 0; M_B finite and > 0; M_W finite and ≥ 0
(above M_B, B allocates); the format; then, when `check_shape_rules`, the policy's own shape check (`compare` checks
each policy's rules itself and lists the ones that refuse the shape).
@throws stretto::argument_error for a bad name, number or format, naming the option and what is
valid; stretto::shape_error with the policy's message when the policy rejects the shape.
*/
output_format check_request(const simulate_request& request, bool check_shape_rules = true);

/**
@brief Generates, validates and simulates the schedule `request` asks for.
@pre `check_request(request)` returned without throwing.
@throws stretto::validation_error if the policy generated an invalid schedule (a bug in the policy).
*/
simulate_result run_simulation(const simulate_request& request);

/**
@brief Writes a readable summary and a per-rank table (rank, ops, busy, idle, peak memory; with a
parameter memory M_θ also params and peak + params). Idle is span − busy, so the idle column sums
to bubble_rate · p · span. Schedules with two model replicas get a `replicas` line.
*/
void write_table(std::ostream& out, const simulate_request& request, const simulate_result& result);

/**
@brief Writes the report as one JSON object (keys: schedule, ranks, microbatches, chunks,
replicas, costs, span, bubble_rate, bubble_overhead, peak_memory, parameter_memory, busy,
ops_per_rank), followed by a newline. `parameter_memory` is per rank (M_θ summed over the stages
and replicas it holds; 0 when no M_θ was given); with an M_θ, `peak_memory_with_parameters`
(per rank) follows it.
With `--costs`, `costs` holds the per-stage arrays of the file. Automatic schedules add
memory_limit and heuristic_span; a cost file with `optimizer_time` adds step_time and optimizer
(per rank [start, end]).
*/
void write_json(std::ostream& out, const simulate_request& request, const simulate_result& result);

/** @brief Writes one line per policy of `all_policies`: its name, placement and summary. */
void write_policy_list(std::ostream& out);

}  // namespace stretto_plan
