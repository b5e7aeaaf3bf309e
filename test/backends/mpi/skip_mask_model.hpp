#pragma once
// A stage model whose boundaries carry three tensors (stretto::kokkos::boundary): the hidden
// state h [rows, w_{s+1}], a mask [rows, 3] of int32 without gradient (no_gradient), and a skip
// tensor k [rows, w_1] (stage 0's output, carried along to every later stage). The mask sits in
// the middle, so the gradient messages (h, k) are laid out differently from the activations'.
//
// Stage s (one layer each, S stages, widths w_0 … w_S), input boundary (h, k, mask):
//   z = h·W_s + k·U_s + b_s,   g_i = 1 + mask(i, s mod 3),   h' = g_i · tanh(z)
// with W_s [w_s, w_{s+1}], U_s [w_k(s), w_{s+1}] (w_k(0) = w_0, else w_1), b_s [w_{s+1}]. Stage 0's
// input is (x, x, mask) and its output's skip tensor is its own h' (k' = h'); later stages pass k
// and the mask on unchanged. The loss of the last stage's (h, k), over the global batch of B
// samples, weights each sample by ω_i = 1 if mask(i, 2) else 0.25:
//   L = Σ_i ω_i (½ Σ_j (h_ij − t_ij)² + 0.05 Σ_j k_ij²) / B.
// So the skip tensor's gradient reaches stage 0's weights along every stage, and the mask changes
// every value, while nothing is sent back for it. All on the host, in double.
//
// `forward` keeps its input and output boundaries until W (as a real model keeps activations);
// B keeps dz until W. The per-(stage, microbatch) state reuses its storage from step to step.
#include <Kokkos_Core.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include <stretto/kokkos/boundary.hpp>

namespace stretto::testing {

class skip_mask_model {
 public:
  using matrix = Kokkos::View<double**, Kokkos::LayoutRight, Kokkos::HostSpace>;
  using mask_view = Kokkos::View<std::int32_t**, Kokkos::LayoutRight, Kokkos::HostSpace>;
  using boundary_type = stretto::kokkos::boundary<matrix, stretto::kokkos::no_gradient<mask_view>, matrix>;
  static constexpr std::int64_t mask_width = 3;

  /// Parameters of every stage, the same on every rank (drawn from `seed`).
  skip_mask_model(std::vector<std::int64_t> widths, std::uint64_t seed) : widths_(std::move(widths)) {
    const std::int32_t stages = num_stages();
    std::mt19937_64 engine(seed);
    std::uniform_real_distribution<double> u(-0.5, 0.5);
    for (std::int32_t s = 0; s < stages; ++s) {
      params_.emplace_back(parameter_count(s));
      for (double& x : params_.back()) x = u(engine);
      grads_.emplace_back(parameter_count(s), 0.0);
    }
  }

  std::int32_t num_stages() const { return static_cast<std::int32_t>(widths_.size()) - 1; }
  std::int64_t skip_width(std::int32_t s) const { return s == 0 ? widths_[0] : widths_[1]; }  // of stage s's input
  std::size_t parameter_count(std::int32_t s) const {
    const auto in = static_cast<std::size_t>(widths_[static_cast<std::size_t>(s)]);
    const auto out = static_cast<std::size_t>(widths_[static_cast<std::size_t>(s) + 1]);
    return (in + static_cast<std::size_t>(skip_width(s)) + 1) * out;
  }
  std::vector<double>& gradients(std::int32_t s) { return grads_[static_cast<std::size_t>(s)]; }
  const std::vector<double>& parameters(std::int32_t s) const { return params_[static_cast<std::size_t>(s)]; }

  /// The global batch: inputs [B, w_0], targets [B, w_S], mask [B, 3], cut into m microbatches
  /// (the first B mod m one row longer).
  void set_batch(matrix inputs, matrix targets, mask_view mask, std::int32_t microbatches) {
    inputs_ = inputs;
    targets_ = targets;
    mask_ = mask;
    microbatches_ = microbatches;
    offsets_.clear();
    const auto cells = static_cast<std::size_t>(num_stages()) * static_cast<std::size_t>(microbatches);
    if (state_.size() < cells) state_.resize(cells);
  }
  std::int64_t batch() const { return static_cast<std::int64_t>(inputs_.extent(0)); }

  // ---- stretto::training::batch_model (the step API) -----------------------------------------
  /// A global batch for `training::pipeline::step`. There the loss must be the sum over the
  /// microbatch's samples (the pipeline divides by B once): set `loss_is_sum`.
  struct batch_type {
    matrix inputs, targets;
    mask_view mask;
  };
  bool loss_is_sum{false};
  std::int64_t batch_rows(const batch_type& b) const { return static_cast<std::int64_t>(b.inputs.extent(0)); }
  /// Microbatch j is rows [offsets[j], offsets[j + 1]) of `b` (the pipeline's cut).
  void set_microbatches(const batch_type& b, std::span<const std::int64_t> offsets) {
    set_batch(b.inputs, b.targets, b.mask, static_cast<std::int32_t>(offsets.size()) - 1);
    offsets_.assign(offsets.begin(), offsets.end());
  }

  void sgd(std::int32_t s, double lr) {
    auto& p = params_[static_cast<std::size_t>(s)];
    auto& g = grads_[static_cast<std::size_t>(s)];
    for (std::size_t i = 0; i < p.size(); ++i) p[i] -= lr * g[i];
    std::fill(g.begin(), g.end(), 0.0);
  }

  // ---- stretto::kokkos::boundary_stage_model -------------------------------------------------
  std::int64_t microbatch_rows(std::int32_t mb) const { return end_row(mb) - begin_row(mb); }
  boundary_type::shape_type output_shape(std::int32_t s) const {
    return {{widths_[static_cast<std::size_t>(s) + 1]}, {mask_width}, {widths_[1]}};
  }
  boundary_type input(std::int32_t mb) const {
    const auto rows = Kokkos::make_pair(begin_row(mb), end_row(mb));
    const matrix x = Kokkos::subview(inputs_, rows, Kokkos::ALL);
    return boundary_type(x, Kokkos::subview(mask_, rows, Kokkos::ALL), x);
  }

  void forward(std::int32_t s, std::int32_t mb, const boundary_type& x, const boundary_type& y) {
    const auto& [h, mask, k] = x;
    const auto& [out, mask_out, k_out] = y;
    const auto rows = static_cast<std::int64_t>(h.extent(0));
    const std::int64_t in = widths_[static_cast<std::size_t>(s)], width = widths_[static_cast<std::size_t>(s) + 1];
    const std::int64_t kw = skip_width(s);
    const double* p = params_[static_cast<std::size_t>(s)].data();
    for (std::int64_t i = 0; i < rows; ++i) {
      const double g = 1.0 + mask(i, s % mask_width);
      for (std::int64_t j = 0; j < width; ++j) {
        double z = p[bias(s, j)];
        for (std::int64_t a = 0; a < in; ++a) z += h(i, a) * p[weight(s, a, j)];
        for (std::int64_t a = 0; a < kw; ++a) z += k(i, a) * p[skip_weight(s, a, j)];
        out(i, j) = g * std::tanh(z);
      }
      for (std::int64_t a = 0; a < widths_[1]; ++a) k_out(i, a) = s == 0 ? out(i, a) : k(i, a);
      for (std::int64_t c = 0; c < mask_width; ++c) mask_out(i, c) = mask(i, c);
    }
    cell& c = state(s, mb);
    c.x = x;
    c.y = y;
  }

  double loss(std::int32_t mb, const boundary_type& y, const boundary_type& dy) {
    const auto& [h, mask, k] = y;
    const matrix dh = dy.get<0>(), dk = dy.get<2>();
    mask_gradients += dy.get<1>().data() != nullptr;
    const auto rows = static_cast<std::int64_t>(h.extent(0));
    const std::int64_t first = begin_row(mb);
    const double scale = loss_is_sum ? 1.0 : 1.0 / static_cast<double>(batch());
    double l = 0.0;
    for (std::int64_t i = 0; i < rows; ++i) {
      const double w = mask(i, 2) != 0 ? 1.0 : 0.25;
      for (std::int64_t j = 0; j < static_cast<std::int64_t>(h.extent(1)); ++j) {
        const double d = h(i, j) - targets_(first + i, j);
        l += w * 0.5 * d * d * scale;
        dh(i, j) = w * d * scale;
      }
      for (std::int64_t j = 0; j < static_cast<std::int64_t>(k.extent(1)); ++j) {
        l += w * 0.05 * k(i, j) * k(i, j) * scale;
        dk(i, j) = w * 0.1 * k(i, j) * scale;
      }
    }
    return l;
  }

  void backward_input(std::int32_t s, std::int32_t mb, const boundary_type& dy, const boundary_type& dx) {
    cell& c = state(s, mb);
    const auto& [out, mask, k_out] = c.y;
    const matrix dh = dy.get<0>(), dk = dy.get<2>();
    mask_gradients += (dy.get<1>().data() != nullptr) + (dx.get<1>().data() != nullptr);
    const auto rows = static_cast<std::int64_t>(out.extent(0));
    const std::int64_t in = widths_[static_cast<std::size_t>(s)], width = widths_[static_cast<std::size_t>(s) + 1];
    const std::int64_t kw = skip_width(s);
    c.dz.assign(static_cast<std::size_t>(rows * width), 0.0);
    for (std::int64_t i = 0; i < rows; ++i) {
      const double g = 1.0 + mask(i, s % mask_width);
      for (std::int64_t j = 0; j < width; ++j) {
        const double t = out(i, j) / g;
        // Stage 0's output is also the skip tensor: both gradients reach it.
        const double upstream = dh(i, j) + (s == 0 && j < widths_[1] ? dk(i, j) : 0.0);
        c.dz[static_cast<std::size_t>(i * width + j)] = upstream * g * (1.0 - t * t);
      }
    }
    if (s == 0) return;  // dx is empty: nothing before stage 0
    const auto& [dh_in, dmask_in, dk_in] = dx;
    (void)dmask_in;
    const double* p = params_[static_cast<std::size_t>(s)].data();
    for (std::int64_t i = 0; i < rows; ++i) {
      for (std::int64_t a = 0; a < in; ++a) {
        double v = 0.0;
        for (std::int64_t j = 0; j < width; ++j) v += c.dz[static_cast<std::size_t>(i * width + j)] * p[weight(s, a, j)];
        dh_in(i, a) = v;
      }
      for (std::int64_t a = 0; a < kw; ++a) {
        double v = dk(i, a);
        for (std::int64_t j = 0; j < width; ++j) v += c.dz[static_cast<std::size_t>(i * width + j)] * p[skip_weight(s, a, j)];
        dk_in(i, a) = v;
      }
    }
  }

  void backward_weight(std::int32_t s, std::int32_t mb) {
    cell& c = state(s, mb);
    const auto& [h, mask, k] = c.x;
    (void)mask;
    const auto rows = static_cast<std::int64_t>(h.extent(0));
    const std::int64_t in = widths_[static_cast<std::size_t>(s)], width = widths_[static_cast<std::size_t>(s) + 1];
    const std::int64_t kw = skip_width(s);
    double* g = grads_[static_cast<std::size_t>(s)].data();
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < width; ++j) {
        const double dz = c.dz[static_cast<std::size_t>(i * width + j)];
        g[bias(s, j)] += dz;
        for (std::int64_t a = 0; a < in; ++a) g[weight(s, a, j)] += h(i, a) * dz;
        for (std::int64_t a = 0; a < kw; ++a) g[skip_weight(s, a, j)] += k(i, a) * dz;
      }
    c.x = boundary_type();
    c.y = boundary_type();
  }

  /// Microbatch states held now (from F until W).
  std::size_t held() const {
    std::size_t n = 0;
    for (const cell& c : state_) n += c.y.get<0>().data() != nullptr;
    return n;
  }
  /// Views of a mask gradient seen by loss or B (must stay 0: the mask has none).
  std::int64_t mask_gradients{0};

  /**
  @brief The sequential reference: every stage on this process, the whole batch as one
  microbatch, stage by stage, then the loss, then B and W from the last stage down. Returns the loss.
  */
  double sequential_step() {
    set_batch(inputs_, targets_, mask_, 1);
    const std::int32_t stages = num_stages();
    const std::int64_t rows = batch();
    std::vector<boundary_type> outputs, gradients;
    auto make = [&](std::int32_t s) {
      return boundary_type(matrix("h", rows, widths_[static_cast<std::size_t>(s) + 1]), mask_view("mask", rows, mask_width),
                           matrix("k", rows, widths_[1]));
    };
    for (std::int32_t s = 0; s < stages; ++s) {
      outputs.push_back(make(s));
      forward(s, 0, s == 0 ? input(0) : outputs[static_cast<std::size_t>(s) - 1], outputs.back());
    }
    boundary_type dy = make(stages - 1);
    dy.get<1>() = mask_view();
    const double l = loss(0, outputs.back(), dy);
    for (std::int32_t s = stages - 1; s >= 0; --s) {
      boundary_type dx;
      if (s > 0) {
        dx = make(s - 1);
        dx.get<1>() = mask_view();
      }
      backward_input(s, 0, dy, dx);
      backward_weight(s, 0);
      dy = dx;
    }
    return l;
  }

 private:
  struct cell {
    boundary_type x, y;
    std::vector<double> dz;
  };
  cell& state(std::int32_t s, std::int32_t mb) {
    return state_[static_cast<std::size_t>(s) * static_cast<std::size_t>(microbatches_) + static_cast<std::size_t>(mb)];
  }
  std::int64_t begin_row(std::int32_t mb) const {
    if (!offsets_.empty()) return offsets_[static_cast<std::size_t>(mb)];
    const std::int64_t b = batch(), m = microbatches_;
    return mb * (b / m) + std::min<std::int64_t>(mb, b % m);
  }
  std::int64_t end_row(std::int32_t mb) const {
    if (!offsets_.empty()) return offsets_[static_cast<std::size_t>(mb) + 1];
    return begin_row(mb) + (batch() / microbatches_) + (mb < batch() % microbatches_ ? 1 : 0);
  }
  // Flat parameter layout of stage s: W [in, out], then U [kw, out], then b [out].
  std::size_t weight(std::int32_t s, std::int64_t a, std::int64_t j) const {
    return static_cast<std::size_t>(a * widths_[static_cast<std::size_t>(s) + 1] + j);
  }
  std::size_t skip_weight(std::int32_t s, std::int64_t a, std::int64_t j) const {
    return static_cast<std::size_t>((widths_[static_cast<std::size_t>(s)] + a) * widths_[static_cast<std::size_t>(s) + 1] + j);
  }
  std::size_t bias(std::int32_t s, std::int64_t j) const {
    return static_cast<std::size_t>((widths_[static_cast<std::size_t>(s)] + skip_width(s)) * widths_[static_cast<std::size_t>(s) + 1] + j);
  }

  std::vector<std::int64_t> widths_;
  std::vector<std::vector<double>> params_, grads_;
  matrix inputs_, targets_;
  mask_view mask_;
  std::int32_t microbatches_{1};
  std::vector<std::int64_t> offsets_;  // the step API's cut (set_microbatches); empty: the even cut above
  std::vector<cell> state_;
};

}  // namespace stretto::testing
