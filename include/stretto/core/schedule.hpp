#pragma once
/**
@file
@brief A pipeline schedule: for every rank, the ordered list of ops it executes in one step.
*/

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "op.hpp"
#include "shape.hpp"

namespace stretto {

/**
@brief For every rank, the ordered list of ops it executes in one optimizer step, together with
the pipeline shape and the placement that maps stages onto ranks.

**Shape.** `ops(r)` is rank r's op list in execution order, r in `[0, num_ranks())`.

**Constant evaluation.** All members are `constexpr`: a schedule can be generated, validated and
simulated inside a constant expression (its storage must then be released within that same
evaluation; `stretto::compile_time` copies it into fixed-capacity storage).

A schedule is only a container; `stretto::validate` checks that it is a correct schedule.
*/
class schedule {
 public:
  constexpr schedule() = default;

  /**
  @brief Creates an empty schedule (no ops on any rank); every microbatch uses replica 0.

  Each rank's list reserves 3·v·m ops, the most a valid schedule puts on one rank (F, B and W
  of each of its v chunks per microbatch), so that generators append without reallocating:
  that keeps compile-time generation (`stretto::compile_time`) about four times cheaper.
  */
  constexpr schedule(pipeline_shape shape, placement_kind placement)
      : shape_(shape), placement_(placement),
        ops_(static_cast<std::size_t>(shape.num_ranks > 0 ? shape.num_ranks : 0)),
        replica_(static_cast<std::size_t>(shape.num_microbatches > 0 ? shape.num_microbatches : 0), 0) {
    if (shape.num_chunks > 0 && shape.num_microbatches > 0)
      for (auto& list : ops_)
        list.reserve(3 * static_cast<std::size_t>(shape.num_chunks) * static_cast<std::size_t>(shape.num_microbatches));
  }

  /** @brief Appends `o` to rank `rank`'s list. @pre `0 <= rank < num_ranks()`. */
  constexpr void push_back(std::int32_t rank, op o) { ops_[static_cast<std::size_t>(rank)].push_back(o); }

  /** @brief Appends `o` to the list of the rank that holds `o`'s stage and replica. */
  constexpr void push_back(op o) { push_back(rank_of(o.stage, o.microbatch), o); }

  /** @brief Rank `rank`'s ops in execution order. */
  constexpr std::span<const op> ops(std::int32_t rank) const noexcept {
    return ops_[static_cast<std::size_t>(rank)];
  }

  /** @brief The rank that runs `stage` of replica 0 (the only replica of most schedules). */
  constexpr std::int32_t rank_of(std::int32_t stage) const noexcept {
    return rank_of_stage(placement_, shape_, stage, 0);
  }

  /** @brief The rank that runs `stage` for `microbatch`, whose replica decides the copy of the model. */
  constexpr std::int32_t rank_of(std::int32_t stage, std::int32_t microbatch) const noexcept {
    return rank_of_stage(placement_, shape_, stage, replica_of(microbatch));
  }

  /** @brief The model replica (0, or 1 in bidirectional schedules) that `microbatch` flows through. */
  constexpr std::int32_t replica_of(std::int32_t microbatch) const noexcept {
    return replica_[static_cast<std::size_t>(microbatch)];
  }

  /** @brief Sends `microbatch` through model replica `replica` (0 or 1). @pre no op of it is placed yet. */
  constexpr void set_replica(std::int32_t microbatch, std::int32_t replica) {
    replica_[static_cast<std::size_t>(microbatch)] = static_cast<std::uint8_t>(replica);
  }

  /**
  @brief The stages rank `rank` runs for some microbatch (any replica), in increasing order: the
  stages whose weights it must hold.
  */
  constexpr std::vector<std::int32_t> stages_on_rank(std::int32_t rank) const {
    std::vector<std::int32_t> out;
    const std::int32_t replicas = num_replicas();
    for (std::int32_t s = 0; s < num_stages(); ++s)
      for (std::int32_t replica = 0; replica < replicas; ++replica)
        if (rank_of_stage(placement_, shape_, s, replica) == rank) {
          out.push_back(s);
          break;
        }
    return out;
  }

  /** @brief 2 when some microbatch flows through the mirrored replica, else 1. */
  constexpr std::int32_t num_replicas() const noexcept {
    for (auto r : replica_)
      if (r != 0) return 2;
    return 1;
  }

  constexpr const pipeline_shape& shape() const noexcept { return shape_; }
  constexpr placement_kind placement() const noexcept { return placement_; }
  constexpr std::int32_t num_ranks() const noexcept { return shape_.num_ranks; }
  constexpr std::int32_t num_stages() const noexcept { return shape_.num_stages(); }
  constexpr std::int32_t num_microbatches() const noexcept { return shape_.num_microbatches; }

  /** @brief The total number of ops over all ranks. */
  constexpr std::size_t num_ops() const noexcept {
    std::size_t n = 0;
    for (const auto& list : ops_) n += list.size();
    return n;
  }

  /** @brief The longest per-rank list; the capacity a fixed-size copy needs. */
  constexpr std::size_t max_ops_per_rank() const noexcept {
    std::size_t n = 0;
    for (const auto& list : ops_) n = list.size() > n ? list.size() : n;
    return n;
  }

  friend constexpr bool operator==(const schedule&, const schedule&) = default;

 private:
  pipeline_shape shape_{};
  placement_kind placement_{placement_kind::linear};
  std::vector<std::vector<op>> ops_;
  std::vector<std::uint8_t> replica_;  // [microbatch]: 0, or 1 for the mirrored copy of the model
};

}  // namespace stretto
