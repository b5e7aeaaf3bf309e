#pragma once
/**
@file
@brief `--schedule skippipe` of the Fashion-MNIST demo: SkipPipe training (SkipPipe, Blagoev, Ersoy
and Chen, arXiv 2502.19913; docs/skippipe.md, "Execution") on a small heterogeneous setting with
emulated node speeds, against the full pipeline on the same nodes.

**Setting.** One rank per node; the ranks form `--skippipe-stages` S stages (ranks 0.. fill stage
0, then stage 1, …; sizes as even as possible, the first stages take the extra ranks). The model
is an MLP of residual stages: stage 0 holds the input layer 784 → H and the head H → 10 with the
loss; each stage s ≥ 1 is a residual block of two layers H → H → H (y = x + f(x)), so that
leaving a stage out is that block's identity, as in the transformers SkipPipe trains. A node's
forward time w_n in the setting is its stage's multiply-adds per sample in units of one residual
block, times its slowness: 1 on stage 0, then 1, 2.5, 1.5, 3 in turn on the other nodes (a
backward costs 2 forwards, the loss op 10/784 of stage 0's forward); the network is uniform
(0.1 units per message). The emulation: every op lasts at least its setting time times
`--skippipe-unit-ms` (1 ms), the rank sleeping the rest, so the measured iteration follows the
setting on any machine (with 16-row microbatches the real compute is below that).

**Plan.** Each stage-0 node starts m / |stage 0| microbatches (m = `--microbatches`), memory = that
many activations per node; path length L = S − round(R · S) for `--skip-ratio` R (stage 0
included). `skippipe::plan` chooses the paths (it routes around slow nodes under the per-node
and per-stage caps); the full pipeline sends microbatch j through node j mod |stage s| of
every stage.

**Output.** Per epoch: the mean loss, the test accuracy along the planned paths (the model as it
trains) and along every stage (the whole model), and the mean measured iteration time (the
slowest rank's step, gradient all-reduce included). At the end: `--skippipe-compare-steps` steps
of SkipPipe and of the full pipeline measured back to back on the same ranks, and both plans'
simulated iteration times.
*/

#include <mpi.h>

#include <CLI/CLI.hpp>
#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <stretto/detail/text.hpp>
#include <stretto/mpi/agreement.hpp>
#include <stretto/mpi/collectives.hpp>
#include <stretto/skippipe/planner.hpp>
#include <stretto/training/skippipe.hpp>

#include "idx.hpp"
#include "mlp_model.hpp"

namespace stretto::examples {

/** @brief The flags of `--schedule skippipe`. */
struct skippipe_demo_options {
  double skip_ratio{1.0 / 3.0};         ///< --skip-ratio: stages each microbatch leaves out, as a fraction of S
  std::int32_t stages{3};               ///< --skippipe-stages: S
  std::int64_t width{256};              ///< --skippipe-width: H
  std::int32_t compare_steps{20};       ///< --skippipe-compare-steps: steps of each plan in the final comparison
  double unit_ms{1.0};                  ///< --skippipe-unit-ms: milliseconds of one setting time unit (emulation)
};

/** @brief The demo's general flags that SkipPipe uses, copied from its options. */
struct skippipe_demo_common {
  std::int32_t microbatches{8};
  std::int64_t batch_size{128};
  std::int32_t epochs{2};
  double lr{0.05};
  double momentum{0.9};
  std::uint64_t seed{1};
  std::string data;
  std::int64_t train_samples{0};
  double timeout{300.0};
};

/** @brief Registers the flags of `--schedule skippipe` on `app`. */
inline void add_skippipe_options(CLI::App& app, skippipe_demo_options& o) {
  app.add_option("--skip-ratio", o.skip_ratio,
                 "with --schedule skippipe: the fraction of the stages each microbatch leaves out, in [0, 1) (stage 0 "
                 "always runs); the path length is S - round(R x S)")
      ->capture_default_str();
  app.add_option("--skippipe-stages", o.stages, "with --schedule skippipe: stages S (ranks >= S; one rank per node)")
      ->capture_default_str();
  app.add_option("--skippipe-width", o.width, "with --schedule skippipe: the hidden width H of the residual stages")
      ->capture_default_str();
  app.add_option("--skippipe-compare-steps", o.compare_steps,
                 "with --schedule skippipe: steps of SkipPipe and of the full pipeline timed at the end")
      ->capture_default_str();
  app.add_option("--skippipe-unit-ms", o.unit_ms,
                 "with --schedule skippipe: every op lasts at least its time in the setting times this many ms (the "
                 "emulated node speeds; 0: no emulation)")
      ->capture_default_str();
}

/** @brief The emulated slowness of node `n` of `s` (1 on stage 0; 1, 2.5, 1.5, 3 in turn on the others). */
inline double skippipe_demo_slowdown(const skippipe::setting& s, std::int32_t n) {
  static constexpr double factors[] = {1.0, 2.5, 1.5, 3.0};
  if (s.stage_of(n) == 0) return 1.0;
  const auto first_other = static_cast<std::int32_t>(s.stages[0].size());
  return factors[static_cast<std::size_t>(n - first_other) % 4];
}

/**
@brief The demo's setting on `nodes` ranks (see the file comment).
@throws argument_error when there are fewer ranks than stages or the numbers do not fit.
*/
inline skippipe::setting skippipe_demo_setting(std::int32_t nodes, const skippipe_demo_options& o,
                                               std::int32_t microbatches, std::int64_t rows_per_microbatch) {
  if (o.stages < 2 || o.stages > 62)
    throw argument_error(stretto::detail::cat("--skippipe-stages must be in 2..62 (got ", o.stages, ")"));
  if (nodes < o.stages)
    throw argument_error(stretto::detail::cat("--schedule skippipe runs one rank per node and needs a node per stage: ",
                                              o.stages, " stages need at least ", o.stages, " ranks (got ", nodes,
                                              "); launch with -n ", 2 * o.stages, " or lower --skippipe-stages"));
  if (!(o.skip_ratio >= 0.0 && o.skip_ratio < 1.0))
    throw argument_error(stretto::detail::cat("--skip-ratio must be in [0, 1) (got ", std::to_string(o.skip_ratio),
                                              "); stage 0 always runs, e.g. 0.3333 skips 1 of 3 stages"));
  if (o.width < 1) throw argument_error("--skippipe-width must be at least 1");
  skippipe::setting s;
  std::int32_t next = 0;
  for (std::int32_t st = 0; st < o.stages; ++st) {
    const std::int32_t size = nodes / o.stages + (st < nodes % o.stages ? 1 : 0);
    std::vector<std::int32_t> list;
    for (std::int32_t i = 0; i < size; ++i) list.push_back(next++);
    s.stages.push_back(list);
  }
  const auto zero_nodes = static_cast<std::int32_t>(s.stages[0].size());
  if (microbatches % zero_nodes != 0)
    throw argument_error(stretto::detail::cat("--microbatches ", microbatches, " is not divisible by the ", zero_nodes,
                                              " stage-0 nodes (each starts the same number); use a multiple of ",
                                              zero_nodes));
  const double h = static_cast<double>(o.width);
  const double block = 2.0 * h * h;  // multiply-adds per sample of one residual block: the unit
  for (std::int32_t n = 0; n < nodes; ++n) {
    const double work = s.stage_of(n) == 0 ? 784.0 * h : block;
    s.compute.push_back(skippipe_demo_slowdown(s, n) * work / block);
  }
  s.backward_factor = 2.0;
  s.loss_factor = 10.0 / 784.0;  // the head against the input layer
  s.activation_bytes = static_cast<double>(rows_per_microbatch) * h * 8.0;
  s.latency.assign(static_cast<std::size_t>(nodes), std::vector<double>(static_cast<std::size_t>(nodes), 0.05));
  s.bandwidth.assign(static_cast<std::size_t>(nodes),
                     std::vector<double>(static_cast<std::size_t>(nodes), std::max(1.0, s.activation_bytes) / 0.05));
  s.microbatches = microbatches / zero_nodes;
  s.memory = s.microbatches;
  s.path_length = o.stages - static_cast<std::int32_t>(std::lround(o.skip_ratio * o.stages));
  if (s.path_length < 1) s.path_length = 1;
  s.check();
  return s;
}

/**
@brief Trains with SkipPipe and compares with the full pipeline (see the file comment).
@returns the exit code (0).
@throws argument_error on a bad flag (before the ranks depend on each other).
*/
inline int run_skippipe(const skippipe_demo_common& c, const skippipe_demo_options& o, int rank, int size) {
  using model_type = mlp_model<double>;
  using matrix_type = model_type::matrix_type;
  using clock_type = std::chrono::steady_clock;
  if (c.batch_size < 1 || c.microbatches < 1 || c.batch_size % c.microbatches != 0)
    throw argument_error(stretto::detail::cat("--batch-size ", c.batch_size, " must be a positive multiple of --microbatches ",
                                              c.microbatches));
  if (c.epochs < 1) throw argument_error("--epochs must be at least 1");
  if (o.compare_steps < 1) throw argument_error("--skippipe-compare-steps must be at least 1");
  if (!(o.unit_ms >= 0.0 && o.unit_ms <= 1e4)) throw argument_error("--skippipe-unit-ms must be in [0, 10000]");
  const skippipe::setting s = skippipe_demo_setting(size, o, c.microbatches, c.batch_size / c.microbatches);
  const std::int32_t S = s.num_stages();
  const std::int32_t stage = s.stage_of(rank);
  const mpi::collective_options bounded{std::chrono::duration<double>(c.timeout), mpi::timeout_action::abort};
  {
    const std::vector<mpi::agreement_field> fields{{"skip-ratio", std::to_string(o.skip_ratio)},
                                                   {"skippipe-stages", std::to_string(o.stages)},
                                                   {"skippipe-width", std::to_string(o.width)},
                                                   {"skippipe-compare-steps", std::to_string(o.compare_steps)},
                                                   {"skippipe-unit-ms", std::to_string(o.unit_ms)}};
    mpi::require_agreement(MPI_COMM_WORLD, fields, bounded, "fashion_mnist");
  }

  // The model: layer 0 = stage 0's input layer, layers 2s−1, 2s = stage s's block, the last = head.
  std::vector<std::int64_t> widths{784};
  for (std::int32_t l = 0; l < 2 * (S - 1) + 1; ++l) widths.push_back(o.width);
  widths.push_back(10);
  std::vector<std::int32_t> boundaries{0, 1};
  for (std::int32_t st = 1; st < S; ++st) boundaries.push_back(boundaries.back() + 2);
  boundaries.push_back(boundaries.back() + 1);
  const std::vector<std::int32_t> local = stage == 0 ? std::vector<std::int32_t>{0, S} : std::vector<std::int32_t>{stage};
  model_type model(widths, boundaries, local, c.seed);

  const skippipe::plan_result planned = skippipe::plan(s);
  const std::vector<skippipe::path> full = skippipe::full_pipeline_paths(s);
  const double simulated_full = skippipe::simulate(s, full).iteration_time;
  training::skippipe_options ro;
  ro.residual = true;
  ro.time_unit = std::chrono::duration<double>(o.unit_ms * 1e-3);
  ro.timeout = std::chrono::duration<double>(c.timeout);
  training::skippipe_runner runner(MPI_COMM_WORLD, s, planned.paths, model, ro);

  // Data: every rank reads both sets (the stage-0 nodes need the images, and they compute the loss).
  const auto file = [&](const char* name) { return (std::filesystem::path(c.data) / name).string(); };
  for (const char* name : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                           "t10k-labels-idx1-ubyte.gz"})
    if (!std::filesystem::exists(file(name))) throw argument_error("Fashion-MNIST not found: " + file(name) + " is missing");
  const idx_array train_images = read_idx(file("train-images-idx3-ubyte.gz"));
  const idx_array train_labels = read_idx(file("train-labels-idx1-ubyte.gz"));
  const idx_array test_images = read_idx(file("t10k-images-idx3-ubyte.gz"));
  const idx_array test_labels = read_idx(file("t10k-labels-idx1-ubyte.gz"));
  const auto fill = [](const idx_array& images, const idx_array& labels, const std::vector<std::int64_t>& index,
                       std::int64_t first, const matrix_type& x, const model_type::label_view& y) {
    auto hx = Kokkos::create_mirror_view(x);
    auto hy = Kokkos::create_mirror_view(y);
    for (std::size_t i = 0; i < x.extent(0); ++i) {
      const auto sample = static_cast<std::size_t>(index[static_cast<std::size_t>(first) + i]);
      const std::uint8_t* px = images.values.data() + sample * 784;
      for (std::size_t j = 0; j < 784; ++j) hx(i, j) = (px[j] / 255.0 - 0.2860) / 0.3530;
      hy(i) = labels.values[sample];
    }
    Kokkos::deep_copy(x, hx);
    Kokkos::deep_copy(y, hy);
  };
  std::int64_t train_size = 60000;
  if (c.train_samples > 0) train_size = std::min(train_size, c.train_samples);
  const std::int64_t steps = train_size / c.batch_size;
  if (steps < 1) throw argument_error("--train-samples is smaller than one batch");
  const std::int32_t m = s.num_microbatches();

  if (rank == 0) {
    std::printf("fashion_mnist: skippipe on %d nodes (one rank each), %d stages of", size, S);
    for (const auto& st : s.stages) std::printf(" %zu", st.size());
    std::printf(" nodes; path length %d of %d (skip ratio %.3f), %d microbatches of %lld, model 784-%lld x %d-10 "
                "(residual stages), %lld steps/epoch\nemulated node slowness:",
                s.path_length, S, 1.0 - static_cast<double>(s.path_length) / S, m,
                static_cast<long long>(c.batch_size / m), static_cast<long long>(o.width), 2 * (S - 1) + 1,
                static_cast<long long>(steps));
    for (std::int32_t n = 0; n < size; ++n) std::printf(" %.1f", skippipe_demo_slowdown(s, n));
    std::printf("\npaths (nodes):");
    for (const auto& p : planned.paths) {
      std::printf(" ");
      for (std::size_t k = 0; k < p.size(); ++k) std::printf("%s%d", k ? "-" : "", p[k]);
    }
    std::printf("\n");
    std::fflush(stdout);
  }

  matrix_type inputs("skippipe_inputs", c.batch_size, 784);
  model_type::label_view labels("skippipe_labels", c.batch_size);
  constexpr std::int64_t test_batch = 1000;
  matrix_type test_inputs("skippipe_test_inputs", test_batch, 784);
  model_type::label_view test_labels_view("skippipe_test_labels", test_batch);
  std::vector<std::int64_t> order(60000), test_order(10000);
  std::iota(test_order.begin(), test_order.end(), 0);

  // Test accuracy along `paths` (the runner's plan when empty), summed over the stage-0 nodes.
  const auto accuracy = [&](const std::vector<skippipe::path>& paths) {
    model.set_training(false);
    double correct = 0.0;
    for (std::int64_t first = 0; first < 10000; first += test_batch) {
      fill(test_images, test_labels, test_order, first, test_inputs, test_labels_view);
      model.set_batch(test_inputs, test_labels_view, test_batch, m, test_batch);
      runner.infer(paths);
      if (stage == 0) correct += static_cast<double>(model.correct());
    }
    mpi::allreduce(MPI_IN_PLACE, &correct, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, bounded, "the test accuracy");
    model.set_training(true);
    return correct / 10000.0;
  };
  // One step on batch `first` of `order`; returns the slowest rank's step time.
  const auto timed_step = [&](std::int64_t first, bool apply, double& loss) {
    fill(train_images, train_labels, order, first, inputs, labels);
    model.set_batch(inputs, labels, c.batch_size, m, c.batch_size);
    mpi::barrier(MPI_COMM_WORLD, bounded, "start of a skippipe step");
    const training::skippipe_step_result r = runner.step();
    if (apply) model.apply_gradients(c.lr, c.momentum);
    else model.discard_gradients();
    loss += r.loss;
    double seconds = r.seconds;
    mpi::allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD, bounded, "the step time");
    return seconds;
  };

  for (std::int32_t epoch = 1; epoch <= c.epochs; ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(c.seed * 7919 + static_cast<std::uint64_t>(epoch)));
    double loss = 0.0, seconds = 0.0;
    const auto start = clock_type::now();
    for (std::int64_t step = 0; step < steps; ++step) seconds += timed_step(step * c.batch_size, true, loss);
    const double epoch_seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    mpi::allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, bounded, "the epoch's loss");
    const double planned_accuracy = accuracy({});
    const double full_accuracy = accuracy(full);
    if (rank == 0) {
      std::printf("epoch %d/%d  loss %.4f  test accuracy %.4f (planned paths) %.4f (every stage)  iteration %.2f ms  "
                  "%.0f samples/s\n",
                  epoch, c.epochs, loss / static_cast<double>(steps), planned_accuracy, full_accuracy,
                  1e3 * seconds / static_cast<double>(steps), static_cast<double>(steps * c.batch_size) / epoch_seconds);
      std::fflush(stdout);
    }
  }

  // SkipPipe against the full pipeline, back to back on the same batches; gradients discarded.
  const std::int64_t compare = std::min<std::int64_t>(o.compare_steps, steps);
  double skip_seconds = 0.0, full_seconds = 0.0, ignored = 0.0;
  for (std::int64_t step = 0; step < compare; ++step) skip_seconds += timed_step(step * c.batch_size, false, ignored);
  runner.set_paths(full);
  for (std::int64_t step = 0; step < compare; ++step) full_seconds += timed_step(step * c.batch_size, false, ignored);
  if (rank == 0) {
    std::printf("iteration time over %lld steps: skippipe %.2f ms, full pipeline %.2f ms measured (ratio %.3f); "
                "simulated %.2f vs %.2f units (ratio %.3f)\n",
                static_cast<long long>(compare), 1e3 * skip_seconds / static_cast<double>(compare),
                1e3 * full_seconds / static_cast<double>(compare), skip_seconds / full_seconds, planned.run.iteration_time,
                simulated_full, planned.run.iteration_time / simulated_full);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace stretto::examples
