#pragma once
// The minimal example's model, a stretto::kokkos::stage_model: 4 per-feature scale layers y(i, j) = w_l(j) · x(i, j),
// one stage per rank, fit to y = target(j) · x (squared error): the product of feature j's weights tends to target(j).
#include <stretto/kokkos/executor.hpp>
#include <stretto/stretto.hpp>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>
namespace stretto::examples {
class scale_model {
 public:
  using matrix_type = stretto::kokkos::matrix<double, Kokkos::HostSpace>;
  static constexpr std::int32_t layers = 4, features = 3;
  static double target(std::int32_t j) { return 0.5 + 0.5 * j; }

  scale_model(const schedule& plan, std::int32_t rank, std::int64_t rows_per_microbatch)
      : plan_(plan), rank_(rank), rows_(rows_per_microbatch), weights_(layers * features, 1.0),
        gradients_(weights_.size(), 0.0), state_(static_cast<std::size_t>(plan.num_stages() * plan.num_microbatches())),
        batch_("batch", rows_ * plan.num_microbatches(), features) {}
  // A fresh batch of inputs in [-1, 1], the same on every rank (seeded by the step).
  void set_batch(std::int64_t step) {
    std::mt19937_64 engine(static_cast<std::uint64_t>(step));
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    for (std::size_t i = 0; i < batch_.extent(0); ++i)
      for (std::int32_t j = 0; j < features; ++j) batch_(i, j) = uniform(engine);
  }
  void apply_gradients(double learning_rate) {  // SGD on the layers of this rank's stages (their gradients are here)
    for (const std::int32_t s : plan_.stages_on_rank(rank_))
      for (std::int32_t l = first_layer(s); l < first_layer(s + 1); ++l)
        for (std::int32_t j = 0; j < features; ++j)
          weights_[at(l, j)] -= learning_rate * std::exchange(gradients_[at(l, j)], 0.0);  // and zero the gradient
  }
  std::int64_t input_features(std::int32_t) const { return features; }  // the stage_model: shapes, F, loss, B, W
  std::int64_t output_features(std::int32_t) const { return features; }
  std::int64_t microbatch_rows(std::int32_t) const { return rows_; }
  matrix_type input(std::int32_t mb) const {
    return Kokkos::subview(batch_, Kokkos::make_pair(mb * rows_, (mb + 1) * rows_), Kokkos::ALL);
  }
  void forward(std::int32_t s, std::int32_t mb, const matrix_type& x, const matrix_type& y) {
    for (std::size_t i = 0; i < x.extent(0); ++i)
      for (std::int32_t j = 0; j < features; ++j) y(i, j) = x(i, j) * product(s, j, -1);
    state(s, mb).x = x;  // kept until W: a handle, no copy
  }
  double loss(std::int32_t mb, const matrix_type& y, const matrix_type& dy) {
    const double samples = static_cast<double>(rows_ * plan_.num_microbatches());  // gradients add up to the batch's
    const matrix_type x = input(mb);
    double sum = 0.0;
    for (std::size_t i = 0; i < y.extent(0); ++i)
      for (std::int32_t j = 0; j < features; ++j) {
        const double error = y(i, j) - target(j) * x(i, j);
        sum += error * error;
        dy(i, j) = error / samples;
      }
    return sum / (2.0 * samples);
  }
  void backward_input(std::int32_t s, std::int32_t mb, const matrix_type& dy, const matrix_type& dx) {
    for (std::size_t i = 0; i < dx.extent(0); ++i)  // dx has 0 rows on stage 0
      for (std::int32_t j = 0; j < features; ++j) dx(i, j) = dy(i, j) * product(s, j, -1);
    state(s, mb).dy = dy;  // kept until W
  }
  void backward_weight(std::int32_t s, std::int32_t mb) {
    stage_state& st = state(s, mb);
    for (std::int32_t l = first_layer(s); l < first_layer(s + 1); ++l)
      for (std::int32_t j = 0; j < features; ++j) {
        double sum = 0.0;
        for (std::size_t i = 0; i < st.x.extent(0); ++i) sum += st.x(i, j) * st.dy(i, j);
        gradients_[at(l, j)] += sum * product(s, j, l);
      }
    st = stage_state{};  // drop the views: the executor's buffers are reused
  }
 private:
  struct stage_state { matrix_type x, dy; };
  std::int32_t first_layer(std::int32_t s) const { return s * layers / plan_.num_stages(); }
  static std::size_t at(std::int32_t l, std::int32_t j) { return static_cast<std::size_t>(l * features + j); }
  double product(std::int32_t s, std::int32_t j, std::int32_t skip) const {  // stage s's weights of j, but `skip`'s
    double p = 1.0;
    for (std::int32_t l = first_layer(s); l < first_layer(s + 1); ++l)
      if (l != skip) p *= weights_[at(l, j)];
    return p;
  }
  stage_state& state(std::int32_t s, std::int32_t mb) { return state_.at(s * plan_.num_microbatches() + mb); }
  const schedule& plan_;
  std::int32_t rank_;
  std::int64_t rows_;
  std::vector<double> weights_, gradients_;  // [layer · features + feature], this rank's layers used
  std::vector<stage_state> state_;           // [stage · m + microbatch]
  matrix_type batch_;
};
}  // namespace stretto::examples
