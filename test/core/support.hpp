#pragma once
/**
@file
@brief Helpers for the core tests: the shape grid, schedules written in the papers' notation,
and edits of generated schedules (schedule has no erase, so an edit rebuilds it).
*/

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <stretto/stretto.hpp>

namespace stretto::testing {

/** @brief The microbatch counts of the grid for p ranks: 1, 2, p−1, p, p+1, 2p, 3p+1 (m ≥ 1). */
inline std::vector<std::int32_t> grid_microbatches(std::int32_t p) {
  std::vector<std::int32_t> out;
  for (std::int32_t m : {1, 2, p - 1, p, p + 1, 2 * p, 3 * p + 1})
    if (m >= 1 && std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  std::sort(out.begin(), out.end());
  return out;
}

inline constexpr std::int32_t grid_max_ranks = 8;

/**
@brief Parses a device row written as in the papers, e.g. "F1 F2 B1 W1 BW3", into ops on
`stage`; microbatch numbers are `base`-based (1 for Zero Bubble's rows, 0 for docs/schedules.md §2).
*/
inline std::vector<op> parse_row(std::string_view text, std::int32_t stage, std::int32_t base) {
  std::vector<op> out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    op o{op_kind::forward, stage, 0};
    if (text.substr(i, 2) == "BW") {
      o.kind = op_kind::backward;
      i += 2;
    } else {
      o.kind = text[i] == 'F' ? op_kind::forward
               : text[i] == 'B' ? op_kind::backward_input
                                : op_kind::backward_weight;
      ++i;
    }
    std::int32_t number = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') number = number * 10 + (text[i++] - '0');
    o.microbatch = number - base;
    out.push_back(o);
  }
  return out;
}

/** @brief Writes ops compactly, 0-based, e.g. "F0 BW0 F1" (stages as "@s" when `with_stage`). */
inline std::string row_text(std::span<const op> ops, bool with_stage = false) {
  std::string out;
  for (const op& o : ops) {
    if (!out.empty()) out += ' ';
    out += short_name(o.kind);
    out += std::to_string(o.microbatch);
    if (with_stage) out += "@" + std::to_string(o.stage);
  }
  return out;
}

inline std::vector<op> to_vector(std::span<const op> ops) { return {ops.begin(), ops.end()}; }

/** @brief Returns a copy of `s` in which `edit(rank, list)` has changed each rank's list. */
template <class Edit>
schedule edited(const schedule& s, Edit edit) {
  schedule out(s.shape(), s.placement());
  for (std::int32_t r = 0; r < s.num_ranks(); ++r) {
    std::vector<op> list = to_vector(s.ops(r));
    edit(r, list);
    for (const op& o : list) out.push_back(r, o);
  }
  return out;
}

/** @brief Returns `s` without the op `o` (from whichever rank holds it). */
inline schedule without(const schedule& s, op o) {
  return edited(s, [o](std::int32_t, std::vector<op>& list) { std::erase(list, o); });
}

/** @brief Builds a schedule from explicit per-rank lists. */
inline schedule from_rows(pipeline_shape shape, placement_kind placement,
                          const std::vector<std::vector<op>>& rows) {
  schedule out(shape, placement);
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (const op& o : rows[r]) out.push_back(static_cast<std::int32_t>(r), o);
  return out;
}

}  // namespace stretto::testing
