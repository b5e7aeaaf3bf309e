// Emulated-time pipeline: every policy run by the real Kokkos executor and MPI communicator on
// stage functions that only wait for their cost-model time, against the simulator's span.
//
//   mpirun -n P stretto.bench.emulated_pipeline [--schedules all|NAME,...] [--microbatches M]
//          [--t-f MS] [--t-b MS] [--t-w MS] [--bytes B,...] [--mode sleep|spin|cpu] [--steps N]
//          [--comm-delay auto|SECONDS] [--progress auto|thread|poll] [--wait auto|spin|block]
//          [--poll-interval-us US] [--hot-time-us US] [--format text|json]
//          [--data-parallel D] [--gradient-bytes B] [--trace FILE]
//
// Each op of a chunk of a full stage waits T/v (v chunks per rank, as stretto::sim::uniform_costs
// prices it): `sleep` sleeps until its deadline, `spin` busy-waits until it (a core kept busy),
// `cpu` busy-waits until the thread has used T/v of CPU time (a compute-bound op: on a core
// shared with other ranks it takes longer, as real computation would). Every
// message carries B bytes (one row of B/8 doubles). Per schedule: one warm-up step, then N
// measured steps; the span of a step is, as the simulator defines it, the longest rank's first
// start to last end (a start is when the stage function begins, after its input arrived); the figure reported is the median over the N steps (the best is shown too).
// "op late" is how long, on average, an op ran past its cost (a sleeping rank woken late by a
// busy machine): the part of the gap that no message layer can remove.
// The simulated span uses the same costs and a message delay: `auto` measures the one-way time
// of a B-byte message between ranks 0 and 1 through the communicator (median of 20 ping-pongs).
// Schedules whose policy rejects the shape are listed as skipped, with the reason.
//
// Data parallelism (--data-parallel D): the N ranks form D pipelines of p = N / D ranks
// (stretto::mpi::process_grid, pipeline neighbours adjacent: world rank = group·p + pipeline
// rank), and each stage's gradients (B bytes of doubles) are summed by the library's
// stretto::mpi::gradient_reduction over the ranks that hold the stage (D of them, or 2D for the
// two replicas of a bidirectional schedule): its MPI_Iallreduce starts after the stage's last W
// (or BW) of the step, driven by an executor observer, and the step waits for them after its last
// op. A rank's step ends with its last op or, if that wait blocked, when its reductions completed.
// The simulated step is sim::simulate_data_parallel's, with the ring's latency α calibrated per
// schedule from a measured all-reduce: before the schedule's steps (its communicator running) each
// stage group runs 20 all-reduces of B bytes (MPI_Iallreduce + MPI_Wait, stage after stage), and
// α = T / (2(n − 1)) for the slowest group's median T over n ranks, so that the simulator's ring
// time 2(n − 1)·α is the measured time of the all-reduce that Open MPI runs for that group (its
// own algorithm over shared memory or TCP), waited for as the library waits, not a modelled one.
#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <optional>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <stretto/kokkos/executor.hpp>
#include <stretto/mpi/communicator.hpp>

#include "communicator_flags.hpp"
#include <stretto/mpi/gradient_reduction.hpp>
#include <stretto/mpi/process_grid.hpp>
#include <stretto/sim/data_parallel.hpp>
#include <stretto/stretto.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
bool cpu_time = false;  // --mode cpu: ops take CPU time, not wall time

struct options {
  std::vector<std::string> schedules;  // empty: all
  std::int32_t microbatches{0};        // 0: 2p
  double t_f{20e-3}, t_b{20e-3}, t_w{20e-3};
  std::vector<std::size_t> bytes{512 * 1024};
  bool spin{false};
  int steps{3};
  double comm_delay{-1.0};  // < 0: measure
  stretto::mpi::progress_mode progress{stretto::mpi::progress_mode::automatic};
  stretto::mpi::wait_style waiting{stretto::mpi::wait_style::automatic};
  double poll_interval{-1.0}, hot_time{-1.0};  // seconds; < 0: the communicator's defaults
  bool json{false};
  int data_parallel{1};
  std::size_t gradient_bytes{1024 * 1024};
  std::string trace;  // CSV of every op's measured and simulated times (last step), empty: none
};

[[noreturn]] void usage_error(int rank, const std::string& text) {
  if (rank == 0)
    std::fprintf(stderr,
                 "emulated_pipeline: error: %s\nusage: emulated_pipeline [--schedules all|NAME,...] [--microbatches M] "
                 "[--t-f MS] [--t-b MS] [--t-w MS] [--bytes B,...] [--mode sleep|spin] [--steps N] "
                 "[--comm-delay auto|SECONDS] [--progress auto|thread|poll] [--wait auto|spin|block] "
                 "[--poll-interval-us US] [--hot-time-us US] [--format text|json] [--data-parallel D] "
                 "[--gradient-bytes B] [--trace FILE]\n",
                 text.c_str());
  MPI_Finalize();
  std::exit(2);
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    out.push_back(text.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

// `value` in seconds, given in `unit` (scale: seconds per unit).
double seconds_of(int rank, const std::string& flag, const std::string& value, const char* unit, double scale) {
  char* end = nullptr;
  const double x = std::strtod(value.c_str(), &end);
  if (end == value.c_str() || *end != '\0' || !(x >= 0)) usage_error(rank, flag + " must be a number of " + unit + " >= 0");
  return x * scale;
}

options parse(int argc, char** argv, int rank) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag.rfind("--kokkos", 0) == 0) continue;  // Kokkos' own flags
    if (i + 1 >= argc) usage_error(rank, "missing value after " + flag);
    const std::string value = argv[++i];
    if (flag == "--schedules") {
      if (value != "all") o.schedules = split(value);
      for (const auto& name : o.schedules) try {
          (void)stretto::policies::find_policy(name);
        } catch (const std::exception& e) {
          usage_error(rank, e.what());
        }
    } else if (flag == "--microbatches") {
      o.microbatches = std::atoi(value.c_str());
      if (o.microbatches < 1) usage_error(rank, "--microbatches must be at least 1");
    } else if (flag == "--t-f") {
      o.t_f = seconds_of(rank, flag, value, "milliseconds", 1e-3);
    } else if (flag == "--t-b") {
      o.t_b = seconds_of(rank, flag, value, "milliseconds", 1e-3);
    } else if (flag == "--t-w") {
      o.t_w = seconds_of(rank, flag, value, "milliseconds", 1e-3);
    } else if (flag == "--bytes") {
      o.bytes.clear();
      for (const auto& b : split(value)) {
        const long long n = std::atoll(b.c_str());
        if (n < 8 || n % 8 != 0) usage_error(rank, "--bytes: each size must be a multiple of 8 bytes, at least 8");
        o.bytes.push_back(static_cast<std::size_t>(n));
      }
    } else if (flag == "--mode") {
      if (value != "sleep" && value != "spin" && value != "cpu") usage_error(rank, "--mode must be sleep, spin or cpu");
      o.spin = value != "sleep";
      cpu_time = value == "cpu";
    } else if (flag == "--steps") {
      o.steps = std::atoi(value.c_str());
      if (o.steps < 1) usage_error(rank, "--steps must be at least 1");
    } else if (flag == "--comm-delay") {
      if (value == "auto") {
        o.comm_delay = -1.0;
      } else {
        char* end = nullptr;
        o.comm_delay = std::strtod(value.c_str(), &end);
        if (end == value.c_str() || *end != '\0' || !(o.comm_delay >= 0))
          usage_error(rank, "--comm-delay must be auto or a number of seconds >= 0");
      }
    } else if (flag == "--progress") {
      if (!stretto::bench::parse_progress(value, o.progress)) usage_error(rank, "--progress must be auto, thread or poll");
    } else if (flag == "--wait") {
      if (!stretto::bench::parse_wait(value, o.waiting)) usage_error(rank, "--wait must be auto, spin or block");
    } else if (flag == "--poll-interval-us" || flag == "--hot-time-us") {
      (flag == "--poll-interval-us" ? o.poll_interval : o.hot_time) = seconds_of(rank, flag, value, "microseconds", 1e-6);
    } else if (flag == "--data-parallel") {
      o.data_parallel = std::atoi(value.c_str());
      if (o.data_parallel < 1) usage_error(rank, "--data-parallel must be at least 1");
    } else if (flag == "--gradient-bytes") {
      const long long n = std::atoll(value.c_str());
      if (n < 8 || n % 8 != 0) usage_error(rank, "--gradient-bytes must be a multiple of 8 bytes, at least 8");
      o.gradient_bytes = static_cast<std::size_t>(n);
    } else if (flag == "--trace") {
      o.trace = value;
    } else if (flag == "--format") {
      if (value != "text" && value != "json") usage_error(rank, "--format must be text or json");
      o.json = value == "json";
    } else {
      usage_error(rank, "unknown flag " + flag);
    }
  }
  return o;
}

stretto::mpi::communicator_options comm_options(const options& o) {
  stretto::mpi::communicator_options c;
  c.timeout = std::chrono::duration<double>(120.0);
  c.progress = o.progress;
  c.waiting = o.waiting;
  if (o.poll_interval >= 0) c.poll_interval = std::chrono::duration<double>(o.poll_interval);
  if (o.hot_time >= 0) c.hot_time = std::chrono::duration<double>(o.hot_time);
  return c;
}

// Time the emulated ops took beyond their cost (a late wake-up), summed, and their number; and
// when the first one started and the last one ended (the rank's span, as the simulator defines
// it: from when its first op runs, not from when it starts waiting for that op's input).
double late_total = 0.0;
long emulated_ops = 0;
clock_type::time_point first_start{}, last_end{};

// Data parallelism: the library's reduction, told of every op's end by the executor.
struct reduction_observer final : stretto::kokkos::observer {
  stretto::mpi::gradient_reduction* reduction{nullptr};
  void on_compute_end(std::size_t index, const stretto::op& o, clock::time_point) override {
    if (reduction != nullptr) reduction->op_done(index, o);
  }
};

// The thread's CPU time in seconds.
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Waits `seconds` from now: sleeping until the deadline, or spinning (a busy core), or (--mode
// cpu) computing until the thread has used `seconds` of CPU time.
void emulate(double seconds, bool spin) {
  const auto start = clock_type::now();
  if (emulated_ops == 0) first_start = start;
  auto deadline = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  if (spin && cpu_time) {
    const double until = thread_cpu_seconds() + seconds;
    while (thread_cpu_seconds() < until) {
    }
    deadline = clock_type::now();  // on time by definition: its lateness is the sharing of its core
  } else if (spin) {
    while (clock_type::now() < deadline) {
    }
  } else {
    std::this_thread::sleep_until(deadline);
  }
  last_end = clock_type::now();
  late_total += std::chrono::duration<double>(last_end - deadline).count();
  ++emulated_ops;
}

// Stage functions that only take their time; every tensor is one row of `features` doubles.
struct emulated_model {
  using matrix_type = stretto::kokkos::matrix<double, Kokkos::HostSpace>;
  std::int64_t features{1};
  double t_f{0}, t_b{0}, t_w{0};  // per op of this shape's chunks (already divided by v)
  bool spin{false};
  matrix_type first_input;

  std::int64_t input_features(std::int32_t) const { return features; }
  std::int64_t output_features(std::int32_t) const { return features; }
  std::int64_t microbatch_rows(std::int32_t) const { return 1; }
  matrix_type input(std::int32_t) const { return first_input; }
  void forward(std::int32_t, std::int32_t, const matrix_type&, const matrix_type&) const { emulate(t_f, spin); }
  double loss(std::int32_t, const matrix_type&, const matrix_type&) const { return 0.0; }
  void backward_input(std::int32_t, std::int32_t, const matrix_type&, const matrix_type&) const { emulate(t_b, spin); }
  void backward_weight(std::int32_t, std::int32_t) const { emulate(t_w, spin); }
  void backward(std::int32_t, std::int32_t, const matrix_type&, const matrix_type&) const { emulate(t_b + t_w, spin); }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

// One-way time of a `bytes` message between ranks 0 and 1 through the communicator (median of
// 20 ping-pongs after 3 unmeasured ones), known to every rank.
double measure_delay(MPI_Comm pipeline, int rank, int p, std::size_t bytes, const options& o) {
  stretto::mpi::communicator comm(pipeline, {p, 1, 1}, comm_options(o));
  std::vector<double> out(bytes / 8, 1.0), in(bytes / 8, 0.0);
  const stretto::message_key ping{stretto::message_direction::activation, 0, 1, 0};
  const stretto::message_key pong{stretto::message_direction::gradient, 1, 0, 0};
  const stretto::op waiting{stretto::op_kind::forward, rank, 0};
  std::vector<double> times;
  MPI_Barrier(pipeline);
  if (rank < 2) {
    for (int i = 0; i < 23; ++i) {
      const auto start = clock_type::now();
      if (rank == 0) {
        auto s = comm.post_send(ping, 1, static_cast<const double*>(out.data()), out.size());
        auto r = comm.post_receive(pong, 1, in.data(), in.size());
        comm.wait(s, waiting);
        comm.wait(r, waiting);
      } else {
        auto r = comm.post_receive(ping, 0, in.data(), in.size());
        comm.wait(r, waiting);
        auto s = comm.post_send(pong, 0, static_cast<const double*>(out.data()), out.size());
        comm.wait(s, waiting);
      }
      if (i >= 3) times.push_back(std::chrono::duration<double>(clock_type::now() - start).count() / 2);
    }
  }
  double delay = rank == 0 ? median(times) : 0.0;
  MPI_Bcast(&delay, 1, MPI_DOUBLE, 0, pipeline);
  return delay;
}

// The ring latency α for the simulator: each stage group of `groups` runs 22 all-reduces of
// `bytes` (MPI_Iallreduce, waited for as gradient_reduction::wait waits: tests with short pauses;
// stage after stage, all ranks in step),
// the median of the last 20 is its time T over its n ranks, and α = T / (2(n − 1)) for the
// slowest group, known to every rank. Also returns that T.
struct ring_calibration {
  double latency{0}, t_ring{0};
  int members{0};
};
ring_calibration measure_allreduce(const stretto::mpi::process_grid::stage_group_set& groups, std::size_t bytes) {
  std::vector<double> buffer(bytes / 8, 1.0);
  double mine[2] = {0.0, 0.0};  // the largest α and its T
  int members = 0;
  for (std::int32_t stage = 0; stage < groups.num_stages(); ++stage) {
    std::vector<double> times;
    const MPI_Comm group = groups.group(stage);
    for (int i = 0; i < 22; ++i) {
      MPI_Barrier(MPI_COMM_WORLD);
      if (group == MPI_COMM_NULL || groups.size(stage) < 2) continue;
      const auto start = clock_type::now();
      MPI_Request request = MPI_REQUEST_NULL;
      MPI_Iallreduce(MPI_IN_PLACE, buffer.data(), static_cast<int>(buffer.size()), MPI_DOUBLE, MPI_SUM, group, &request);
      if (!stretto::mpi::detail::wait_bounded(request, std::chrono::duration<double>(120.0)))
        throw std::runtime_error("an all-reduce of the ring calibration did not finish in 120 s");
      if (i >= 2) times.push_back(std::chrono::duration<double>(clock_type::now() - start).count());
    }
    if (times.empty()) continue;
    const double t = median(times);
    const double alpha = t / (2.0 * (groups.size(stage) - 1));
    if (alpha > mine[0]) {
      mine[0] = alpha;
      mine[1] = t;
      members = groups.size(stage);
    }
  }
  struct {
    double value;
    int rank;
  } local{mine[0], 0}, slowest{0.0, 0};
  MPI_Comm_rank(MPI_COMM_WORLD, &local.rank);
  MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE_INT, MPI_MAXLOC, MPI_COMM_WORLD);
  double shared[2] = {mine[1], static_cast<double>(members)};
  MPI_Bcast(shared, 2, MPI_DOUBLE, slowest.rank, MPI_COMM_WORLD);
  return {slowest.value, shared[0], static_cast<int>(shared[1])};
}

// --trace: appends, for the step just run, every op of every rank of `pipeline` to `path` (CSV;
// header when the file is new): its measured wait begin, compute begin and end, and its
// simulated start and end, all in ms from the step's first start (the earliest op start over the
// ranks, measured and simulated alike), so that the op where measured time drifts from the
// simulated one can be found. Collective over `pipeline`; world rank 0 writes.
void write_trace(const std::string& path, MPI_Comm pipeline, bool writer, const std::string& name, std::size_t bytes,
                 const stretto::kokkos::step_record& record, const stretto::sim::simulation& simulated) {
  int rank = 0, p = 0;
  MPI_Comm_rank(pipeline, &rank);
  MPI_Comm_size(pipeline, &p);
  std::vector<double> mine;
  for (const auto& t : record.trace)
    mine.insert(mine.end(), {static_cast<double>(t.what.kind), static_cast<double>(t.what.stage),
                             static_cast<double>(t.what.microbatch), t.wait_begin, t.compute_begin, t.compute_end});
  int count = static_cast<int>(mine.size());
  std::vector<int> counts(static_cast<std::size_t>(p)), offsets(static_cast<std::size_t>(p));
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, pipeline);
  int total = 0;
  for (int r = 0; r < p; ++r) {
    offsets[static_cast<std::size_t>(r)] = total;
    total += counts[static_cast<std::size_t>(r)];
  }
  std::vector<double> all(static_cast<std::size_t>(rank == 0 ? total : 0));
  MPI_Gatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(), offsets.data(), MPI_DOUBLE, 0, pipeline);
  if (!writer || rank != 0) return;
  double origin = 1e300, sim_origin = 1e300;
  for (std::size_t k = 0; k + 5 < all.size(); k += 6) origin = std::min(origin, all[k + 4]);
  for (int r = 0; r < p; ++r)
    for (const auto& t : simulated.events.ops(r)) sim_origin = std::min(sim_origin, t.start);
  std::FILE* out = std::fopen(path.c_str(), "a");
  if (out == nullptr) return;
  if (std::ftell(out) == 0) std::fprintf(out, "schedule,bytes,rank,index,op,stage,microbatch,wait_ms,start_ms,end_ms,sim_start_ms,sim_end_ms\n");
  static const char* kinds[] = {"F", "B", "W", "BW"};
  for (int r = 0; r < p; ++r) {
    const auto events = simulated.events.ops(r);
    const std::size_t n = static_cast<std::size_t>(counts[static_cast<std::size_t>(r)]) / 6;
    for (std::size_t i = 0; i < n; ++i) {
      const double* d = all.data() + offsets[static_cast<std::size_t>(r)] + 6 * i;
      const double sim_start = i < events.size() ? events[i].start - sim_origin : -1.0;
      const double sim_end = i < events.size() ? events[i].end - sim_origin : -1.0;
      const int kind = static_cast<int>(d[0]);
      std::fprintf(out, "%s,%zu,%d,%zu,%s,%d,%d,%.4f,%.4f,%.4f,%.4f,%.4f\n", name.c_str(), bytes, r, i,
                   kind >= 0 && kind < 4 ? kinds[kind] : "?", static_cast<int>(d[1]), static_cast<int>(d[2]),
                   (d[3] - origin) * 1e3, (d[4] - origin) * 1e3, (d[5] - origin) * 1e3, sim_start * 1e3, sim_end * 1e3);
    }
  }
  std::fclose(out);
}

struct result {
  std::string name;
  std::int32_t chunks{1};
  std::string skipped;  // the policy's reason, when it rejects the shape
  double simulated{0}, measured{0}, best{0};
  double late{0};  // mean time an op ran past its cost (late wake-ups), over all ranks' measured ops
  double t_ring{0};  // the measured all-reduce time used as T_ring (data parallelism)
  int ring{0};       // its group's ranks n (D, or 2D for two replicas)
  double reduced{0}, hidden{0};  // simulated: reductions' time summed over stages, the part behind compute
  double exposed{0};  // measured: the longest wait for the reductions after a rank's last op (median over steps)
};

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int code = 0;
  MPI_Comm pipeline = MPI_COMM_NULL;
  {
    Kokkos::ScopeGuard kokkos(argc, argv);
    int rank = 0, world = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
#if defined(__linux__) && defined(PR_SET_TIMERSLACK)
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);  // sleeps end on time (default slack: 50 µs)
#endif
    const options o = parse(argc, argv, rank);
    const int dp_groups = o.data_parallel;
    if (world % dp_groups != 0)
      usage_error(rank, "--data-parallel " + std::to_string(dp_groups) + " must divide the number of ranks (" +
                            std::to_string(world) + ")");
    const int p = world / dp_groups;
    // Pipelines of p adjacent world ranks (the process grid's order, whose stage groups sum the
    // gradients).
    MPI_Comm_split(MPI_COMM_WORLD, rank / p, rank, &pipeline);
    std::optional<stretto::mpi::process_grid> grid;
    if (dp_groups > 1) grid.emplace(MPI_COMM_WORLD, p);
    const int world_rank = rank;
    MPI_Comm_rank(pipeline, &rank);
    const bool report = world_rank == 0;
    const std::int32_t m = o.microbatches > 0 ? o.microbatches : 2 * p;
    try {
      std::vector<std::string> names = o.schedules;
      if (names.empty())
        for (const auto& policy : stretto::policies::all_policies) names.emplace_back(policy.name);
      bool threaded = false, oversubscribed = false;
      {
        stretto::mpi::communicator probe(pipeline, {p, 1, 1}, comm_options(o));
        threaded = probe.has_progress_thread();
        oversubscribed = probe.oversubscribed();
      }
      if (report && o.json)
        std::printf("{\n  \"benchmark\": \"emulated_pipeline\",\n  \"ranks\": %d,\n  \"data_parallel\": %d,\n"
                    "  \"gradient_bytes\": %zu,\n  \"microbatches\": %d,\n"
                    "  \"t_f_ms\": %g,\n  \"t_b_ms\": %g,\n  \"t_w_ms\": %g,\n  \"mode\": \"%s\",\n  \"steps\": %d,\n"
                    "  \"statistic\": \"median\",\n  \"progress\": \"%s\",\n  \"oversubscribed\": %s,\n  \"runs\": [",
                    p, dp_groups, dp_groups > 1 ? o.gradient_bytes : std::size_t{0}, m, o.t_f * 1e3, o.t_b * 1e3,
                    o.t_w * 1e3, cpu_time ? "cpu" : o.spin ? "spin" : "sleep", o.steps,
                    threaded ? "thread" : "poll", oversubscribed ? "true" : "false");
      bool first_size = true;
      for (const std::size_t bytes : o.bytes) {
        double delay = o.comm_delay >= 0 ? o.comm_delay : measure_delay(pipeline, rank, p, bytes, o);
        if (dp_groups > 1) {  // every group measured its own; simulate with the slowest
          double slowest = 0.0;
          MPI_Allreduce(&delay, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
          delay = slowest;
        }
        std::vector<result> results;
        for (const auto& name : names) {
          const stretto::policies::policy_info& policy = stretto::policies::find_policy(name);
          result r{std::string(name), policy.default_chunks, {}, 0, 0, 0};
          const stretto::pipeline_shape shape{p, m, policy.default_chunks};
          if (std::string problem = policy.check(shape); !problem.empty()) {
            r.skipped = problem;
            results.push_back(r);
            continue;
          }
          const stretto::schedule plan = policy.generate(shape);
          const double v = shape.num_chunks;
          const stretto::sim::uniform_costs costs{o.t_f, o.t_b, o.t_w, delay};
          emulated_model model{static_cast<std::int64_t>(bytes / 8), o.t_f / v, o.t_b / v, o.t_w / v, o.spin, {}};
          model.first_input = emulated_model::matrix_type("input", 1, bytes / 8);
          stretto::mpi::communicator comm(pipeline, shape, comm_options(o));
          stretto::kokkos::executor exec(plan, model, comm);
          std::optional<stretto::mpi::gradient_reduction> reduction;
          reduction_observer observer;
          std::vector<std::vector<double>> gradients;
          if (dp_groups > 1) {
            reduction.emplace(*grid, plan);
            observer.reduction = &*reduction;
            exec.add_observer(observer);
            gradients.resize(static_cast<std::size_t>(plan.num_stages()));
            for (const std::int32_t s : reduction->local_stages())
              gradients[static_cast<std::size_t>(s)].assign(o.gradient_bytes / 8, 1.0);
            // α calibrated now, with the communicator (and its progress thread) running as in
            // the steps; simulated as the latency term alone: 2(n − 1)·α = the measured T.
            const ring_calibration ring = measure_allreduce(grid->stage_groups(plan), o.gradient_bytes);
            r.t_ring = ring.t_ring;
            r.ring = ring.members;
            const stretto::sim::data_parallel dp{dp_groups, {static_cast<double>(o.gradient_bytes)}, ring.latency, 0.0};
            const auto sim = stretto::sim::simulate_data_parallel(plan, costs, dp);
            r.simulated = sim.step_time;
            r.reduced = sim.reduction_time;
            double exposed = 0.0;
            for (const auto& red : sim.reductions) exposed += red.exposed;
            r.hidden = sim.reduction_time - exposed;
          } else {
            r.simulated = stretto::sim::simulate(plan, costs).metrics.span;
          }
          std::vector<double> spans;
          std::vector<double> waits;  // the longest wait for the reductions, per measured step
          double late[2] = {0.0, 0.0};  // this rank's late time and op count over the measured steps
          for (int step = 0; step <= o.steps; ++step) {
            MPI_Barrier(MPI_COMM_WORLD);
            late_total = 0.0;
            emulated_ops = 0;
            if (reduction) reduction->begin_step([&](std::int32_t s) { return std::span(gradients[static_cast<std::size_t>(s)]); });
            // A common origin (steady_clock is one clock for every process of a node) for --trace.
            const auto& record = exec.run_step(clock_type::time_point{});
            auto end = last_end;
            double waited = 0.0;
            if (reduction) {
              // Ended with the last op unless the wait blocked (a wait that finds every reduction
              // done returns within microseconds).
              reduction->wait();
              waited = reduction->exposed_seconds();
              if (waited > 50e-6) end = std::max(end, clock_type::now());
            }
            if (!o.trace.empty() && step == o.steps)
              write_trace(o.trace, pipeline, report, r.name, bytes, record, stretto::sim::simulate(plan, costs));
            const double mine = emulated_ops > 0 ? std::chrono::duration<double>(end - first_start).count() : 0.0;
            double span = 0.0;
            MPI_Allreduce(&mine, &span, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            double longest_wait = 0.0;
            MPI_Allreduce(&waited, &longest_wait, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            if (step > 0) {  // step 0 warms up
              spans.push_back(span);
              waits.push_back(longest_wait);
              late[0] += late_total;
              late[1] += static_cast<double>(emulated_ops);
            }
          }
          double late_sum[2] = {0.0, 0.0};
          MPI_Reduce(late, late_sum, 2, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
          r.late = late_sum[1] > 0 ? late_sum[0] / late_sum[1] : 0.0;
          r.measured = median(spans);
          r.best = *std::min_element(spans.begin(), spans.end());
          r.exposed = median(waits);
          results.push_back(r);
        }
        if (!report) continue;
        // Ranking: every pair that the simulator orders by more than 1 % must be ordered alike.
        std::vector<const result*> ran;
        for (const auto& r : results)
          if (r.skipped.empty()) ran.push_back(&r);
        std::vector<std::string> discordant;
        std::size_t compared = 0;
        for (std::size_t a = 0; a < ran.size(); ++a)
          for (std::size_t b = 0; b < ran.size(); ++b) {
            if (ran[a]->simulated >= 0.99 * ran[b]->simulated) continue;  // a faster by > 1 %
            ++compared;
            if (ran[a]->measured >= ran[b]->measured) discordant.push_back(ran[a]->name + " < " + ran[b]->name);
          }
        double worst = 0.0;
        for (const auto* r : ran) worst = std::max(worst, r->measured / r->simulated);
        const result* h1 = nullptr;
        const result* ofob = nullptr;
        for (const auto* r : ran) {
          if (r->name == "zb-h1") h1 = r;
          if (r->name == "1f1b") ofob = r;
        }
        if (o.json) {
          std::printf("%s\n    {\"bytes\": %zu, \"comm_delay_ms\": %.4f, \"worst_ratio\": %.4f, \"pairs_compared\": %zu, "
                      "\"ranking_matches\": %s, \"discordant\": [",
                      first_size ? "" : ",", bytes, delay * 1e3, worst, compared, discordant.empty() ? "true" : "false");
          for (std::size_t i = 0; i < discordant.size(); ++i) std::printf("%s\"%s\"", i ? ", " : "", discordant[i].c_str());
          std::printf("],\n     \"schedules\": [");
          for (std::size_t i = 0; i < results.size(); ++i) {
            const result& r = results[i];
            if (!r.skipped.empty())
              std::printf("%s\n       {\"name\": \"%s\", \"chunks\": %d, \"skipped\": \"%s\"}", i ? "," : "", r.name.c_str(), r.chunks, r.skipped.c_str());
            else
              std::printf("%s\n       {\"name\": \"%s\", \"chunks\": %d, \"simulated_ms\": %.3f, \"measured_ms\": %.3f, \"best_ms\": %.3f, \"ratio\": %.4f, \"op_late_ms\": %.4f, \"allreduce_ms\": %.4f, "
                          "\"allreduce_ranks\": %d, \"reduction_sim_ms\": %.3f, \"hidden_sim_ms\": %.3f, \"exposed_measured_ms\": %.3f}",
                          i ? "," : "", r.name.c_str(), r.chunks, r.simulated * 1e3, r.measured * 1e3, r.best * 1e3,
                          r.measured / r.simulated, r.late * 1e3, r.t_ring * 1e3, r.ring, r.reduced * 1e3, r.hidden * 1e3,
                          r.exposed * 1e3);
          }
          std::printf("]}");
        } else {
          std::printf("p = %d, m = %d, T_F/T_B/T_W = %g/%g/%g ms, %s, messages %zu B, message delay %.3f ms (%s), "
                      "progress: %s%s; span = median of %d steps after a warm-up\n",
                      p, m, o.t_f * 1e3, o.t_b * 1e3, o.t_w * 1e3, cpu_time ? "cpu" : o.spin ? "spin" : "sleep", bytes, delay * 1e3,
                      o.comm_delay >= 0 ? "given" : "measured", threaded ? "thread" : "poll",
                      oversubscribed ? ", oversubscribed" : "", o.steps);
          if (dp_groups > 1)
            std::printf("data parallel: %d pipelines x %d ranks; each stage all-reduces %zu B after its last W/BW "
                        "over its n holders (T_ring: measured per schedule before its steps); step = last op or "
                        "reduction; reductions simulated: their time summed over stages and the part hidden behind "
                        "compute; exposed: the longest measured wait for them after a rank's last op\n",
                        dp_groups, p, o.gradient_bytes);
          std::printf("%-18s %3s %14s %14s %12s %7s %13s%s\n", "schedule", "v", "simulated [ms]", "measured [ms]", "best [ms]",
                      "ratio", "op late [ms]", dp_groups > 1 ? "   T_ring [ms]   n   reductions/hidden [ms]   exposed [ms]" : "");
          for (const auto& r : results) {
            if (!r.skipped.empty()) {
              std::printf("%-18s %3d   skipped: %s\n", r.name.c_str(), r.chunks, r.skipped.c_str());
              continue;
            }
            std::printf("%-18s %3d %14.2f %14.2f %12.2f %7.3f %13.3f", r.name.c_str(), r.chunks, r.simulated * 1e3,
                        r.measured * 1e3, r.best * 1e3, r.measured / r.simulated, r.late * 1e3);
            if (dp_groups > 1)
              std::printf(" %13.2f %3d %11.2f/%-11.2f %13.2f", r.t_ring * 1e3, r.ring, r.reduced * 1e3, r.hidden * 1e3,
                          r.exposed * 1e3);
            std::printf("\n");
          }
          std::printf("worst measured/simulated: %.3f; ranking: %s (%zu pairs the simulator orders by > 1 %%)\n", worst,
                      discordant.empty() ? "same as simulated" : "differs", compared);
          for (const auto& d : discordant) std::printf("  simulated %s, measured the other way\n", d.c_str());
          if (h1 && ofob)
            std::printf("zb-h1 vs 1f1b: %.2f vs %.2f ms measured (%s), %.2f vs %.2f ms simulated\n", h1->measured * 1e3,
                        ofob->measured * 1e3, h1->measured < ofob->measured ? "zb-h1 faster" : "zb-h1 NOT faster",
                        h1->simulated * 1e3, ofob->simulated * 1e3);
          std::printf("\n");
        }
        std::fflush(stdout);
        first_size = false;
      }
      if (report && o.json) std::printf("\n  ]\n}\n");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "emulated_pipeline: rank %d: %s\n", rank, e.what());
      code = 1;
    }
  }
  if (code != 0) MPI_Abort(MPI_COMM_WORLD, code);
  if (pipeline != MPI_COMM_NULL) MPI_Comm_free(&pipeline);
  MPI_Finalize();
  return code;
}
