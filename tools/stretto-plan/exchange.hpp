#pragma once
/**
@file
@brief `stretto-plan`'s schedule exchange: `--schedule-file` (read a CSV or JSON schedule for
`simulate`, `show` and `export`), `stretto-plan export` (SVG, Chrome trace, CSV, JSON) and
`stretto-plan show` (the text grid). The formats live in `stretto/io/`; this file adds the
command line around them.
*/

#include <optional>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include <stretto/core/schedule.hpp>
#include <stretto/core/shape.hpp>
#include <stretto/policies/registry.hpp>

#include "plan.hpp"

namespace stretto_plan {

/** @brief The options that name a schedule file, as typed. */
struct schedule_file_arguments {
  std::string path;       ///< --schedule-file FILE
  std::string placement;  ///< --placement linear|looped|v-shape; empty: inferred
};

/** @brief Declares `--schedule-file` and `--placement` on `command`, bound to `args`. */
void add_schedule_file_options(CLI::App& command, schedule_file_arguments& args);

/**
@brief Reads the schedule in `path`: JSON when the name ends in `.json` or the text starts with
`{`, else PyTorch CSV; validates it (`stretto::io::read_csv`, `read_json`).
@throws stretto::argument_error for a missing file, a bad `placement`, or any syntax or schedule
rule error of the file (with its line and column, or rank and op); io_error when reading fails.
*/
stretto::schedule read_schedule_file(const std::string& path, const std::string& placement);

/**
@brief A `policy_info` describing an imported schedule, so that reports treat it like a policy:
name = the file's path, summary "read from <path>", the inferred placement. Stable for the run.
*/
const stretto::policies::policy_info& imported_policy(const std::string& path, const stretto::schedule& s);

/** @brief Writes `text` to `path` (the file given with `option`). @throws io_error with the system's reason. */
void write_file(const std::string& option, const std::string& path, const std::string& text);

/** @brief The options of `export`, as typed. */
struct export_arguments {
  std::string svg, trace, csv, json;  ///< output paths; at least one
  std::string time_unit{"ms"};        ///< the unit of the times, for the SVG axis and the trace's scale
};

/** @brief Declares `--svg`, `--trace`, `--csv`, `--json` and `--time-unit` on `command`. */
void add_export_options(CLI::App& command, export_arguments& args);

/** @brief The options of `show`, as typed. */
struct show_arguments {
  std::string color{"auto"};  ///< auto (when stdout is a terminal), always or never
};

/** @brief Declares `--color` on `command`. */
void add_show_options(CLI::App& command, show_arguments& args);

/**
@brief Runs `export`: generates (or plans, or takes the imported) schedule of `request`, simulates
it under the request's costs and writes every requested file; prints one line per file.
@throws stretto::argument_error for a bad option; io_error when a file cannot be written.
*/
int run_export(const simulate_request& request, const export_arguments& args);

/** @brief Runs `show`: a summary line, then the text grid of the simulated step. */
int run_show(const simulate_request& request, const show_arguments& args);

}  // namespace stretto_plan
