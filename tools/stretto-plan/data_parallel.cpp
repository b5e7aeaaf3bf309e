#include "data_parallel.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <iomanip>
#include <limits>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <stretto/core/errors.hpp>

#include "format.hpp"

namespace stretto_plan {

namespace {

double amount(const std::string& option, const std::string& text) {
  double value = 0.0;
  const char* begin = text.data() + (text.size() > 1 && text.front() == '+' ? 1 : 0);
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(begin, end, value);
  if (text.empty() || error != std::errc{} || stop != end || !(value >= 0.0) ||
      value > std::numeric_limits<double>::max())
    throw stretto::argument_error(option + " must be a finite number >= 0 (got '" + text + "')");
  return value == 0.0 ? 0.0 : value;
}

template <class Costs>
stretto::sim::data_parallel_simulation run(const stretto::schedule& s, const Costs& costs,
                                           const stretto::sim::data_parallel& dp) {
  return stretto::sim::simulate_data_parallel(s, costs, dp);
}

}  // namespace

void add_data_parallel_options(CLI::App& command, data_parallel_arguments& args) {
  command
      .add_option("--data-parallel", args.groups,
                  "D: data-parallel groups (pipeline replicas, ranks = D x p); each stage's gradients are all-reduced "
                  "over its D copies (ring) after its last W or BW, overlapped with the compute still running; the "
                  "report adds the step time, bubble rate and exposed reduction time")
      ->type_name("D");
  command
      .add_option("--reduction-bytes", args.bytes,
                  "Bytes of one stage's parameter gradients, all-reduced per step: one number for every stage or one "
                  "per stage, comma-separated (with --data-parallel)")
      ->type_name("B[,B...]");
  command
      .add_option("--reduction-latency", args.latency,
                  "Latency of one ring step of the all-reduce, in the time unit (>= 0; 2(D-1) steps per all-reduce)")
      ->type_name("A");
  command
      .add_option("--reduction-bandwidth", args.bandwidth,
                  "Bandwidth of the all-reduce links, bytes per time unit (> 0 with --reduction-bytes)")
      ->type_name("W");
}

std::optional<stretto::sim::data_parallel> to_data_parallel(const data_parallel_arguments& args, std::int32_t stages) {
  if (args.groups.empty()) {
    for (const auto& [option, text] : {std::pair{"--reduction-bytes", &args.bytes}, std::pair{"--reduction-latency", &args.latency},
                                       std::pair{"--reduction-bandwidth", &args.bandwidth}})
      if (!text->empty())
        throw stretto::argument_error(std::string(option) + " applies with --data-parallel D only; give D (1 = no data parallelism)");
    return std::nullopt;
  }
  stretto::sim::data_parallel dp;
  {
    std::int32_t d = 0;
    const char* end = args.groups.data() + args.groups.size();
    const auto [stop, error] = std::from_chars(args.groups.data(), end, d);
    if (error != std::errc{} || stop != end || d < 1)
      throw stretto::argument_error("--data-parallel must be an integer from 1 to " +
                                    std::to_string(std::numeric_limits<std::int32_t>::max()) + " (got '" + args.groups + "')");
    dp.groups = d;
  }
  if (!args.bytes.empty()) {
    std::size_t pos = 0;
    while (pos <= args.bytes.size()) {
      const std::size_t comma = std::min(args.bytes.find(',', pos), args.bytes.size());
      dp.gradient_bytes.push_back(amount("--reduction-bytes", args.bytes.substr(pos, comma - pos)));
      pos = comma + 1;
    }
    if (dp.gradient_bytes.size() != 1 && dp.gradient_bytes.size() != static_cast<std::size_t>(stages))
      throw stretto::argument_error("--reduction-bytes must give one number for every stage or one per stage (" +
                                    std::to_string(stages) + " stages), got " + std::to_string(dp.gradient_bytes.size()));
  }
  if (!args.latency.empty()) dp.latency = amount("--reduction-latency", args.latency);
  if (!args.bandwidth.empty()) dp.bandwidth = amount("--reduction-bandwidth", args.bandwidth);
  bool any_bytes = false;
  for (double b : dp.gradient_bytes) any_bytes = any_bytes || b > 0.0;
  if (any_bytes && !(dp.bandwidth > 0.0))
    throw stretto::argument_error("--reduction-bytes needs --reduction-bandwidth W > 0 (bytes per time unit) to price the transfer");
  if (dp.groups > 1 && !any_bytes && !(dp.latency > 0.0))
    throw stretto::argument_error("--data-parallel " + args.groups +
                                  " needs the reduction's cost: --reduction-bytes with --reduction-bandwidth, and/or "
                                  "--reduction-latency");
  dp.check(stages);
  return dp;
}

void write_data_parallel(std::ostream& out, const simulate_request& request, const simulate_result& result,
                         const stretto::sim::data_parallel& dp, const std::string* json_report) {
  const stretto::sim::data_parallel_simulation run_dp =
      request.stage_costs ? run(result.schedule, *request.stage_costs, dp) : run(result.schedule, request.costs, dp);
  double exposed_sum = 0.0;
  for (const auto& red : run_dp.reductions) exposed_sum += red.exposed;
  const double hidden = run_dp.reduction_time > 0.0 ? (run_dp.reduction_time - exposed_sum) / run_dp.reduction_time : 1.0;
  const std::int32_t members = dp.groups * result.schedule.num_replicas();
  if (json_report) {
    nlohmann::ordered_json report = nlohmann::ordered_json::parse(*json_report);
    nlohmann::ordered_json stages = nlohmann::ordered_json::array();
    for (const auto& red : run_dp.reductions)
      stages.push_back({{"stage", red.stage}, {"ranks", red.ranks}, {"ready", red.ready}, {"start", red.start},
                        {"end", red.end}, {"exposed", red.exposed}});
    report["data_parallel"] = {{"groups", dp.groups},
                               {"ring_members", members},
                               {"reduction_bytes", dp.gradient_bytes},
                               {"reduction_latency", dp.latency},
                               {"reduction_bandwidth", dp.bandwidth},
                               {"step_time", run_dp.step_time},
                               {"bubble_rate", run_dp.bubble_rate},
                               {"exposed_reduction", run_dp.exposed_reduction},
                               {"reduction_time", run_dp.reduction_time},
                               {"hidden_fraction", hidden},
                               {"stages", std::move(stages)}};
    out << report.dump(2) << "\n";
    return;
  }
  const auto label = [&out](std::string_view name) -> std::ostream& {
    return out << std::left << std::setw(19) << name << std::right;
  };
  out << "\n";
  label("data parallel") << dp.groups << " groups x " << request.shape.num_ranks << " ranks = "
                         << static_cast<std::int64_t>(dp.groups) * request.shape.num_ranks
                         << " ranks; ring all-reduce of " << members << " members per stage after its last W/BW\n";
  label("step time") << format_number(run_dp.step_time) << "  (pipeline alone "
                     << format_number(result.run.step_time) << ")\n";
  label("bubble rate") << format_fixed(run_dp.bubble_rate, 4) << "  (pipeline alone "
                       << format_fixed(result.run.metrics.bubble_rate, 4) << ")\n";
  label("exposed reduction") << format_number(run_dp.exposed_reduction) << "  (of "
                             << format_number(run_dp.reduction_time) << " reducing, summed over stages; "
                             << format_fixed(100.0 * hidden, 1) << " % hidden behind compute)\n";
  out << "\n"
      << std::setw(6) << "stage" << std::setw(10) << "ranks" << std::setw(12) << "ready" << std::setw(12) << "start"
      << std::setw(12) << "end" << std::setw(12) << "exposed" << "\n";
  for (const auto& red : run_dp.reductions) {
    std::string ranks;
    for (std::int32_t r : red.ranks) ranks += (ranks.empty() ? "" : ",") + std::to_string(r);
    out << std::setw(6) << red.stage << std::setw(10) << ranks << std::setw(12) << format_number(red.ready)
        << std::setw(12) << format_number(red.start) << std::setw(12) << format_number(red.end) << std::setw(12)
        << format_number(red.exposed) << "\n";
  }
}

}  // namespace stretto_plan
