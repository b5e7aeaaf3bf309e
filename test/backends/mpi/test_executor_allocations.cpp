// Allocations per step: after the warm-up steps of a shape (the first, and one more that absorbs
// growth that depends only on message timing), the executor allocates nothing.
//
// Every heap allocation of the process is counted by a replaced global operator new (this file
// is its own test executable, so the replacement covers the executor, Kokkos' allocation records
// and the transport), and every Kokkos view allocation by a Kokkos Tools allocation callback.
// For 1F1B, ZB-V and two bidirectional schedules (Chimera, DualPipe) at p = the number of ranks,
// steps 2 to 4 must count zero of either, with a model that reuses its own state; the executor's
// pool must stay within the size it reserved from the schedule. The demo's MLP is checked for
// Kokkos view allocations too (its kernels' labels may still allocate strings on the heap), and a
// model with several tensors per boundary (skip_mask_model.hpp: its boundary views alias the
// executor's message buffers) for both. The step API with its gradient all-reduce staged through
// host buffers (forced on the host) allocates nothing either.
#include <doctest/doctest.h>

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <span>
#include <string>
#include <vector>

#include <stretto/kokkos/executor.hpp>
#include <stretto/mpi/communicator.hpp>
#include <stretto/mpi/replicas.hpp>
#include <stretto/stretto.hpp>
#include <stretto/training/pipeline.hpp>

#include "fashion_mnist/mlp_model.hpp"
#include "skip_mask_model.hpp"

namespace {
std::atomic<bool> counting{false};
std::atomic<std::int64_t> heap_allocations{0};
std::atomic<std::int64_t> view_allocations{0};

void* counted(std::size_t size, std::size_t alignment) {
  if (counting.load(std::memory_order_relaxed)) heap_allocations.fetch_add(1, std::memory_order_relaxed);
  if (size == 0) size = 1;
  void* p = alignment <= alignof(std::max_align_t) ? std::malloc(size)
                                                   : std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t size) { return counted(size, 0); }
void* operator new[](std::size_t size) { return counted(size, 0); }
void* operator new(std::size_t size, std::align_val_t a) { return counted(size, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t size, std::align_val_t a) { return counted(size, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

using matrix_type = stretto::kokkos::matrix<double>;

void count_view(const Kokkos_Profiling_SpaceHandle, const char*, const void*, const std::uint64_t) {
  if (counting.load(std::memory_order_relaxed)) view_allocations.fetch_add(1, std::memory_order_relaxed);
}
void ignore_init(const int, const std::uint64_t, const std::uint32_t, Kokkos_Profiling_KokkosPDeviceInfo*) {}

// Installs the Kokkos Tools allocation callback for the scope (an init callback marks a tool as
// loaded, without which Kokkos calls none).
struct view_counter {
  view_counter() {
    Kokkos::Tools::Experimental::set_init_callback(ignore_init);
    Kokkos::Tools::Experimental::set_allocate_data_callback(count_view);
  }
  ~view_counter() {
    Kokkos::Tools::Experimental::set_allocate_data_callback(nullptr);
    Kokkos::Tools::Experimental::set_init_callback(nullptr);
  }
};

// A stage model that keeps its F's input and output until W, like a real one, and lets them go
// at W; it computes y = x + 1 on the host and owns nothing it would allocate per step.
struct holding_model {
  using matrix_type = ::matrix_type;
  static constexpr std::int64_t rows = 4, features = 5;
  std::int32_t microbatches{1};
  matrix_type inputs{"inputs", rows, features};
  std::vector<matrix_type> kept;  // [stage · m + mb]: x and y

  std::int64_t input_features(std::int32_t) const { return features; }
  std::int64_t output_features(std::int32_t) const { return features; }
  std::int64_t microbatch_rows(std::int32_t) const { return rows; }
  matrix_type input(std::int32_t) const { return inputs; }
  std::size_t at(std::int32_t s, std::int32_t mb) const { return 2 * static_cast<std::size_t>(s * microbatches + mb); }
  void forward(std::int32_t s, std::int32_t mb, const matrix_type& x, const matrix_type& y) {
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < features; ++j) y(i, j) = x(i, j) + 1;
    kept[at(s, mb)] = x;
    kept[at(s, mb) + 1] = y;
  }
  double loss(std::int32_t, const matrix_type& y, const matrix_type& dy) {
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < features; ++j) dy(i, j) = y(i, j);
    return 1.0;
  }
  void backward_input(std::int32_t, std::int32_t, const matrix_type& dy, const matrix_type& dx) {
    for (std::size_t i = 0; i < dx.extent(0); ++i)
      for (std::int64_t j = 0; j < features; ++j) dx(i, j) = dy(i, j);
  }
  void backward_weight(std::int32_t s, std::int32_t mb) {
    kept[at(s, mb)] = matrix_type();
    kept[at(s, mb) + 1] = matrix_type();
  }
};

struct counts {
  std::int64_t heap, views;
};

// Runs `steps` steps; returns the allocations of steps 2..steps on this rank.
template <class Model>
counts count_steady_steps(stretto::kokkos::executor<Model, stretto::mpi::communicator>& exec, int steps) {
  // The first step grows the pool and the model's state; a second absorbs what depends on message
  // timing alone (a vector first reaching its steady size when ranks are descheduled under load).
  exec.run_step();
  MPI_Barrier(MPI_COMM_WORLD);
  exec.run_step();
  MPI_Barrier(MPI_COMM_WORLD);
  heap_allocations = 0;
  view_allocations = 0;
  counting = true;
  for (int step = 2; step < steps; ++step) exec.run_step();
  counting = false;
  MPI_Barrier(MPI_COMM_WORLD);
  return {heap_allocations.load(), view_allocations.load()};
}

const char* const schedules[] = {"1f1b", "zb-v", "chimera", "dualpipe"};

}  // namespace

TEST_CASE("mpi.allocations.none_after_the_first_step" * doctest::timeout(120)) {
  int rank = 0, p = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  view_counter views;
  {  // the counters see a view's allocation (its record on the heap, its data by the callback)
    heap_allocations = 0;
    view_allocations = 0;
    counting = true;
    const matrix_type probe("probe", 3, 3);
    counting = false;
    CHECK(view_allocations == 1);
    CHECK(heap_allocations >= 1);
  }
  int ran = 0;
  for (const std::string name : schedules) {
    const auto& policy = stretto::policies::find_policy(name);
    const stretto::pipeline_shape shape{p, 2 * p, policy.default_chunks};
    if (!policy.check(shape).empty()) continue;  // bidirectional ones need p even
    ++ran;
    CAPTURE(name);
    CAPTURE(p);
    const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
    holding_model model;
    model.microbatches = shape.num_microbatches;
    model.kept.resize(2 * static_cast<std::size_t>(plan.num_stages() * shape.num_microbatches));
    stretto::mpi::communicator comm(MPI_COMM_WORLD, shape);
    stretto::kokkos::executor exec(plan, model, comm);
    const counts c = count_steady_steps(exec, 5);
    CHECK(c.heap == 0);
    CHECK(c.views == 0);
    // The pool is sized from the schedule: one width, so one growth of 3 per microbatch state
    // held at the simulated peak + the receive lookahead (4) + 2.
    const double v = shape.num_chunks;
    const auto states = stretto::sim::peak_memory(plan, stretto::sim::uniform_costs{1, 1, 1, 0, v, v});
    CHECK(exec.pool().size() == 3 * static_cast<std::size_t>(states[static_cast<std::size_t>(rank)]) + 4 + 2);
    CHECK(exec.pool().in_use() == 0);  // every buffer back in the pool after the step
    MPI_Barrier(MPI_COMM_WORLD);
    {  // messages through host staging buffers (a GPU's path without a device-aware MPI): none either
      stretto::kokkos::executor_options staged;
      staged.messages = stretto::kokkos::message_path::staged;
      staged.fence_every_op = false;
      stretto::mpi::communicator staged_comm(MPI_COMM_WORLD, shape);
      stretto::kokkos::executor staged_exec(plan, model, staged_comm, staged);
      REQUIRE(staged_exec.stages_messages());
      const counts cs = count_steady_steps(staged_exec, 5);
      CHECK(cs.heap == 0);
      CHECK(cs.views == 0);
      CHECK(staged_exec.pool().in_use() == 0);
      MPI_Barrier(MPI_COMM_WORLD);
    }
  }
  CHECK(ran == (p % 2 == 0 ? 4 : 2));
}

TEST_CASE("mpi.allocations.the_demo_model_allocates_no_views_after_the_first_step" * doctest::timeout(120)) {
  int rank = 0, p = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  view_counter views;
  const std::vector<std::int64_t> widths{12, 10, 9, 8, 8, 7, 6, 6, 5};
  for (const std::string name : schedules) {
    const auto& policy = stretto::policies::find_policy(name);
    const stretto::pipeline_shape shape{p, 2 * p, policy.default_chunks};
    if (!policy.check(shape).empty()) continue;
    CAPTURE(name);
    CAPTURE(p);
    const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
    stretto::examples::mlp_model<double> model(widths, plan.num_stages(), plan.stages_on_rank(rank), 7);
    const auto data = model.random_batch(8 * p, 11);
    model.set_batch(data.inputs, data.labels, 8 * p, shape.num_microbatches, 8 * p);
    stretto::mpi::communicator comm(MPI_COMM_WORLD, shape);
    stretto::kokkos::executor exec(plan, model, comm);
    const counts c = count_steady_steps(exec, 5);
    CHECK(c.views == 0);
    CHECK(model.held_microbatches() == 0);
    MESSAGE("mlp_model, ", name, ", p = ", p, ", rank ", rank, ": ", c.heap, " heap allocations in 3 steps");
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST_CASE("mpi.allocations.a_boundary_tuple_model_allocates_nothing_after_the_first_step" * doctest::timeout(120)) {
  int rank = 0, p = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  view_counter views;
  const std::vector<std::int64_t> all_widths{6, 5, 7, 4, 6, 5, 7, 4, 3};
  int ran = 0;
  for (const std::string name : schedules) {
    const auto& policy = stretto::policies::find_policy(name);
    const stretto::pipeline_shape shape{p, 2 * p, policy.default_chunks};
    if (!policy.check(shape).empty()) continue;
    ++ran;
    CAPTURE(name);
    CAPTURE(p);
    const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
    const std::vector<std::int64_t> widths(all_widths.begin(), all_widths.begin() + plan.num_stages() + 1);
    stretto::testing::skip_mask_model model(widths, 3);
    const std::int64_t batch = 3 * shape.num_microbatches;
    stretto::testing::skip_mask_model::matrix inputs("inputs", batch, widths.front()), targets("targets", batch, widths.back());
    stretto::testing::skip_mask_model::mask_view mask("mask", batch, stretto::testing::skip_mask_model::mask_width);
    Kokkos::deep_copy(inputs, 0.5);
    Kokkos::deep_copy(targets, 0.25);
    Kokkos::deep_copy(mask, 1);
    model.set_batch(inputs, targets, mask, shape.num_microbatches);
    stretto::mpi::communicator comm(MPI_COMM_WORLD, shape);
    stretto::kokkos::executor exec(plan, model, comm);
    const counts c = count_steady_steps(exec, 5);
    CHECK(c.heap == 0);
    CHECK(c.views == 0);
    CHECK(model.held() == 0);          // every W let go of its boundaries
    CHECK(exec.pool().in_use() == 0);  // so every message buffer is back in the pool
    MPI_Barrier(MPI_COMM_WORLD);
  }
  CHECK(ran == (p % 2 == 0 ? 4 : 2));
}

namespace {

// holding_model with weight gradients (one contiguous buffer per local stage, W adds 1 to each)
// and a batch of `rows` samples, for the step API.
struct reducing_model : holding_model {
  std::vector<std::vector<double>> grads;  // [stage]: empty unless local
  std::span<double> gradients(std::int32_t s) { return grads[static_cast<std::size_t>(s)]; }
  void backward_weight(std::int32_t s, std::int32_t mb) {
    holding_model::backward_weight(s, mb);
    for (double& g : grads[static_cast<std::size_t>(s)]) g += 1.0;
  }
  static std::int64_t batch_rows(const std::int64_t& rows) { return rows; }
  void set_microbatches(const std::int64_t&, std::span<const std::int64_t>) {}
};

}  // namespace

TEST_CASE("mpi.allocations.staged_gradient_reduction_allocates_nothing_after_the_first_step" * doctest::timeout(120)) {
  int p = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  view_counter views;
  int ran = 0;
  // One pipeline of p ranks with a bidirectional schedule (both replicas of a stage reduce), and
  // p data-parallel copies of a one-stage 1F1B.
  for (const std::string name : {"chimera", "1f1b"}) {
    const std::int32_t pp = name == "1f1b" ? 1 : p;
    const auto& policy = stretto::policies::find_policy(name);
    const stretto::pipeline_shape shape{pp, 2 * pp, policy.default_chunks};
    if (!policy.check(shape).empty()) continue;  // Chimera needs p even
    ++ran;
    CAPTURE(name);
    CAPTURE(p);
    const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
    stretto::training::pipeline_options options;
    options.executor.messages = stretto::kokkos::message_path::staged;
    stretto::training::pipeline<reducing_model> pipe(
        MPI_COMM_WORLD, plan,
        [&](std::vector<std::int32_t> local) {
          reducing_model m;
          m.microbatches = shape.num_microbatches;
          m.kept.resize(2 * static_cast<std::size_t>(plan.num_stages() * shape.num_microbatches));
          m.grads.resize(static_cast<std::size_t>(plan.num_stages()));
          for (const std::int32_t s : local) m.grads[static_cast<std::size_t>(s)].assign(1000, 0.0);
          return m;
        },
        options);
    REQUIRE(pipe.stages_gradients());
    const std::int64_t rows = holding_model::rows * shape.num_microbatches * (p / pp);
    // Each W adds 1: summed over the stage's holders, one per microbatch (Chimera's replicas
    // split the microbatches), times the copies.
    const double sum = static_cast<double>(shape.num_microbatches * (p / pp));
    std::int32_t holders = 0;
    auto step = [&] {
      pipe.step(rows, [&](std::int32_t stage, std::span<double> g) {
        holders = pipe.reduction().group_size(stage);
        CHECK(g[0] * static_cast<double>(rows) == doctest::Approx(sum));
      });
    };
    step();
    MPI_Barrier(MPI_COMM_WORLD);
    step();
    MPI_Barrier(MPI_COMM_WORLD);
    heap_allocations = 0;
    view_allocations = 0;
    counting = true;
    for (int k = 0; k < 3; ++k) pipe.step(rows, [](std::int32_t, std::span<double>) {});
    counting = false;
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK(heap_allocations == 0);
    CHECK(view_allocations == 0);
    CHECK(holders >= 2);
    CHECK(pipe.gradient_staging_allocations() == plan.stages_on_rank(pipe.grid().pipeline_rank()).size());
  }
  CHECK(ran == (p % 2 == 0 ? 2 : 1));
}
