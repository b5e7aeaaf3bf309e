#pragma once
/**
@file
@brief The operations a pipeline schedule is made of: F, B, W and the fused BW.
*/

#include <cstdint>
#include <string>
#include <string_view>

#include "../detail/text.hpp"

namespace stretto {

/**
@brief The kind of one scheduled operation.

- `forward` (F): the stage's forward pass for one microbatch.
- `backward_input` (B): the gradient with respect to the stage's input (activation gradient),
  which the previous stage waits for.
- `backward_weight` (W): the gradient with respect to the stage's weights; nothing downstream
  waits for it, so a schedule may defer it (Zero Bubble, Qi et al. 2024, §2).
- `backward` (BW): B and W fused into one op, as in GPipe and 1F1B.
*/
enum class op_kind : std::uint8_t { forward, backward_input, backward_weight, backward };

/** @brief Returns the short name used in papers and timelines: "F", "B", "W" or "BW". */
constexpr std::string_view short_name(op_kind kind) noexcept {
  switch (kind) {
    case op_kind::forward: return "F";
    case op_kind::backward_input: return "B";
    case op_kind::backward_weight: return "W";
    case op_kind::backward: return "BW";
  }
  return "?";
}

/** @brief True for the ops that produce the input gradient the previous stage needs (B and BW). */
constexpr bool produces_input_gradient(op_kind kind) noexcept {
  return kind == op_kind::backward_input || kind == op_kind::backward;
}

/**
@brief One operation of a schedule: what to run (`kind`), on which stage, for which microbatch.

**Units.** `stage` is the global stage index in `[0, num_stages)`; `microbatch` is in
`[0, num_microbatches)`. The rank that runs the op follows from the schedule's placement.

**Overlapped F&B.** `overlapped = true` means this op and the next op of the same rank's list
run as one overlapped forward-and-backward unit (DualPipe's F&B, DeepSeek-V3; docs/schedules.md §9):
the pair is one F and one B or BW of different (stage, microbatch) (`validate`, rule
`overlap`); the simulator starts the pair when the rank is free and both ops' inputs are ready
and prices it with the cost model's overlap time (`sim::overlap_time`), and both ops end together;
the Kokkos executor runs it the same way (both inputs first, both messages at the pair's end). It is false for every op of the other schedules, so
`op{kind, stage, microbatch}` keeps its meaning.
*/
struct op {
  op_kind kind{op_kind::forward};
  std::int32_t stage{0};
  std::int32_t microbatch{0};
  bool overlapped{false};  ///< runs overlapped with the next op of the rank's list (an F&B pair)

  friend constexpr bool operator==(const op&, const op&) = default;
};

/** @brief Returns e.g. `"F(stage 2, mb 5)"`; usable in constant evaluation. */
constexpr std::string to_string(const op& o) {
  return detail::cat(short_name(o.kind), "(stage ", o.stage, ", mb ", o.microbatch, ")");
}

}  // namespace stretto
