// Ping-pong latency between two ranks: one-way time through stretto::mpi::communicator next to
// raw MPI_Isend / MPI_Irecv / MPI_Wait, in the same run, at each message size.
//
//   mpirun -n 2 stretto.bench.mpi_pingpong [--sizes 8,524288,4194304] [--iterations N]
//          [--repeats R] [--progress auto|thread|poll] [--wait auto|spin|block] [--format text|json]
//
// One-way time = round trip / 2. Each repeat runs N round trips raw, then N through the
// communicator; the figure reported is the median over repeats of the mean round trip. MPI is
// initialised with MPI_THREAD_MULTIPLE (so that the communicator can run its progress thread).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <stretto/mpi/communicator.hpp>

#include "communicator_flags.hpp"

namespace {

struct options {
  std::vector<std::size_t> sizes{8, 512 * 1024, 4 * 1024 * 1024};
  int iterations{0};  // 0: chosen per size (about 50 ms of round trips, at least 20)
  int repeats{5};
  stretto::mpi::progress_mode progress{stretto::mpi::progress_mode::automatic};
  stretto::mpi::wait_style waiting{stretto::mpi::wait_style::automatic};
  bool json{false};
};

[[noreturn]] void usage_error(int rank, const std::string& text) {
  if (rank == 0)
    std::fprintf(stderr, "mpi_pingpong: error: %s\nusage: mpi_pingpong [--sizes B,B,...] [--iterations N] [--repeats R] "
                         "[--progress auto|thread|poll] [--wait auto|spin|block] [--format text|json]\n", text.c_str());
  MPI_Finalize();
  std::exit(2);
}

options parse(int argc, char** argv, int rank) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) usage_error(rank, "missing value after " + std::string(flag));
    const std::string value = argv[++i];
    if (flag == "--sizes") {
      o.sizes.clear();
      std::size_t pos = 0;
      while (pos <= value.size()) {
        const std::size_t comma = std::min(value.find(',', pos), value.size());
        const long long bytes = std::atoll(value.substr(pos, comma - pos).c_str());
        if (bytes < 8 || bytes % 8 != 0) usage_error(rank, "--sizes: each size must be a multiple of 8 bytes, at least 8");
        o.sizes.push_back(static_cast<std::size_t>(bytes));
        pos = comma + 1;
      }
    } else if (flag == "--iterations") {
      o.iterations = std::atoi(value.c_str());
      if (o.iterations < 1) usage_error(rank, "--iterations must be at least 1");
    } else if (flag == "--repeats") {
      o.repeats = std::atoi(value.c_str());
      if (o.repeats < 1) usage_error(rank, "--repeats must be at least 1");
    } else if (flag == "--progress") {
      if (!stretto::bench::parse_progress(value, o.progress)) usage_error(rank, "--progress must be auto, thread or poll");
    } else if (flag == "--wait") {
      if (!stretto::bench::parse_wait(value, o.waiting)) usage_error(rank, "--wait must be auto, spin or block");
    } else if (flag == "--format") {
      if (value != "text" && value != "json") usage_error(rank, "--format must be text or json");
      o.json = value == "json";
    } else {
      usage_error(rank, "unknown flag " + std::string(flag));
    }
  }
  return o;
}

using clock_type = std::chrono::steady_clock;

// Mean round trip (seconds) of `n` raw ping-pongs of `count` doubles.
double raw_round_trip(int rank, std::vector<double>& out, std::vector<double>& in, int n) {
  const int count = static_cast<int>(out.size());
  const int peer = 1 - rank;
  MPI_Barrier(MPI_COMM_WORLD);
  const auto start = clock_type::now();
  for (int i = 0; i < n; ++i) {
    MPI_Request q;
    if (rank == 0) {
      MPI_Isend(out.data(), count, MPI_DOUBLE, peer, 7, MPI_COMM_WORLD, &q);
      MPI_Wait(&q, MPI_STATUS_IGNORE);
      MPI_Irecv(in.data(), count, MPI_DOUBLE, peer, 7, MPI_COMM_WORLD, &q);
      MPI_Wait(&q, MPI_STATUS_IGNORE);
    } else {
      MPI_Irecv(in.data(), count, MPI_DOUBLE, peer, 7, MPI_COMM_WORLD, &q);
      MPI_Wait(&q, MPI_STATUS_IGNORE);
      MPI_Isend(out.data(), count, MPI_DOUBLE, peer, 7, MPI_COMM_WORLD, &q);
      MPI_Wait(&q, MPI_STATUS_IGNORE);
    }
  }
  return std::chrono::duration<double>(clock_type::now() - start).count() / n;
}

// The same through the communicator: the ping is mb 0's activation (stage 0 → 1), the pong its
// gradient (stage 1 → 0).
double stretto_round_trip(int rank, stretto::mpi::communicator& comm, std::vector<double>& out, std::vector<double>& in, int n) {
  using stretto::message_direction;
  const stretto::message_key ping{message_direction::activation, 0, 1, 0};
  const stretto::message_key pong{message_direction::gradient, 1, 0, 0};
  const stretto::op waiting{stretto::op_kind::forward, rank, 0};
  const int peer = 1 - rank;
  MPI_Barrier(MPI_COMM_WORLD);
  const auto start = clock_type::now();
  for (int i = 0; i < n; ++i) {
    if (rank == 0) {
      auto s = comm.post_send(ping, peer, static_cast<const double*>(out.data()), out.size());
      comm.wait(s, waiting);
      auto r = comm.post_receive(pong, peer, in.data(), in.size());
      comm.wait(r, waiting);
    } else {
      auto r = comm.post_receive(ping, peer, in.data(), in.size());
      comm.wait(r, waiting);
      auto s = comm.post_send(pong, peer, static_cast<const double*>(out.data()), out.size());
      comm.wait(s, waiting);
    }
  }
  return std::chrono::duration<double>(clock_type::now() - start).count() / n;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

const char* progress_name(const stretto::mpi::communicator& c) { return c.has_progress_thread() ? "thread" : "poll"; }

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const options o = parse(argc, argv, rank);
  if (size != 2) usage_error(rank, "run on exactly 2 ranks (mpirun -n 2)");
  int code = 0;
  try {
    stretto::mpi::communicator_options co;
    co.timeout = std::chrono::duration<double>(60.0);
    co.progress = o.progress;
    co.waiting = o.waiting;
    stretto::mpi::communicator comm(MPI_COMM_WORLD, {2, 1, 1}, co);
    if (rank == 0) {
      if (o.json) std::printf("{\n  \"benchmark\": \"mpi_pingpong\",\n  \"progress\": \"%s\",\n  \"oversubscribed\": %s,\n  \"results\": [", progress_name(comm), comm.oversubscribed() ? "true" : "false");
      else std::printf("ping-pong, p = 2, one-way time (median of %d repeats); communicator progress: %s\n%12s %8s %14s %14s %8s\n",
                       o.repeats, progress_name(comm), "bytes", "iters", "raw MPI [us]", "stretto [us]", "ratio");
    }
    bool first = true;
    for (const std::size_t bytes : o.sizes) {
      std::vector<double> out(bytes / 8, 1.0), in(bytes / 8, 0.0);
      int n = o.iterations;
      if (n == 0) {
        // Calibrate on rank 0's raw time, shared so that both ranks agree.
        double t = raw_round_trip(rank, out, in, 5);
        MPI_Bcast(&t, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        n = std::max(20, static_cast<int>(0.05 / std::max(t, 1e-7)));
      }
      stretto_round_trip(rank, comm, out, in, std::min(n, 20));  // warm up both paths
      raw_round_trip(rank, out, in, std::min(n, 20));
      std::vector<double> raw, ours;
      for (int r = 0; r < o.repeats; ++r) {
        raw.push_back(raw_round_trip(rank, out, in, n) / 2);
        ours.push_back(stretto_round_trip(rank, comm, out, in, n) / 2);
      }
      const double a = median(raw), b = median(ours);
      if (rank == 0) {
        if (o.json)
          std::printf("%s\n    {\"bytes\": %zu, \"iterations\": %d, \"raw_us\": %.3f, \"stretto_us\": %.3f, \"ratio\": %.3f}",
                      first ? "" : ",", bytes, n, a * 1e6, b * 1e6, b / a);
        else
          std::printf("%12zu %8d %14.2f %14.2f %8.2f\n", bytes, n, a * 1e6, b * 1e6, b / a);
        std::fflush(stdout);
      }
      first = false;
    }
    if (rank == 0 && o.json) std::printf("\n  ]\n}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpi_pingpong: rank %d: %s\n", rank, e.what());
    code = 1;
  }
  MPI_Finalize();
  return code;
}
