// The executor runs a schedule as the simulator prices it: per op, the same start and end.
//
// Every rank of the pipeline is a thread of this process with its own logical clock; the stage
// functions advance their rank's clock by the cost model's duration of the op, a message carries
// its sender's clock at the post (the op's end, or its F&B pair's) plus the latency, and a wait
// for it moves the receiver's clock forward to that stamp. The clock is deterministic, so the
// executor's logical start and end of every op (read by an observer at its compute events) must
// equal the simulator's up to rounding, under the executor's real waits and message order.
// Overlapped F&B pairs (DualPipe, DualPipeV) are checked both ways: run one after the other
// (the pair starts when both inputs are there and ends after F + B) and run together by a model
// with `forward_backward` (priced with the cost model's overlap time).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <stretto/kokkos/executor.hpp>
#include <stretto/stretto.hpp>

namespace {

using matrix_type = stretto::kokkos::matrix<double>;

// The messages of one step between the threads, each with its arrival time.
struct mailbox {
  using key_type = std::tuple<int, int, int, int>;
  std::mutex mutex;
  std::condition_variable arrived;
  std::map<key_type, std::pair<double, std::vector<double>>> messages;
  static key_type key(const stretto::message_key& k) {
    return {static_cast<int>(k.direction), k.from_stage, k.to_stage, k.microbatch};
  }
};

// A transport between threads that keeps a logical clock: a send is stamped with the sender's
// clock plus `latency` and never blocks; a wait copies the message and advances the receiver's
// clock to its stamp.
struct clock_transport {
  struct request {
    bool send{true};
    stretto::message_key key{};
    double* data{nullptr};
    std::size_t size{0};
  };
  mailbox* box{nullptr};
  std::int32_t own_rank{0};
  double* now{nullptr};
  double latency{0.0};

  std::int32_t rank() const { return own_rank; }
  request post_receive(const stretto::message_key& k, std::int32_t, double* p, std::size_t n) {
    return {false, k, p, n};
  }
  request post_send(const stretto::message_key& k, std::int32_t, const double* p, std::size_t n) {
    {
      std::lock_guard lock(box->mutex);
      box->messages[mailbox::key(k)] = {*now + latency, std::vector<double>(p, p + n)};
    }
    box->arrived.notify_all();
    return {true, k, nullptr, n};
  }
  bool test(request& q) {
    if (q.send) return true;
    std::lock_guard lock(box->mutex);
    return box->messages.count(mailbox::key(q.key)) != 0;
  }
  void wait(request& q, const stretto::op& o) {
    if (q.send) return;
    std::unique_lock lock(box->mutex);
    const auto k = mailbox::key(q.key);
    if (!box->arrived.wait_for(lock, std::chrono::seconds(20), [&] { return box->messages.count(k) != 0; }))
      throw stretto::timeout_error("rank " + std::to_string(own_rank) + " waits forever before " + to_string(o) +
                                   " for the " + to_string(q.key));
    auto& [stamp, values] = box->messages[k];
    REQUIRE(values.size() == q.size);
    std::copy(values.begin(), values.end(), q.data);
    *now = std::max(*now, stamp);
    box->messages.erase(k);
  }
};
static_assert(stretto::transport<clock_transport>);

// Stage functions that take the cost model's time on the rank's logical clock and pass their
// input on (plus one), so that a value that arrived too late or from the wrong op shows.
struct clock_model {
  using matrix_type = ::matrix_type;
  static constexpr std::int64_t rows = 2, features = 3;
  const stretto::sim::stage_costs* costs{nullptr};
  double* now{nullptr};
  matrix_type inputs{"inputs", rows, features};

  std::int64_t input_features(std::int32_t) const { return features; }
  std::int64_t output_features(std::int32_t) const { return features; }
  std::int64_t microbatch_rows(std::int32_t) const { return rows; }
  matrix_type input(std::int32_t) const { return inputs; }
  static void pass(const matrix_type& from, const matrix_type& to) {
    for (std::size_t i = 0; i < to.extent(0); ++i)
      for (std::size_t j = 0; j < to.extent(1); ++j) to(i, j) = from(i, j) + 1.0;
  }
  void forward(std::int32_t s, std::int32_t, const matrix_type& x, const matrix_type& y) {
    *now += costs->forward[static_cast<std::size_t>(s)];
    pass(x, y);
  }
  double loss(std::int32_t, const matrix_type& y, const matrix_type& dy) {
    pass(y, dy);
    return y(0, 0);
  }
  void backward_input(std::int32_t s, std::int32_t, const matrix_type& dy, const matrix_type& dx) {
    *now += costs->backward_input[static_cast<std::size_t>(s)];
    pass(dy, dx);
  }
  void backward_weight(std::int32_t s, std::int32_t) { *now += costs->backward_weight[static_cast<std::size_t>(s)]; }
};

// The same, with an F&B pair run together in the cost model's overlap time.
struct overlapping_model : clock_model {
  int pairs{0};
  void forward_backward(const stretto::op&, const matrix_type& x, const matrix_type& y, const stretto::op&,
                        const matrix_type& dy, const matrix_type& dx) {
    *now += costs->t_overlapped_fb;
    pass(x, y);
    pass(dy, dx);
    ++pairs;
  }
};

// The logical clock at each op's compute begin and end.
struct clock_reader final : stretto::kokkos::observer {
  const double* now{nullptr};
  std::vector<double> begin, end;
  void on_step_begin(std::span<const stretto::op> ops, clock::time_point) override {
    begin.assign(ops.size(), -1.0);
    end.assign(ops.size(), -1.0);
  }
  void on_compute_begin(std::size_t i, const stretto::op&, clock::time_point) override { begin[i] = *now; }
  void on_compute_end(std::size_t i, const stretto::op&, clock::time_point) override { end[i] = *now; }
};

struct rank_result {
  std::vector<double> begin, end;
  double loss{0.0};
  int pairs{0};
};

// Runs one step of `plan` with one thread per rank under `costs`; returns each rank's clock readings.
template <class Model>
std::vector<rank_result> run_threads(const stretto::schedule& plan, const stretto::sim::stage_costs& costs) {
  const auto p = static_cast<std::size_t>(plan.num_ranks());
  mailbox box;
  std::vector<rank_result> results(p);
  std::vector<std::string> errors(p);
  std::vector<std::thread> threads;
  for (std::size_t r = 0; r < p; ++r)
    threads.emplace_back([&, r] {
      try {
        double now = 0.0;
        Model model;
        model.costs = &costs;
        model.now = &now;
        clock_transport comm{&box, static_cast<std::int32_t>(r), &now, costs.latency};
        clock_reader reader;
        reader.now = &now;
        stretto::kokkos::executor exec(plan, model, comm);
        exec.add_observer(reader);
        results[r].loss = exec.run_step().loss;
        results[r].begin = reader.begin;
        results[r].end = reader.end;
        if constexpr (requires { model.pairs; }) results[r].pairs = model.pairs;
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (std::size_t r = 0; r < p; ++r) {
    CAPTURE(r);
    REQUIRE(errors[r] == "");
  }
  return results;
}

// Costs that differ per stage, so that a wrong op shows; a message takes a quarter of an F.
stretto::sim::stage_costs costs_of(const stretto::pipeline_shape& shape, double overlap) {
  stretto::sim::stage_costs c;
  for (std::int32_t s = 0; s < shape.num_stages(); ++s) {
    c.forward.push_back(1.0 + 0.125 * s);
    c.backward_input.push_back(1.25 + 0.0625 * s);
    c.backward_weight.push_back(0.75 + 0.03125 * s);
  }
  c.latency = 0.25;
  c.t_overlapped_fb = overlap;
  return c;
}

// Compares the executor's clock readings with the simulated intervals, op by op. In a pair run
// one after the other the first op starts at the pair's start and the second ends at its end.
void check_matches(const stretto::schedule& plan, const stretto::sim::stage_costs& costs,
                   const std::vector<rank_result>& run, bool together) {
  const stretto::sim::simulation sim = stretto::sim::simulate(plan, costs);
  for (std::int32_t r = 0; r < plan.num_ranks(); ++r) {
    CAPTURE(r);
    const auto list = plan.ops(r);
    const auto events = sim.events.ops(r);
    const rank_result& got = run[static_cast<std::size_t>(r)];
    REQUIRE(events.size() == list.size());
    REQUIRE(got.begin.size() == list.size());
    for (std::size_t i = 0; i < list.size(); ++i) {
      CAPTURE(i);
      CAPTURE(to_string(list[i]));
      REQUIRE(events[i].what == list[i]);
      const bool first_of_pair = list[i].overlapped;
      const bool second_of_pair = i > 0 && list[i - 1].overlapped;
      if (together || !second_of_pair) CHECK(got.begin[i] == doctest::Approx(events[i].start).epsilon(1e-12));
      if (together || !first_of_pair) CHECK(got.end[i] == doctest::Approx(events[i].end).epsilon(1e-12));
      if (!together && first_of_pair) {
        // one after the other: the second op starts when the first ends
        CHECK(got.end[i] == doctest::Approx(got.begin[i + 1]).epsilon(1e-12));
        CHECK(got.end[i] - got.begin[i] == doctest::Approx(costs.duration(list[i], plan.shape())).epsilon(1e-12));
      }
    }
  }
  // The spans agree too (the span from the logical clocks: longest rank's first begin to last end).
  double span = 0.0;
  for (const rank_result& g : run)
    if (!g.begin.empty()) span = std::max(span, *std::max_element(g.end.begin(), g.end.end()) - g.begin.front());
  CHECK(span == doctest::Approx(sim.metrics.span).epsilon(1e-12));
}

struct case_shape {
  const char* policy;
  stretto::pipeline_shape shape;
};

}  // namespace

TEST_CASE("executor.matches_simulator.per_op_start_and_end") {
  // DualPipe needs p even and m even >= 2p, DualPipeV m >= 2p; the list covers p = 2, p odd,
  // m = 1, m < p and m = p for the schedules that accept them.
  const case_shape cases[] = {
      {"dualpipe", {2, 4, 1}},   {"dualpipe", {4, 8, 1}},  {"dualpipe", {4, 12, 1}},  {"dualpipe", {6, 12, 1}},
      {"dualpipev", {2, 4, 2}},  {"dualpipev", {3, 6, 2}}, {"dualpipev", {4, 8, 2}},  {"dualpipev", {4, 10, 2}},
      {"dualpipev", {5, 12, 2}}, {"1f1b", {4, 1, 1}},      {"1f1b", {4, 3, 1}},       {"1f1b", {3, 3, 1}},
      {"1f1b", {4, 8, 1}},       {"zb-h1", {3, 7, 1}},     {"zb-h2", {4, 8, 1}},      {"zb-v", {4, 8, 2}},
      {"zb-v", {3, 2, 2}},       {"interleaved-1f1b", {2, 4, 2}}, {"chimera", {4, 8, 1}}, {"gpipe", {3, 5, 1}},
  };
  int pairs_seen = 0;
  for (const case_shape& c : cases) {
    CAPTURE(c.policy);
    CAPTURE(c.shape.num_ranks);
    CAPTURE(c.shape.num_microbatches);
    const stretto::schedule plan = stretto::policies::make_schedule(c.policy, c.shape);
    int pairs = 0;
    for (std::int32_t r = 0; r < plan.num_ranks(); ++r)
      for (const stretto::op& o : plan.ops(r)) pairs += o.overlapped ? 1 : 0;
    if (std::string(c.policy).starts_with("dualpipe")) CHECK(pairs > 0);
    pairs_seen += pairs;
    {
      // One after the other: the default overlap time, F + B.
      const stretto::sim::stage_costs costs = costs_of(c.shape, -1.0);
      check_matches(plan, costs, run_threads<clock_model>(plan, costs), false);
    }
    {
      // Together: a pair takes less than its F alone on the first stage.
      const stretto::sim::stage_costs costs = costs_of(c.shape, 0.875);
      const auto run = run_threads<overlapping_model>(plan, costs);
      check_matches(plan, costs, run, true);
      int fused = 0;
      for (const rank_result& g : run) fused += g.pairs;
      CHECK(fused == pairs);
    }
  }
  CHECK(pairs_seen > 0);
}

TEST_CASE("executor.matches_simulator.pair_waits_for_both_inputs") {
  // DualPipe at p = 2, m = 4 with slow messages: every pair's start is the later of its two
  // inputs' arrivals (the simulator's rule), never the arrival of the first op's input alone.
  const stretto::pipeline_shape shape{2, 4, 1};
  const stretto::schedule plan = stretto::policies::make_schedule("dualpipe", shape);
  stretto::sim::stage_costs costs = costs_of(shape, -1.0);
  costs.latency = 3.0;
  const auto run = run_threads<clock_model>(plan, costs);
  check_matches(plan, costs, run, false);
  // Every microbatch's input (zeros) went through every stage once (+1 per F): its loss is S.
  double loss = 0.0;
  for (const rank_result& g : run) loss += g.loss;
  CHECK(loss == doctest::Approx(shape.num_microbatches * shape.num_stages()));
}

int main(int argc, char** argv) {
  Kokkos::initialize(argc, argv);
  int result = 0;
  {
    doctest::Context context(argc, argv);
    result = context.run();
  }
  Kokkos::finalize();
  return result;
}
