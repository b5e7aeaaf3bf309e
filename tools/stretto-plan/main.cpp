/**
@file
@brief `stretto-plan`: generates, validates and simulates a pipeline schedule chosen by name.

@code
stretto-plan list
stretto-plan simulate --schedule zb-h1 --ranks 4 --microbatches 8 \
    --t-forward 1 --t-backward 1 --t-weight 1 --t-comm 0 --format json
stretto-plan simulate --schedule auto --memory-limit 12 --ranks 8 --microbatches 24 --costs costs.json
stretto-plan compare --ranks 8 --microbatches 24 --t-forward 18.522 --t-backward 18.086 \
    --t-weight 9.337 --t-comm 0.601
@endcode

**Errors.** Every bad argument, whether CLI11 or Stretto finds it, ends the program with exactly
one line on stderr, `stretto-plan: error: <rule broken and what is valid>`, and exit status 2.
An I/O failure (a cost file that cannot be read, a report that cannot be written) or an internal
failure (an invalid generated schedule, memory exhausted) prints one such line and exits with
status 1. `--help` prints the usage on stdout and exits with status 0.
*/

#include <cerrno>
#include <chrono>
#include <charconv>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <exception>
#include <iostream>
#include <limits>
#include <new>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include <stretto/core/errors.hpp>
#include <stretto/policies/registry.hpp>

#include "automatic.hpp"
#include "compare.hpp"
#include "costs_file.hpp"
#include "data_parallel.hpp"
#include "exchange.hpp"
#include "plan.hpp"
#include "skippipe.hpp"
#include "time_limit.hpp"

namespace {

constexpr int exit_bad_argument = 2;
constexpr int exit_internal_error = 1;

/** @brief Writes `message` to stderr as the one line `stretto-plan: error: <message>`. */
int fail(std::string_view message, int status) {
  std::string line(message);
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  while (!line.empty() && line.back() == ' ') line.pop_back();
  std::cerr << "stretto-plan: error: " << line << '\n';
  return status;
}

/**
@brief Flushes stdout; a failed write (a full disk, a closed pipe) becomes an io_error with the
system's reason, so that it is reported on one line and exits with status 1.
*/
int flush_report() {
  errno = 0;
  if (std::cout.flush()) return 0;
  const int cause = errno;
  throw stretto_plan::io_error(std::string("cannot write the report to standard output") +
                               (cause != 0 ? std::string(" (") + std::strerror(cause) + ")" : std::string()));
}

/**
@brief Refuses a result that is not a finite number: times so large that the span overflows.
@throws stretto::argument_error naming `what` and the rule.
*/
void check_finite(std::string_view what, double value) {
  if (!std::isfinite(value))
    throw stretto::argument_error(std::string(what) +
                                  " is not a finite number: the times are too large for double precision; give them in a "
                                  "larger unit (e.g. ms instead of ns) so that the step's total time stays below 1e308");
}

/**
@brief Returns the base-10 integer `text`, which must fill the whole string.
@throws stretto::argument_error naming `option` unless `text` is an integer in [1, INT32_MAX].
Parsed here rather than by CLI11, which reads "010" as octal.
*/
std::int32_t parse_count(std::string_view option, const std::string& text) {
  std::int32_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc{} || stop != end || value < 1)
    throw stretto::argument_error(std::string(option) + " must be an integer from 1 to " +
                                  std::to_string(std::numeric_limits<std::int32_t>::max()) + " (got '" +
                                  text + "')");
  return value;
}

/**
@brief Returns the decimal number `text` (e.g. "18.522", "+1", "1e-3"), which must fill the whole
string.
@throws stretto::argument_error naming `option` unless `text` is a finite number ≥ 0.
Parsed here rather than by CLI11, which goes through `long double` and can round differently.
*/
double parse_amount(std::string_view option, const std::string& text) {
  double value = 0.0;
  const char* begin = text.data() + (text.size() > 1 && text.front() == '+' ? 1 : 0);
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(begin, end, value);
  if (error != std::errc{} || stop != end || !(value >= 0.0) ||
      value > std::numeric_limits<double>::max())
    throw stretto::argument_error(std::string(option) + " must be a finite number >= 0 (got '" + text +
                                  "')");
  return value == 0.0 ? 0.0 : value;  // "-0" reads as -0.0; report it as 0
}

/** @brief The `simulate` options exactly as typed; converted by `to_request`. */
struct simulate_arguments {
  std::string schedule;
  std::string ranks;
  std::string microbatches;
  std::string chunks;  // empty: the policy's default (2 for looped and V-shaped policies, else 1)
  std::string t_forward;
  std::string t_backward;
  std::string t_weight;
  std::string t_comm;
  std::string t_overlapped_fb;  // empty: an F&B pair takes its two ops' times added up (no overlap)
  std::string activation_memory{"1"};
  std::string weight_memory{"0.5"};
  std::string parameter_memory;  // empty: M_theta unknown (0)
  std::string format{"table"};
  std::string costs_file;    // --costs FILE: per-stage costs instead of --t-*
  std::string memory_limit;  // --memory-limit X, for --schedule auto / auto-v and their rows in compare
  stretto_plan::schedule_file_arguments schedule_file;  // --schedule-file FILE [--placement P] instead of --schedule
  std::string time_limit{"60"};  // --time-limit SECONDS: refuse or stop work that takes longer
};

/** @brief Converts the typed options. @throws stretto::argument_error for a malformed number. */
stretto_plan::simulate_request to_request(const simulate_arguments& args) {
  stretto_plan::simulate_request request;
  request.schedule_name = args.schedule;
  if (!args.schedule_file.path.empty()) {
    if (!args.schedule.empty())
      throw stretto::argument_error("--schedule and --schedule-file exclude each other; give one of them");
    if (!args.ranks.empty() || !args.microbatches.empty() || !args.chunks.empty())
      throw stretto::argument_error("--ranks, --microbatches and --chunks come from the --schedule-file; leave them out");
    request.schedule_file = args.schedule_file.path;
    request.imported = stretto_plan::read_schedule_file(args.schedule_file.path, args.schedule_file.placement);
    request.shape = request.imported->shape();
  } else {
    if (!args.schedule_file.placement.empty())
      throw stretto::argument_error("--placement applies to --schedule-file only (a named schedule has its own)");
    if (args.schedule.empty())
      throw stretto::argument_error("--schedule NAME is required (or read a schedule with --schedule-file FILE)");
    for (const auto& [option, text] : {std::pair{"--ranks", &args.ranks}, std::pair{"--microbatches", &args.microbatches}})
      if (text->empty()) throw stretto::argument_error(std::string(option) + " is required with --schedule");
    request.shape.num_ranks = parse_count("--ranks", args.ranks);
    request.shape.num_microbatches = parse_count("--microbatches", args.microbatches);
  }
  if (!request.imported) request.shape.num_chunks = 1;
  if (request.imported) {
  } else if (!args.chunks.empty()) {
    request.shape.num_chunks = parse_count("--chunks", args.chunks);
  } else {
    // An unknown name keeps 1 here; `check_request` reports it.
    if (const stretto::policies::policy_info* info = stretto_plan::schedule_info(args.schedule))
      request.shape.num_chunks = info->default_chunks;
  }
  const std::pair<const char*, const std::string*> times[] = {
      {"--t-forward", &args.t_forward}, {"--t-backward", &args.t_backward},
      {"--t-weight", &args.t_weight}, {"--t-comm", &args.t_comm}};
  for (const auto& [option, text] : times) {
    if (args.costs_file.empty() && text->empty())
      throw stretto::argument_error(std::string(option) + " is required (or give every time per stage with --costs FILE)");
    if (!args.costs_file.empty() && !text->empty())
      throw stretto::argument_error(std::string(option) + " cannot be combined with --costs, whose file gives the times");
  }
  if (args.costs_file.empty()) {
    request.costs.t_forward = parse_amount("--t-forward", args.t_forward);
    request.costs.t_backward_input = parse_amount("--t-backward", args.t_backward);
    request.costs.t_backward_weight = parse_amount("--t-weight", args.t_weight);
    request.costs.t_comm = parse_amount("--t-comm", args.t_comm);
    if (!args.t_overlapped_fb.empty())
      request.costs.t_overlapped_fb = parse_amount("--t-overlapped-fb", args.t_overlapped_fb);
  } else {
    if (!args.t_overlapped_fb.empty())
      throw stretto::argument_error(
          "--t-overlapped-fb cannot be combined with --costs; give the file the key overlapped_fb instead");
    if (!args.parameter_memory.empty())
      throw stretto::argument_error(
          "--parameter-memory cannot be combined with --costs; give the file the key parameter_memory instead");
    request.costs_file = args.costs_file;
    request.stage_costs = stretto_plan::read_costs_file(args.costs_file, request.shape);
  }
  if (!args.parameter_memory.empty())
    request.costs.parameter_memory = parse_amount("--parameter-memory", args.parameter_memory);
  if (!args.memory_limit.empty()) {
    try {
      request.memory_limit = parse_amount("--memory-limit", args.memory_limit);
    } catch (const stretto::argument_error&) {
      throw stretto::argument_error("--memory-limit must be a finite number > 0 (got '" + args.memory_limit + "')");
    }
  }
  request.costs.activation_memory = parse_amount("--activation-memory", args.activation_memory);
  request.costs.weight_gradient_memory = parse_amount("--weight-memory", args.weight_memory);
  request.format = args.format;
  return request;
}

/**
@brief Declares the `simulate` options of `command` (without `--schedule` for `compare`), bound
to `args`.
*/
void add_simulate_options(CLI::App& command, simulate_arguments& args, bool with_schedule = true) {
  if (with_schedule) {
    command.add_option("--schedule", args.schedule,
                       "Schedule: one of " + stretto_plan::schedule_names() + " (see 'stretto-plan list')")
        ->type_name("NAME");
    stretto_plan::add_schedule_file_options(command, args.schedule_file);
  }
  CLI::Option* ranks = command.add_option("--ranks", args.ranks, "Pipeline ranks p (>= 1)")->type_name("P");
  CLI::Option* microbatches =
      command.add_option("--microbatches", args.microbatches, "Microbatches m per optimizer step (>= 1)")->type_name("M");
  if (!with_schedule) {
    ranks->required();
    microbatches->required();
  }
  command.add_option("--chunks", args.chunks, "Chunks v (virtual stages) per rank (>= 1); default: 2 for looped and V-shaped schedules, else 1")
      ->capture_default_str()
      ->type_name("V");
  command.add_option("--t-forward", args.t_forward, "T_F: forward time of one microbatch on one rank (>= 0)")
      ->type_name("TF");
  command
      .add_option("--t-backward", args.t_backward,
                  "T_B: input-gradient backward time (>= 0); a fused BW takes T_B + T_W")
      ->type_name("TB");
  command.add_option("--t-weight", args.t_weight, "T_W: weight-gradient backward time (>= 0)")
      ->type_name("TW");
  command.add_option("--t-comm", args.t_comm, "T_comm: delay of each message between ranks (>= 0)")
      ->type_name("TC");
  command
      .add_option("--t-overlapped-fb", args.t_overlapped_fb,
                  "Time of one overlapped F&B pair of dualpipe/dualpipev, per full stage like the other times "
                  "(>= 0); default: the two ops' times added up, T_F + T_B + T_W for a fused backward (no overlap)")
      ->type_name("TFB");
  command
      .add_option("--activation-memory", args.activation_memory,
                  "M_B: activation memory one F keeps until its backward (>= 0)")
      ->capture_default_str()
      ->type_name("MB");
  command
      .add_option("--weight-memory", args.weight_memory,
                  "M_W: memory B leaves for W until W runs (>= 0); above M_B, B allocates M_W - M_B")
      ->capture_default_str()
      ->type_name("MW");
  command
      .add_option("--parameter-memory", args.parameter_memory,
                  "M_theta: memory of one full stage's parameters (with their gradients and optimizer state), in the "
                  "unit of --activation-memory (>= 0); reported per rank next to the activation peak, once per stage "
                  "and model replica the rank holds (twice for chimera, bitpipe, dualpipe); default: unknown (0)")
      ->type_name("MT");
  command.add_option("--format", args.format, "Report format: table or json")
      ->capture_default_str()
      ->type_name("{table,json}");
  command
      .add_option("--costs", args.costs_file,
                  "JSON file of per-stage costs (keys forward, backward_input, backward_weight, latency, ...), "
                  "instead of --t-forward/--t-backward/--t-weight/--t-comm")
      ->type_name("FILE");
  command
      .add_option("--memory-limit", args.memory_limit,
                  "Activation memory per rank for the auto and auto-v schedules, in the unit of --activation-memory "
                  "(M_B); e.g. p*M_B is 1F1B's peak (zb-1p's limit), 2p*M_B zb-2p's. In compare it also marks every "
                  "row whose peak (activations plus parameters, when --parameter-memory is given) exceeds it")
      ->type_name("X");
  command
      .add_option("--time-limit", args.time_limit,
                  "Seconds the command may plan and simulate (> 0): a shape whose estimated time exceeds it is refused "
                  "before any work, and a plan that runs out of time stops; runs over a second show progress on stderr")
      ->capture_default_str()
      ->type_name("SECONDS");
}

/**
@brief Checks `--time-limit` and refuses `request` when its estimated time exceeds it, then
starts the planners' clock (`request.stop`). Returns the limit, in seconds.
@throws stretto::argument_error for a bad limit or a shape over it.
*/
double start_time_limit(const simulate_arguments& args, stretto_plan::simulate_request& request) {
  const double limit = stretto_plan::parse_time_limit(args.time_limit);
  const std::string_view name = request.imported ? std::string_view("the schedule file") : request.schedule_name;
  stretto_plan::check_planning_time(name, &name, &request.shape, 1, limit);
  request.stop = stretto::plan::deadline::after(std::chrono::duration<double>(limit));
  return limit;
}

/** @brief What progress lines and time-limit messages call `request`'s work. */
std::string work_name(const stretto_plan::simulate_request& request) {
  const stretto::pipeline_shape& s = request.shape;
  return (request.imported ? request.schedule_file : request.schedule_name) + " (" + std::to_string(s.num_ranks) +
         (s.num_ranks == 1 ? " rank, " : " ranks, ") + std::to_string(s.num_microbatches) +
         (s.num_microbatches == 1 ? " microbatch)" : " microbatches)");
}

/**
@brief `export` and `show` draw with the papers' unit times (T_F = T_B = T_W = 1, T_comm = 0) for
every time not given, unless the times come from `--costs`.
*/
void default_unit_times(simulate_arguments& args) {
  if (!args.costs_file.empty()) return;
  for (std::string* time : {&args.t_forward, &args.t_backward, &args.t_weight})
    if (time->empty()) *time = "1";
  if (args.t_comm.empty()) args.t_comm = "0";
}

/** @brief Runs `stretto-plan simulate` (with `--data-parallel`: data_parallel.hpp); returns the exit status. */
int run_simulate(const simulate_arguments& args, const stretto_plan::data_parallel_arguments& dp_args) {
  stretto_plan::simulate_request request = to_request(args);
  const stretto_plan::output_format format = stretto_plan::check_request(request);
  const auto dp = stretto_plan::to_data_parallel(dp_args, request.shape.num_stages());
  const double limit = start_time_limit(args, request);
  const stretto_plan::simulate_result result = stretto_plan::within_time_limit(
      work_name(request), stretto_plan::estimate_seconds(request.schedule_name, request.shape), limit,
      [&] { return stretto_plan::run_simulation(request); });
  check_finite("the simulated span", result.run.metrics.span);
  check_finite("the bubble rate", result.run.metrics.bubble_rate);
  if (dp && format == stretto_plan::output_format::json) {
    std::ostringstream pipeline;
    stretto_plan::write_json(pipeline, request, result);
    const std::string text = pipeline.str();
    stretto_plan::write_data_parallel(std::cout, request, result, *dp, &text);
  } else if (format == stretto_plan::output_format::json) {
    stretto_plan::write_json(std::cout, request, result);
  } else {
    stretto_plan::write_table(std::cout, request, result);
    if (dp) stretto_plan::write_data_parallel(std::cout, request, result, *dp, nullptr);
  }
  return flush_report();
}

/** @brief Runs `stretto-plan compare`; returns the exit status. */
int run_compare(const simulate_arguments& args, bool chunks_given) {
  simulate_arguments checked = args;
  checked.schedule = "1f1b";  // checks the numbers as `simulate` does; each policy's shape rules apply per row
  stretto_plan::simulate_request request = to_request(checked);
  const stretto_plan::output_format format = stretto_plan::check_request(request, /*check_shape_rules=*/false);
  stretto_plan::compare_request compare;
  compare.shape = request.shape;
  compare.chunks_given = chunks_given;
  compare.costs = request.costs;
  compare.stage_costs = request.stage_costs;
  compare.memory_limit = request.memory_limit;
  const double limit = stretto_plan::parse_time_limit(args.time_limit);
  const auto plans = stretto_plan::compare_plans(compare);
  std::vector<std::string_view> names;
  std::vector<stretto::pipeline_shape> shapes;
  double estimate = 0.0;
  for (const auto& [name, shape] : plans) {
    names.push_back(name);
    shapes.push_back(shape);
    estimate += stretto_plan::estimate_seconds(name, shape);
  }
  stretto_plan::check_planning_time("compare", names.data(), shapes.data(), names.size(), limit);
  compare.stop = stretto::plan::deadline::after(std::chrono::duration<double>(limit));
  const stretto_plan::compare_result result = stretto_plan::within_time_limit(
      "compare (" + std::to_string(compare.shape.num_ranks) + " ranks, " +
          std::to_string(compare.shape.num_microbatches) + " microbatches)",
      estimate, limit, [&] { return stretto_plan::run_compare(compare); });
  for (const auto& row : result.rows) {
    check_finite("the simulated span of " + row.schedule, row.span);
    check_finite("the bubble rate of " + row.schedule, row.bubble_rate);
  }
  if (format == stretto_plan::output_format::json)
    stretto_plan::write_compare_json(std::cout, compare, result);
  else
    stretto_plan::write_compare_table(std::cout, compare, result);
  return flush_report();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Stretto's planner: generates, validates and simulates a pipeline-parallel schedule.",
               "stretto-plan"};
  app.require_subcommand(1);
  app.footer("Exit status: 0 on success, 2 for a bad argument, 1 for an I/O or internal error.");

  CLI::App* list = app.add_subcommand("list", "List the schedule policies: name, placement, summary");
  CLI::App* simulate = app.add_subcommand(
      "simulate", "Simulate one optimizer step; report span, bubble rate, busy time and peak memory per rank");
  simulate->footer(
      "Times may be in any one consistent unit (ms, us, ...); span, busy and idle are reported in it.\n"
      "Memory is in units of M_B. Ops run in list order once their inputs arrive; messages overlap compute.\n"
      "Exit status: 0 on success, 2 for a bad argument, 1 for an internal error.");
  simulate_arguments args;
  add_simulate_options(*simulate, args);
  stretto_plan::data_parallel_arguments dp_args;
  stretto_plan::add_data_parallel_options(*simulate, dp_args);
  CLI::App* compare = app.add_subcommand(
      "compare", "Simulate every schedule that applies to one shape and cost model; rank them by span, with the "
                 "speed-up over 1F1B and the peak memory per rank");
  compare->footer(
      "Lists every policy of 'stretto-plan list' whose shape rules accept the shape (with --chunks unset, a policy\n"
      "that needs several chunks per rank gets 2), plus zb-1p and zb-2p, and auto and auto-v with --memory-limit.\n"
      "With --memory-limit X a row whose largest per-rank peak (activation peak + parameter memory; the\n"
      "parameters count only when --parameter-memory or the cost file's parameter_memory gives them) exceeds X\n"
      "is marked 'over X' (JSON: within_memory_limit false); it is kept in the ranking.\n"
      "Exit status: 0 on success, 2 for a bad argument, 1 for an internal error.");
  simulate_arguments compare_args;
  add_simulate_options(*compare, compare_args, false);
  simulate_arguments export_args;
  stretto_plan::export_arguments export_outputs;
  CLI::App* export_command = app.add_subcommand(
      "export", "Write a schedule and its simulated step as SVG, Chrome trace JSON, PyTorch CSV or Stretto JSON");
  add_simulate_options(*export_command, export_args);
  export_command->footer("Times not given default to T_F = T_B = T_W = 1, T_comm = 0 (unless --costs gives them).\n"
                         "Exit status: 0 on success, 2 for a bad argument, 1 for an I/O or internal error.");
  stretto_plan::add_export_options(*export_command, export_outputs);
  simulate_arguments show_args;
  stretto_plan::show_arguments show_options;
  CLI::App* show = app.add_subcommand("show", "Draw the simulated step as a text grid, one line per rank");
  add_simulate_options(*show, show_args);
  show->footer("Times not given default to T_F = T_B = T_W = 1, T_comm = 0 (unless --costs gives them).\n"
               "Exit status: 0 on success, 2 for a bad argument, 1 for an internal error.");
  stretto_plan::add_show_options(*show, show_options);
  stretto_plan::skippipe_arguments skippipe_args;
  CLI::App* skippipe = stretto_plan::add_skippipe_command(app, skippipe_args);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
    if (!list->parsed() && !simulate->parsed() && !compare->parsed() && !export_command->parsed() && !show->parsed() &&
        !skippipe->parsed()) {
      std::string commands;
      for (const CLI::App* command : std::as_const(app).get_subcommands([](const CLI::App*) { return true; }))
        commands += (commands.empty() ? "" : ", ") + command->get_name();
      const std::vector<std::string> rest = app.remaining();
      return fail("expected a command, one of: " + commands +
                      (rest.empty() ? std::string() : " (got '" + rest.front() + "')") +
                      "; run 'stretto-plan --help' for usage",
                  exit_bad_argument);
    }
    return fail(std::string(e.what()) + "; run 'stretto-plan " +
                    (simulate->parsed() ? "simulate "
                     : compare->parsed() ? "compare "
                     : export_command->parsed() ? "export "
                     : show->parsed() ? "show "
                     : skippipe->parsed() ? "skippipe "
                                      : "") +
                    "--help' for usage",
                exit_bad_argument);
  }

  try {
    if (list->parsed()) {
      stretto_plan::write_policy_list(std::cout);
      return flush_report();
    }
    if (compare->parsed()) return run_compare(compare_args, compare->count("--chunks") > 0);
    if (skippipe->parsed()) {
      stretto_plan::run_skippipe(skippipe_args, std::cout);
      return flush_report();
    }
    if (export_command->parsed()) {
      default_unit_times(export_args);
      stretto_plan::simulate_request request = to_request(export_args);
      stretto_plan::check_request(request);
      const double limit = start_time_limit(export_args, request);
      stretto_plan::within_time_limit(work_name(request), stretto_plan::estimate_seconds(request.schedule_name, request.shape),
                                      limit, [&] { stretto_plan::run_export(request, export_outputs); });
      return flush_report();
    }
    if (show->parsed()) {
      default_unit_times(show_args);
      stretto_plan::simulate_request request = to_request(show_args);
      stretto_plan::check_request(request);
      const double limit = start_time_limit(show_args, request);
      stretto_plan::within_time_limit(work_name(request), stretto_plan::estimate_seconds(request.schedule_name, request.shape),
                                      limit, [&] { stretto_plan::run_show(request, show_options); });
      return flush_report();
    }
    return run_simulate(args, dp_args);
  } catch (const stretto::validation_error& e) {
    return fail(std::string("internal: the generated schedule is invalid: ") + e.what(), exit_internal_error);
  } catch (const stretto::argument_error& e) {
    return fail(e.what(), exit_bad_argument);
  } catch (const stretto::shape_error& e) {
    return fail(e.what(), exit_bad_argument);
  } catch (const stretto_plan::io_error& e) {
    return fail(e.what(), exit_internal_error);
  } catch (const std::bad_alloc&) {
    return fail("internal: out of memory; try fewer ranks, chunks or microbatches", exit_internal_error);
  } catch (const std::exception& e) {
    return fail(std::string("internal: ") + e.what(), exit_internal_error);
  }
}
