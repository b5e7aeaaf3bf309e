#pragma once
/**
@file
@brief The shape of a pipeline (ranks, microbatches, chunks) and the placement of stages on ranks.
*/

#include <cstdint>
#include <string_view>

namespace stretto {

/**
@brief How the `num_stages()` stages of a model are mapped onto the ranks.

- `linear`: one stage per rank, stage s on rank s (GPipe, 1F1B, ZB-H1).
- `looped`: v chunks per rank, stage s on rank s mod p (Megatron interleaved 1F1B,
  Narayanan et al. 2021 §2.2; breadth-first, Lamy-Poirier 2023 §3).
- `v_shape`: 2 chunks per rank, down then up: stage s on rank s for s < p and on rank
  2p − 1 − s otherwise (ZB-V, Qi et al. 2024 §6).
*/
enum class placement_kind : std::uint8_t { linear, looped, v_shape };

/** @brief Returns "linear", "looped" or "v-shape". */
constexpr std::string_view to_string(placement_kind kind) noexcept {
  switch (kind) {
    case placement_kind::linear: return "linear";
    case placement_kind::looped: return "looped";
    case placement_kind::v_shape: return "v-shape";
  }
  return "?";
}

/**
@brief The size of one pipeline: `num_ranks` ranks (p), `num_microbatches` microbatches (m)
per optimizer step, and `num_chunks` chunks (v, virtual stages) per rank.

**Invariants** (checked by every policy): p ≥ 1, m ≥ 1, v ≥ 1; there are S = p·v stages.
*/
struct pipeline_shape {
  std::int32_t num_ranks{1};
  std::int32_t num_microbatches{1};
  std::int32_t num_chunks{1};

  /** @brief Returns S = p·v, the number of stages of the model. */
  constexpr std::int32_t num_stages() const noexcept { return num_ranks * num_chunks; }

  friend constexpr bool operator==(const pipeline_shape&, const pipeline_shape&) = default;
};

/**
@brief Returns the rank that holds `stage` of model replica `replica` under `placement`.

Replica 0 follows `placement`. Replica 1, the second copy of the model in bidirectional
schedules (Chimera, Li & Hoefler 2021 §3.1; BitPipe, Wu et al. 2024 §3; DualPipe), is its mirror
image: the stage that replica 0 puts on rank r goes on rank p − 1 − r.
@pre `0 <= stage < shape.num_stages()`, `replica` is 0 or 1.
*/
constexpr std::int32_t rank_of_stage(placement_kind placement, const pipeline_shape& shape,
                                     std::int32_t stage, std::int32_t replica = 0) noexcept {
  const std::int32_t p = shape.num_ranks;
  std::int32_t rank = stage;
  switch (placement) {
    case placement_kind::linear: rank = stage; break;
    case placement_kind::looped: rank = stage % p; break;
    case placement_kind::v_shape: rank = stage < p ? stage : 2 * p - 1 - stage; break;
  }
  return replica == 0 ? rank : p - 1 - rank;
}

}  // namespace stretto
