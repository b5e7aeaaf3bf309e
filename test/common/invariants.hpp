#pragma once
/**
@file
@brief `check_schedule_invariants`: the structural invariants of a schedule, checked by code of
its own (a property checker in the style of CuTe's), not by calling `stretto::validate`.

Numbered invariants (the number appears in every failure message):

1. the shape is sane: p ≥ 1, m ≥ 1, v ≥ 1, and the schedule has p op lists;
2. every op names a stage in [0, p·v) and a microbatch in [0, m);
3. every op sits on the rank that holds its stage under the schedule's placement
   (linear: s; looped: s mod p; v-shape: s for s < p, else 2p − 1 − s; shape.hpp), mirrored
   to p − 1 − rank when its microbatch flows through replica 1 (bidirectional schedules);
4. every (stage, microbatch) has exactly one F;
5. every (stage, microbatch) has exactly one BW and no B or W, or exactly one B and one W and no BW;
6. per (stage, microbatch), in its rank's list: F before B (or BW) before W.

`first_broken_invariant` is `constexpr`, so it also runs inside `static_assert`.
*/

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include <stretto/stretto.hpp>

namespace stretto::testing {

/** @brief The first invariant broken (`number` 1..6 as listed above), or `number == 0` if none. */
struct invariant_failure {
  int number{0};
  std::string what;

  constexpr bool ok() const noexcept { return number == 0; }
};

namespace invariants_detail {

constexpr std::string decimal(long long value) {
  if (value < 0) return "-" + decimal(-value);
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + value % 10));
    value /= 10;
  } while (value != 0);
  return digits;
}

constexpr std::string_view kind_name(op_kind kind) {
  switch (kind) {
    case op_kind::forward: return "F";
    case op_kind::backward_input: return "B";
    case op_kind::backward_weight: return "W";
    case op_kind::backward: return "BW";
  }
  return "?";
}

constexpr std::string describe(const op& o) {
  return std::string(kind_name(o.kind)) + "(stage " + decimal(o.stage) + ", mb " +
         decimal(o.microbatch) + ")";
}

/** The rank that holds `stage` of `replica`, from the placement's definition (own code, not
`rank_of`): replica 1 is the mirror image of replica 0. */
constexpr std::int32_t expected_rank(placement_kind placement, std::int32_t p, std::int32_t stage,
                                     std::int32_t replica) {
  std::int32_t rank = -1;
  switch (placement) {
    case placement_kind::linear: rank = stage; break;
    case placement_kind::looped: rank = stage % p; break;
    case placement_kind::v_shape: rank = stage < p ? stage : 2 * p - 1 - stage; break;
  }
  if (rank < 0 || (replica != 0 && replica != 1)) return -1;
  return replica == 0 ? rank : p - 1 - rank;
}

/** Per (stage, microbatch): how many ops of each kind, and the position of the last one seen. */
struct cell {
  std::int32_t count[4]{};
  std::int32_t position[4]{-1, -1, -1, -1};
};

}  // namespace invariants_detail

/** @brief Returns the first of the numbered invariants that `s` breaks; usable in `static_assert`. */
constexpr invariant_failure first_broken_invariant(const schedule& s) {
  using namespace invariants_detail;
  const pipeline_shape shape = s.shape();
  const std::int32_t p = shape.num_ranks;
  const std::int32_t m = shape.num_microbatches;
  const std::int32_t v = shape.num_chunks;
  if (p < 1 || m < 1 || v < 1)
    return {1, "invariant 1: shape p = " + decimal(p) + ", m = " + decimal(m) + ", v = " +
                   decimal(v) + " has a value below 1"};
  const std::int32_t stages = p * v;

  std::vector<cell> cells(static_cast<std::size_t>(stages) * static_cast<std::size_t>(m));
  for (std::int32_t r = 0; r < p; ++r) {
    const auto list = s.ops(r);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const op& o = list[i];
      if (o.stage < 0 || o.stage >= stages || o.microbatch < 0 || o.microbatch >= m)
        return {2, "invariant 2: " + describe(o) + " on rank " + decimal(r) +
                       " is outside stages 0.." + decimal(stages - 1) + " / microbatches 0.." +
                       decimal(m - 1)};
      const std::int32_t home = expected_rank(s.placement(), p, o.stage, s.replica_of(o.microbatch));
      if (home != r)
        return {3, "invariant 3: " + describe(o) + " is on rank " + decimal(r) + ", expected rank " +
                       decimal(home)};
      auto& c = cells[static_cast<std::size_t>(o.stage) * static_cast<std::size_t>(m) +
                      static_cast<std::size_t>(o.microbatch)];
      const auto k = static_cast<std::size_t>(o.kind);
      ++c.count[k];
      c.position[k] = static_cast<std::int32_t>(i);
    }
  }

  constexpr auto F = static_cast<std::size_t>(op_kind::forward);
  constexpr auto B = static_cast<std::size_t>(op_kind::backward_input);
  constexpr auto W = static_cast<std::size_t>(op_kind::backward_weight);
  constexpr auto BW = static_cast<std::size_t>(op_kind::backward);
  for (std::int32_t stage = 0; stage < stages; ++stage) {
    for (std::int32_t j = 0; j < m; ++j) {
      const auto& c = cells[static_cast<std::size_t>(stage) * static_cast<std::size_t>(m) +
                            static_cast<std::size_t>(j)];
      const std::string where = "(stage " + decimal(stage) + ", mb " + decimal(j) + ")";
      if (c.count[F] != 1)
        return {4, "invariant 4: F" + where + " appears " + decimal(c.count[F]) + " times"};
      const bool fused = c.count[BW] == 1 && c.count[B] == 0 && c.count[W] == 0;
      const bool split = c.count[BW] == 0 && c.count[B] == 1 && c.count[W] == 1;
      if (!fused && !split)
        return {5, "invariant 5: " + where + " has BW x" + decimal(c.count[BW]) + ", B x" +
                       decimal(c.count[B]) + ", W x" + decimal(c.count[W]) +
                       "; expected one BW, or one B and one W"};
      const std::int32_t backward_position = fused ? c.position[BW] : c.position[B];
      if (!(c.position[F] < backward_position))
        return {6, "invariant 6: the backward of " + where + " runs before its F"};
      if (split && !(c.position[B] < c.position[W]))
        return {6, "invariant 6: W" + where + " runs before its B"};
    }
  }
  return {};
}

/**
@brief Asserts (doctest `CHECK`) that `s` keeps invariants 1–6 and that `stretto::validate(s)`
accepts it. Returns true when both hold.
*/
inline bool check_schedule_invariants(const schedule& s) {
  const invariant_failure broken = first_broken_invariant(s);
  INFO(broken.what);
  CHECK(broken.ok());
  const validation_result verdict = validate(s);
  INFO(verdict.message);
  CHECK(verdict.ok());
  return broken.ok() && verdict.ok();
}

}  // namespace stretto::testing
