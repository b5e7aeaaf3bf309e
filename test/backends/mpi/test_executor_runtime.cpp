// The executor's runtime: what its timeline records (observers) and what it allocates.
//
// Timeline: a stage model that sleeps a fixed time in every stage function and stamps its own
// entry and exit with steady_clock; the executor's recorded compute intervals must contain the
// model's own and add at most 1 % to them, and a rank's wait for its first input (the pipeline's
// fill) must be recorded as a wait, not as compute: its compute begins after its input's producer
// ended on the rank upstream.
#include <doctest/doctest.h>

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <stretto/kokkos/executor.hpp>
#include <stretto/mpi/communicator.hpp>
#include <stretto/stretto.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
using matrix_type = stretto::kokkos::matrix<double>;

// Holds the index of the op the executor is running, for the model's own stamps.
struct current_op final : stretto::kokkos::observer {
  std::size_t index{0};
  std::size_t events{0};
  void on_step_begin(std::span<const stretto::op>, clock_type::time_point) override { ++events; }
  void on_wait_begin(std::size_t, const stretto::op&, clock_type::time_point) override { ++events; }
  void on_compute_begin(std::size_t i, const stretto::op&, clock_type::time_point) override {
    index = i;
    ++events;
  }
  void on_compute_end(std::size_t, const stretto::op&, clock_type::time_point) override { ++events; }
  void on_send_complete(std::size_t, const stretto::op&, clock_type::time_point) override { ++events; }
  void on_step_end(clock_type::time_point) override { ++events; }
};

// Every stage function sleeps `spin` and records [entry, exit] of the op it belongs to (B and W
// of a fused BW op both extend the same op's interval).
struct stamping_model {
  using matrix_type = ::matrix_type;
  static constexpr std::int64_t rows = 2, features = 3;
  const current_op* current{nullptr};
  clock_type::duration spin{};
  std::vector<clock_type::time_point> entry, exit;  // per op index of the running list

  std::int64_t input_features(std::int32_t) const { return features; }
  std::int64_t output_features(std::int32_t) const { return features; }
  std::int64_t microbatch_rows(std::int32_t) const { return rows; }
  matrix_type input(std::int32_t) const { return inputs; }
  matrix_type inputs{"inputs", rows, features};

  void work() {
    const auto begin = clock_type::now();
    const std::size_t i = current->index;
    if (entry[i] == clock_type::time_point{}) entry[i] = begin;
    std::this_thread::sleep_for(spin);  // sleeps, so that oversubscribed ranks do not preempt one another
    exit[i] = clock_type::now();
  }
  void forward(std::int32_t, std::int32_t, const matrix_type& x, const matrix_type& y) {
    work();
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < features; ++j) y(i, j) = x(i, j);
  }
  double loss(std::int32_t, const matrix_type& y, const matrix_type& dy) {
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < features; ++j) dy(i, j) = y(i, j);
    return 1.0;
  }
  void backward_input(std::int32_t, std::int32_t, const matrix_type& dy, const matrix_type& dx) {
    work();
    for (std::size_t i = 0; i < dx.extent(0); ++i)
      for (std::int64_t j = 0; j < features; ++j) dx(i, j) = dy(i, j);
  }
  void backward_weight(std::int32_t, std::int32_t) { work(); }
};

double seconds(clock_type::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

TEST_CASE("mpi.runtime.timeline_records_waits_apart_from_compute" * doctest::timeout(120)) {
  int rank = 0, p = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  const auto spin = std::chrono::milliseconds(2);
  for (const std::string name : {"1f1b", "zb-h1"}) {
    CAPTURE(name);
    CAPTURE(p);
    const stretto::pipeline_shape shape{p, 2 * p, 1};
    const stretto::schedule plan = stretto::policies::make_schedule(name, shape);
    const auto list = plan.ops(rank);
    current_op current;
    stamping_model model;
    model.current = &current;
    model.spin = spin;
    stretto::mpi::communicator comm(MPI_COMM_WORLD, shape);
    stretto::kokkos::executor exec(plan, model, comm);
    exec.add_observer(current);
    // The 1 % bound holds for the least disturbed of 5 steps: another process preempting a rank
    // between the executor's stamp and the model's shows up as executor time.
    double least_excess = 1.0;
    for (int step = 0; step < 5; ++step) {
      model.entry.assign(list.size(), {});
      model.exit.assign(list.size(), {});
      current.events = 0;
      MPI_Barrier(MPI_COMM_WORLD);
      const auto origin = clock_type::now();
      const stretto::kokkos::step_record& record = exec.run_step(origin);
      // Every event reached the added observer: begin, end, and four per op.
      CHECK(current.events == 2 + 4 * list.size());
      REQUIRE(record.trace.size() == list.size());
      REQUIRE(record.ops.size() == list.size());
      double own_total = 0.0, recorded_total = 0.0, excess = 0.0;
      for (std::size_t i = 0; i < list.size(); ++i) {
        CAPTURE(i);
        const auto& t = record.trace[i];
        CHECK(t.what == list[i]);
        const double own_begin = seconds(model.entry[i] - origin), own_end = seconds(model.exit[i] - origin);
        CHECK(t.wait_begin <= t.compute_begin);
        CHECK(t.compute_begin <= own_begin);
        CHECK(own_end <= t.compute_end);
        CHECK(t.compute_end <= t.send_complete);
        CHECK(record.ops[i].start == t.compute_begin);
        CHECK(record.ops[i].end == t.compute_end);
        own_total += own_end - own_begin;
        recorded_total += t.compute();
        excess += t.compute() - (own_end - own_begin);
      }
      least_excess = std::min(least_excess, excess / own_total);
      CHECK(record.busy() == doctest::Approx(recorded_total));
      CHECK(record.idle() == doctest::Approx(record.end() - record.busy()));
      // Rank r's first op, F(r, 0), needs F(r − 1, 0)'s output: its compute begins after that
      // op's compute ended on rank r − 1 (one steady clock on one node), the time before is a
      // wait. (A start taken before the wait would break this whenever rank r starts early.)
      REQUIRE(list.front() == stretto::op{stretto::op_kind::forward, rank, 0});
      const double at = seconds(origin.time_since_epoch());
      const double mine[2] = {at + record.trace.front().compute_begin, at + record.trace.front().compute_end};
      std::vector<double> all(2 * static_cast<std::size_t>(p));
      MPI_Allgather(mine, 2, MPI_DOUBLE, all.data(), 2, MPI_DOUBLE, MPI_COMM_WORLD);
      // (1 µs of slack: both instants are an origin plus an offset, each rounded to a double.)
      if (rank > 0) CHECK(all[2 * static_cast<std::size_t>(rank)] >= all[2 * static_cast<std::size_t>(rank) - 1] - 1e-6);
    }
    // The executor's compute time is the stage functions' own, within 1 %.
    CHECK(least_excess >= 0.0);
    CHECK(least_excess <= 0.01);
  }
}
