#include "exchange.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <system_error>

#include <stretto/core/errors.hpp>
#include <stretto/io/chrome_trace.hpp>
#include <stretto/io/schedule_csv.hpp>
#include <stretto/io/schedule_json.hpp>
#include <stretto/io/svg.hpp>
#include <stretto/io/text_grid.hpp>

#include "costs_file.hpp"
#include "format.hpp"

namespace stretto_plan {

void add_schedule_file_options(CLI::App& command, schedule_file_arguments& args) {
  command
      .add_option("--schedule-file", args.path,
                  "Read the schedule from FILE instead of --schedule: PyTorch pipelining's CSV (one row per rank, "
                  "tokens such as 0F3, 1I2, 1W2, 0B3) or Stretto's JSON (docs/schedule-files.md); ranks, microbatches "
                  "and chunks come from the file")
      ->type_name("FILE");
  command
      .add_option("--placement", args.placement,
                  "With --schedule-file: the placement of stages on ranks (linear, looped or v-shape); default: "
                  "inferred from which stages each rank runs")
      ->type_name("{linear,looped,v-shape}");
}

stretto::schedule read_schedule_file(const std::string& path, const std::string& placement) {
  const std::string where = "--schedule-file " + path;
  stretto::io::import_options options;
  if (placement == "linear")
    options.placement = stretto::placement_kind::linear;
  else if (placement == "looped")
    options.placement = stretto::placement_kind::looped;
  else if (placement == "v-shape")
    options.placement = stretto::placement_kind::v_shape;
  else if (!placement.empty())
    throw stretto::argument_error("--placement must be linear, looped or v-shape (got '" + placement + "')");
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (!std::filesystem::exists(status))
    throw stretto::argument_error(where + ": no such file; give the path of a CSV or JSON schedule file");
  if (!std::filesystem::is_regular_file(status))
    throw stretto::argument_error(where + ": is not a regular file; give the path of a CSV or JSON schedule file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(where + ": cannot open the file (" + std::strerror(errno) + ")");
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw io_error(where + ": reading the file failed (" + std::strerror(errno) + ")");
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  const bool json = path.ends_with(".json") || (first != std::string::npos && text[first] == '{');
  return json ? stretto::io::read_json(text, where, options) : stretto::io::read_csv(text, where, options);
}

const stretto::policies::policy_info& imported_policy(const std::string& path, const stretto::schedule& s) {
  // Reports keep string_views into these: a deque never moves its elements.
  static std::deque<std::string> texts;
  static std::deque<stretto::policies::policy_info> infos;
  for (const auto& info : infos)
    if (info.name == path && info.placement == s.placement()) return info;
  texts.push_back(path);
  const std::string_view name = texts.back();
  texts.push_back("read from " + path);
  const std::string_view summary = texts.back();
  infos.push_back({name, summary, s.placement(), nullptr, nullptr, s.shape().num_chunks, s.num_replicas() > 1});
  return infos.back();
}

void add_export_options(CLI::App& command, export_arguments& args) {
  command.add_option("--svg", args.svg, "Write the simulated timeline as an SVG picture (one row per rank)")->type_name("FILE");
  command.add_option("--trace", args.trace, "Write the simulated timeline as Chrome trace / Perfetto JSON")->type_name("FILE");
  command.add_option("--csv", args.csv, "Write the schedule as PyTorch pipelining's compute-only CSV")->type_name("FILE");
  command.add_option("--json", args.json, "Write the schedule as Stretto's JSON (docs/schedule-files.md)")->type_name("FILE");
  command
      .add_option("--time-unit", args.time_unit,
                  "The unit of the times: ms, us or s (the SVG axis label; the trace's microseconds per unit)")
      ->capture_default_str()
      ->type_name("{ms,us,s}");
}

void add_show_options(CLI::App& command, show_arguments& args) {
  command.add_option("--color", args.color, "Colour the grid: auto (when standard output is a terminal), always or never")
      ->capture_default_str()
      ->type_name("{auto,always,never}");
}

void write_file(const std::string& option, const std::string& path, const std::string& text) {
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out << text;
  if (out) out.flush();
  if (!out)
    throw io_error(option + " " + path + ": cannot write the file" +
                   (errno != 0 ? std::string(" (") + std::strerror(errno) + ")" : std::string()));
}

namespace {

std::string title_of(const simulate_request& request, const simulate_result& result) {
  const stretto::pipeline_shape& shape = result.schedule.shape();
  return std::string(result.policy->name) + ": p = " + std::to_string(shape.num_ranks) + ", m = " +
         std::to_string(shape.num_microbatches) + (shape.num_chunks > 1 ? ", v = " + std::to_string(shape.num_chunks) : "") +
         ", span " + format_number(result.run.metrics.span) + ", bubble rate " + format_fixed(result.run.metrics.bubble_rate, 4) +
         (request.stage_costs ? " (costs from " + request.costs_file + ")"
                              : " (T_F " + format_number(request.costs.t_forward) + ", T_B " +
                                    format_number(request.costs.t_backward_input) + ", T_W " +
                                    format_number(request.costs.t_backward_weight) + ", T_comm " +
                                    format_number(request.costs.t_comm) + ")");
}

}  // namespace

int run_export(const simulate_request& request, const export_arguments& args) {
  if (args.svg.empty() && args.trace.empty() && args.csv.empty() && args.json.empty())
    throw stretto::argument_error("export needs at least one output: --svg FILE, --trace FILE, --csv FILE or --json FILE");
  double microseconds = 0.0;
  if (args.time_unit == "ms")
    microseconds = 1e3;
  else if (args.time_unit == "us")
    microseconds = 1.0;
  else if (args.time_unit == "s")
    microseconds = 1e6;
  else
    throw stretto::argument_error("--time-unit must be ms, us or s (got '" + args.time_unit + "')");
  const simulate_result result = run_simulation(request);
  stretto::io::trace_context context = stretto::io::context_of(result.schedule, std::string(result.policy->name));
  context.microseconds_per_unit = microseconds;
  const std::pair<const std::string*, const char*> outputs[] = {
      {&args.svg, "svg"}, {&args.trace, "trace"}, {&args.csv, "csv"}, {&args.json, "json"}};
  for (const auto& [path, kind] : outputs) {
    if (path->empty()) continue;
    std::string text;
    const std::string what(kind);
    if (what == "svg") {
      stretto::io::svg_options options;
      options.title = title_of(request, result);
      options.time_unit = args.time_unit;
      text = stretto::io::to_svg(result.run.events, context, options);
    } else if (what == "trace") {
      text = stretto::io::to_chrome_trace(result.run.events, context);
    } else if (what == "csv") {
      text = stretto::io::to_csv(result.schedule);
    } else {
      text = stretto::io::to_json(result.schedule, result.policy->name);
    }
    write_file("--" + what, *path, text);
    std::cout << std::left << std::setw(6) << what << *path << '\n';
  }
  std::cout << "span  " << format_number(result.run.metrics.span) << '\n';
  return 0;
}

int run_show(const simulate_request& request, const show_arguments& args) {
  bool color = false;
  if (args.color == "always")
    color = true;
  else if (args.color == "auto")
    color = ::isatty(STDOUT_FILENO) != 0;
  else if (args.color != "never")
    throw stretto::argument_error("--color must be auto, always or never (got '" + args.color + "')");
  const simulate_result result = run_simulation(request);
  const stretto::io::trace_context context = stretto::io::context_of(result.schedule, std::string(result.policy->name));
  std::cout << title_of(request, result) << '\n';
  stretto::io::text_grid_options options;
  options.color = color;
  stretto::io::write_text_grid(std::cout, result.run.events, context, options);
  return 0;
}

}  // namespace stretto_plan
