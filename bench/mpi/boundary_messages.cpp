// One stage boundary of three tensors (hidden state, int32 mask, skip tensor) crossing between two
// ranks: as one packed message (what the Kokkos executor sends for a `boundary<...>`) against one
// message per tensor (three keys, posted together, waited together), through
// stretto::mpi::communicator, in the same run.
//
//   mpirun -n 2 stretto.bench.boundary_messages [--rows R] [--repeats N]
//
// Shapes per row (sample): h [seq, d] doubles, mask [seq] int32, skip [d] doubles, for a few
// (seq, d). One-way time = round trip / 2 (the pong is the same boundary back), median over
// repeats of the mean over about 50 ms of round trips.
#include <mpi.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include <stretto/mpi/communicator.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

// Mean round trip of `n` ping-pongs of the boundary whose parts have `words` 8-byte words each,
// sent as one message (`packed`) or one per part.
double round_trip(int rank, stretto::mpi::communicator& comm, const std::array<std::size_t, 3>& words, bool packed,
                  std::vector<double>& out, std::vector<double>& in, int n) {
  using stretto::message_direction;
  const stretto::op waiting{stretto::op_kind::forward, rank, 0};
  const int peer = 1 - rank;
  const std::size_t parts = packed ? 1 : 3;
  auto run = [&](bool send, message_direction d) {
    std::array<stretto::mpi::communicator::request, 3> q;
    std::size_t offset = 0;
    for (std::size_t k = 0; k < parts; ++k) {
      const std::size_t count = packed ? words[0] + words[1] + words[2] : words[k];
      // One key per part: the microbatch number stands for the part's own tag.
      const stretto::message_key key{d, d == message_direction::activation ? 0 : 1, d == message_direction::activation ? 1 : 0,
                                     static_cast<std::int32_t>(k)};
      q[k] = send ? comm.post_send(key, peer, static_cast<const double*>(out.data() + offset), count)
                  : comm.post_receive(key, peer, in.data() + offset, count);
      offset += count;
    }
    for (std::size_t k = 0; k < parts; ++k) comm.wait(q[k], waiting);
  };
  MPI_Barrier(MPI_COMM_WORLD);
  const auto start = clock_type::now();
  for (int i = 0; i < n; ++i) {
    if (rank == 0) {
      run(true, message_direction::activation);
      run(false, message_direction::gradient);
    } else {
      run(false, message_direction::activation);
      run(true, message_direction::gradient);
    }
  }
  return std::chrono::duration<double>(clock_type::now() - start).count() / n;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::size_t rows = 4;
  int repeats = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--rows") rows = static_cast<std::size_t>(std::max(1, std::atoi(argv[i + 1])));
    else if (flag == "--repeats") repeats = std::max(1, std::atoi(argv[i + 1]));
  }
  if (size != 2) {
    if (rank == 0) std::fprintf(stderr, "boundary_messages: run on exactly 2 ranks (mpirun -n 2)\n");
    MPI_Finalize();
    return 2;
  }
  int code = 0;
  try {
    stretto::mpi::communicator_options co;
    co.timeout = std::chrono::duration<double>(60.0);
    stretto::mpi::communicator comm(MPI_COMM_WORLD, {2, 3, 1}, co);
    if (rank == 0)
      std::printf("one boundary (h [rows, seq, d] f64, mask [rows, seq] i32, skip [rows, d] f64), rows = %zu, p = 2, one-way "
                  "time, median of %d repeats\n%6s %6s %12s %14s %16s %8s\n",
                  rows, repeats, "seq", "d", "bytes", "packed [us]", "3 messages [us]", "ratio");
    const std::array<std::array<std::size_t, 2>, 4> shapes{{{16, 16}, {128, 64}, {512, 256}, {1024, 1024}}};
    for (const auto& [seq, d] : shapes) {
      const std::array<std::size_t, 3> words{rows * seq * d, (rows * seq * 4 + 7) / 8, rows * d};
      const std::size_t total = words[0] + words[1] + words[2];
      std::vector<double> out(total, 1.0), in(total, 0.0);
      double t = round_trip(rank, comm, words, true, out, in, 5);
      MPI_Bcast(&t, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
      const int n = std::max(10, static_cast<int>(0.05 / std::max(t, 1e-7)));
      round_trip(rank, comm, words, false, out, in, std::min(n, 10));  // warm up
      std::vector<double> packed, split;
      for (int r = 0; r < repeats; ++r) {
        packed.push_back(round_trip(rank, comm, words, true, out, in, n) / 2);
        split.push_back(round_trip(rank, comm, words, false, out, in, n) / 2);
      }
      const double a = median(packed), b = median(split);
      if (rank == 0) std::printf("%6zu %6zu %12zu %14.2f %16.2f %8.2f\n", seq, d, total * 8, a * 1e6, b * 1e6, b / a);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "boundary_messages: rank %d: %s\n", rank, e.what());
    code = 1;
  }
  MPI_Finalize();
  return code;
}
