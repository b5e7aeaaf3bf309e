// Fashion-MNIST trained pipeline-parallel: Stretto's main demo.
//
// An MLP (784-512-512-256-256-128-128-64-10 by default) is cut into one stage per MPI rank (two
// for looped and V-shaped schedules), by cost: stretto::partition over the layers' flops. A schedule policy
// generates each rank's op list; Stretto validates it, simulates it, and the Kokkos executor runs
// it, moving activations and gradients between ranks with MPI:
//
//   rank 0  F0 F1 F2 F3 B0 F4 B1 ...        (1F1B, p = 4)
//   rank 1     F0 F1 F2 B0 F3 B1 ...
//   rank 2        F0 F1 B0 F2 B1 ...
//   rank 3           F0 B0 F1 B1 ...
//
// Per epoch it prints the loss, the test accuracy, samples/s, and the bubble rate measured from
// the executor's own timeline (idle = span − compute, where a wait for an input is idle) beside
// the one simulated from the measured per-stage compute times.
//
//   scripts/launch.sh -n 4 build/examples/fashion_mnist/stretto.example.fashion_mnist --schedule zb-h1
//
// With --schedule auto it runs ZB-H1 for --profile-steps steps while measuring each stage's F, B and
// W times, then re-plans with the Zero Bubble scheduler under --memory-limit (profile-guided).
//
// The training loop is the step API's: one stretto::training::pipeline owns the process grid, the
// communicator, the executor and the gradient reduction, and trains one global batch per
// step(batch), checking the loss and gradients for non-finite values (--on-nonfinite).

#include <mpi.h>

#include <CLI/CLI.hpp>
#include <Kokkos_Core.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <stretto/kokkos/executor.hpp>
#include <stretto/mpi/abort.hpp>
#include <stretto/mpi/agreement.hpp>
#include <stretto/mpi/collectives.hpp>
#include <stretto/mpi/communicator.hpp>
#include <stretto/training/device.hpp>
#include <stretto/training/pipeline.hpp>
#include <stretto/io/chrome_trace.hpp>
#include <stretto/io/svg.hpp>
#include <stretto/stretto.hpp>

#include "activation_memory.hpp"
#include "checkpoint.hpp"
#include "idx.hpp"
#include "mlp_model.hpp"
#include "reliability.hpp"
#include "skippipe_run.hpp"
#include "progress.hpp"

namespace {

using model_type = stretto::examples::mlp_model<double>;
using matrix_type = model_type::matrix_type;
using clock_type = std::chrono::steady_clock;

struct options {
  std::string schedule = "1f1b";
  std::int32_t microbatches = 8;
  std::int64_t batch_size = 128;
  std::int32_t epochs = 2;
  double lr = 0.05;
  double momentum = 0.9;
  std::uint64_t seed = 1;
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::int64_t train_samples = 0;  // 0: all
  std::string hidden = "512,512,256,256,128,128,64";  // 8 layers: 2 chunks on each of 4 ranks
  std::int32_t chunks = 0;                            // 0: the policy's default
  double timeout = 300.0;
  double memory_limit = 0.0;        // --schedule auto: activation memory per rank in M_B; 0: 2p (ZB-2p)
  std::int64_t profile_steps = 10;  // --schedule auto: steps of ZB-H1 measured before re-planning
  std::string trace_file;           // --trace: Chrome trace / Perfetto JSON of one measured step
  std::string timeline_file;        // --timeline: SVG of one measured step
  std::int64_t trace_step = 5;      // --trace-step: which step of epoch 1 (clamped to the last)
  std::int32_t data_parallel = 1;   // --data-parallel: copies of the pipeline (ranks = D x pipeline ranks)
  stretto::examples::reliability_options reliability;  // --on-nonfinite and the fault-test hooks
  stretto::examples::checkpoint_flags checkpoint;      // --save, --resume
};

// Once the ranks depend on each other (once training starts), an error is one rank's
// own: it is reported by that rank and ends the job (stretto::mpi::run_or_abort), not treated as
// a usage error that every rank found.
bool ranks_started = false;

// Every option, as the start-up agreement compares them (--data may differ between nodes).
std::vector<stretto::mpi::agreement_field> option_fields(const options& o, const std::string& parse_error) {
  const auto text = [](auto v) {
    if constexpr (std::is_floating_point_v<decltype(v)>) return stretto::examples::number_text(v);
    else return stretto::detail::cat(v);
  };
  return {{"command line", parse_error.empty() ? "valid" : "invalid: " + parse_error},
          {"schedule", o.schedule}, {"microbatches", text(o.microbatches)}, {"batch-size", text(o.batch_size)},
          {"epochs", text(o.epochs)}, {"lr", text(o.lr)}, {"momentum", text(o.momentum)}, {"seed", text(o.seed)},
          {"train-samples", text(o.train_samples)}, {"hidden", o.hidden}, {"chunks", text(o.chunks)},
          {"timeout", text(o.timeout)}, {"memory-limit", text(o.memory_limit)}, {"profile-steps", text(o.profile_steps)},
          {"trace-step", text(o.trace_step)}, {"on-nonfinite", o.reliability.on_nonfinite},
          {"data-parallel", text(o.data_parallel)}, {"save", o.checkpoint.save}, {"resume", o.checkpoint.resume}};
}

// An error that every rank detected identically (arguments, shapes): printed once, exit 2.
struct usage_error {
  std::string what;
};

std::vector<std::int64_t> parse_widths(const std::string& hidden) {
  std::vector<std::int64_t> widths{784};
  std::stringstream in(hidden);
  for (std::string item; std::getline(in, item, ',');) {
    char* end = nullptr;
    const long long w = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || w < 1)
      throw usage_error{"--hidden must be a comma-separated list of positive layer widths, got '" + hidden + "'"};
    widths.push_back(w);
  }
  widths.push_back(10);
  return widths;
}

// Samples of an IDX image file as doubles, normalised with Fashion-MNIST's mean and deviation.
void fill_images(const stretto::examples::idx_array& images, const std::vector<std::int64_t>& index,
                 std::int64_t first, const matrix_type& out) {
  auto host = Kokkos::create_mirror_view(out);
  const std::int64_t pixels = static_cast<std::int64_t>(out.extent(1));
  for (std::size_t i = 0; i < out.extent(0); ++i) {
    const std::uint8_t* px = images.values.data() + index[static_cast<std::size_t>(first) + i] * pixels;
    for (std::int64_t j = 0; j < pixels; ++j) host(i, j) = (px[j] / 255.0 - 0.2860) / 0.3530;
  }
  Kokkos::deep_copy(out, host);
}

void fill_labels(const stretto::examples::idx_array& labels, const std::vector<std::int64_t>& index,
                 std::int64_t first, const model_type::label_view& out) {
  auto host = Kokkos::create_mirror_view(out);
  for (std::size_t i = 0; i < out.extent(0); ++i)
    host(i) = labels.values[static_cast<std::size_t>(index[static_cast<std::size_t>(first) + i])];
  Kokkos::deep_copy(out, host);
}

// Per-stage sums of measured op durations, by kind (F, B, W, BW), and their counts.
struct op_time_sums {
  std::vector<double> seconds, count;  // [stage * 4 + kind]
  explicit op_time_sums(std::int32_t stages) : seconds(4 * static_cast<std::size_t>(stages)), count(seconds.size()) {}
  void add(const stretto::sim::op_timing& t) {
    const auto k = static_cast<std::size_t>(t.what.stage) * 4 + static_cast<std::size_t>(t.what.kind);
    seconds[k] += t.end - t.start;
    count[k] += 1;
  }
  double mean(std::int32_t stage, stretto::op_kind kind) const {
    const auto k = static_cast<std::size_t>(stage) * 4 + static_cast<std::size_t>(kind);
    return count[k] > 0 ? seconds[k] / count[k] : 0.0;
  }
  // The mean op times per stage as a cost model (a fused BW becomes B with W = 0).
  stretto::sim::table_costs costs() const {
    stretto::sim::table_costs out;
    for (std::int32_t s = 0; s < static_cast<std::int32_t>(seconds.size() / 4); ++s) {
      const double bw = mean(s, stretto::op_kind::backward);
      out.forward.push_back(mean(s, stretto::op_kind::forward));
      out.backward_input.push_back(bw > 0 ? bw : mean(s, stretto::op_kind::backward_input));
      out.backward_weight.push_back(bw > 0 ? 0.0 : mean(s, stretto::op_kind::backward_weight));
    }
    return out;
  }
};

// Gathers every rank's measured op intervals of one step on rank 0 and writes them, with the
// simulation of the same schedule under that step's own mean op times beside them, as a Chrome
// trace (--trace) and an SVG picture (--timeline). Collective over `pipeline` (one copy of the
// pipeline: its ranks by pipeline rank); only `writer`'s rank 0 writes (with --data-parallel D,
// copy 0 draws its pipeline and the other copies gather theirs for nothing).
void write_step_pictures(const std::vector<stretto::sim::op_timing>& mine, const stretto::schedule& plan,
                         std::int64_t step, MPI_Comm pipeline, bool writer, std::int32_t copies, const options& opt) {
  int rank = 0, size = 0;
  MPI_Comm_rank(pipeline, &rank);
  MPI_Comm_size(pipeline, &size);
  const stretto::mpi::collective_options bounded{std::chrono::duration<double>(opt.timeout)};
  std::vector<double> packed;  // per op: kind, stage, microbatch, overlapped, start, end
  for (const auto& t : mine)
    packed.insert(packed.end(), {static_cast<double>(t.what.kind), static_cast<double>(t.what.stage),
                                 static_cast<double>(t.what.microbatch), t.what.overlapped ? 1.0 : 0.0, t.start, t.end});
  int count = static_cast<int>(packed.size());
  std::vector<int> counts(static_cast<std::size_t>(size)), offsets(static_cast<std::size_t>(size));
  stretto::mpi::gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, pipeline, bounded, "--trace: op counts");
  std::vector<double> all;
  if (rank == 0) {
    std::partial_sum(counts.begin(), counts.end() - 1, offsets.begin() + 1);
    all.resize(static_cast<std::size_t>(offsets.back() + counts.back()));
  }
  stretto::mpi::gatherv(packed.data(), count, MPI_DOUBLE, all.data(), counts.data(), offsets.data(), MPI_DOUBLE, 0,
                        pipeline, bounded, "--trace: op timings");
  if (rank != 0 || !writer) return;
  std::vector<std::vector<stretto::sim::op_timing>> lists(static_cast<std::size_t>(size));
  op_time_sums sums(plan.num_stages());
  for (int r = 0; r < size; ++r)
    for (int k = offsets[static_cast<std::size_t>(r)]; k < offsets[static_cast<std::size_t>(r)] + counts[static_cast<std::size_t>(r)]; k += 6) {
      const double* v = &all[static_cast<std::size_t>(k)];
      stretto::sim::op_timing t{{static_cast<stretto::op_kind>(static_cast<int>(v[0])), static_cast<std::int32_t>(v[1]),
                                 static_cast<std::int32_t>(v[2]), v[3] != 0.0},
                                1e3 * v[4], 1e3 * v[5]};  // in ms
      lists[static_cast<std::size_t>(r)].push_back(t);
      sums.add(t);
    }
  const stretto::sim::timeline measured{std::span<const std::vector<stretto::sim::op_timing>>(lists)};
  const stretto::sim::timeline simulated = stretto::sim::simulate(plan, sums.costs()).events;  // this step's mean op times
  const std::string what = opt.schedule + ", step " + std::to_string(step) + " of epoch 1" +
                           (copies > 1 ? ", copy 0 of " + std::to_string(copies) : "");
  stretto::io::trace_context measured_context = stretto::io::context_of(plan, "measured " + what);
  measured_context.microseconds_per_unit = 1e3;  // the timelines are in ms
  stretto::io::trace_context simulated_context = measured_context;
  simulated_context.name = "simulated " + what;
  auto open = [](const std::string& path) {
    std::ofstream out(path);
    if (!out) throw usage_error{"cannot write " + path};
    return out;
  };
  if (!opt.trace_file.empty()) {
    const std::pair<const stretto::sim::timeline*, stretto::io::trace_context> parts[] = {
        {&measured, measured_context}, {&simulated, simulated_context}};
    std::ofstream out = open(opt.trace_file);
    stretto::io::write_chrome_traces(out, parts);
    if (!out.flush()) throw usage_error{"cannot write " + opt.trace_file};
  }
  if (!opt.timeline_file.empty()) {
    stretto::io::svg_options measured_options, simulated_options;
    measured_options.title = "measured: " + what;
    simulated_options.title = "simulated from the same step's op times";
    measured_options.time_unit = simulated_options.time_unit = "ms";
    const std::string pictures[] = {stretto::io::to_svg(measured, measured_context, measured_options),
                                    stretto::io::to_svg(simulated, simulated_context, simulated_options)};
    std::ofstream out = open(opt.timeline_file);
    stretto::io::write_svg_stack(out, pictures);
    if (!out.flush()) throw usage_error{"cannot write " + opt.timeline_file};
  }
  std::printf("step %lld of epoch 1 written:%s%s%s%s\n", static_cast<long long>(step),
              opt.trace_file.empty() ? "" : " trace ", opt.trace_file.c_str(), opt.timeline_file.empty() ? "" : " timeline ",
              opt.timeline_file.c_str());
}

// Profile-guided re-planning (--schedule auto), as the Zero Bubble runtime does: the op times this
// rank measured, summed over ranks on rank 0 and broadcast so that every rank plans from the same
// numbers, become per-stage costs; the automatic scheduler plans from them (deterministically, so
// every rank gets the same schedule).
stretto::schedule replan(stretto::sim::op_time_profile& profile, const stretto::pipeline_shape& shape,
                         double memory_limit, int rank, const stretto::mpi::collective_options& bounded) {
  for (std::span<double> values : {profile.sums(), profile.counts()}) {
    std::vector<double> total(values.size(), 0.0);
    stretto::mpi::reduce(values.data(), total.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM, 0,
                         MPI_COMM_WORLD, bounded, "--schedule auto: summed op times");
    if (rank == 0) std::copy(total.begin(), total.end(), values.begin());
    stretto::mpi::broadcast(values.data(), static_cast<int>(values.size()), MPI_DOUBLE, 0, MPI_COMM_WORLD, bounded,
                            "--schedule auto: summed op times");
  }
  return stretto::plan::auto_schedule(shape, profile.costs(), memory_limit);
}

int train(const options& opt, int rank, int size) {
  const std::vector<std::int64_t> widths = parse_widths(opt.hidden);
  if (opt.microbatches < 1) throw usage_error{"--microbatches must be at least 1"};
  if (opt.batch_size < 1) throw usage_error{"--batch-size must be at least 1"};
  if (opt.batch_size % opt.microbatches != 0)
    throw usage_error{stretto::detail::cat("--batch-size ", opt.batch_size, " is not divisible by --microbatches ",
                                           opt.microbatches, "; use a batch size that is a multiple of ",
                                           opt.microbatches)};
  if (opt.epochs < 1) throw usage_error{"--epochs must be at least 1"};
  // Data parallelism: D copies of a pipeline of pp ranks, each on 1/D of every global batch.
  const std::int32_t dp = opt.data_parallel;
  if (dp < 1 || size % dp != 0)
    throw usage_error{stretto::detail::cat("--data-parallel ", dp, " does not divide the ", size,
                                           " ranks (ranks = data-parallel copies x pipeline ranks); use one of ",
                                           stretto::mpi::detail::divisors_text(size))};
  if (opt.batch_size % (static_cast<std::int64_t>(dp) * opt.microbatches) != 0)
    throw usage_error{stretto::detail::cat("--batch-size ", opt.batch_size, " is not divisible by --data-parallel ", dp,
                                           " x --microbatches ", opt.microbatches, "; use a multiple of ",
                                           static_cast<std::int64_t>(dp) * opt.microbatches)};
  const std::int32_t pp = size / dp;
  if (const std::string bad = stretto::examples::check_numbers(opt.timeout, opt.lr, opt.momentum, opt.memory_limit,
                                                                 opt.reliability.stall_ms);
      !bad.empty())
    throw usage_error{bad};
  const stretto::mpi::collective_options bounded{std::chrono::duration<double>(opt.timeout),
                                                 stretto::mpi::timeout_action::abort};
  const auto num_layers = static_cast<std::int32_t>(widths.size()) - 1;
  if (opt.chunks < 0) throw usage_error{"--chunks must be at least 1 (or 0 for the schedule's default)"};
  std::int32_t chunks = opt.chunks;
  if (chunks == 0)
    for (const auto& policy : stretto::policies::all_policies)
      if (policy.name == opt.schedule) chunks = policy.default_chunks;
  chunks = chunks == 0 ? 1 : chunks;
  if (pp * chunks > num_layers)
    throw usage_error{stretto::detail::cat("the model has ", num_layers, " layers but the job has ", pp,
                                           " ranks x ", chunks, " chunks = ", pp * chunks,
                                           " stages; every stage needs at least one layer, so run at most ",
                                           num_layers / chunks, " ranks or add --hidden layers")};
  const std::string files[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
  for (const auto& f : files)
    if (!std::filesystem::exists(std::filesystem::path(opt.data) / f))
      throw usage_error{"Fashion-MNIST not found: " + (std::filesystem::path(opt.data) / f).string() +
                        " is missing (Debian: apt-get install dataset-fashion-mnist, or pass --data DIR)"};

  const stretto::pipeline_shape shape{pp, opt.microbatches, chunks};
  // --schedule auto starts with ZB-H1 (its split backward measures T_B and T_W apart), then re-plans.
  const bool automatic = opt.schedule == "auto";
  const double memory_limit = opt.memory_limit > 0.0 ? opt.memory_limit : 2.0 * pp;
  if (automatic && memory_limit < 1.0)
    throw usage_error{"--memory-limit must be at least 1 (one microbatch's activations, M_B)"};
  if (automatic && opt.profile_steps < 1) throw usage_error{"--profile-steps must be at least 1"};
  if (opt.trace_step < 0) throw usage_error{"--trace-step must be at least 0 (a step of epoch 1)"};
  stretto::schedule plan = stretto::policies::make_schedule(automatic ? "zb-h1" : opt.schedule, shape);  // throws on a bad shape
  const std::int32_t stages = plan.num_stages();

  // Stages by cost, not by layer count: the layers' flops (model_type::layer_flops) cut into
  // `stages` contiguous stages with the slowest as fast as possible.
  std::vector<double> layer_costs;
  for (std::int32_t l = 0; l < num_layers; ++l) layer_costs.push_back(model_type::layer_flops(widths, l));
  const stretto::partition_result cut = stretto::partition(layer_costs, stages);
  {
    // What every rank derived from the options: the same only if the ranks run the same build.
    std::string ops_text;
    for (std::int32_t r = 0; r < shape.num_ranks; ++r)
      for (const stretto::op& o : plan.ops(r)) ops_text += stretto::to_string(o) + ' ';
    std::string costs_text, boundaries_text, widths_text;
    for (double c : layer_costs) costs_text += stretto::examples::number_text(c) + ' ';
    for (auto b : cut.boundaries) boundaries_text += stretto::detail::cat(b, ' ');
    for (auto w : widths) widths_text += stretto::detail::cat(w, ' ');
    const std::vector<stretto::mpi::agreement_field> derived{
        {"schedule op lists", stretto::detail::cat(automatic ? "zb-h1" : opt.schedule, " #",
                                                   stretto::mpi::fingerprint_text(ops_text))},
        {"shape", stretto::detail::cat(shape.num_ranks, "x", shape.num_microbatches, "x", shape.num_chunks)},
        {"cost model", stretto::mpi::fingerprint_text(costs_text)},
        {"stage boundaries", boundaries_text},
        {"model dimensions", widths_text},
        {"scalar type", std::is_same_v<matrix_type::value_type, double> ? "double" : "float"}};
    if (!opt.reliability.skip_agreement) stretto::mpi::require_agreement(MPI_COMM_WORLD, derived, bounded, "fashion_mnist");
  }

  // The step API: the process grid (pipeline-major: world = d x pp + r), this rank's model, the
  // pipeline's communicator, the executor and each stage's gradient all-reduce over its copies (the
  // data-parallel copies, and both replicas of a bidirectional schedule), started after the
  // stage's last W or BW. Every wait is bounded by --timeout.
  const std::chrono::duration<double> timeout(opt.timeout);
  stretto::training::pipeline_options pipeline_options;
  pipeline_options.grid.data_parallel = dp;
  pipeline_options.grid.timeout = timeout;
  pipeline_options.communicator = {timeout, stretto::mpi::timeout_action::abort};
  pipeline_options.communicator.setup_timeout = timeout;  // the ranks have just agreed: arrival skew is small
  pipeline_options.reduction = {timeout, stretto::mpi::timeout_action::abort};
  pipeline_options.on_nonfinite = opt.reliability.on_nonfinite == "skip" ? stretto::training::nonfinite_action::skip_step
                                                                        : stretto::training::nonfinite_action::throw_error;
  pipeline_options.align_steps = true;  // the measured bubble rate needs every rank's step from one origin
  pipeline_options.zero_gradients = false;  // mlp_model::apply_gradients zeroes them as it reads them
  stretto::training::pipeline<model_type> pipe(
      MPI_COMM_WORLD, plan,
      [&](std::vector<std::int32_t> local) { return model_type(widths, cut.boundaries, std::move(local), opt.seed); },
      pipeline_options);
  model_type& model = pipe.model();
  const stretto::mpi::process_grid& grid = pipe.grid();
  const std::vector<std::int32_t> local_stages = plan.stages_on_rank(grid.pipeline_rank());
  // The ranks that feed images (first stage) and compute the loss (last stage): with two model
  // replicas (chimera, bitpipe) each of those stages sits on two ranks.
  const bool first_rank = local_stages.front() == 0;
  const bool last_rank = local_stages.back() == stages - 1;
  model.set_memory_probe([&pipe] { return pipe.executor().pool().bytes_in_use(); });  // peak activation bytes
  stretto::examples::fault_observer faults(opt.reliability, rank, [&model](std::int32_t s) {
    model.inject_nan_gradient(s);
  });  // test hooks; nothing unless asked
  pipe.add_observer(faults);
  std::int64_t global_step = 0, skipped_steps = 0;
  std::optional<stretto::sim::op_time_profile> profile;  // while --schedule auto measures
  if (automatic) profile.emplace(stages);

  // Each rank reads only what its stages need: images on stage 0's, labels on the last stage's.
  const auto path = [&](int i) { return (std::filesystem::path(opt.data) / files[i]).string(); };
  stretto::examples::idx_array train_images, train_labels, test_images, test_labels;
  if (first_rank) {
    train_images = stretto::examples::read_idx(path(0));
    test_images = stretto::examples::read_idx(path(2));
  }
  if (last_rank) {
    train_labels = stretto::examples::read_idx(path(1));
    test_labels = stretto::examples::read_idx(path(3));
  }
  std::int64_t train_size = 60000, test_size = 10000;
  if (opt.train_samples > 0) train_size = std::min(train_size, opt.train_samples);
  const std::int64_t steps = train_size / opt.batch_size;
  if (steps < 1) throw usage_error{"--train-samples is smaller than one batch"};

  if (rank == 0) {
    std::string model_text;
    for (auto w : widths) model_text += (model_text.empty() ? "" : "-") + std::to_string(w);
    std::string stage_text;
    double total_cost = 0.0;
    for (double c : layer_costs) total_cost += c;
    for (std::int32_t s = 0; s < stages; ++s) {
      double c = 0.0;
      for (std::int32_t l = cut.first_layer(s); l < cut.first_layer(s + 1); ++l) c += layer_costs[static_cast<std::size_t>(l)];
      stage_text += stretto::detail::cat(s == 0 ? "" : " ", "[", cut.first_layer(s), ",", cut.first_layer(s + 1), ")");
      stage_text += " " + std::to_string(static_cast<int>(100.0 * c / total_cost + 0.5)) + "%";
    }
    std::printf("fashion_mnist: %d ranks x %d chunks, schedule %s, %d microbatches of %lld, model %s (%d layers), %lld steps/epoch\n"
                "stages by flops: %s\n",
                size, chunks, opt.schedule.c_str(), opt.microbatches, static_cast<long long>(opt.batch_size / dp / opt.microbatches),
                model_text.c_str(), num_layers, static_cast<long long>(steps), stage_text.c_str());
    if (dp > 1)
      std::printf("data parallel: %d copies of a %d-rank pipeline (rank = copy x %d + pipeline rank), %lld samples each per step\n",
                  dp, pp, pp, static_cast<long long>(opt.batch_size / dp));
    std::fflush(stdout);
  }

  // The global batch: the step API gives this copy its rows [copy_first, copy_last) of it, so
  // only those are read, images on the first stage's ranks, labels on the last stage's.
  const auto [copy_first, copy_last] = pipe.slice(opt.batch_size);
  const model_type::batch_data batch{matrix_type("batch_inputs", first_rank ? opt.batch_size : 0, 784),
                                     model_type::label_view("batch_labels", opt.batch_size)};
  const auto copy_rows = Kokkos::make_pair(copy_first, copy_last);
  std::vector<std::int64_t> order(static_cast<std::size_t>(60000));
  const bool tracing = !opt.trace_file.empty() || !opt.timeline_file.empty();
  const std::int64_t traced_step = std::min<std::int64_t>(opt.trace_step, steps - 1);
  std::vector<stretto::sim::op_timing> traced_ops;  // this rank's ops of that step
  stretto::schedule traced_plan;                     // the schedule it ran (auto re-plans)

  int nodes = 1;  // the nodes the job spans: distinct processor names over the ranks
  {
    std::array<char, MPI_MAX_PROCESSOR_NAME> name{};
    int length = 0;
    MPI_Get_processor_name(name.data(), &length);
    std::vector<char> names(static_cast<std::size_t>(size) * name.size());
    stretto::mpi::allgather(name.data(), static_cast<int>(name.size()), MPI_CHAR, names.data(),
                            static_cast<int>(name.size()), MPI_CHAR, MPI_COMM_WORLD, bounded, "the nodes' names");
    std::set<std::string> distinct;
    for (int r = 0; r < size; ++r) distinct.emplace(names.data() + static_cast<std::size_t>(r) * name.size());
    nodes = static_cast<int>(distinct.size());
  }
  // --resume: the checkpoint is read (or refused, on every rank alike) before the ranks depend on each other.
  const auto checkpoint_options = stretto::examples::demo_checkpoint_options<matrix_type::value_type>(
      opt.schedule, widths, opt.timeout);
  std::int32_t first_epoch = 1;
  if (!opt.checkpoint.resume.empty()) {
    try {
      const auto c = stretto::examples::resume_demo(opt.checkpoint, grid, plan, model, checkpoint_options);
      first_epoch = c.epoch + 1, global_step = c.step, skipped_steps = c.skipped;
    } catch (const stretto::io::checkpoint_error& e) {
      throw usage_error{e.what()};
    }
  }
  ranks_started = true;
  stretto::examples::progress_meter progress(rank == 0, opt.epochs, steps, opt.batch_size);  // on stderr
  for (std::int32_t epoch = first_epoch; epoch <= opt.epochs; ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(opt.seed * 7919 + static_cast<std::uint64_t>(epoch)));
    model.set_training(true);
    double loss_sum = 0.0;
    op_time_sums sums(stages);
    double exposed_reduction = 0.0;  // seconds this rank waited for its gradient all-reduces
    std::vector<double> windows;  // per step: this rank's last compute end since the step's origin, busy
    stretto::mpi::barrier(MPI_COMM_WORLD, bounded, "start of an epoch");
    const auto epoch_start = clock_type::now();
    progress.begin_epoch(epoch);
    for (std::int64_t step = 0; step < steps; ++step) {
      const std::int64_t first_sample = step * opt.batch_size + copy_first;
      if (first_rank) fill_images(train_images, order, first_sample, Kokkos::subview(batch.inputs, copy_rows, Kokkos::ALL));
      if (last_rank) fill_labels(train_labels, order, first_sample, Kokkos::subview(batch.labels, copy_rows));
      faults.set_step(global_step++);
      // One optimizer step: SGD with momentum on each local stage, with the mean gradients. A
      // non-finite loss or gradient is found in the step where it appears: skipped on every rank
      // (--on-nonfinite skip), or reported by the rank that found its origin (abort).
      const auto where = [&] { return stretto::detail::cat("step ", step + 1, " of epoch ", epoch); };
      stretto::training::step_result result;
      try {
        result = pipe.step(batch, [&](std::int32_t s) { model.apply_gradients(s, opt.lr, opt.momentum); });
      } catch (const stretto::training::nonfinite_error& e) {
        if (e.origin() == rank)
          throw std::runtime_error(stretto::detail::cat(e.finding(), " in ", where(),
                                                        " (--on-nonfinite skip skips such steps; a smaller --lr may help)"));
        std::this_thread::sleep_for(std::chrono::seconds(10));  // rank e.origin()'s abort ends this process first
        throw std::runtime_error(stretto::detail::cat("rank ", e.origin(), " found a non-finite value in ", where()));
      }
      const stretto::kokkos::step_record& record = *result.record;
      exposed_reduction += result.exposed_reduction;
      if (result.applied) {
        loss_sum += result.local_loss;
      } else {
        ++skipped_steps;
        if (result.nonfinite.origin == rank) {
          std::fprintf(stderr, "fashion_mnist: rank %d: %s in %s; every rank skips this optimizer step\n", rank,
                       result.nonfinite.finding.c_str(), where().c_str());
          std::fflush(stderr);
        }
      }
      if (epoch == 1 && step == traced_step && tracing) {
        traced_ops.assign(record.ops.begin(), record.ops.end());
        traced_plan = plan;
      }
      for (const auto& t : record.ops) sums.add(t);  // compute intervals: waits excluded
      windows.insert(windows.end(), {record.end(), record.busy()});
      if (profile) {
        profile->add(record.ops);
        if (step + 1 == std::min<std::int64_t>(opt.profile_steps, steps)) {
          plan = replan(*profile, shape, memory_limit, rank, bounded);
          pipe.replan(plan);
          model.set_memory_probe([&pipe] { return pipe.executor().pool().bytes_in_use(); });  // measure the new plan
          if (rank == 0) {
            const stretto::sim::stage_costs costs = profile->costs();
            std::printf("auto: re-planned from %lld steps of zb-h1 (memory limit %g M_B); simulated bubble rate "
                        "zb-h1 %.3f, auto %.3f\n",
                        static_cast<long long>(step + 1), memory_limit,
                        stretto::sim::simulate(stretto::policies::make_schedule("zb-h1", shape), costs).metrics.bubble_rate,
                        stretto::sim::simulate(plan, costs).metrics.bubble_rate);
            std::fflush(stdout);
          }
          profile.reset();
        }
      }
      progress.step(step + 1);
    }
    progress.end_epoch();
    const double epoch_seconds = std::chrono::duration<double>(clock_type::now() - epoch_start).count();
    if (epoch == 1 && tracing)
      write_step_pictures(traced_ops, traced_plan, traced_step, grid.pipeline(), grid.data_parallel_rank() == 0,
                          grid.data_parallel_size(), opt);

    // Evaluation: forwards only, the test set in batches of 1000.
    model.set_training(false);
    std::int64_t correct = 0;
    const std::int64_t eval_batch = 1000;
    matrix_type eval_inputs("eval_inputs", first_rank ? eval_batch : 0, 784);
    model_type::label_view eval_labels("eval_labels", last_rank ? eval_batch : 0);
    std::vector<std::int64_t> test_order(static_cast<std::size_t>(test_size));
    std::iota(test_order.begin(), test_order.end(), 0);
    for (std::int64_t first = grid.data_parallel_rank() * eval_batch; first < test_size; first += dp * eval_batch) {
      if (first_rank) fill_images(test_images, test_order, first, eval_inputs);
      if (last_rank) fill_labels(test_labels, test_order, first, eval_labels);
      model.set_batch(eval_inputs, eval_labels, eval_batch, opt.microbatches, eval_batch);
      pipe.executor().run_forward_only();
      if (last_rank) correct += model.correct();
    }

    // Gather: the loss and accuracy from the last stage; every rank's step windows; op times.
    double totals[3] = {last_rank ? loss_sum : 0.0, last_rank ? static_cast<double>(correct) : 0.0, exposed_reduction};
    stretto::mpi::allreduce(MPI_IN_PLACE, totals, 3, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, bounded,
                            "the epoch's loss, accuracy and exposed reduction");
    stretto::mpi::allreduce(MPI_IN_PLACE, sums.seconds.data(), static_cast<int>(sums.seconds.size()), MPI_DOUBLE,
                            MPI_SUM, MPI_COMM_WORLD, bounded, "the epoch's op times");
    stretto::mpi::allreduce(MPI_IN_PLACE, sums.count.data(), static_cast<int>(sums.count.size()), MPI_DOUBLE, MPI_SUM,
                            MPI_COMM_WORLD, bounded, "the epoch's op counts");
    std::vector<double> all_windows(rank == 0 ? windows.size() * static_cast<std::size_t>(size) : 0);
    stretto::mpi::gather(windows.data(), static_cast<int>(windows.size()), MPI_DOUBLE, all_windows.data(),
                         static_cast<int>(windows.size()), MPI_DOUBLE, 0, MPI_COMM_WORLD, bounded,
                         "the epoch's step windows");
    if (!opt.checkpoint.save.empty())
      stretto::examples::save_demo(opt.checkpoint, grid, plan, model, {epoch, global_step, skipped_steps}, checkpoint_options);
    if (rank != 0) continue;

    // Measured bubble rate: every rank starts a step at the same origin (align_steps); per
    // step, span = the latest compute end over ranks; idle = p·span − Σ busy (waits are idle).
    double span_total = 0.0, busy_total = 0.0;
    for (std::int64_t step = 0; step < steps; ++step) {
      double span = 0.0;
      for (int r = 0; r < size; ++r) {
        const double* w = &all_windows[(static_cast<std::size_t>(r) * static_cast<std::size_t>(steps) +
                                        static_cast<std::size_t>(step)) * 2];
        span = std::max(span, w[0]);
        busy_total += w[1];
      }
      span_total += span;
    }
    const double measured_bubble = 1.0 - busy_total / (span_total * size);
    // Simulated bubble rate of the same schedule with the measured mean op times per stage.
    const double simulated_bubble = stretto::sim::simulate(plan, sums.costs()).metrics.bubble_rate;
    std::printf("epoch %d/%d  loss %.4f  test accuracy %.4f  %.0f samples/s  bubble rate measured %.3f simulated %.3f",
                epoch, opt.epochs, totals[0] / static_cast<double>(steps), totals[1] / static_cast<double>(test_size),
                static_cast<double>(steps * opt.batch_size) / epoch_seconds, measured_bubble, simulated_bubble);
    // Data parallelism: throughput per node, and the gradient all-reduce time the backward did
    // not hide (the mean over ranks of the wait after each step's last op).
    std::printf("  %.0f samples/s/node (%d nodes)  reduction exposed %.3f ms/step\n",
                static_cast<double>(steps * opt.batch_size) / epoch_seconds / nodes, nodes,
                1e3 * totals[2] / (static_cast<double>(size) * static_cast<double>(steps)));
    if (opt.reliability.exact_loss) std::printf("epoch %d/%d  loss sum %a\n", epoch, opt.epochs, totals[0]);
    if (skipped_steps > 0)
      std::printf("epoch %d/%d  %lld optimizer steps skipped so far (--on-nonfinite skip)\n", epoch, opt.epochs,
                  static_cast<long long>(skipped_steps));
    std::fflush(stdout);
  }
  // Peak activation memory per rank, measured (executor buffers + the model's state) and predicted.
  stretto::examples::report_activation_memory(
      MPI_COMM_WORLD, static_cast<double>(model.peak_activation_bytes()),
      stretto::examples::predict_activation_memory(widths, cut.boundaries, plan, opt.batch_size / dp / opt.microbatches,
                                                   sizeof(matrix_type::value_type),
                                                   stretto::kokkos::executor_options{}.receive_lookahead)
          .peak[static_cast<std::size_t>(grid.pipeline_rank())]);  // the prediction is per pipeline rank
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // MPI_THREAD_MULTIPLE lets the communicator's progress thread move messages while stages compute.
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  options opt;
  CLI::App app{"Trains an MLP on Fashion-MNIST, pipeline-parallel over the MPI ranks (one stage per rank)."};
  app.add_option("--schedule", opt.schedule,
                 "schedule policy: " + stretto::policies::policy_names() +
                     ", or auto (measure ZB-H1, then re-plan with the Zero Bubble scheduler), or skippipe (see --skip-ratio)")
      ->capture_default_str();
  stretto::examples::skippipe_demo_options skippipe_opt;  // --schedule skippipe: skippipe_run.hpp
  stretto::examples::add_skippipe_options(app, skippipe_opt);
  app.add_option("--memory-limit", opt.memory_limit,
                 "with --schedule auto: activation memory per rank in M_B (default 2p, as ZB-2p)");
  app.add_option("--profile-steps", opt.profile_steps, "with --schedule auto: steps measured before re-planning")
      ->capture_default_str();
  app.add_option("--trace", opt.trace_file,
                 "write step --trace-step of epoch 1 as a Chrome trace (Perfetto) JSON file: the measured ops of every "
                 "rank, and below them the simulation of the same schedule with that step's op times (with "
                 "--data-parallel, those of the first copy of the pipeline)");
  app.add_option("--timeline", opt.timeline_file,
                 "write the same step as an SVG picture, measured above simulated");
  app.add_option("--trace-step", opt.trace_step, "the step of epoch 1 that --trace and --timeline write (>= 0; "
                 "clamped to the last step)")->capture_default_str();
  app.add_option("--microbatches", opt.microbatches, "microbatches per step (m)")->capture_default_str();
  app.add_option("--data-parallel", opt.data_parallel,
                 "copies of the pipeline (D): ranks = D x pipeline ranks, each copy trains on 1/D of every batch "
                 "and the stages' gradients are all-reduced, overlapped with the backward")
      ->capture_default_str();
  app.add_option("--chunks", opt.chunks,
                 "chunks (virtual stages) per rank; 0: the schedule's default (2 for looped and V-shaped ones)")
      ->capture_default_str();
  app.add_option("--batch-size", opt.batch_size, "samples per step (global batch), a multiple of m")
      ->capture_default_str();
  app.add_option("--epochs", opt.epochs, "passes over the training set")->capture_default_str();
  app.add_option("--lr", opt.lr, "SGD learning rate")->capture_default_str();
  app.add_option("--momentum", opt.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--seed", opt.seed, "seed of the initial weights and the shuffling")->capture_default_str();
  app.add_option("--data", opt.data, "directory of the Fashion-MNIST .gz files")->capture_default_str();
  app.add_option("--train-samples", opt.train_samples, "train on the first N shuffled samples only (0: all)")
      ->capture_default_str();
  app.add_option("--hidden", opt.hidden, "hidden layer widths, comma-separated")->capture_default_str();
  app.add_option("--timeout", opt.timeout,
                 "seconds a rank may wait for one message or collective before the job aborts (finite, > 0)")
      ->capture_default_str();
  stretto::examples::add_reliability_options(app, opt.reliability);
  stretto::examples::add_checkpoint_options(app, opt.checkpoint);

  int rc = 0;
  std::string error;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    if (rank == 0) std::printf("%s", app.help().c_str());
    MPI_Finalize();
    return 0;
  } catch (const CLI::ParseError& e) {
    error = e.what();
  }
  // Test hook: a rank stopped or killed before the ranks have met (docs/reliability.md).
  stretto::mpi::run_or_abort(MPI_COMM_WORLD, [&] { stretto::examples::maybe_fail_at(opt.reliability, rank, -1); },
                             "fashion_mnist");
  {
    // Agreement at start-up: ranks started with different options end here, within seconds,
    // naming the ranks and the options that differ. Bounded by --timeout (300 s if not valid).
    const double t = opt.timeout;
    const stretto::mpi::collective_options bounded{std::chrono::duration<double>(std::isfinite(t) && t > 0 ? t : 300.0)};
    if (!opt.reliability.skip_agreement)
      stretto::mpi::require_agreement(MPI_COMM_WORLD, option_fields(opt, error), bounded, "fashion_mnist");
  }
  if (error.empty()) {
    stretto::training::device_scope kokkos(argc, argv, MPI_COMM_WORLD);  // Kokkos, on the local rank's device
    // An error every rank detects identically (options, shapes) is a usage error, printed once;
    // any other, or any after the ranks have started, is reported by its rank and ends the job.
    rc = stretto::mpi::run_or_abort(
        MPI_COMM_WORLD,
        [&] {
          try {
            if (opt.schedule == "skippipe")
              return stretto::examples::run_skippipe({opt.microbatches, opt.batch_size, opt.epochs, opt.lr, opt.momentum,
                                                      opt.seed, opt.data, opt.train_samples, opt.timeout},
                                                     skippipe_opt, rank, size);
            return train(opt, rank, size);
          } catch (const usage_error& e) {
            if (ranks_started) throw std::runtime_error(e.what);
            error = e.what;
          } catch (const stretto::shape_error& e) {
            if (ranks_started) throw;
            error = e.what();
          } catch (const stretto::argument_error& e) {
            if (ranks_started) throw;
            error = e.what();
          }
          return 2;
        },
        "fashion_mnist");
  }
  if (!error.empty()) {
    if (rank == 0) std::fprintf(stderr, "fashion_mnist: error: %s\n", error.c_str());
    rc = 2;
  }
  MPI_Finalize();
  return rc;
}
