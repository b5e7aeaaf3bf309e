#pragma once
/**
@file
@brief Several tensors per stage boundary: `boundary<V...>`, a fixed tuple of `Kokkos::View`s
that a stage sends to the next one (hidden states and an attention mask, a skip connection, a
second output), the `boundary_stage_model` concept of a model that declares one, and how the
executor carries it (one message per boundary crossing; docs/stage-model.md, "Several tensors per
stage boundary").

**Gradients.** Every element has a gradient that flows back, except those declared
`no_gradient<View>` (a mask, token positions, anything the loss does not differentiate): for
them no gradient is allocated, sent or received, and the gradient boundaries hold an empty view
(`data() == nullptr`, every extent 0) in their place.

**Shapes.** Every element is per sample: extent 0 is the microbatch's rows
(`microbatch_rows(mb)`); the other extents, the element's per-sample shape, depend only on the
boundary (`model.output_shape(s)`, stage s's output, which is stage s + 1's input).

**Messages.** The executor packs the elements of one boundary into one buffer (one `[rows, words]`
matrix of `double` words from its `buffer_pool`) and hands the model views *into* that buffer,
so a boundary crossing is one message of Σ_k ⌈rows · n_k · sizeof(T_k) / 8⌉ words (n_k the
element's per-sample size; each element starts on an 8-byte word) and nothing is copied to pack
or unpack it. The views share the buffer's reference count: a model may keep any of them, as with
the one-matrix contract, and the buffer is reused only once no view of it is left. A gradient
crossing carries only the elements with a gradient.
*/

#include <Kokkos_Core.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include <stretto/core/op.hpp>

namespace stretto::kokkos {

/**
@brief Marks a boundary element without gradient, e.g.
`boundary<matrix<double>, no_gradient<Kokkos::View<std::int32_t*, Kokkos::LayoutRight>>>`: the
element flows forward with the activations, and no gradient of it is allocated or sent back.
*/
template <class View>
struct no_gradient {
  using view_type = View;
};

namespace boundary_detail {
template <class E>
struct element {
  using view_type = E;
  static constexpr bool differentiable = true;
};
template <class V>
struct element<no_gradient<V>> {
  using view_type = V;
  static constexpr bool differentiable = false;
};
template <class E>
using view_t = typename element<E>::view_type;
}  // namespace boundary_detail

/**
@brief One tensor of a boundary: a `Kokkos::View` of rank 1 to 8, `LayoutRight`, of non-const
arithmetic values of at most 8 bytes, every extent given at run time (e.g. `double**`, not
`double*[4]`). Extent 0 is the microbatch's rows.
*/
template <class T>
concept boundary_tensor = Kokkos::is_view<T>::value &&                                       // a Kokkos::View
                          T::rank >= 1 &&                                                     // [rows, ...]
                          T::rank_dynamic == T::rank &&                                       // every extent at run time
                          std::is_same_v<typename T::array_layout, Kokkos::LayoutRight> &&  // row-major
                          !std::is_const_v<typename T::value_type> &&                        // non-const values
                          std::is_arithmetic_v<typename T::value_type> &&                   // of numbers
                          sizeof(typename T::value_type) <= 8;                               // of at most 8 bytes

namespace boundary_detail {
// One static_assert per element, so that the diagnostic names the element (K) and its type (E).
template <std::size_t K, class E>
struct check_element {
  static_assert(boundary_tensor<view_t<E>>,
                "stretto::kokkos::boundary: element K is not a boundary tensor; every element must be a "
                "Kokkos::View of rank >= 1, LayoutRight, with run-time extents, of non-const arithmetic "
                "values of at most 8 bytes (or no_gradient<such a view>), e.g. "
                "boundary<matrix<double>, no_gradient<Kokkos::View<std::int32_t*, Kokkos::LayoutRight>>>");
  static constexpr bool value = true;
};
template <class T>
struct memory_space_of {
  using type = void;
};
template <class T>
  requires Kokkos::is_view<T>::value
struct memory_space_of<T> {
  using type = typename T::memory_space;
};
template <class T>
struct sample_shape {  // not a view: its check_element reports it
  using type = std::array<std::int64_t, 0>;
};
template <class T>
  requires(Kokkos::is_view<T>::value && T::rank >= 1)
struct sample_shape<T> {
  using type = std::array<std::int64_t, T::rank - 1>;
};
template <class E>
using sample_shape_t = typename sample_shape<view_t<E>>::type;
}  // namespace boundary_detail

/**
@brief The tensors that cross one stage boundary: a fixed tuple of views, each its own rank,
shape and value type (see the file's description).

@tparam E each a `boundary_tensor` (it gets a gradient) or `no_gradient<boundary_tensor>` (it
does not); at least one has a gradient, and all live in one memory space.

`get<K>()` (and `stretto::kokkos::get<K>(b)`, and structured bindings) gives element K's view.
A default-constructed boundary holds empty views (dx on stage 0). Copying one copies handles,
not data.
*/
template <class... E>
class boundary {
  static_assert(sizeof...(E) >= 1, "stretto::kokkos::boundary: needs at least one tensor");
  static_assert([]<std::size_t... K>(std::index_sequence<K...>) {
    return (boundary_detail::check_element<K, E>::value && ...);
  }(std::index_sequence_for<E...>{}));
  static_assert((boundary_detail::element<E>::differentiable || ...),
                "stretto::kokkos::boundary: every element is no_gradient, so no gradient would flow back to "
                "earlier stages; give at least one element a gradient (drop its no_gradient<>)");

 public:
  /// The memory space of every element (the executor's buffers live there).
  using memory_space = typename boundary_detail::memory_space_of<boundary_detail::view_t<std::tuple_element_t<0, std::tuple<E...>>>>::type;
  static_assert(!(Kokkos::is_view<boundary_detail::view_t<E>>::value && ...) ||
                    (std::is_same_v<typename boundary_detail::memory_space_of<boundary_detail::view_t<E>>::type, memory_space> && ...),
                "stretto::kokkos::boundary: every element must live in the same memory space");

  /// How many tensors cross the boundary.
  static constexpr std::size_t size = sizeof...(E);
  /// Element K's view type (`no_gradient` unwrapped).
  template <std::size_t K>
  using view_type = boundary_detail::view_t<std::tuple_element_t<K, std::tuple<E...>>>;
  /// Whether element K has a gradient (it is not `no_gradient`).
  template <std::size_t K>
  static constexpr bool has_gradient = boundary_detail::element<std::tuple_element_t<K, std::tuple<E...>>>::differentiable;
  /// Per element, its per-sample extents (all but extent 0): `std::array<std::int64_t, rank − 1>`.
  using shape_type = std::tuple<boundary_detail::sample_shape_t<E>...>;

  boundary() = default;
  /** @brief The boundary of these views (handles; nothing is copied). */
  explicit boundary(const boundary_detail::view_t<E>&... views) : views_(views...) {}

  template <std::size_t K>
  const view_type<K>& get() const noexcept {
    return std::get<K>(views_);
  }
  template <std::size_t K>
  view_type<K>& get() noexcept {
    return std::get<K>(views_);
  }
  /** @brief The rows (extent 0) of the first element: the microbatch's samples. */
  std::int64_t rows() const noexcept { return static_cast<std::int64_t>(std::get<0>(views_).extent(0)); }

 private:
  std::tuple<boundary_detail::view_t<E>...> views_;
};

/** @brief Element K's view of `b`. */
template <std::size_t K, class... E>
const auto& get(const boundary<E...>& b) noexcept {
  return b.template get<K>();
}
template <std::size_t K, class... E>
auto& get(boundary<E...>& b) noexcept {
  return b.template get<K>();
}

namespace boundary_detail {
template <class T>
struct is_boundary : std::false_type {};
template <class... E>
struct is_boundary<boundary<E...>> : std::bool_constant<(boundary_tensor<view_t<E>> && ...)> {};  // every element valid
}  // namespace boundary_detail

/**
@brief What a model with several tensors per boundary provides (the counterpart of `stage_model`;
docs/stage-model.md has the long form). `B` = `M::boundary_type`; every view argument is a
`const B&`.

| Valid expression | Returns | Meaning |
|---|---|---|
| `M::boundary_type` | | a `stretto::kokkos::boundary<...>` |
| `model.microbatch_rows(mb)` | convertible to `std::int64_t` | the samples of mb: extent 0 of every element |
| `model.output_shape(s)` | convertible to `B::shape_type` | per element, the per-sample extents of stage s's output (= stage s + 1's input), s in [0, S) |
| `model.input(mb)` | convertible to `B` | stage 0's input for mb (the model's own views) |
| `model.forward(s, mb, x, y)` | ignored | F: reads x, writes every element of y |
| `model.loss(mb, y, dy)` | convertible to `double` | last stage: mb's loss; writes d loss / d y into dy's elements with a gradient |
| `model.backward_input(s, mb, dy, dx)` | ignored | B: reads dy, writes dx's elements with a gradient (dx is empty on stage 0) |
| `model.backward_weight(s, mb)` | ignored | W |

Optional as for `stage_model`: `backward(s, mb, dy, dx)`, `forward_backward(f, x, y, b, dy, dx)`,
`output(mb, y)`.
*/
template <class M>
concept boundary_model_boundary_type = requires { typename M::boundary_type; } &&
                                       boundary_detail::is_boundary<typename M::boundary_type>::value;

/** @brief `microbatch_rows(mb)` and `output_shape(s)` give the sizes. */
template <class M>
concept boundary_model_sizes = requires(M& model, std::int32_t s, std::int32_t mb) {
  { model.microbatch_rows(mb) } -> std::convertible_to<std::int64_t>;                      // std::int64_t microbatch_rows(std::int32_t mb)
  { model.output_shape(s) } -> std::convertible_to<typename M::boundary_type::shape_type>;  // boundary_type::shape_type output_shape(std::int32_t s)
};

/** @brief `input(mb)` gives stage 0's input. */
template <class M>
concept boundary_model_input = requires(M& model, std::int32_t mb) {
  { model.input(mb) } -> std::convertible_to<typename M::boundary_type>;  // boundary_type input(std::int32_t mb)
};

/** @brief F: `forward(s, mb, x, y)` with both boundaries `const boundary_type&`. */
template <class M>
concept boundary_model_forward = requires(M& model, std::int32_t s, std::int32_t mb, const typename M::boundary_type& x,
                                          const typename M::boundary_type& y) {
  model.forward(s, mb, x, y);  // void forward(std::int32_t s, std::int32_t mb, const boundary_type& x, const boundary_type& y)
};

/** @brief The loss on the last stage: `loss(mb, y, dy)` returns the loss as a `double`. */
template <class M>
concept boundary_model_loss = requires(M& model, std::int32_t mb, const typename M::boundary_type& y,
                                       const typename M::boundary_type& dy) {
  { model.loss(mb, y, dy) } -> std::convertible_to<double>;  // double loss(std::int32_t mb, const boundary_type& y, const boundary_type& dy)
};

/** @brief B: `backward_input(s, mb, dy, dx)` with both boundaries `const boundary_type&`. */
template <class M>
concept boundary_model_backward_input = requires(M& model, std::int32_t s, std::int32_t mb,
                                                 const typename M::boundary_type& dy, const typename M::boundary_type& dx) {
  model.backward_input(s, mb, dy, dx);  // void backward_input(std::int32_t s, std::int32_t mb, const boundary_type& dy, const boundary_type& dx)
};

/** @brief W: `backward_weight(s, mb)`. */
template <class M>
concept boundary_model_backward_weight = requires(M& model, std::int32_t s, std::int32_t mb) {
  model.backward_weight(s, mb);  // void backward_weight(std::int32_t s, std::int32_t mb)
};

/** @brief Every row of the table above (see its named parts). */
template <class M>
concept boundary_stage_model = boundary_model_boundary_type<M> && boundary_model_sizes<M> && boundary_model_input<M> &&
                               boundary_model_forward<M> && boundary_model_loss<M> && boundary_model_backward_input<M> &&
                               boundary_model_backward_weight<M>;

/**
@brief The words (8 bytes each) of one boundary's message for `rows` samples: per element with a
gradient (all elements when `gradient` is false), ⌈rows · n_k · sizeof(T_k) / 8⌉, n_k the product of
its per-sample extents `shape`. Bytes are 8 times this.
*/
template <class Boundary>
std::int64_t boundary_words(const typename Boundary::shape_type& shape, std::int64_t rows, bool gradient) {
  std::int64_t words = 0;
  [&]<std::size_t... K>(std::index_sequence<K...>) {
    (
        [&] {
          if (gradient && !Boundary::template has_gradient<K>) return;
          std::int64_t n = rows;
          for (const std::int64_t e : std::get<K>(shape)) n *= e;
          const auto bytes = n * static_cast<std::int64_t>(sizeof(typename Boundary::template view_type<K>::value_type));
          words += (bytes + 7) / 8;
        }(),
        ...);
  }(std::make_index_sequence<Boundary::size>{});
  return words;
}

/**
@brief The bytes of stage s's output boundary that the executor sends for a microbatch of `rows`
samples: `activation` forward (every element), `gradient` back (the elements with a gradient),
each packed as `boundary_words` says. Per boundary the sum over the tuple; use them as
`sim::stage_costs::activation_bytes[s]` / `gradient_bytes[s]` and, for the receive buffers, as
`sim::runtime_buffers::activation_message[s + 1]` / `gradient_message[s]` (whose executor buffers
hold `microbatch_rows` of the largest microbatch).
*/
struct boundary_bytes {
  double activation{0.0};
  double gradient{0.0};
};
template <boundary_stage_model M>
boundary_bytes output_boundary_bytes(M& model, std::int32_t s, std::int64_t rows) {
  using B = typename M::boundary_type;
  const typename B::shape_type shape = model.output_shape(s);
  return {8.0 * static_cast<double>(boundary_words<B>(shape, rows, false)),
          8.0 * static_cast<double>(boundary_words<B>(shape, rows, true))};
}

/**
@brief How the executor runs a `boundary_stage_model`: a `stage_model` whose `matrix_type` is the
message buffer, `[rows, words]` `double` words, that turns each buffer into the model's boundary
of views into it (see the file's description). Used inside `executor`; not needed by users.

`input_features(s)` / `output_features(s)` are the words per row of stage s's input / output
boundary; `input_gradient_features(s)` / `output_gradient_features(s)` those of their gradients
(only the elements with a gradient). A row holds Σ_k ⌈n_k · sizeof(T_k) / 8⌉ words, at least what
`boundary_words` needs for any rows.
*/
template <boundary_stage_model M>
class boundary_model {
 public:
  using boundary_type = typename M::boundary_type;
  using shape_type = typename boundary_type::shape_type;
  using memory_space = typename boundary_type::memory_space;
  using matrix_type = Kokkos::View<double**, Kokkos::LayoutRight, memory_space>;

  boundary_model(M& model, std::int32_t num_stages) : model_(model), stages_(num_stages) {}
  M& model() const noexcept { return model_; }

  std::int64_t microbatch_rows(std::int32_t mb) { return model_.microbatch_rows(mb); }
  std::int64_t input_features(std::int32_t s) { return s == 0 ? 0 : words_per_row(s - 1, false); }
  std::int64_t output_features(std::int32_t s) { return words_per_row(s, false); }
  std::int64_t input_gradient_features(std::int32_t s) { return s == 0 ? 0 : words_per_row(s - 1, true); }
  std::int64_t output_gradient_features(std::int32_t s) { return words_per_row(s, true); }
  /// Stage 0's input is the model's own boundary, which `forward` takes from the model itself.
  matrix_type input(std::int32_t) const { return matrix_type(); }

  void forward(std::int32_t s, std::int32_t mb, const matrix_type& x, const matrix_type& y) {
    const boundary_type out = view(y, s, false);
    if (s == 0) model_.forward(s, mb, boundary_type(model_.input(mb)), out);
    else model_.forward(s, mb, view(x, s - 1, false), out);
  }
  double loss(std::int32_t mb, const matrix_type& y, const matrix_type& dy) {
    return model_.loss(mb, view(y, stages_ - 1, false), view(dy, stages_ - 1, true));
  }
  void backward_input(std::int32_t s, std::int32_t mb, const matrix_type& dy, const matrix_type& dx) {
    model_.backward_input(s, mb, view(dy, s, true), s == 0 ? boundary_type() : view(dx, s - 1, true));
  }
  void backward_weight(std::int32_t s, std::int32_t mb) { model_.backward_weight(s, mb); }

  void backward(std::int32_t s, std::int32_t mb, const matrix_type& dy, const matrix_type& dx)
    requires requires(M& m, const boundary_type& b) { m.backward(s, mb, b, b); }
  {
    model_.backward(s, mb, view(dy, s, true), s == 0 ? boundary_type() : view(dx, s - 1, true));
  }
  void forward_backward(const op& f, const matrix_type& x, const matrix_type& y, const op& b, const matrix_type& dy,
                        const matrix_type& dx)
    requires requires(M& m, const op& o, const boundary_type& v) { m.forward_backward(o, v, v, o, v, v); }
  {
    const boundary_type in = f.stage == 0 ? boundary_type(model_.input(f.microbatch)) : view(x, f.stage - 1, false);
    model_.forward_backward(f, in, view(y, f.stage, false), b, view(dy, b.stage, true),
                            b.stage == 0 ? boundary_type() : view(dx, b.stage - 1, true));
  }
  void output(std::int32_t mb, const matrix_type& y)
    requires requires(M& m, const boundary_type& v) { m.output(mb, v); }
  {
    model_.output(mb, view(y, stages_ - 1, false));
  }

  /**
  @brief The boundary of views into message buffer `wire` (`[rows, words]`) of stage s's output:
  each element (with a gradient only, when `gradient`) at its word offset, sharing `wire`'s
  reference count; the others empty.
  */
  boundary_type view(const matrix_type& wire, std::int32_t s, bool gradient) {
    const shape_type shape = model_.output_shape(s);
    const auto rows = static_cast<std::int64_t>(wire.extent(0));
    boundary_type out;
    std::int64_t offset = 0;
    [&]<std::size_t... K>(std::index_sequence<K...>) {
      (
          [&] {
            if (gradient && !boundary_type::template has_gradient<K>) return;
            using V = typename boundary_type::template view_type<K>;
            out.template get<K>() = element<V>(wire, offset, rows, std::get<K>(shape));
            std::int64_t n = rows;
            for (const std::int64_t e : std::get<K>(shape)) n *= e;
            offset += (n * static_cast<std::int64_t>(sizeof(typename V::value_type)) + 7) / 8;
          }(),
          ...);
    }(std::make_index_sequence<boundary_type::size>{});
    return out;
  }

 private:
  std::int64_t words_per_row(std::int32_t s, bool gradient) {
    const shape_type shape = model_.output_shape(s);
    std::int64_t words = 0;
    [&]<std::size_t... K>(std::index_sequence<K...>) {
      (
          [&] {
            if (gradient && !boundary_type::template has_gradient<K>) return;
            std::int64_t n = 1;
            for (const std::int64_t e : std::get<K>(shape)) n *= e;
            using V = typename boundary_type::template view_type<K>;
            words += (n * static_cast<std::int64_t>(sizeof(typename V::value_type)) + 7) / 8;
          }(),
          ...);
    }(std::make_index_sequence<boundary_type::size>{});
    return words;
  }

  // A managed view of type V on `wire`'s words [offset, ...): an unmanaged view of the words,
  // then V built from it and `wire`'s allocation tracker (Kokkos' View(tracker, mapping)).
  template <class V>
  static V element(const matrix_type& wire, std::int64_t offset, std::int64_t rows,
                   const std::array<std::int64_t, V::rank - 1>& extents) {
    using value = typename V::value_type;
    using unmanaged = Kokkos::View<typename V::data_type, Kokkos::LayoutRight, memory_space, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
    value* data = wire.data() == nullptr ? nullptr : reinterpret_cast<value*>(wire.data() + offset);
    const unmanaged u = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return unmanaged(data, static_cast<std::size_t>(rows), static_cast<std::size_t>(extents[I])...);
    }(std::make_index_sequence<V::rank - 1>{});
    return V(wire.impl_track(), u.impl_map());
  }

  M& model_;
  std::int32_t stages_;
};

namespace boundary_detail {
// The model the executor runs: M itself, or its boundary_model when it declares a boundary_type.
template <class M>
struct executed {
  using type = M;
  using handle = M&;
  static M& bind(M& m, std::int32_t) noexcept { return m; }
};
template <class M>
  requires requires { typename M::boundary_type; }
struct executed<M> {
  using type = boundary_model<M>;
  using handle = boundary_model<M>;
  static boundary_model<M> bind(M& m, std::int32_t stages) { return boundary_model<M>(m, stages); }
};

// Widths of gradient messages: narrower than the activations' for a boundary with no_gradient elements.
template <class X>
std::int64_t input_gradient_features(X& model, std::int32_t s) {
  if constexpr (requires { model.input_gradient_features(s); }) return model.input_gradient_features(s);
  else return model.input_features(s);
}
template <class X>
std::int64_t output_gradient_features(X& model, std::int32_t s) {
  if constexpr (requires { model.output_gradient_features(s); }) return model.output_gradient_features(s);
  else return model.output_features(s);
}
}  // namespace boundary_detail

/// The `stage_model` the executor runs for `M`: `M`, or `boundary_model<M>` when `M` declares a `boundary_type`.
template <class M>
using executed_model_t = typename boundary_detail::executed<M>::type;

}  // namespace stretto::kokkos

template <class... E>
struct std::tuple_size<stretto::kokkos::boundary<E...>> : std::integral_constant<std::size_t, sizeof...(E)> {};
template <std::size_t K, class... E>
struct std::tuple_element<K, stretto::kokkos::boundary<E...>> {
  using type = typename stretto::kokkos::boundary<E...>::template view_type<K>;
};
