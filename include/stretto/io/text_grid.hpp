#pragma once
/**
@file
@brief Timelines as a text grid for the terminal, like the papers' small figures: one line per
rank, one column per time unit (the shortest op's time), each op a cell such as `F3`, `B0`, `W0`,
`BW2` followed by `-` cells while it lasts, idle time as `.`.

With colour (ANSI escape codes) each op's cells get its kind's background (F blue, B green,
W yellow, BW magenta; the bright variant for a second chunk) and the `-` fill becomes blank;
a second replica's labels are underlined. A terminal shows the grid as `stretto-plan show` does.
*/

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "../sim/timeline.hpp"
#include "chrome_trace.hpp"

namespace stretto::io {

/** @brief Options of `write_text_grid`. */
struct text_grid_options {
  bool color{false};  ///< ANSI colours (only for a terminal)
  /// The time of one column; 0: the shortest op's time (ops are placed at the nearest column).
  double unit{0.0};
};

/**
@brief Writes `events` as a text grid (see the file comment): a header line with the time of
every tenth column, then `rank r │ cells` per rank. Each cell is as wide as the longest label
(e.g. 3 characters for `F12`) plus a space.
*/
inline void write_text_grid(std::ostream& out, const sim::timeline& events, const trace_context& context,
                            const text_grid_options& options = {}) {
  const std::int32_t p = events.num_ranks();
  double begin = 0.0, shortest = 0.0;
  bool any = false;
  std::size_t label_width = 1;
  for (std::int32_t r = 0; r < p; ++r)
    for (const sim::op_timing& t : events.ops(r)) {
      begin = any ? std::min(begin, t.start) : t.start;
      any = true;
      const double d = t.end - t.start;
      if (d > 0.0 && (shortest == 0.0 || d < shortest)) shortest = d;
      label_width = std::max(label_width, short_name(t.what.kind).size() + std::to_string(t.what.microbatch).size());
    }
  const double unit = options.unit > 0.0 ? options.unit : (shortest > 0.0 ? shortest : 1.0);
  const std::size_t width = label_width + 1;

  // Per rank, the cells: an op occupies [round(start/unit), round(end/unit)), at least one column,
  // never before the previous op's last column.
  struct cell {
    std::int32_t op_index{-1};  // -1: idle
    bool first{false};
  };
  std::vector<std::vector<cell>> rows(static_cast<std::size_t>(p));
  std::size_t columns = 0;
  for (std::int32_t r = 0; r < p; ++r) {
    auto& row = rows[static_cast<std::size_t>(r)];
    const auto list = events.ops(r);
    std::size_t next_free = 0;
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (i > 0 && list[i - 1].what.overlapped) continue;  // drawn with its pair's first op
      auto from = static_cast<std::size_t>(std::llround(std::max(0.0, (list[i].start - begin) / unit)));
      auto to = static_cast<std::size_t>(std::llround(std::max(0.0, (list[i].end - begin) / unit)));
      from = std::max(from, next_free);
      to = std::max(to, from + 1);
      if (row.size() < to) row.resize(to);
      for (std::size_t c = from; c < to; ++c) row[c] = {static_cast<std::int32_t>(i), c == from};
      next_free = to;
    }
    columns = std::max(columns, row.size());
  }

  const std::string rank_label_pad(std::to_string(p > 0 ? p - 1 : 0).size() + 5, ' ');
  out << rank_label_pad << "  ";
  for (std::size_t c = 0; c < columns; c += 10) {
    std::ostringstream t;
    t << begin + static_cast<double>(c) * unit;
    std::string text = t.str();
    const std::size_t room = std::min<std::size_t>(10, columns - c) * width;
    if (text.size() + 1 > room) text.clear();
    text.resize(room, ' ');
    out << text;
  }
  out << '\n';
  for (std::int32_t r = 0; r < p; ++r) {
    std::string label = "rank " + std::to_string(r);
    label.resize(rank_label_pad.size(), ' ');
    out << label << "| ";
    const auto list = events.ops(r);
    const auto& row = rows[static_cast<std::size_t>(r)];
    for (std::size_t c = 0; c < columns;) {
      const cell k = c < row.size() ? row[c] : cell{};
      if (k.op_index < 0) {
        out << std::string(width - 1, options.color ? ' ' : '.') << ' ';
        ++c;
        continue;
      }
      // The op's run of columns, drawn as one segment: its label, then '-' (or its colour).
      std::size_t run = 1;
      while (c + run < row.size() && row[c + run].op_index == k.op_index && !row[c + run].first) ++run;
      const std::size_t room = run * width - 1;
      const op& o = list[static_cast<std::size_t>(k.op_index)].what;
      std::string text = std::string(short_name(o.kind)) + std::to_string(o.microbatch);
      if (o.overlapped && static_cast<std::size_t>(k.op_index) + 1 < list.size()) {
        const op& partner = list[static_cast<std::size_t>(k.op_index) + 1].what;
        text += "&" + std::string(short_name(partner.kind)) + std::to_string(partner.microbatch);
      }
      if (text.size() > room) text.resize(room);
      text.resize(room, options.color ? ' ' : '-');
      if (options.color) {
        const std::int32_t chunk = detail::chunk_of(context.placement, context.shape, o.stage);
        int background = 44;
        switch (o.kind) {
          case op_kind::forward: background = 44; break;
          case op_kind::backward_input: background = 42; break;
          case op_kind::backward_weight: background = 43; break;
          case op_kind::backward: background = 45; break;
        }
        if (chunk > 0) background += 60;  // the bright variant
        out << "\x1b[30;" << background << (context.replica_of(o.microbatch) > 0 ? ";4" : "") << 'm' << text << "\x1b[0m ";
      } else {
        out << text << ' ';
      }
      c += run;
    }
    out << '\n';
  }
}

/** @brief `write_text_grid` into a string. */
inline std::string to_text_grid(const sim::timeline& events, const trace_context& context, const text_grid_options& options = {}) {
  std::ostringstream out;
  write_text_grid(out, events, context, options);
  return out.str();
}

}  // namespace stretto::io
