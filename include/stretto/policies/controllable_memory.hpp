#pragma once
/**
@file
@brief V-Half and V-Min, the V-shaped zero-bubble schedules with controllable memory (Qi, Wan,
Amar, Lin, "Pipeline Parallelism with Controllable Memory", arXiv 2405.15362, 2024): a building
block repeated every 6 slots, then a greedy squeeze of the warm-up and cool-down. The construction
is described step by step in docs/controllable-memory.md.
*/

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/concepts.hpp"
#include "common.hpp"

namespace stretto::policies {

namespace detail {

/**
@brief The planning grid of the controllable-memory schedules: for each rank, one list of slots
per pass type, indexed by microbatch.

Pass types, in the order every step below uses (it is also the tie-break between equal slots):
0 = F of chunk A (stage r), 1 = F of chunk C (stage 2p−1−r), 2 = B of chunk C, 3 = B of chunk A,
then the W lists: 4 = every W (one stream), or 4 = W of chunk C and 5 = W of chunk A (two
streams). A slot is one unit of time; every pass takes one slot.
*/
using cm_rank_slots = std::vector<std::vector<std::int64_t>>;
using cm_slots = std::vector<cm_rank_slots>;

/** Which building block (paper §3, Figure 4): V-Half or V-Min. */
enum class cm_block_kind : std::uint8_t { half, min };

/**
@brief The building block repeated every 6 slots: on rank i the slot of F_A, F_C, B_C and B_A of
microbatch 0; microbatch j adds 6j. The W's are not part of it (`cm_fill_w` places them).

V-Min: i, 2p−1−i, 2p+g+i, 4p+g−1−i with g = 2 when 3 divides p, else 0.
V-Half: 2i, 3p−2−i, 3p+g−1+2i, 6p+g−2−i with g = 3 when p is even, else 0.
The gap g keeps the four slots of a rank distinct modulo 6, so the repeated blocks never collide.
*/
constexpr cm_slots cm_block(cm_block_kind kind, std::int32_t p, std::int32_t m) {
  cm_slots out(static_cast<std::size_t>(p));
  for (std::int32_t i = 0; i < p; ++i) {
    std::array<std::int64_t, 4> base{};
    if (kind == cm_block_kind::min) {
      const std::int64_t g = p % 3 == 0 ? 2 : 0;
      base = {i, 2 * p - 1 - i, 2 * p + g + i, 4 * p + g - 1 - i};
    } else {
      const std::int64_t g = p % 2 == 0 ? 3 : 0;
      base = {2 * i, 3 * p - 2 - i, 3 * p + g - 1 + 2 * i, 6 * p + g - 2 - i};
    }
    cm_rank_slots& lists = out[static_cast<std::size_t>(i)];
    lists.resize(4);
    for (std::size_t t = 0; t < 4; ++t)
      for (std::int32_t j = 0; j < m; ++j) lists[t].push_back(base[t] + 6 * static_cast<std::int64_t>(j));
  }
  return out;
}

/** The largest slot among the last entries of `lists` (each list is in increasing order). */
constexpr std::int64_t cm_bound(const cm_rank_slots& lists) {
  std::int64_t bound = 0;
  for (const auto& l : lists)
    if (!l.empty()) bound = std::max(bound, l.back());
  return bound;
}

/**
@brief Walks one rank's slots 0, 1, …, calling `visit(slot, type)` for the pass due in each slot
and `visit(slot, -1)` for a slot with none.

At each slot it takes the list whose next unvisited entry is smallest (the lower type on a tie);
that pass is visited when its slot is the current one, otherwise the slot counts as empty and
the pass stays pending. So two passes in the same slot (which the squeeze can create while it
tries slots) leave the second, and every list behind the smallest, pending from then on: the
memory of such a try is judged by the part before the clash, as the reference construction does.
*/
template <class Visit>
constexpr void cm_walk(const cm_rank_slots& lists, std::size_t num_types, std::int64_t bound, Visit visit) {
  std::array<std::size_t, 6> next{};
  for (std::int64_t i = 0; i <= bound; ++i) {
    std::int64_t best = bound + 1;
    int type = -1;
    for (std::size_t t = 0; t < num_types; ++t)
      if (next[t] < lists[t].size() && lists[t][next[t]] < best) {
        best = lists[t][next[t]];
        type = static_cast<int>(t);
      }
    if (type >= 0 && best == i) {
      ++next[static_cast<std::size_t>(type)];
      visit(i, type);
    } else {
      visit(i, -1);
    }
  }
}

/**
@brief FillW: adds the W lists to one rank's four F/B lists. Walking the slots, each B adds a
pending W (with `split`, B_C's to stream 0 and B_A's to stream 1); each empty slot takes one
pending W, stream 0 first; the W's still pending after the last F/B go in the slots right after
it, stream 0's first. Without `split` the k-th W belongs to the k-th B in slot order.
*/
constexpr cm_rank_slots cm_fill_w(cm_rank_slots lists, bool split) {
  const std::int64_t bound = cm_bound(lists);
  lists.resize(split ? 6 : 5);
  std::array<std::int64_t, 2> pending{0, 0};
  cm_walk(lists, 4, bound, [&](std::int64_t slot, int type) {
    if (type >= 2) {
      ++pending[split ? static_cast<std::size_t>(type - 2) : 0];
    } else if (type < 0) {
      for (std::size_t w = 0; w < 2; ++w)
        if (pending[w] > 0) {
          lists[4 + w].push_back(slot);
          --pending[w];
          break;
        }
    }
  });
  std::int64_t slot = bound;
  for (std::size_t w = 0; w < 2; ++w)
    for (; pending[w] > 0; --pending[w]) lists[4 + w].push_back(++slot);
  return lists;
}

/**
@brief Peak: the activation peak of one rank's slots in units of a chunk's activation: an F adds
1, a B adds 0, a W frees 1. Without W lists (four lists) each empty slot with a B pending frees 1
(the W it would hold).
*/
constexpr std::int64_t cm_peak(const cm_rank_slots& lists) {
  const bool has_w = lists.size() > 4;
  std::int64_t current = 0, peak = 0, pending = 0;
  cm_walk(lists, lists.size(), cm_bound(lists), [&](std::int64_t, int type) {
    if (type == 0 || type == 1) ++current;
    if (type == 2 || type == 3) ++pending;
    if (type == 4) --current;
    if (type < 0 && !has_w && pending > 0) {
      --current;
      --pending;
    }
    peak = std::max(peak, current);
  });
  return peak;
}

/** One pass of the grid: rank, type and microbatch, ordered by its slot, then rank, type, microbatch. */
struct cm_pass {
  std::int64_t slot;
  std::int32_t rank, type, microbatch;
};

/**
@brief Visits every pass of `grid` in the order (slot, rank, type, microbatch), where each list is
consumed in microbatch order and the slot read is the list's current entry when its turn comes
(so a callback that moves a pass already visited never changes the order of the rest).
*/
template <class Visit>
constexpr void cm_in_slot_order(cm_slots& grid, Visit visit) {
  const auto p = grid.size();
  const std::size_t num_types = grid[0].size();
  std::vector<std::size_t> next(p * num_types, 0);
  std::size_t total = 0;
  for (const auto& lists : grid)
    for (const auto& l : lists) total += l.size();
  for (std::size_t k = 0; k < total; ++k) {
    cm_pass best{-1, 0, 0, 0};
    for (std::size_t r = 0; r < p; ++r)
      for (std::size_t t = 0; t < num_types; ++t) {
        const auto& l = grid[r][t];
        const std::size_t i = next[r * num_types + t];
        if (i < l.size() && (best.slot < 0 || l[i] < best.slot))
          best = {l[i], static_cast<std::int32_t>(r), static_cast<std::int32_t>(t), static_cast<std::int32_t>(i)};
      }
    ++next[static_cast<std::size_t>(best.rank) * num_types + static_cast<std::size_t>(best.type)];
    visit(best);
  }
}

/**
@brief ASAP at unit times with no communication cost: each pass starts when its rank's previous
pass (in slot order) has ended and after its producers: F_A and B_C after the same type on rank
r−1, F_C and B_A after the same type on rank r+1, F_C after F_A, B_C after F_C and B_A after B_C of
the same microbatch on the same rank, and every pass after its own type's previous microbatch.
Returns the start times, which become the new slots.
*/
constexpr cm_slots cm_asap(cm_slots grid) {
  const auto p = static_cast<std::int32_t>(grid.size());
  cm_slots end = grid;
  std::vector<std::int64_t> free_at(static_cast<std::size_t>(p), 0);
  auto at = [&end](std::int32_t r, std::int32_t t, std::int32_t j) -> std::int64_t& {
    return end[static_cast<std::size_t>(r)][static_cast<std::size_t>(t)][static_cast<std::size_t>(j)];
  };
  cm_in_slot_order(grid, [&](const cm_pass& x) {
    std::int64_t ready = free_at[static_cast<std::size_t>(x.rank)];
    if ((x.type == 0 || x.type == 2) && x.rank > 0) ready = std::max(ready, at(x.rank - 1, x.type, x.microbatch));
    if ((x.type == 1 || x.type == 3) && x.rank + 1 < p) ready = std::max(ready, at(x.rank + 1, x.type, x.microbatch));
    if (x.type > 0 && x.type < 4) ready = std::max(ready, at(x.rank, x.type - 1, x.microbatch));
    if (x.microbatch > 0) ready = std::max(ready, at(x.rank, x.type, x.microbatch - 1));
    at(x.rank, x.type, x.microbatch) = ready + 1;
    free_at[static_cast<std::size_t>(x.rank)] = ready + 1;
  });
  for (auto& lists : end)
    for (auto& l : lists)
      for (auto& e : l) --e;
  return end;
}

/**
@brief Squeeze (the paper's greedy reordering): moves passes of the warm-up and cool-down to
earlier free slots without raising the peak, then re-times the grid with `cm_asap`.

With `with_w`, FillW (one stream) runs first and the W's move too. The cap is the largest `cm_peak`
over the ranks. Passes are taken in (slot, rank, type, microbatch) order. The steady state stays
put: it starts at the first B_A on rank 0 and ends after the F_A of the last microbatch on rank
0; without `with_w` the warm-up stays put as well. Any other pass looks at the slots from one after
its latest producer (as in `cm_asap`; a W's producer is the B that is its rank's k-th in slot
order for the k-th W), its own previous microbatch included, up to one before its slot, and takes
the first slot that no pass taken so far holds and that keeps its rank's peak within the cap.
Without `with_w`, FillW (one stream) runs at the end. Returns five lists per rank.
*/
constexpr cm_slots cm_squeeze(cm_slots grid, bool with_w) {
  const auto p = static_cast<std::int32_t>(grid.size());
  if (with_w)
    for (auto& lists : grid) lists = cm_fill_w(lists, false);
  const auto m = static_cast<std::int32_t>(grid[0][0].size());
  std::int64_t cap = 0;
  for (const auto& lists : grid) cap = std::max(cap, cm_peak(lists));
  std::vector<std::vector<char>> taken(static_cast<std::size_t>(p));
  for (std::int32_t r = 0; r < p; ++r) {
    std::int64_t last = 0;
    for (const auto& l : grid[static_cast<std::size_t>(r)])
      for (std::int64_t x : l) last = std::max(last, x);
    taken[static_cast<std::size_t>(r)].assign(static_cast<std::size_t>(last) + 1, 0);
  }
  auto slot = [&grid](std::int32_t r, std::int32_t t, std::int32_t j) -> std::int64_t& {
    return grid[static_cast<std::size_t>(r)][static_cast<std::size_t>(t)][static_cast<std::size_t>(j)];
  };
  int phase = 0;
  cm_slots order = grid;  // the walk reads the lists' entries as they are when their turn comes
  cm_in_slot_order(order, [&](const cm_pass& x) {
    const std::int64_t current = slot(x.rank, x.type, x.microbatch);
    auto take = [&](std::int64_t s) { taken[static_cast<std::size_t>(x.rank)][static_cast<std::size_t>(s)] = 1; };
    if (x.type == 3 && x.rank == 0 && phase == 0) phase = 1;
    if (phase == 1) {
      if (x.type == 0 && x.microbatch == m - 1) phase = 2;
      take(current);
      return;
    }
    if (phase == 0 && !with_w) {
      take(current);
      return;
    }
    std::int64_t earliest = -1;
    if ((x.type == 0 || x.type == 2) && x.rank > 0) earliest = std::max(earliest, slot(x.rank - 1, x.type, x.microbatch));
    if ((x.type == 1 || x.type == 3) && x.rank + 1 < p) earliest = std::max(earliest, slot(x.rank + 1, x.type, x.microbatch));
    if (x.type > 0 && x.type < 4) earliest = std::max(earliest, slot(x.rank, x.type - 1, x.microbatch));
    if (x.type == 4) {
      const cm_rank_slots& lists = grid[static_cast<std::size_t>(x.rank)];
      std::vector<std::int64_t> backwards(lists[2].begin(), lists[2].end());
      backwards.insert(backwards.end(), lists[3].begin(), lists[3].end());
      std::sort(backwards.begin(), backwards.end());
      earliest = std::max(earliest, backwards[static_cast<std::size_t>(x.microbatch)]);
    }
    if (x.microbatch > 0) earliest = std::max(earliest, slot(x.rank, x.type, x.microbatch - 1));
    bool moved = false;
    for (std::int64_t s = earliest + 1; s < current && !moved; ++s) {
      if (taken[static_cast<std::size_t>(x.rank)][static_cast<std::size_t>(s)] != 0) continue;
      slot(x.rank, x.type, x.microbatch) = s;
      moved = cm_peak(grid[static_cast<std::size_t>(x.rank)]) <= cap;
    }
    if (!moved) slot(x.rank, x.type, x.microbatch) = current;
    take(slot(x.rank, x.type, x.microbatch));
  });
  if (!with_w)
    for (auto& lists : grid) lists = cm_fill_w(lists, false);
  return cm_asap(grid);
}

/**
@brief The whole construction: the block, Squeeze with the W's, Squeeze without them (the W's
dropped in between), then FillW with two streams. Returns six lists per rank (F_A, F_C, B_C, B_A,
W_C, W_A); a rank's order is its passes by slot.
*/
constexpr cm_slots cm_construct(cm_block_kind kind, std::int32_t p, std::int32_t m) {
  cm_slots grid = cm_squeeze(cm_block(kind, p, m), true);
  for (auto& lists : grid) lists.resize(4);
  grid = cm_squeeze(std::move(grid), false);
  for (auto& lists : grid) {
    lists.resize(4);
    lists = cm_fill_w(lists, true);
  }
  return grid;
}

/** Writes the constructed grid as a V-shaped schedule: each rank's passes in slot order. */
constexpr void cm_append(schedule& out, cm_block_kind kind) {
  const std::int32_t p = out.num_ranks();
  const cm_slots grid = cm_construct(kind, p, out.num_microbatches());
  for (std::int32_t r = 0; r < p; ++r) {
    std::vector<cm_pass> passes;
    const cm_rank_slots& lists = grid[static_cast<std::size_t>(r)];
    for (std::size_t t = 0; t < lists.size(); ++t)
      for (std::size_t j = 0; j < lists[t].size(); ++j)
        passes.push_back({lists[t][j], r, static_cast<std::int32_t>(t), static_cast<std::int32_t>(j)});
    std::sort(passes.begin(), passes.end(), [](const cm_pass& a, const cm_pass& b) { return a.slot < b.slot; });
    constexpr op_kind kinds[6] = {op_kind::forward,        op_kind::forward,         op_kind::backward_input,
                                  op_kind::backward_input, op_kind::backward_weight, op_kind::backward_weight};
    for (const cm_pass& x : passes) {
      const bool chunk_a = x.type == 0 || x.type == 3 || x.type == 5;
      out.push_back(r, op{kinds[x.type], chunk_a ? r : 2 * p - 1 - r, x.microbatch});
    }
  }
}

/** The shape rule of both: `check_counts` and v = 2. */
constexpr std::string check_controllable_memory(std::string_view name, const pipeline_shape& s) {
  std::string e = check_counts(name, s);
  if (!e.empty()) return e;
  if (s.num_chunks != 2)
    return cat(name, ": places 2 chunks per rank in a V, so chunks must be 2 (got ", s.num_chunks,
               "); for one chunk per rank use zb-h1, for more use interleaved-1f1b");
  return {};
}

}  // namespace detail

/**
@brief V-Half, the V-shaped schedule at about half of 1F1B's activation memory (Qi, Wan, Amar,
Lin, "Pipeline Parallelism with Controllable Memory", arXiv 2405.15362, §3–§4, Figure 4 and the
squeeze of §3.3; the sail-sg `zbv_greedy.py` construction, "half" setup).

**Shape.** V-shape placement, v = 2: stage s < p on rank s (chunk A), stage s ≥ p on rank
2p−1−s (chunk C). B and W are split. Each microbatch's six chunk passes form a block repeated
every 6 slots: on rank i F_A at 2i, F_C at 3p−2−i, B_C at 3p+g−1+2i, B_A at 6p+g−2−i (g = 3
for even p, else 0); W's fill the empty slots (W_C before W_A); a greedy squeeze then pulls the
warm-up and cool-down forward without raising the peak (docs/controllable-memory.md). The order
does not depend on costs.

**Invariants.** Peak activation ⌊p/2⌋ + 1 = ⌊(p+2)/2⌋ M_B on every rank when an F of a chunk
holds M_B/2 until its W (B and W each free half of it: M_B/4), about half of ZB-V's and 1F1B's
p·M_B. Bubble per rank at T_F = T_B = T_W = T, no communication and m ≥ 2p:
1.5(p−1) − 2 T for even p ≥ 4, 1.5(p−1) − 0.5 T for odd p, 0.5 T at p = 2 (1F1B: 3(p−1) T).

**Cost.** Roughly O(p³·m) (the squeeze recomputes a rank's peak for each slot it tries): about
10 ms at p = 16, m = 48; at p = 32, m = 256 about 0.1 s for V-Half and 0.05 s for V-Min
(`stretto.bench.policies`, with validation), against 3 ms for ZB-V's list scheduling.

**Errors.** Needs v = 2. Any p ≥ 1 and m ≥ 1 is accepted; below m = 2p the steady state is only
partly formed.
*/
struct v_half {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "v-half";
  static constexpr placement_kind placement = placement_kind::v_shape;

  static constexpr std::string check(const pipeline_shape& s) { return detail::check_controllable_memory(name, s); }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    detail::cm_append(out, detail::cm_block_kind::half);
    return out;
  }
};

/**
@brief V-Min, the V-shaped schedule at about a third of 1F1B's activation memory (Qi, Wan, Amar,
Lin, arXiv 2405.15362, §3–§4, Figure 4 and §3.3; the sail-sg `zbv_greedy.py` construction, "min"
setup).

**Shape.** As `v_half` with V-Min's block: on rank i F_A at i, F_C at 2p−1−i, B_C at 2p+g+i,
B_A at 4p+g−1−i (g = 2 when 3 divides p, else 0), then the same W filling and squeeze. The order
does not depend on costs.

**Invariants.** Peak activation at most ⌊(p+4)/3⌋ M_B on every rank for p ≥ 3 (with B and W each
freeing half of a chunk's activation a few ranks are M_B/2 lower, e.g. ranks 0 and 1 at p = 8),
about a third of 1F1B's p·M_B. Bubble per rank at T_F = T_B = T_W = T, no communication and
m ≥ 2p: 2(p−1) − 1.5 T when 3 divides p, else 2(p−1) − 0.5 T. Because the order is fixed,
a B longer than F costs more than in a plan made from the costs: at (T_F, T_B, T_W) = (1, 2, 1),
p = 4, m = 8 the bubble is 22.5 (V-Half 9, `plan::auto_schedule_v` at p·M_B 4.5).

**Errors.** Needs v = 2. Any p ≥ 1 and m ≥ 1 is accepted.
*/
struct v_min {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "v-min";
  static constexpr placement_kind placement = placement_kind::v_shape;

  static constexpr std::string check(const pipeline_shape& s) { return detail::check_controllable_memory(name, s); }

  static constexpr schedule generate(const pipeline_shape& s) {
    schedule out(s, placement);
    detail::cm_append(out, detail::cm_block_kind::min);
    return out;
  }
};

static_assert(schedule_policy<v_half>);
static_assert(schedule_policy<v_min>);

}  // namespace stretto::policies
