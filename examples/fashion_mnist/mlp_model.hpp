#pragma once
/**
@file
@brief A multilayer perceptron cut into pipeline stages, as a `stretto::kokkos::stage_model`.

Used by the Fashion-MNIST demo and by the gradient-equivalence tests. Dense layers run on
`KokkosBlas::gemm` (on the model's compute instance: `stretto::kokkos::blas_stream_guard`);
bias, ReLU and the softmax cross-entropy run as Kokkos kernels.

**Shapes.** `widths = {w0, w1, ..., wL}` gives L dense layers; layer l maps `[rows, w_l]` to
`[rows, w_{l+1}]` as y = x·Wᵀ + b, with ReLU after every layer but the last. Weights are
`W_l: [w_{l+1}, w_l]`, biases `b_l: [w_{l+1}]`. By default stage s of S holds layers
[⌊s·L/S⌋, ⌊(s+1)·L/S⌋), so every stage has at least one layer when L ≥ S; the other constructor
takes the stage boundaries (e.g. from `stretto::partition` over per-layer costs, see
`layer_flops`).

**Memory.** Each (stage, microbatch) keeps its buffers from step to step and reuses them; W
drops only the views it was handed (the stage's input and output, the output gradient), so
after the first step of a batch shape no view is allocated.

**Determinism.** Layer l is initialised from `seed` and l alone (He-uniform), so every partition
of the same network starts from the same weights: a pipelined run and a sequential run are
comparable bit for bit up to summation order.
*/

#include <Kokkos_Core.hpp>
#include <KokkosBlas3_gemm.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <stretto/detail/text.hpp>
#include <stretto/io/checkpoint.hpp>
#include <stretto/kokkos/blas_stream.hpp>
#include <stretto/kokkos/executor.hpp>

namespace stretto::examples {

template <class Scalar = double, class ExecutionSpace = Kokkos::DefaultExecutionSpace>
class mlp_model {
 public:
  using execution_space = ExecutionSpace;
  using matrix_type = stretto::kokkos::matrix<Scalar, typename ExecutionSpace::memory_space>;
  using vector_type = Kokkos::View<Scalar*, typename matrix_type::memory_space>;
  using label_view = Kokkos::View<std::int32_t*, typename matrix_type::memory_space>;

  /**
  @brief Creates the layers of the stages in `local_stages` (of `num_stages` in all).
  @throws std::invalid_argument if there are fewer layers than stages, naming both counts.
  */
  mlp_model(std::vector<std::int64_t> widths, std::int32_t num_stages, std::vector<std::int32_t> local_stages,
            std::uint64_t seed)
      : widths_(std::move(widths)), num_stages_(num_stages) {
    const auto num_layers = static_cast<std::int32_t>(widths_.size()) - 1;
    if (num_layers < num_stages)
      throw std::invalid_argument(stretto::detail::cat(
          "the model has ", num_layers, " layers but the pipeline has ", num_stages,
          " stages; every stage needs at least one layer, so use at most ", num_layers, " stages"));
    for (std::int32_t s = 0; s <= num_stages; ++s)
      boundaries_.push_back(static_cast<std::int32_t>((static_cast<std::int64_t>(s) * num_layers) / num_stages));
    init(local_stages, seed);
  }

  /**
  @brief Creates the layers of `local_stages`, stage s holding layers [boundaries[s], boundaries[s+1]).
  @throws std::invalid_argument unless 0 = boundaries[0] < boundaries[1] < … = L (the number of
  layers): every stage needs at least one layer.
  */
  mlp_model(std::vector<std::int64_t> widths, std::vector<std::int32_t> boundaries,
            std::vector<std::int32_t> local_stages, std::uint64_t seed)
      : widths_(std::move(widths)),
        num_stages_(static_cast<std::int32_t>(boundaries.size()) - 1),
        boundaries_(std::move(boundaries)) {
    const auto num_layers = static_cast<std::int32_t>(widths_.size()) - 1;
    bool valid = num_stages_ >= 1 && boundaries_.front() == 0 && boundaries_.back() == num_layers;
    for (std::size_t s = 0; valid && s + 1 < boundaries_.size(); ++s) valid = boundaries_[s] < boundaries_[s + 1];
    if (!valid)
      throw std::invalid_argument(stretto::detail::cat(
          "mlp_model: stage boundaries must rise strictly from 0 to the number of layers, ", num_layers,
          " (every stage holds at least one layer)"));
    init(local_stages, seed);
  }

  /**
  @brief Floating-point operations per sample of layer `l` in one F, B and W: the three GEMMs
  (2·in·out each; layer 0 computes no input gradient, so 2 of them) plus the bias, ReLU and its
  backward and the bias gradient (about 4·out). The demo partitions its stages by these costs.
  */
  static double layer_flops(const std::vector<std::int64_t>& widths, std::int32_t l) {
    const auto in = static_cast<double>(widths[static_cast<std::size_t>(l)]);
    const auto out = static_cast<double>(widths[static_cast<std::size_t>(l) + 1]);
    return (l == 0 ? 4.0 : 6.0) * in * out + 4.0 * out;
  }

  std::int32_t num_layers() const noexcept { return static_cast<std::int32_t>(layers_.size()); }

  /**
  @brief The execution-space instance the model's kernels (bias, ReLU, loss, optimizer) run on;
  the executor fences it and queues received inputs' copies on it. The default instance unless
  `set_compute_space` chose another (e.g. a `stretto::kokkos::execution_instance`'s stream).
  GEMMs go through `KokkosBlas::gemm`, which in Kokkos Kernels 3.4 takes no instance: each runs
  under a `stretto::kokkos::blas_stream_guard` of this instance (with cuBLAS, on its stream;
  else fenced around).
  */
  const ExecutionSpace& compute_space() const noexcept { return space_; }
  /** @brief Runs the kernels on `space` from now on. @pre set before the executor is made; `space` outlives the model's use. */
  void set_compute_space(ExecutionSpace space) { space_ = std::move(space); }
  /** @brief The first layer of stage `s`; `first_layer(S)` is the number of layers. */
  std::int32_t first_layer(std::int32_t s) const noexcept { return boundaries_[static_cast<std::size_t>(s)]; }

  // ---- the batch of the current step ---------------------------------------------------------
  /**
  @brief Sets the current step's batch of `batch` samples: `inputs` `[batch, w0]` (needed on stage
  0's rank only, may be empty elsewhere) and `labels` `[batch]` (last stage's rank only), cut into
  `num_microbatches` contiguous microbatches whose sizes differ by at most one, and the number of
  samples the loss is averaged over (the global batch, so that loss scaling happens once).
  */
  void set_batch(matrix_type inputs, label_view labels, std::int64_t batch, std::int32_t num_microbatches,
                 std::int64_t loss_denominator) {
    inputs_ = inputs;
    labels_ = labels;
    offsets_.assign(static_cast<std::size_t>(num_microbatches) + 1, 0);
    for (std::int32_t j = 0; j < num_microbatches; ++j)
      offsets_[static_cast<std::size_t>(j) + 1] =
          offsets_[static_cast<std::size_t>(j)] + batch / num_microbatches + (j < batch % num_microbatches ? 1 : 0);
    loss_denominator_ = static_cast<Scalar>(loss_denominator);
    correct_.assign(static_cast<std::size_t>(num_microbatches), 0);
  }
  /** @brief Whether F keeps what the backward needs (true while training). */
  void set_training(bool training) noexcept { training_ = training; }

  // ---- stretto::kokkos::stage_model ----------------------------------------------------------
  std::int64_t input_features(std::int32_t s) const { return widths_[static_cast<std::size_t>(first_layer(s))]; }
  std::int64_t output_features(std::int32_t s) const {
    return widths_[static_cast<std::size_t>(first_layer(s + 1))];
  }
  std::int64_t microbatch_rows(std::int32_t mb) const { return end_row(mb) - begin_row(mb); }

  matrix_type input(std::int32_t mb) const {
    return Kokkos::subview(inputs_, Kokkos::make_pair(begin_row(mb), end_row(mb)), Kokkos::ALL);
  }

  void forward(std::int32_t s, std::int32_t mb, const matrix_type& x, const matrix_type& y) {
    sample_memory();
    microbatch_state& state = state_slot(s, mb);
    if (state.live)
      throw std::logic_error(stretto::detail::cat("mlp_model: forward of stage ", s, ", mb ", mb,
                                                  " again before its backward_weight"));
    const std::int32_t first = first_layer(s);
    const std::int32_t last = first_layer(s + 1) - 1;
    const auto n = static_cast<std::size_t>(last - first + 1);
    state.acts.resize(n + 1);
    state.hidden.resize(n);
    state.acts[0] = x;
    for (std::int32_t l = first; l <= last; ++l) {
      const auto k = static_cast<std::size_t>(l - first);
      matrix_type out = l == last ? y
                                  : reuse(state.hidden[k], "mlp::activation", x.extent(0),
                                          widths_[static_cast<std::size_t>(l) + 1]);
      dense_forward(l, state.acts[k], out);
      state.acts[k + 1] = out;
    }
    if (training_) {
      state.live = true;
      for (std::size_t k = 0; k + 1 < n; ++k) state_bytes_ += bytes_of(state.hidden[k]);
      sample_memory();
    } else {
      release(state);
    }
  }

  /** @brief Softmax cross-entropy of microbatch `mb`; writes d loss / d logits; returns the loss. */
  double loss(std::int32_t mb, const matrix_type& logits, const matrix_type& gradient) {
    const auto labels = Kokkos::subview(labels_, Kokkos::make_pair(begin_row(mb), end_row(mb)));
    const Scalar scale = Scalar(1) / loss_denominator_;
    const auto classes = static_cast<std::int64_t>(logits.extent(1));
    double total = 0.0;
    Kokkos::parallel_reduce(
        "mlp::softmax_cross_entropy", range(logits.extent(0)),
        KOKKOS_LAMBDA(const std::size_t i, double& sum) {
          Scalar top = logits(i, 0);
          for (std::int64_t c = 1; c < classes; ++c) top = logits(i, c) > top ? logits(i, c) : top;
          Scalar z = 0;
          for (std::int64_t c = 0; c < classes; ++c) z += std::exp(logits(i, c) - top);
          const std::int32_t label = labels(i);
          for (std::int64_t c = 0; c < classes; ++c)
            gradient(i, c) = (std::exp(logits(i, c) - top) / z - (c == label ? Scalar(1) : Scalar(0))) * scale;
          sum += static_cast<double>((std::log(z) + top - logits(i, label)) * scale);
        },
        total);
    sample_memory();
    if (static_cast<std::size_t>(mb) >= microbatch_losses_.size()) microbatch_losses_.resize(static_cast<std::size_t>(mb) + 1);
    microbatch_losses_[static_cast<std::size_t>(mb)] = total;
    return total;
  }

  /** @brief The loss of each microbatch of the last step (last stage only; index = microbatch). */
  const std::vector<double>& microbatch_losses() const noexcept { return microbatch_losses_; }

  /** @brief Inference: counts the correct predictions of microbatch `mb` (see `correct()`). */
  void output(std::int32_t mb, const matrix_type& logits) {
    const auto labels = Kokkos::subview(labels_, Kokkos::make_pair(begin_row(mb), end_row(mb)));
    const auto classes = static_cast<std::int64_t>(logits.extent(1));
    std::int64_t correct = 0;
    Kokkos::parallel_reduce(
        "mlp::accuracy", range(logits.extent(0)),
        KOKKOS_LAMBDA(const std::size_t i, std::int64_t& hits) {
          std::int64_t arg = 0;
          for (std::int64_t c = 1; c < classes; ++c)
            if (logits(i, c) > logits(i, arg)) arg = c;
          hits += arg == labels(i) ? 1 : 0;
        },
        correct);
    correct_[static_cast<std::size_t>(mb)] = correct;
  }

  /** @brief Correct predictions in the current batch so far (last stage only). */
  std::int64_t correct() const {
    std::int64_t n = 0;
    for (auto c : correct_) n += c;
    return n;
  }

  void backward_input(std::int32_t s, std::int32_t mb, const matrix_type& dy, const matrix_type& dx) {
    sample_memory();
    auto& state = saved_state(s, mb);
    const std::int32_t first = first_layer(s);
    const std::int32_t last = first_layer(s + 1) - 1;
    const auto n = static_cast<std::size_t>(last - first + 1);
    state.dz.resize(n);
    state.dz_store.resize(n);
    state.dx_store.resize(n);
    matrix_type g = dy;
    for (std::int32_t l = last; l >= first; --l) {
      const auto k = static_cast<std::size_t>(l - first);
      matrix_type dz = g;
      if (has_relu(l)) {  // dz = g ⊙ [y > 0], with y this layer's output
        dz = reuse(state.dz_store[k], "mlp::dz", g.extent(0), static_cast<std::int64_t>(g.extent(1)));
        const matrix_type y = state.acts[k + 1];
        Kokkos::parallel_for(
            "mlp::relu_backward", Kokkos::MDRangePolicy<ExecutionSpace, Kokkos::Rank<2>>(space_, {0, 0}, {g.extent(0), g.extent(1)}),
            KOKKOS_LAMBDA(const std::size_t i, const std::size_t j) { dz(i, j) = y(i, j) > 0 ? g(i, j) : Scalar(0); });
      }
      state.dz[k] = dz;
      if (l > first) {
        g = reuse(state.dx_store[k], "mlp::dx", dz.extent(0), widths_[static_cast<std::size_t>(l)]);
        const stretto::kokkos::blas_stream_guard<ExecutionSpace> on_stream(space_);
        KokkosBlas::gemm("N", "N", Scalar(1), dz, layer(l).weight, Scalar(0), g);
      } else if (dx.extent(0) > 0) {
        const stretto::kokkos::blas_stream_guard<ExecutionSpace> on_stream(space_);
        KokkosBlas::gemm("N", "N", Scalar(1), dz, layer(l).weight, Scalar(0), dx);
      }
    }
    // Held until W: the ReLU gradients; held while B runs: the inner layers' input gradients.
    std::size_t kept = 0, scratch = 0;
    for (std::int32_t l = first; l <= last; ++l) {
      const auto k = static_cast<std::size_t>(l - first);
      if (has_relu(l)) kept += bytes_of(state.dz_store[k]);
      if (l > first) scratch += bytes_of(state.dx_store[k]);
    }
    state_bytes_ += kept + scratch;
    sample_memory();
    state_bytes_ -= scratch;
  }

  void backward_weight(std::int32_t s, std::int32_t mb) {
    sample_memory();
    auto& state = saved_state(s, mb);
    const std::int32_t first = first_layer(s);
    for (std::int32_t l = first; l < first_layer(s + 1); ++l) {
      const auto k = static_cast<std::size_t>(l - first);
      auto& ly = layer(l);
      const matrix_type dz = state.dz.at(k);
      {
        const stretto::kokkos::blas_stream_guard<ExecutionSpace> on_stream(space_);
        KokkosBlas::gemm("T", "N", Scalar(1), dz, state.acts[k], Scalar(1), ly.weight_grad);
      }
      const vector_type db = ly.bias_grad;
      const auto rows = static_cast<std::int64_t>(dz.extent(0));
      Kokkos::parallel_for(
          "mlp::bias_grad", range(dz.extent(1)), KOKKOS_LAMBDA(const std::size_t j) {
            Scalar sum = 0;
            for (std::int64_t i = 0; i < rows; ++i) sum += dz(i, j);
            db(j) += sum;
          });
    }
    for (std::int32_t l = first; l < first_layer(s + 1); ++l) {
      const auto k = static_cast<std::size_t>(l - first);
      if (l + 1 < first_layer(s + 1)) state_bytes_ -= bytes_of(state.hidden[k]);
      if (has_relu(l)) state_bytes_ -= bytes_of(state.dz_store[k]);
    }
    release(state);
  }

  // ---- test and example helpers -------------------------------------------------------------------
  /** @brief A batch of inputs `[rows, w0]` and labels `[rows]`. */
  struct batch_data {
    matrix_type inputs;
    label_view labels;
  };

  /**
  @brief A deterministic random batch of `rows` samples for this network: inputs uniform in
  [−1, 1], labels uniform over the output classes, both drawn from `std::mt19937_64(seed)`.
  */
  batch_data random_batch(std::int64_t rows, std::uint64_t seed) const {
    batch_data d{matrix_type("inputs", rows, widths_.front()), label_view("labels", rows)};
    auto x = Kokkos::create_mirror_view(d.inputs);
    auto y = Kokkos::create_mirror_view(d.labels);
    std::mt19937_64 engine(seed);
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    for (std::int64_t i = 0; i < rows; ++i) {
      for (std::int64_t j = 0; j < widths_.front(); ++j) x(i, j) = static_cast<Scalar>(uniform(engine));
      y(i) = static_cast<std::int32_t>(engine() % static_cast<std::uint64_t>(widths_.back()));
    }
    Kokkos::deep_copy(d.inputs, x);
    Kokkos::deep_copy(d.labels, y);
    return d;
  }

  /**
  @brief One sequential training step on the whole batch, no pipeline: the reference run of the
  gradient-equivalence checks. Returns the loss.
  @pre the model has a single stage holding every layer.
  */
  double sequential_step(const batch_data& d, Scalar learning_rate, Scalar momentum) {
    if (num_stages_ != 1) throw std::logic_error("mlp_model::sequential_step needs a model of one stage");
    const auto rows = static_cast<std::int64_t>(d.labels.extent(0));
    set_batch(d.inputs, d.labels, rows, 1, rows);
    matrix_type logits("logits", rows, widths_.back()), dlogits("dlogits", rows, widths_.back());
    forward(0, 0, input(0), logits);
    const double value = loss(0, logits, dlogits);
    backward_input(0, 0, dlogits, matrix_type());
    backward_weight(0, 0);
    apply_gradients(learning_rate, momentum);
    return value;
  }

  // ---- optimizer -------------------------------------------------------------------------------
  /** @brief SGD with momentum on the local layers, then zeroes the gradients. */
  void apply_gradients(Scalar learning_rate, Scalar momentum) {
    for (auto& ly : layers_) {
      if (!ly.weight.data()) continue;
      update(ly.weight, ly.weight_grad, ly.weight_velocity, learning_rate, momentum);
      update(ly.bias, ly.bias_grad, ly.bias_velocity, learning_rate, momentum);
    }
  }

  /** @brief Zeroes the local gradients without an optimizer step (a step that is not applied). */
  void discard_gradients() {
    for (auto& ly : layers_) {
      if (!ly.weight.data()) continue;
      Kokkos::deep_copy(ly.weight_grad, Scalar(0));
      Kokkos::deep_copy(ly.bias_grad, Scalar(0));
    }
  }

  /** @brief SGD with momentum on stage `s`'s layers (if local), then zeroes their gradients. */
  void apply_gradients(std::int32_t s, Scalar learning_rate, Scalar momentum) {
    for (std::int32_t l = first_layer(s); l < first_layer(s + 1); ++l) {
      auto& ly = layer(l);
      if (!ly.weight.data()) continue;
      update(ly.weight, ly.weight_grad, ly.weight_velocity, learning_rate, momentum);
      update(ly.bias, ly.bias_grad, ly.bias_velocity, learning_rate, momentum);
    }
  }

  /** @brief Fault injection for tests: makes one weight gradient of stage `s` NaN. */
  void inject_nan_gradient(std::int32_t s) {
    const auto& ly = layers_[static_cast<std::size_t>(first_layer(s))];
    Kokkos::deep_copy(Kokkos::subview(ly.weight_grad, 0, 0), std::numeric_limits<Scalar>::quiet_NaN());
  }

  /**
  @brief The weight and bias gradients of stage `s`'s layers, copied to the host and concatenated
  (for the all-reduce between the two replicas of a bidirectional schedule).
  */
  std::vector<double> pack_gradients(std::int32_t s) const {
    std::vector<double> out;
    for (std::int32_t l = first_layer(s); l < first_layer(s + 1); ++l) {
      const auto& ly = layers_[static_cast<std::size_t>(l)];
      auto w = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), ly.weight_grad);
      auto b = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), ly.bias_grad);
      out.insert(out.end(), w.data(), w.data() + w.size());
      out.insert(out.end(), b.data(), b.data() + b.size());
    }
    return out;
  }

  /** @brief Stores `values`, laid out as `pack_gradients(s)` gives them, as stage `s`'s gradients. */
  void unpack_gradients(std::int32_t s, std::span<const double> values) {
    std::size_t at = 0;
    for (std::int32_t l = first_layer(s); l < first_layer(s + 1); ++l) {
      auto& ly = layers_[static_cast<std::size_t>(l)];
      auto w = Kokkos::create_mirror_view(ly.weight_grad);
      auto b = Kokkos::create_mirror_view(ly.bias_grad);
      for (std::size_t i = 0; i < w.size(); ++i) w.data()[i] = static_cast<Scalar>(values[at++]);
      for (std::size_t i = 0; i < b.size(); ++i) b.data()[i] = static_cast<Scalar>(values[at++]);
      Kokkos::deep_copy(ly.weight_grad, w);
      Kokkos::deep_copy(ly.bias_grad, b);
    }
  }

  /**
  @brief Stage `s`'s weight and bias gradients, layer by layer (`W_l` row-major, then `b_l`), as
  one contiguous span: the buffer the layers accumulate into, so writing it changes them (the
  data-parallel all-reduce sums it in place). Empty if `s` is not local.
  @pre the model's memory space is host-accessible (the span is host memory).
  */
  std::span<Scalar> gradients(std::int32_t s) {
    const auto& g = gradients_[static_cast<std::size_t>(s)];
    return {g.data(), g.size()};
  }

  // ---- the step API (stretto::training::pipeline) ------------------------------------------
  /** @brief The number of samples in `b`. */
  static std::int64_t batch_rows(const batch_data& b) { return static_cast<std::int64_t>(b.labels.extent(0)); }
  /**
  @brief Microbatch j is rows [offsets[j], offsets[j+1]) of `b`; the loss is the sum over the
  samples (the pipeline scales the gradients by the global batch).
  */
  void set_microbatches(const batch_data& b, std::span<const std::int64_t> offsets) {
    inputs_ = b.inputs;
    labels_ = b.labels;
    offsets_.assign(offsets.begin(), offsets.end());
    loss_denominator_ = Scalar(1);
    correct_.assign(offsets.size() - 1, 0);
  }

  /** @brief Layer `l`'s weights and bias copied to the host, flattened (empty if not local). */
  std::vector<Scalar> parameters(std::int32_t l) const {
    const auto& ly = layers_[static_cast<std::size_t>(l)];
    std::vector<Scalar> out;
    if (!ly.weight.data()) return out;
    auto w = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), ly.weight);
    auto b = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), ly.bias);
    for (std::size_t i = 0; i < w.extent(0); ++i)
      for (std::size_t j = 0; j < w.extent(1); ++j) out.push_back(w(i, j));
    for (std::size_t i = 0; i < b.extent(0); ++i) out.push_back(b(i));
    return out;
  }

  // ---- checkpoints (stretto::training::checkpointable_model) -----------------------------------
  /**
  @brief Stage `s`'s training state for a checkpoint, layer by layer: `layer{l}.weight`
  `[w_{l+1}, w_l]`, `layer{l}.bias` `[w_{l+1}]` and their SGD momentum buffers
  `layer{l}.weight_momentum`, `layer{l}.bias_momentum`, over the model's own memory (a resume
  overwrites it in place). The gradients are zero between steps and are not saved.
  @pre `s` is local and the model's memory space is host-accessible.
  */
  std::vector<stretto::io::tensor_ref> checkpoint_state(std::int32_t s)
    requires(bool(Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename matrix_type::memory_space>::accessible))
  {
    std::vector<stretto::io::tensor_ref> out;
    const auto name = [](std::int32_t l, const char* what) { return stretto::detail::cat("layer", l, ".", what); };
    const auto matrix = [](const matrix_type& m) {
      return std::vector<std::int64_t>{static_cast<std::int64_t>(m.extent(0)), static_cast<std::int64_t>(m.extent(1))};
    };
    for (std::int32_t l = first_layer(s); l < first_layer(s + 1); ++l) {
      auto& ly = layer(l);
      out.emplace_back(name(l, "weight"), std::span<Scalar>(ly.weight.data(), ly.weight.size()), matrix(ly.weight));
      out.emplace_back(name(l, "bias"), std::span<Scalar>(ly.bias.data(), ly.bias.size()));
      out.emplace_back(name(l, "weight_momentum"), std::span<Scalar>(ly.weight_velocity.data(), ly.weight_velocity.size()),
                       matrix(ly.weight_velocity));
      out.emplace_back(name(l, "bias_momentum"), std::span<Scalar>(ly.bias_velocity.data(), ly.bias_velocity.size()));
    }
    Kokkos::fence();  // no kernel still writes them
    return out;
  }

  // ---- activation memory meter ------------------------------------------------------------------
  /**
  @brief Starts measuring the activation memory held on this rank (see `peak_activation_bytes`):
  `executor_bytes` returns what the executor's buffers hold now (e.g. `exec.pool().bytes_in_use()`:
  received inputs, outputs and gradients, receives posted ahead, sends in flight, and the views
  this model keeps of them). Resets the peak.
  */
  void set_memory_probe(std::function<std::size_t()> executor_bytes) {
    executor_bytes_ = std::move(executor_bytes);
    peak_bytes_ = 0;
  }
  /**
  @brief The most activation memory this rank held at once while training, in bytes, since
  `set_memory_probe`: the executor's buffers in use plus this model's own buffers of the
  microbatches between F and W (inner layers' outputs from F, ReLU gradients from B) and, while a
  B runs, its inner input gradients. Sampled at the start and end of every stage function (the
  memory only grows inside one, and the receives posted between ops are there at the next start).
  Buffers a state keeps for reuse after W are not counted: they hold nothing needed.
  */
  std::size_t peak_activation_bytes() const noexcept { return peak_bytes_; }
  /** @brief Bytes of this model's own buffers held by microbatches between F and W now. */
  std::size_t held_state_bytes() const noexcept { return state_bytes_; }

  /** @brief Microbatches whose saved state is still held, from F to W (for memory checks). */
  std::size_t held_microbatches() const {
    std::size_t n = 0;
    for (const auto& per_stage : saved_)
      for (const auto& state : per_stage) n += state.live ? 1 : 0;
    return n;
  }

 private:
  struct dense_layer {
    matrix_type weight, weight_grad, weight_velocity;  // [out, in]
    vector_type bias, bias_grad, bias_velocity;        // [out]
  };
  // One microbatch's state on one stage, kept from step to step: the buffers it owns (hidden
  // activations, dz and dx per layer) are reused by the next step's same microbatch, so that a
  // steady step allocates nothing; the views it is handed (the stage's input and output, the
  // output gradient) are dropped at W so their owner can reuse them.
  struct microbatch_state {
    std::vector<matrix_type> acts;      // the stage's input, then each layer's output (views)
    std::vector<matrix_type> dz;        // per layer, d loss / d pre-activation (set by B, read by W)
    std::vector<matrix_type> hidden;    // owned: the outputs of the stage's inner layers
    std::vector<matrix_type> dz_store;  // owned: dz of layers with a ReLU
    std::vector<matrix_type> dx_store;  // owned: input gradients of the stage's inner layers
    bool live{false};                   // between F and W
  };

  static matrix_type allocate(const char* label, std::size_t rows, std::int64_t cols) {
    return matrix_type(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string(label)), rows,
                       static_cast<std::size_t>(cols));
  }
  // `slot` if it already has the shape [rows, cols], else a new allocation stored in `slot`.
  static const matrix_type& reuse(matrix_type& slot, const char* label, std::size_t rows, std::int64_t cols) {
    if (slot.extent(0) != rows || static_cast<std::int64_t>(slot.extent(1)) != cols) slot = allocate(label, rows, cols);
    return slot;
  }
  // [0, n) on the model's instance.
  Kokkos::RangePolicy<ExecutionSpace> range(std::size_t n) const { return Kokkos::RangePolicy<ExecutionSpace>(space_, 0, n); }
  static std::size_t bytes_of(const matrix_type& m) noexcept { return m.span() * sizeof(Scalar); }
  void sample_memory() {
    if (!executor_bytes_ || !training_) return;
    const std::size_t now = executor_bytes_() + state_bytes_;
    peak_bytes_ = now > peak_bytes_ ? now : peak_bytes_;
  }
  // Drops the views a state was handed (keeping its own buffers) and marks it free.
  static void release(microbatch_state& state) {
    for (auto& a : state.acts) a = matrix_type();
    for (auto& d : state.dz) d = matrix_type();
    state.live = false;
  }
  microbatch_state& state_slot(std::int32_t s, std::int32_t mb) {
    auto& per_stage = saved_[static_cast<std::size_t>(s)];
    if (per_stage.size() <= static_cast<std::size_t>(mb)) per_stage.resize(static_cast<std::size_t>(mb) + 1);
    return per_stage[static_cast<std::size_t>(mb)];
  }

  std::int64_t begin_row(std::int32_t mb) const { return offsets_.at(static_cast<std::size_t>(mb)); }
  std::int64_t end_row(std::int32_t mb) const { return offsets_.at(static_cast<std::size_t>(mb) + 1); }

  bool has_relu(std::int32_t l) const noexcept { return l + 1 < num_layers(); }
  dense_layer& layer(std::int32_t l) { return layers_[static_cast<std::size_t>(l)]; }

  microbatch_state& saved_state(std::int32_t s, std::int32_t mb) {
    auto& per_stage = saved_[static_cast<std::size_t>(s)];
    if (static_cast<std::size_t>(mb) >= per_stage.size() || !per_stage[static_cast<std::size_t>(mb)].live)
      throw std::logic_error(stretto::detail::cat("mlp_model: backward of stage ", s, ", mb ", mb,
                                                  " without a saved forward"));
    return per_stage[static_cast<std::size_t>(mb)];
  }

  void init(const std::vector<std::int32_t>& local_stages, std::uint64_t seed) {
    layers_.resize(widths_.size() - 1);
    gradients_.resize(static_cast<std::size_t>(num_stages_));
    for (std::int32_t s : local_stages) {
      // One buffer per stage holds its layers' weight and bias gradients back to back (see
      // `gradients`); the layers' gradient views are unmanaged views into it.
      std::int64_t size = 0;
      for (std::int32_t l = first_layer(s); l < first_layer(s + 1); ++l)
        size += (widths_[static_cast<std::size_t>(l)] + 1) * widths_[static_cast<std::size_t>(l) + 1];
      auto& store = gradients_[static_cast<std::size_t>(s)];
      store = vector_type("mlp::gradients", static_cast<std::size_t>(size));
      std::int64_t at = 0;
      for (std::int32_t l = first_layer(s); l < first_layer(s + 1); ++l) {
        init_layer(l, seed);
        const auto in = widths_[static_cast<std::size_t>(l)];
        const auto out = widths_[static_cast<std::size_t>(l) + 1];
        layer(l).weight_grad = matrix_type(store.data() + at, static_cast<std::size_t>(out), static_cast<std::size_t>(in));
        layer(l).bias_grad = vector_type(store.data() + at + in * out, static_cast<std::size_t>(out));
        at += (in + 1) * out;
      }
    }
    saved_.resize(static_cast<std::size_t>(num_stages_));
  }

  void init_layer(std::int32_t l, std::uint64_t seed) {
    const auto in = widths_[static_cast<std::size_t>(l)];
    const auto out = widths_[static_cast<std::size_t>(l) + 1];
    auto& ly = layer(l);
    ly.weight = matrix_type("mlp::weight", out, in);
    ly.weight_grad = matrix_type("mlp::weight_grad", out, in);
    ly.weight_velocity = matrix_type("mlp::weight_velocity", out, in);
    ly.bias = vector_type("mlp::bias", out);
    ly.bias_grad = vector_type("mlp::bias_grad", out);
    ly.bias_velocity = vector_type("mlp::bias_velocity", out);
    std::mt19937_64 engine(seed * 1000003ULL + static_cast<std::uint64_t>(l));
    const double bound = std::sqrt(6.0 / static_cast<double>(in));  // He-uniform
    std::uniform_real_distribution<double> uniform(-bound, bound);
    auto host = Kokkos::create_mirror_view(ly.weight);
    for (std::int64_t i = 0; i < out; ++i)
      for (std::int64_t j = 0; j < in; ++j) host(i, j) = static_cast<Scalar>(uniform(engine));
    Kokkos::deep_copy(ly.weight, host);
  }

 public:
  // Public, as every function that holds a KOKKOS_LAMBDA: CUDA allows no device lambda in a
  // private or protected member function. Not part of the model's interface.
  void dense_forward(std::int32_t l, const matrix_type& x, const matrix_type& y) {
    auto& ly = layer(l);
    {
      const stretto::kokkos::blas_stream_guard<ExecutionSpace> on_stream(space_);
      KokkosBlas::gemm("N", "T", Scalar(1), x, ly.weight, Scalar(0), y);
    }
    const vector_type b = ly.bias;
    const bool relu = has_relu(l);
    Kokkos::parallel_for(
        "mlp::bias_relu", Kokkos::MDRangePolicy<ExecutionSpace, Kokkos::Rank<2>>(space_, {0, 0}, {y.extent(0), y.extent(1)}),
        KOKKOS_LAMBDA(const std::size_t i, const std::size_t j) {
          const Scalar z = y(i, j) + b(j);
          y(i, j) = relu && z < 0 ? Scalar(0) : z;
        });
  }

  template <class View>
  void update(const View& param, const View& grad, const View& velocity, Scalar lr, Scalar mu) {
    const auto p = param;
    const auto g = grad;
    const auto v = velocity;
    Kokkos::parallel_for(
        "mlp::sgd_momentum", range(p.size()), KOKKOS_LAMBDA(const std::size_t i) {
          Scalar* pp = p.data();
          Scalar* gg = g.data();
          Scalar* vv = v.data();
          vv[i] = mu * vv[i] + gg[i];
          pp[i] -= lr * vv[i];
          gg[i] = 0;
        });
  }

 private:
  ExecutionSpace space_{};  // where the kernels run (see compute_space)
  std::vector<std::int64_t> widths_;
  std::int32_t num_stages_;
  std::vector<std::int32_t> boundaries_;  // stage s holds layers [boundaries_[s], boundaries_[s+1])
  std::vector<dense_layer> layers_;                            // all layers; only local ones allocated
  std::vector<vector_type> gradients_;  // [stage]: its layers' gradients, contiguous (local stages only)
  std::vector<std::vector<microbatch_state>> saved_;  // [stage][mb], reused from step to step
  matrix_type inputs_;
  label_view labels_;
  std::vector<std::int64_t> offsets_;  // microbatch j is rows [offsets_[j], offsets_[j+1]) of the batch
  Scalar loss_denominator_{1};
  std::vector<std::int64_t> correct_;
  std::vector<double> microbatch_losses_;  // per microbatch of the last step (last stage)
  bool training_{true};
  std::function<std::size_t()> executor_bytes_;  // the memory probe; empty: not measuring
  std::size_t state_bytes_{0};                   // own buffers of microbatches between F and W
  std::size_t peak_bytes_{0};
};

}  // namespace stretto::examples
