// Several tensors per stage boundary (stretto::kokkos::boundary) through the executor over MPI.
//
// A model whose boundaries carry a hidden state, a skip tensor (stage 0's output, carried along)
// and an int32 mask without gradient (skip_mask_model.hpp) trains two steps under 1F1B, ZB-H1,
// ZB-V, Chimera and DualPipeV at p = the number of ranks, for m in {1, 2, 3, p, 2p} (those the
// policy accepts): every stage's gradients and the loss equal, to 1e-12 relative, those of a
// sequential single-process run (all stages, the whole batch as one microbatch). On the way:
// every boundary crossing is one message, of exactly the packed size (activations: h, the mask
// and k; gradients: h and k only), no mask gradient is ever handed to the model, every microbatch
// state is freed by its W, and the one-matrix model (the demo's MLP) still sends one message of
// rows × features values per crossing. Last, the executor's buffers in use under such a model
// stay within 10 % of sim::runtime_peak_memory built from the boundaries' summed bytes.
#include <doctest/doctest.h>

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <stretto/kokkos/boundary.hpp>
#include <stretto/kokkos/executor.hpp>
#include <stretto/mpi/communicator.hpp>
#include <stretto/mpi/replicas.hpp>
#include <stretto/stretto.hpp>
#include <stretto/training/pipeline.hpp>

#include "fashion_mnist/mlp_model.hpp"
#include "skip_mask_model.hpp"

namespace {

using stretto::testing::skip_mask_model;

// Forwards to a communicator and records every send (its key and number of values).
struct counting_transport {
  using request = stretto::mpi::communicator::request;
  struct sent {
    stretto::message_key key;
    std::size_t count;
  };
  stretto::mpi::communicator& inner;
  std::vector<sent> sends;

  std::int32_t rank() const { return inner.rank(); }
  template <class T>
  request post_receive(const stretto::message_key& k, std::int32_t from, T* data, std::size_t n) {
    return inner.post_receive(k, from, data, n);
  }
  template <class T>
  request post_send(const stretto::message_key& k, std::int32_t to, const T* data, std::size_t n) {
    sends.push_back({k, n});
    return inner.post_send(k, to, data, n);
  }
  bool test(request& q) { return inner.test(q); }
  void wait(request& q, const stretto::op& o) { inner.wait(q, o); }
};

// The messages rank r must send in one step: per F whose next stage is on another rank, one
// activation; per B/BW whose previous stage is on another rank, one gradient.
std::vector<stretto::message_key> expected_sends(const stretto::schedule& plan, std::int32_t r) {
  std::vector<stretto::message_key> keys;
  for (const stretto::op& o : plan.ops(r)) {
    if (o.kind == stretto::op_kind::forward && o.stage + 1 < plan.num_stages() &&
        plan.rank_of(o.stage + 1, o.microbatch) != r)
      keys.push_back({stretto::message_direction::activation, o.stage, o.stage + 1, o.microbatch});
    if (stretto::produces_input_gradient(o.kind) && o.stage > 0 && plan.rank_of(o.stage - 1, o.microbatch) != r)
      keys.push_back({stretto::message_direction::gradient, o.stage, o.stage - 1, o.microbatch});
  }
  return keys;
}

double relative_difference(const std::vector<double>& got, const std::vector<double>& want) {
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return diff / scale;
}

struct batch_data {
  skip_mask_model::matrix inputs, targets;
  skip_mask_model::mask_view mask;
};

batch_data random_batch(std::int64_t rows, std::int64_t in, std::int64_t out, unsigned seed) {
  batch_data d{skip_mask_model::matrix("inputs", rows, in), skip_mask_model::matrix("targets", rows, out),
               skip_mask_model::mask_view("mask", rows, skip_mask_model::mask_width)};
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < in; ++j) d.inputs(i, j) = u(engine);
    for (std::int64_t j = 0; j < out; ++j) d.targets(i, j) = u(engine);
    for (std::int64_t c = 0; c < skip_mask_model::mask_width; ++c) d.mask(i, c) = static_cast<std::int32_t>(engine() % 2);
  }
  return d;
}

// 8 layers: one per stage with 2 chunks on 4 ranks; fewer stages use the first S + 1 widths.
const std::vector<std::int64_t> all_widths{7, 6, 5, 8, 4, 6, 5, 7, 3};
constexpr std::int64_t batch = 26;  // m = 4, 6, 8 give microbatches of different rows
constexpr std::uint64_t seed = 5;
constexpr double lr = 0.2;

}  // namespace

TEST_CASE("mpi.boundary.boundary_words_sums_the_tuple") {
  using B = skip_mask_model::boundary_type;
  const B::shape_type shape{{5}, {3}, {6}};
  // rows 7: h 35 doubles, mask 21 int32 = 84 bytes = 11 words, k 42 doubles.
  CHECK(stretto::kokkos::boundary_words<B>(shape, 7, false) == 35 + 42 + 11);
  CHECK(stretto::kokkos::boundary_words<B>(shape, 7, true) == 35 + 42);  // the mask has no gradient
  CHECK(B::has_gradient<0>);
  CHECK(!B::has_gradient<1>);
  CHECK(B::has_gradient<2>);
}

TEST_CASE("mpi.boundary.gradients_equal_the_sequential_run" * doctest::timeout(240)) {
  int rank = 0, p = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  for (const std::string name : {"1f1b", "zb-h1", "zb-v", "chimera", "dualpipev"}) {
    const auto& policy = stretto::policies::find_policy(name);
    std::vector<std::int32_t> ms{1, 2, 3, p, 2 * p};
    std::sort(ms.begin(), ms.end());
    ms.erase(std::unique(ms.begin(), ms.end()), ms.end());
    std::size_t ran = 0;
    for (const std::int32_t m : ms) {
      const stretto::pipeline_shape shape{p, m, policy.default_chunks};
      if (!policy.check(shape).empty()) continue;
      ++ran;
      CAPTURE(name);
      CAPTURE(p);
      CAPTURE(m);
      const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
      const std::vector<std::int64_t> widths(all_widths.begin(), all_widths.begin() + plan.num_stages() + 1);
      const std::vector<batch_data> data{random_batch(batch, widths.front(), widths.back(), 100),
                                         random_batch(batch, widths.front(), widths.back(), 101)};
      skip_mask_model reference(widths, seed);
      skip_mask_model model(widths, seed);
      const stretto::mpi::communicator_options options{std::chrono::duration<double>(60.0),
                                                       stretto::mpi::timeout_action::throw_error};
      stretto::mpi::communicator comm(MPI_COMM_WORLD, shape, options);
      stretto::mpi::communicator replica_comm(MPI_COMM_WORLD, shape, options);
      counting_transport counting{comm, {}};
      stretto::kokkos::executor exec(plan, model, counting);
      const std::vector<std::int32_t> local = plan.stages_on_rank(rank);
      for (std::size_t step = 0; step < data.size(); ++step) {
        CAPTURE(step);
        reference.set_batch(data[step].inputs, data[step].targets, data[step].mask, 1);
        const double reference_loss = reference.sequential_step();
        model.set_batch(data[step].inputs, data[step].targets, data[step].mask, m);
        counting.sends.clear();
        const double loss = exec.run_step().loss;
        // One message per crossing, of the packed size: forward h [rows, w_{s+1}] + k [rows, w_1]
        // + the mask (rows · 12 bytes, ⌈·/8⌉ words); back only h [rows, w_s] + k [rows, w_1].
        const auto keys = expected_sends(plan, rank);
        REQUIRE(counting.sends.size() == keys.size());
        for (const auto& sent : counting.sends) {
          CHECK(std::find(keys.begin(), keys.end(), sent.key) != keys.end());
          const auto rows = static_cast<std::size_t>(model.microbatch_rows(sent.key.microbatch));
          const bool forward = sent.key.direction == stretto::message_direction::activation;
          const auto h = static_cast<std::size_t>(widths[static_cast<std::size_t>(forward ? sent.key.from_stage + 1 : sent.key.from_stage)]);
          const auto k = static_cast<std::size_t>(widths[1]);
          CHECK(sent.count == rows * (h + k) + (forward ? rows * 2 : 0));  // 2 words per row hold a row's 3 int32
        }
        double total = 0.0;
        MPI_Allreduce(&loss, &total, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        CHECK(std::abs(total - reference_loss) <= 1e-12 * std::abs(reference_loss));
        stretto::mpi::allreduce_replica_gradients(
            replica_comm, plan, [&](std::int32_t s) { return model.gradients(s); },
            [&](std::int32_t s, std::span<const double> g) { model.gradients(s).assign(g.begin(), g.end()); });
        for (const std::int32_t s : local) {
          CAPTURE(s);
          CHECK(relative_difference(model.gradients(s), reference.gradients(s)) <= 1e-12);
        }
        CHECK(model.held() == 0);            // every microbatch's W ran and let go of its boundaries
        CHECK(model.mask_gradients == 0);    // no gradient view of the mask ever reached the model
        CHECK(exec.pool().in_use() == 0);    // nothing of the step is still held
        for (std::int32_t s = 0; s < plan.num_stages(); ++s) {
          reference.sgd(s, lr);
          model.sgd(s, lr);  // another rank's stage has no gradient here (and is not used here)
        }
      }
      for (const std::int32_t s : local) CHECK(relative_difference(model.parameters(s), reference.parameters(s)) <= 1e-12);
      MPI_Barrier(MPI_COMM_WORLD);
    }
    CAPTURE(name);
    // 1F1B and ZB-H1 take every m; the others at least m = 2p (the bidirectional ones: p even).
    if (name == "1f1b" || name == "zb-h1") CHECK(ran == ms.size());
    else if (p % 2 == 0 || name == "zb-v") CHECK(ran >= 1);
  }
}

TEST_CASE("mpi.boundary.one_matrix_models_send_one_message_per_crossing" * doctest::timeout(120)) {
  int rank = 0, p = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  const std::vector<std::int64_t> widths{12, 10, 9, 8, 8, 7, 6, 6, 5};
  for (const std::string name : {"1f1b", "zb-v"}) {
    CAPTURE(name);
    const auto& policy = stretto::policies::find_policy(name);
    const stretto::pipeline_shape shape{p, 2 * p, policy.default_chunks};
    const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
    stretto::examples::mlp_model<double> model(widths, plan.num_stages(), plan.stages_on_rank(rank), 7);
    const auto data = model.random_batch(4 * p, 11);
    model.set_batch(data.inputs, data.labels, 4 * p, shape.num_microbatches, 4 * p);
    stretto::mpi::communicator comm(MPI_COMM_WORLD, shape);
    counting_transport counting{comm, {}};
    stretto::kokkos::executor exec(plan, model, counting);
    exec.run_step();
    const auto keys = expected_sends(plan, rank);
    REQUIRE(counting.sends.size() == keys.size());
    for (const auto& sent : counting.sends) {
      const auto rows = static_cast<std::size_t>(model.microbatch_rows(sent.key.microbatch));
      const std::int32_t boundary = std::min(sent.key.from_stage, sent.key.to_stage);  // stage whose output crosses
      CHECK(sent.count == rows * static_cast<std::size_t>(model.output_features(boundary)));
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

namespace {

// skip_mask_model with every stage function taking at least 5 ms (so that a send completes during
// the next op, as the prediction assumes), sampling the executor's buffers in use at the start and
// end of each.
struct timed_skip_mask_model : skip_mask_model {
  using skip_mask_model::skip_mask_model;
  std::function<std::size_t()> probe;
  std::size_t peak{0};
  void sample() {
    if (probe) peak = std::max(peak, probe());
  }
  static void pause() { std::this_thread::sleep_for(std::chrono::milliseconds(5)); }
  void forward(std::int32_t s, std::int32_t mb, const boundary_type& x, const boundary_type& y) {
    sample();
    skip_mask_model::forward(s, mb, x, y);
    pause();
    sample();
  }
  double loss(std::int32_t mb, const boundary_type& y, const boundary_type& dy) {
    const double l = skip_mask_model::loss(mb, y, dy);
    sample();
    return l;
  }
  void backward_input(std::int32_t s, std::int32_t mb, const boundary_type& dy, const boundary_type& dx) {
    sample();
    skip_mask_model::backward_input(s, mb, dy, dx);
    pause();
    sample();
  }
  void backward_weight(std::int32_t s, std::int32_t mb) {
    sample();
    skip_mask_model::backward_weight(s, mb);
    pause();
    sample();
  }
};

// The executor's buffers (bytes) that each rank holds at most under `plan` for a boundary model,
// from the boundaries' packed sizes (stretto::kokkos::output_boundary_bytes, the sum over each
// tuple) and sim::runtime_peak_memory:
// - F(s) keeps its input boundary (when received; a local one is the previous stage's output) and
//   its output until W; on the last stage the loss gradient from F until B;
// - the receives posted ahead: activation_message[s] = stage s − 1's output, gradient_message[s]
//   = the gradient of stage s's output;
// - while B(s) runs, its incoming gradient (not the loss gradient) and, when stage s − 1 is on the
//   same rank, its outgoing one; to another rank the outgoing one is a gradient_send.
template <class Model>
std::vector<double> predict_executor_bytes(Model& model, const stretto::schedule& plan, std::int64_t rows, std::int32_t lookahead) {
  const std::int32_t stages = plan.num_stages();
  const auto n = static_cast<std::size_t>(stages);
  stretto::sim::stage_costs costs;
  costs.forward.assign(n, 0.0);
  costs.backward_input.assign(n, 0.0);
  costs.backward_weight.assign(n, 0.0);
  stretto::sim::runtime_buffers buffers;
  buffers.receive_lookahead = lookahead;
  for (std::int32_t s = 0; s < stages; ++s) {
    const auto out = stretto::kokkos::output_boundary_bytes(model, s, rows);
    const auto in = s > 0 ? stretto::kokkos::output_boundary_bytes(model, s - 1, rows) : stretto::kokkos::boundary_bytes{};
    const bool local_input = s > 0 && plan.rank_of(s - 1, 0) == plan.rank_of(s, 0);
    const bool last = s + 1 == stages;
    const double m_b = (s > 0 && !local_input ? in.activation : 0.0) + out.activation + (last ? out.gradient : 0.0);
    costs.activation_memory.push_back(m_b);
    costs.weight_gradient_memory.push_back(m_b - (last ? out.gradient : 0.0));
    buffers.activation_message.push_back(in.activation);
    buffers.gradient_message.push_back(out.gradient);
    buffers.backward_transient.push_back((local_input ? in.gradient : 0.0) + (last ? 0.0 : out.gradient));
    buffers.gradient_send.push_back(in.gradient);
  }
  return stretto::sim::runtime_peak_memory(plan, costs, buffers);
}

}  // namespace

TEST_CASE("mpi.boundary.executor_memory_within_10_percent_of_runtime_peak_memory" * doctest::timeout(240)) {
  int rank = 0, p = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  const std::vector<std::int64_t> all_widths_wide{48, 40, 56, 32, 64, 40, 48, 36, 24};
  const std::int64_t rows = 16;
  for (const std::string name : {"1f1b", "zb-h1", "zb-v", "dualpipev"}) {
    const auto& policy = stretto::policies::find_policy(name);
    const stretto::pipeline_shape shape{p, 2 * p, policy.default_chunks};
    if (!policy.check(shape).empty()) continue;
    CAPTURE(name);
    CAPTURE(p);
    CAPTURE(rank);
    const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
    const std::vector<std::int64_t> widths(all_widths_wide.begin(), all_widths_wide.begin() + plan.num_stages() + 1);
    timed_skip_mask_model model(widths, seed);
    const batch_data data = random_batch(rows * shape.num_microbatches, widths.front(), widths.back(), 7);
    model.set_batch(data.inputs, data.targets, data.mask, shape.num_microbatches);
    stretto::mpi::communicator comm(MPI_COMM_WORLD, shape);
    stretto::kokkos::executor exec(plan, model, comm);
    model.probe = [&exec] { return exec.pool().bytes_in_use(); };
    // The least of three steps' peaks: a step in which a loaded machine kept a receiver from
    // taking a gradient for a whole op holds one more buffer, which the others do not repeat.
    std::size_t least = 0;
    for (int step = 0; step < 3; ++step) {
      MPI_Barrier(MPI_COMM_WORLD);
      model.peak = 0;
      exec.run_step();
      least = step == 0 ? model.peak : std::min(least, model.peak);
      for (std::int32_t s = 0; s < plan.num_stages(); ++s) model.sgd(s, 0.01);
    }
    CHECK(model.held() == 0);
    const double predicted = predict_executor_bytes(model, plan, rows, stretto::kokkos::executor_options{}.receive_lookahead)
        [static_cast<std::size_t>(rank)];
    const auto measured = static_cast<double>(least);
    MESSAGE(name, " p = ", p, " rank ", rank, ": measured ", measured, " B, predicted ", predicted, " B");
    CHECK(measured > 0.0);
    CHECK(std::abs(measured - predicted) <= 0.10 * predicted);
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

// The step API (training::pipeline) with a model whose boundaries carry three tensors: the mean
// loss and the gradients handed to the optimizer equal the sequential run's (1e-12), two steps
// with SGD in between, for a one-chunk, a V-shaped and a bidirectional schedule (its replicas'
// gradients summed by the pipeline's own reduction).
TEST_CASE("mpi.boundary.the_step_api_trains_a_tuple_model" * doctest::timeout(240)) {
  int p = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  for (const std::string name : {"1f1b", "zb-v", "chimera"}) {
    const auto& policy = stretto::policies::find_policy(name);
    const stretto::pipeline_shape shape{p, 2 * p, policy.default_chunks};
    if (!policy.check(shape).empty()) continue;  // chimera: p odd
    CAPTURE(name);
    CAPTURE(p);
    const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
    const std::vector<std::int64_t> widths(all_widths.begin(), all_widths.begin() + plan.num_stages() + 1);
    stretto::training::pipeline_options options;
    options.communicator.timeout = std::chrono::duration<double>(60.0);
    options.communicator.on_timeout = stretto::mpi::timeout_action::throw_error;
    stretto::training::pipeline<skip_mask_model> pipe(MPI_COMM_WORLD, plan, [&](const std::vector<std::int32_t>&) {
      skip_mask_model m(widths, seed);
      m.loss_is_sum = true;
      return m;
    }, options);
    skip_mask_model reference(widths, seed);
    const std::vector<std::int32_t> local = plan.stages_on_rank(pipe.grid().pipeline_rank());
    for (const unsigned data_seed : {100u, 101u}) {
      CAPTURE(data_seed);
      const batch_data d = random_batch(batch, widths.front(), widths.back(), data_seed);
      reference.set_batch(d.inputs, d.targets, d.mask, 1);
      const double reference_loss = reference.sequential_step();
      std::vector<std::int32_t> optimized;
      const auto result = pipe.step(skip_mask_model::batch_type{d.inputs, d.targets, d.mask},
                                    [&](std::int32_t s, std::span<double> g) {
                                      CAPTURE(s);
                                      CHECK(relative_difference(std::vector<double>(g.begin(), g.end()), reference.gradients(s)) <= 1e-12);
                                      pipe.model().sgd(s, lr);
                                      optimized.push_back(s);
                                    });
      CHECK(result.applied);
      CHECK(std::abs(result.loss - reference_loss) <= 1e-12 * std::abs(reference_loss));
      CHECK(optimized == local);
      CHECK(pipe.model().mask_gradients == 0);
      for (std::int32_t s = 0; s < plan.num_stages(); ++s) reference.sgd(s, lr);
    }
    for (const std::int32_t s : local) CHECK(relative_difference(pipe.model().parameters(s), reference.parameters(s)) <= 1e-12);
  }
}
