#pragma once
/**
@file
@brief `stretto-plan skippipe`: plans SkipPipe paths on a setting (a JSON file or a preset) and
compares the simulated iteration with the full pipeline and random skipping (docs/skippipe.md).

@code
stretto-plan skippipe --preset geo-distributed --seed 1
stretto-plan skippipe --setting nodes.json --json
@endcode
*/

#include <iosfwd>
#include <string>

#include <CLI/CLI.hpp>

namespace stretto_plan {

/** @brief The `skippipe` options exactly as typed. */
struct skippipe_arguments {
  std::string setting_file;  ///< --setting FILE
  std::string preset;        ///< --preset NAME
  std::string seed{"1"};     ///< --seed N
  bool json{false};          ///< --json
  std::string time_limit{"60"};  ///< --time-limit SECONDS: the planner stops (exit 2) when it runs longer
  std::string trace;         ///< --trace FILE: the SkipPipe plan's simulated iteration as Chrome trace JSON
  std::string svg;           ///< --svg FILE: the plan's and the full pipeline's iterations as one SVG
};

/** @brief Declares the `skippipe` subcommand of `app`, bound to `args`. */
CLI::App* add_skippipe_command(CLI::App& app, skippipe_arguments& args);

/**
@brief Runs `stretto-plan skippipe` and writes the report to `out`.
@throws stretto::argument_error for a bad option or setting, io_error when the file cannot be read.
*/
void run_skippipe(const skippipe_arguments& args, std::ostream& out);

}  // namespace stretto_plan
