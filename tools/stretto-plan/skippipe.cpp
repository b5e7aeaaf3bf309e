#include "skippipe.hpp"

#include "time_limit.hpp"

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <stretto/core/errors.hpp>
#include <stretto/io/schedule_json.hpp>
#include <stretto/io/skippipe_setting.hpp>
#include <stretto/io/skippipe_trace.hpp>
#include <stretto/skippipe/planner.hpp>
#include <stretto/skippipe/presets.hpp>

#include "costs_file.hpp"
#include "exchange.hpp"

namespace stretto_plan {

namespace sp = stretto::skippipe;

CLI::App* add_skippipe_command(CLI::App& app, skippipe_arguments& args) {
  CLI::App* command = app.add_subcommand(
      "skippipe", "Plan SkipPipe paths (partial, reordered pipelines over heterogeneous nodes); compare the simulated "
                  "iteration with the full pipeline and random skipping");
  command->add_option("--setting", args.setting_file, "JSON file of the setting (nodes, network, stages; docs/skippipe.md)")
      ->type_name("FILE");
  command->add_option("--preset", args.preset, "A generated setting: single-cluster, 5-clusters or geo-distributed")
      ->type_name("NAME");
  command->add_option("--seed", args.seed, "Seed of the preset's draws, the planner's ties and the random-skip baseline")
      ->capture_default_str()
      ->type_name("N");
  command->add_flag("--json", args.json, "Write the report as one JSON object");
  command
      ->add_option("--time-limit", args.time_limit,
                   "Seconds the planner may search before the command stops with exit status 2")
      ->capture_default_str()
      ->type_name("SECONDS");
  command->add_option("--trace", args.trace,
                      "Write the SkipPipe plan's simulated iteration as Chrome trace / Perfetto JSON (one process per node, "
                      "one arrow per message along each microbatch's path; the setting's time unit read as seconds)")
      ->type_name("FILE");
  command->add_option("--svg", args.svg,
                      "Write the SkipPipe plan's simulated iteration above the full pipeline's as one SVG picture (one row per node)")
      ->type_name("FILE");
  command->footer(
      "Times are in the setting's unit (the presets use seconds). The full pipeline sends every microbatch through\n"
      "every stage (1F1B order on each node); random skip draws paths of the same length at random.\n"
      "Exit status: 0 on success, 2 for a bad argument, 1 for an I/O or internal error.");
  return command;
}

namespace {

sp::setting load(const skippipe_arguments& args, std::uint64_t seed) {
  if (args.setting_file.empty() == args.preset.empty())
    throw stretto::argument_error("give exactly one of --setting FILE and --preset NAME (single-cluster, 5-clusters, geo-distributed)");
  if (!args.preset.empty()) return sp::make_preset(args.preset, seed);
  const std::string where = "--setting " + args.setting_file;
  std::error_code error;
  const auto status = std::filesystem::status(args.setting_file, error);
  if (!std::filesystem::exists(status))
    throw stretto::argument_error(where + ": no such file; give the path of a JSON SkipPipe setting");
  if (!std::filesystem::is_regular_file(status))
    throw stretto::argument_error(where + ": is not a regular file; give the path of a JSON SkipPipe setting");
  std::ifstream in(args.setting_file, std::ios::binary);
  if (!in) throw io_error(where + ": cannot open the file (" + std::strerror(errno) + ")");
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw io_error(where + ": reading the file failed (" + std::strerror(errno) + ")");
  return stretto::io::read_skippipe_setting(text, where);
}

std::string fixed(double x, int digits = 2) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, x);
  return buffer;
}

std::string pad(std::string text, std::size_t width, bool left = false) {
  if (text.size() >= width) return text;
  return left ? text + std::string(width - text.size(), ' ') : std::string(width - text.size(), ' ') + text;
}

std::string path_text(const sp::path& p) {
  std::string out;
  for (const std::int32_t n : p) out += (out.empty() ? "" : " > ") + std::to_string(n);
  return out + " > " + std::to_string(p.front());
}

}  // namespace

void run_skippipe(const skippipe_arguments& args, std::ostream& out) {
  std::uint64_t seed = 0;
  {
    const char* end = args.seed.data() + args.seed.size();
    const auto [stop, error] = std::from_chars(args.seed.data(), end, seed);
    if (error != std::errc{} || stop != end || args.seed.empty())
      throw stretto::argument_error("--seed must be a whole number from 0 to 18446744073709551615 (got '" + args.seed + "')");
  }
  const double limit = parse_time_limit(args.time_limit);
  const sp::setting s = load(args, seed);
  sp::planner_options options;
  options.seed = seed;
  options.stop = stretto::plan::deadline::after(std::chrono::duration<double>(limit));
  // No up-front estimate: the search is bounded by its candidate budget, and the deadline stops it.
  const sp::plan_result plan =
      within_time_limit("skippipe planning", 0.0, limit, [&] { return sp::plan(s, options); });
  sp::validate_paths(s, plan.paths);
  const std::vector<sp::path> full = sp::full_pipeline_paths(s);
  const std::vector<sp::path> random = sp::random_skip_paths(s, seed);
  const sp::simulation full_run = sp::simulate(s, full);
  const sp::simulation random_run = sp::simulate(s, random);
  const double base = full_run.iteration_time;
  const std::string source = args.preset.empty() ? args.setting_file : "preset " + args.preset;
  std::string sizes;
  for (const auto& stage : s.stages) sizes += (sizes.empty() ? "" : ",") + std::to_string(stage.size());
  const double skip_ratio = 1.0 - static_cast<double>(s.path_length) / s.num_stages();

  struct row {
    const char* name;
    const sp::simulation* run;
    const std::vector<sp::path>* paths;
  };
  const row rows[] = {{"skippipe", &plan.run, &plan.paths}, {"full-pipeline", &full_run, &full}, {"random-skip", &random_run, &random}};

  if (!args.trace.empty()) {
    std::ostringstream text;
    stretto::io::write_skippipe_chrome_trace(text, s, plan.run, "skippipe plan, " + source + ", seed " + std::to_string(seed));
    write_file("--trace", args.trace, text.str());
  }
  if (!args.svg.empty()) {
    stretto::io::svg_options plan_options, full_options;
    plan_options.title = "SkipPipe plan on " + source + " (seed " + std::to_string(seed) + "): iteration " + fixed(plan.run.iteration_time);
    full_options.title = "full pipeline: iteration " + fixed(full_run.iteration_time);
    const std::string pictures[] = {stretto::io::skippipe_to_svg(s, plan.run, plan_options),
                                    stretto::io::skippipe_to_svg(s, full_run, full_options)};
    std::ostringstream text;
    stretto::io::write_svg_stack(text, pictures);
    write_file("--svg", args.svg, text.str());
  }

  if (args.json) {
    out.precision(17);
    out << "{\n  \"setting\": " << stretto::io::json_quote(source) << ",\n  \"seed\": " << seed << ",\n  \"nodes\": "
        << s.num_nodes() << ",\n  \"stages\": " << s.num_stages() << ",\n  \"microbatches\": " << s.num_microbatches()
        << ",\n  \"path_length\": " << s.path_length << ",\n  \"skip_ratio\": " << skip_ratio << ",\n  \"planner\": {\"candidates\": "
        << plan.expansions << ", \"simulated\": " << plan.solutions << ", \"makespan\": " << plan.makespan
        << ", \"collision_free\": " << (plan.collision_free ? "true" : "false") << ", \"exact\": " << (plan.exact ? "true" : "false")
        << "},\n  \"results\": [";
    for (std::size_t r = 0; r < 3; ++r) {
      const row& x = rows[r];
      out << (r > 0 ? "," : "") << "\n    {\"name\": \"" << x.name << "\", \"iteration_time\": " << x.run->iteration_time
          << ", \"ratio_to_full_pipeline\": " << x.run->iteration_time / base << ", \"forwards_per_node\": [";
      for (std::size_t n = 0; n < x.run->forwards.size(); ++n) out << (n > 0 ? ", " : "") << x.run->forwards[n];
      out << "], \"busy_per_node\": [";
      for (std::size_t n = 0; n < x.run->busy.size(); ++n) out << (n > 0 ? ", " : "") << x.run->busy[n];
      out << "], \"paths\": [";
      for (std::size_t j = 0; j < x.paths->size(); ++j) {
        out << (j > 0 ? ", " : "") << "[";
        for (std::size_t k = 0; k < (*x.paths)[j].size(); ++k) out << (k > 0 ? ", " : "") << (*x.paths)[j][k];
        out << "]";
      }
      out << "]}";
    }
    out << "\n  ]\n}\n";
    return;
  }

  out << "SkipPipe on " << source << " (seed " << seed << "): " << s.num_nodes() << " nodes, " << s.num_stages()
      << " stages (" << sizes << " nodes), " << s.num_microbatches() << " microbatches (" << s.microbatches
      << " per stage-0 node), memory " << s.memory << ", path length " << s.path_length << " of " << s.num_stages()
      << " (skip ratio " << fixed(100.0 * skip_ratio, 0) << " %)\n\n";
  out << "iteration time (simulated)\n";
  for (const row& x : rows)
    out << "  " << pad(x.name, 14, true) << pad(fixed(x.run->iteration_time), 10) << "   " << fixed(x.run->iteration_time / base, 3)
        << " x full pipeline\n";
  const row* shortest = &rows[0];
  for (const row& x : rows)
    if (x.run->iteration_time < shortest->run->iteration_time) shortest = &x;
  out << "  shortest: " << shortest->name << " (" << fixed(100.0 * (1.0 - shortest->run->iteration_time / base), 1)
      << " % shorter than the full pipeline)\n";
  out << "  planner: " << plan.expansions << " candidates, " << plan.solutions << " simulated, agent makespan "
      << fixed(plan.makespan) << ", TC2 "
      << (!s.collision_avoidance ? "off"
          : plan.collision_free  ? "held"
                                 : "dropped (no collision-free plan within the budget)")
      << "\n\n";
  out << "per-node load: forwards per iteration (busy time)\n";
  out << "  node  stage  " << pad("name", 16, true) << pad("skippipe", 16) << pad("full-pipeline", 16) << pad("random-skip", 16) << "\n";
  for (std::int32_t n = 0; n < s.num_nodes(); ++n) {
    const auto k = static_cast<std::size_t>(n);
    out << "  " << pad(std::to_string(n), 4) << "  " << pad(std::to_string(s.stage_of(n)), 5) << "  "
        << pad(s.names.empty() ? "-" : s.names[k], 16, true);
    for (const row& x : rows)
      out << pad(std::to_string(x.run->forwards[k]) + " (" + fixed(x.run->busy[k], 1) + ")", 16);
    out << "\n";
  }
  out << "\nskippipe paths (nodes forward, back to the stage-0 node for the loss)\n";
  for (std::size_t j = 0; j < plan.paths.size(); ++j) {
    std::string stages;
    for (const std::int32_t n : plan.paths[j]) stages += (stages.empty() ? "" : ",") + std::to_string(s.stage_of(n));
    out << "  microbatch " << pad(std::to_string(j), 3) << ": " << pad(path_text(plan.paths[j]), 22, true) << "  stages " << stages << "\n";
  }
}

}  // namespace stretto_plan
