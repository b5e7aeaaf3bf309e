#pragma once
/**
@file
@brief `stretto-plan simulate --data-parallel D`: the pipeline replicated over D data-parallel
groups, each stage's gradients all-reduced (ring) after its last W or BW, overlapped with the
compute still running (`stretto/sim/data_parallel.hpp`). Kept apart from `main.cpp`, which only
declares the options and calls `write_data_parallel` after the pipeline's report.
*/

#include <iosfwd>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include <stretto/sim/data_parallel.hpp>

#include "plan.hpp"

namespace stretto_plan {

/** @brief The data-parallel options exactly as typed (empty: not given). */
struct data_parallel_arguments {
  std::string groups;     ///< --data-parallel D
  std::string bytes;      ///< --reduction-bytes B or B0,B1,... (one per stage)
  std::string latency;    ///< --reduction-latency A (per ring step, in the time unit)
  std::string bandwidth;  ///< --reduction-bandwidth W (bytes per time unit)
};

/** @brief Declares --data-parallel, --reduction-bytes, --reduction-latency, --reduction-bandwidth. */
void add_data_parallel_options(CLI::App& command, data_parallel_arguments& args);

/**
@brief Converts and checks the options for a pipeline of `stages` stages; nullopt when
--data-parallel is not given.
@throws stretto::argument_error naming the option: a count that is not an integer ≥ 1, a bad
number, a byte list of the wrong length, a --reduction-* option without --data-parallel, or
D > 1 with nothing that prices the reduction (no bytes and no latency), or bytes without a
bandwidth.
*/
std::optional<stretto::sim::data_parallel> to_data_parallel(const data_parallel_arguments& args, std::int32_t stages);

/**
@brief Simulates `result.schedule` with `dp` under the request's costs and writes the
data-parallel report: as table lines after the pipeline's table, or, for JSON, the pipeline's
report `json_report` (the text `write_json` wrote) with a `data_parallel` object added (keys
groups, ring_members, step_time, bubble_rate, exposed_reduction, reduction_time, hidden_fraction,
stages: [{stage, ranks, ready, start, end, exposed}]).
*/
void write_data_parallel(std::ostream& out, const simulate_request& request, const simulate_result& result,
                         const stretto::sim::data_parallel& dp, const std::string* json_report);

}  // namespace stretto_plan
