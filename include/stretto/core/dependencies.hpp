#pragma once
/**
@file
@brief The data dependencies between ops: what each op waits for.
*/

#include <cstddef>
#include <cstdint>
#include <string>

#include "../detail/text.hpp"
#include "op.hpp"
#include "shape.hpp"

namespace stretto {

/** @brief What an op waits for: the forward of a (stage, microbatch), or its input gradient. */
enum class dependency_kind : std::uint8_t {
  forward,         ///< F(stage, microbatch) has run: its output activation exists
  input_gradient,  ///< B or BW(stage, microbatch) has run: the gradient for its input exists
};

/** @brief One data dependency. */
struct dependency {
  dependency_kind kind{dependency_kind::forward};
  std::int32_t stage{0};
  std::int32_t microbatch{0};

  friend constexpr bool operator==(const dependency&, const dependency&) = default;
};

/** @brief Returns e.g. `"F(stage 1, mb 0)"` or `"B|BW(stage 3, mb 2)"`. */
constexpr std::string to_string(const dependency& d) {
  return detail::cat(d.kind == dependency_kind::forward ? "F" : "B|BW", "(stage ", d.stage, ", mb ",
                     d.microbatch, ")");
}

/** @brief At most two dependencies, stored inline (no allocation). */
struct dependency_list {
  dependency items[2]{};
  std::size_t size{0};

  constexpr void push_back(dependency d) noexcept { items[size++] = d; }
  constexpr const dependency* begin() const noexcept { return items; }
  constexpr const dependency* end() const noexcept { return items + size; }
};

/**
@brief Returns the ops `o` waits for (the timing model of docs/timing-model.md and docs/schedules.md §0):

- F(s, j) needs F(s−1, j) (nothing on the first stage);
- B(s, j) and BW(s, j) need F(s, j) and, except on the last stage, the input gradient of
  stage s+1 (its B or BW);
- W(s, j) needs B(s, j).
*/
constexpr dependency_list dependencies_of(const op& o, const pipeline_shape& shape) noexcept {
  dependency_list deps;
  switch (o.kind) {
    case op_kind::forward:
      if (o.stage > 0) deps.push_back({dependency_kind::forward, o.stage - 1, o.microbatch});
      break;
    case op_kind::backward_input:
    case op_kind::backward:
      deps.push_back({dependency_kind::forward, o.stage, o.microbatch});
      if (o.stage + 1 < shape.num_stages())
        deps.push_back({dependency_kind::input_gradient, o.stage + 1, o.microbatch});
      break;
    case op_kind::backward_weight:
      deps.push_back({dependency_kind::input_gradient, o.stage, o.microbatch});
      break;
  }
  return deps;
}

}  // namespace stretto
