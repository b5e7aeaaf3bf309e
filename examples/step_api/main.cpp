// The step API in one page: a residual network (stage s: y = x + tanh(x·A_s), width 16) learns
// to map random inputs to a fixed rotation of them, with data × pipeline parallelism. Any number
// of MPI ranks: pp = --pipeline (default: all ranks), dp = ranks / pp copies of the pipeline.
//
//   mpirun -n 4 stretto.example.step_api --pipeline 2 --schedule zb-h1    (pp = 2 × dp = 2)
#include <mpi.h>
#include <Kokkos_Core.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <span>
#include <string>
#include <vector>
#include <stretto/stretto.hpp>
#include <stretto/training/pipeline.hpp>

using matrix = stretto::kokkos::matrix<double, Kokkos::HostSpace>;
struct batch { matrix x, target; };  // [rows, d] each

// A model for stretto::training::pipeline: the stage functions, gradients per stage, the batch.
struct residual_model {
  using matrix_type = matrix;
  struct saved { matrix x, h, dz; };  // the stage's input, tanh(x·A), and d loss / d (x·A)
  std::int64_t d;
  std::vector<std::vector<double>> a, grad;  // [stage][i·d + j], local stages only
  std::vector<saved> state;                  // [stage · m + mb]
  const batch* current{nullptr};
  std::vector<std::int64_t> offsets;

  residual_model(std::int64_t width, std::int32_t stages, const std::vector<std::int32_t>& local)
      : d(width), a(static_cast<std::size_t>(stages)), grad(a.size()) {
    for (const std::int32_t s : local) {  // stage s's weights depend on s alone, whoever holds it
      std::mt19937_64 engine(100 + static_cast<std::uint64_t>(s));
      std::normal_distribution<double> normal(0.0, 0.3 / std::sqrt(static_cast<double>(d)));
      for (std::int64_t k = 0; k < d * d; ++k) a[static_cast<std::size_t>(s)].push_back(normal(engine));
      grad[static_cast<std::size_t>(s)].assign(static_cast<std::size_t>(d * d), 0.0);
    }
  }
  std::int64_t input_features(std::int32_t) const { return d; }  // every stage maps [rows, d] to [rows, d]
  std::int64_t output_features(std::int32_t) const { return d; }
  std::int64_t microbatch_rows(std::int32_t mb) const { return offsets[mb + 1u] - offsets[static_cast<std::size_t>(mb)]; }
  matrix rows_of(const matrix& m, std::int32_t mb) const {
    return Kokkos::subview(m, Kokkos::make_pair(offsets[static_cast<std::size_t>(mb)], offsets[mb + 1u]), Kokkos::ALL);
  }
  matrix input(std::int32_t mb) const { return rows_of(current->x, mb); }
  saved& at(std::int32_t s, std::int32_t mb) { return state[static_cast<std::size_t>(s) * (offsets.size() - 1) + static_cast<std::size_t>(mb)]; }
  double w(std::int32_t s, std::int64_t i, std::int64_t j) const { return a[static_cast<std::size_t>(s)][static_cast<std::size_t>(i * d + j)]; }

  void forward(std::int32_t s, std::int32_t mb, const matrix& x, const matrix& y) {
    saved& st = at(s, mb);
    st.x = x;
    st.h = matrix("h", x.extent(0), static_cast<std::size_t>(d));
    for (std::size_t r = 0; r < x.extent(0); ++r)
      for (std::int64_t j = 0; j < d; ++j) {
        double z = 0.0;
        for (std::int64_t i = 0; i < d; ++i) z += x(r, i) * w(s, i, j);
        st.h(r, j) = std::tanh(z);
        y(r, j) = x(r, j) + st.h(r, j);
      }
  }
  double loss(std::int32_t mb, const matrix& y, const matrix& dy) {  // Σ ½‖y − target‖²: a sum
    const matrix t = rows_of(current->target, mb);
    double sum = 0.0;
    for (std::size_t r = 0; r < y.extent(0); ++r)
      for (std::int64_t j = 0; j < d; ++j) {
        dy(r, j) = y(r, j) - t(r, j);
        sum += 0.5 * dy(r, j) * dy(r, j);
      }
    return sum;
  }
  void backward_input(std::int32_t s, std::int32_t mb, const matrix& dy, const matrix& dx) {
    saved& st = at(s, mb);
    st.dz = matrix("dz", dy.extent(0), static_cast<std::size_t>(d));
    for (std::size_t r = 0; r < dy.extent(0); ++r)
      for (std::int64_t j = 0; j < d; ++j) st.dz(r, j) = dy(r, j) * (1.0 - st.h(r, j) * st.h(r, j));
    for (std::size_t r = 0; r < dx.extent(0); ++r)  // stage 0: dx has no rows
      for (std::int64_t i = 0; i < d; ++i) {
        double g = dy(r, i);
        for (std::int64_t j = 0; j < d; ++j) g += st.dz(r, j) * w(s, i, j);
        dx(r, i) = g;
      }
  }
  void backward_weight(std::int32_t s, std::int32_t mb) {
    saved& st = at(s, mb);
    std::vector<double>& g = grad[static_cast<std::size_t>(s)];
    for (std::size_t r = 0; r < st.x.extent(0); ++r)
      for (std::int64_t i = 0; i < d; ++i)
        for (std::int64_t j = 0; j < d; ++j) g[static_cast<std::size_t>(i * d + j)] += st.x(r, i) * st.dz(r, j);
    st = saved{};  // frees the microbatch's state (and the executor's buffers it viewed)
  }
  std::span<double> gradients(std::int32_t s) { return grad[static_cast<std::size_t>(s)]; }
  std::int64_t batch_rows(const batch& b) const { return static_cast<std::int64_t>(b.x.extent(0)); }
  void set_microbatches(const batch& b, std::span<const std::int64_t> o) {
    current = &b;
    offsets.assign(o.begin(), o.end());
    state.assign(a.size() * (offsets.size() - 1), saved{});
  }
};
// The global batch of step k, the same on every rank: x uniform in [−1, 1]^d, target = x rotated.
batch make_batch(std::int64_t rows, std::int64_t d, std::uint64_t step) {
  batch b{matrix("x", rows, d), matrix("target", rows, d)};
  std::mt19937_64 engine(step);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t j = 0; j < d; ++j) b.x(r, j) = uniform(engine);
    for (std::int64_t j = 0; j < d; ++j) b.target(r, j) = 0.8 * b.x(r, (j + 1) % d) - 0.6 * b.x(r, j);
  }
  return b;
}
int main(int argc, char** argv) {
  int provided = 0, size = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Kokkos::initialize(argc, argv);
  int status = 0;
  try {  // flags: --pipeline P (default: every rank), --schedule NAME (default: 1f1b)
    std::int32_t pp = size;
    std::string name = "1f1b";
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string flag = argv[i];
      if (flag == "--pipeline") pp = std::stoi(argv[i + 1]);
      else if (flag == "--schedule") name = argv[i + 1];
    }
    const std::int64_t d = 16, rows = 96;
    const stretto::schedule plan = stretto::policies::make_schedule(name, {pp, 2 * pp, stretto::policies::find_policy(name).default_chunks});
    stretto::training::pipeline<residual_model> pipe(MPI_COMM_WORLD, plan, [&](std::vector<std::int32_t> local) {
      return residual_model(d, plan.num_stages(), local);
    });
    residual_model& model = pipe.model();
    double first = 0.0, loss = 0.0;
    for (std::uint64_t step = 0; step < 60; ++step) {
      const batch b = make_batch(rows, d, step);
      loss = pipe.step(b, [&](std::int32_t s, std::span<double> g) {  // plain SGD on stage s
        for (std::size_t k = 0; k < g.size(); ++k) model.a[static_cast<std::size_t>(s)][k] -= 0.5 * g[k];
      }).loss;
      first = step == 0 ? loss : first;
    }
    if (pipe.grid().world_rank() == 0)  // the loss is the mean over the global batch on every rank
      std::printf("step_api: %s pp=%d dp=%d first loss %.12e final loss %.12e\n", name.c_str(), pp,
                  pipe.grid().data_parallel_size(), first, loss);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "step_api: error: %s\n", e.what());
    status = 2;
  }
  Kokkos::finalize();
  MPI_Finalize();
  return status;
}
