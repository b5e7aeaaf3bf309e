#pragma once
/**
@file
@brief Schedules as CSV in PyTorch pipelining's compute-only format: one row per rank, one column
per time step, each cell an op token (`schedule_tokens.hpp`) or empty when the rank is idle.

The steps are those of a lock-step run (`step_grid`): every op, fused BW and overlapped F&B pair
included, takes one step, and an op runs in the first step after all its inputs were produced.
That is how PyTorch's own schedules place their actions and how the papers draw their small
figures. Reading ignores empty cells, so any spacing of the ops is accepted; only their order per
row matters.
*/

#include <algorithm>
#include <utility>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <tuple>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "../core/schedule.hpp"
#include "../sim/simulator.hpp"
#include "schedule_tokens.hpp"

namespace stretto::io {

/**
@brief The cost model of a lock-step run: every op, and every overlapped pair, takes one time
unit; messages take none; memory as `uniform_costs`' defaults.
*/
struct unit_step_costs {
  constexpr double duration(const op&, const pipeline_shape&) const noexcept { return 1.0; }
  constexpr double comm_delay(std::int32_t, std::int32_t, const pipeline_shape&) const noexcept { return 0.0; }
  constexpr double memory_delta(const op& o, const pipeline_shape& s) const noexcept {
    return sim::uniform_costs{}.memory_delta(o, s);
  }
  constexpr double overlap_time(const op&, const op&, const pipeline_shape&) const noexcept { return 1.0; }
};
static_assert(sim::cost_model<unit_step_costs>);

/** @brief One cell of a step grid: the index of the op in its rank's list, or −1 when idle. */
using step_cell = std::int32_t;

/**
@brief Returns, per rank, one cell per step of a lock-step run of `s` (`unit_step_costs`): the
index in `s.ops(r)` of the op that starts at that step (the first op of an overlapped pair), or
−1. Every row has the same length, the run's number of steps.
@throws validation_error if `s` is invalid.
*/
inline std::vector<std::vector<step_cell>> step_grid(const schedule& s) {
  const sim::simulation run = sim::simulate(s, unit_step_costs{});
  std::size_t steps = 0;
  for (std::int32_t r = 0; r < s.num_ranks(); ++r)
    for (const sim::op_timing& t : run.events.ops(r)) steps = std::max(steps, static_cast<std::size_t>(t.end + 0.5));
  std::vector<std::vector<step_cell>> grid(static_cast<std::size_t>(s.num_ranks()), std::vector<step_cell>(steps, -1));
  for (std::int32_t r = 0; r < s.num_ranks(); ++r) {
    const auto events = run.events.ops(r);
    const auto list = s.ops(r);
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (i > 0 && list[i - 1].overlapped) continue;  // the second op of a pair shares the first's cell
      grid[static_cast<std::size_t>(r)][static_cast<std::size_t>(events[i].start + 0.5)] = static_cast<step_cell>(i);
    }
  }
  return grid;
}

/**
@brief Writes `s` as PyTorch's compute-only CSV: row r is rank r, one column per lock-step step,
`{stage}{F|I|W|B}{microbatch}` or empty. Trailing idle steps of a row are left out, as PyTorch
does; a rank with no op is an empty line.
*/
inline void write_csv(std::ostream& out, const schedule& s) {
  const auto grid = step_grid(s);
  for (std::int32_t r = 0; r < s.num_ranks(); ++r) {
    const auto& row = grid[static_cast<std::size_t>(r)];
    std::size_t last = row.size();
    while (last > 0 && row[last - 1] < 0) --last;
    const auto list = s.ops(r);
    for (std::size_t k = 0; k < last; ++k) {
      if (k > 0) out << ',';
      if (row[k] < 0) continue;
      const auto i = static_cast<std::size_t>(row[k]);
      out << (list[i].overlapped && i + 1 < list.size() ? to_pair_token(list[i], list[i + 1]) : to_token(list[i]));
    }
    out << '\n';
  }
}

/** @brief `write_csv` into a string. */
inline std::string to_csv(const schedule& s) {
  std::ostringstream out;
  write_csv(out, s);
  return out.str();
}

/**
@brief A communication action of a PyTorch CSV with communication (`1SEND_F0`, `2RECV_B3`):
which stage sends or receives the activation (F) or gradient (B) of which microbatch, where it
stands in its row (`position`: the compute ops before it) and in the file.
*/
struct comm_action {
  bool send{true};
  bool activation{true};  ///< F (activation) or B (gradient)
  std::int32_t stage{0};
  std::int32_t microbatch{0};
  std::int32_t rank{0};
  std::size_t position{0};
  std::size_t line{0};
  std::size_t column{0};
};

namespace detail {

/** @brief The communication action written as `token`, if it is one (syntax already checked). */
inline std::optional<comm_action> comm_action_of(std::string_view token) {
  while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t' || token.back() == '\r')) token.remove_suffix(1);
  std::size_t pos = 0;
  const std::optional<std::int32_t> stage = read_index(token, pos);
  if (!stage) return std::nullopt;
  const std::string_view rest = token.substr(pos);
  for (const auto& [name, send, activation] : {std::tuple{"SEND_F", true, true}, std::tuple{"RECV_F", false, true},
                                               std::tuple{"SEND_B", true, false}, std::tuple{"RECV_B", false, false}}) {
    if (!rest.starts_with(name)) continue;
    std::size_t at = pos + std::string_view(name).size();
    const std::optional<std::int32_t> mb = read_index(token, at);
    if (!mb || at != token.size()) return std::nullopt;
    comm_action a;
    a.send = send, a.activation = activation, a.stage = *stage, a.microbatch = *mb;
    return a;
  }
  return std::nullopt;
}

inline std::string action_text(const comm_action& a) {
  return std::to_string(a.stage) + (a.send ? "SEND_" : "RECV_") + (a.activation ? "F" : "B") + std::to_string(a.microbatch);
}

}  // namespace detail

/**
@brief Checks the communication actions of a CSV with communication against the messages that
the compute order of `s` implies (the same ones `graph::lower` posts): an activation crosses from
F(s, j) to stage s+1 and a gradient from the backward of (s, j) to stage s−1 whenever the two
stages are on different ranks. Each such message must appear exactly once as a send on the
producer's row after its op and once as a receive on the consumer's row before its op; no other
action may appear. A file without communication actions is not checked.
@throws format_error naming the line, column, rank and action (or the missing one) and the rule.
*/
inline void check_communication(const schedule& s, const std::vector<std::vector<located_op>>& lists,
                                const std::vector<comm_action>& actions, std::string_view source) {
  if (actions.empty()) return;
  const std::int32_t stages = s.num_stages(), m = s.num_microbatches();
  // Position of the F and of the backward (B or BW) of each (stage, microbatch) in its row.
  const auto cells = static_cast<std::size_t>(stages) * static_cast<std::size_t>(m);
  std::vector<std::size_t> f_at(cells, 0), b_at(cells, 0);
  const auto cell = [m](std::int32_t stage, std::int32_t mb) {
    return static_cast<std::size_t>(stage) * static_cast<std::size_t>(m) + static_cast<std::size_t>(mb);
  };
  for (const auto& list : lists)
    for (std::size_t k = 0; k < list.size(); ++k) {
      const op& o = list[k].what;
      if (o.kind == op_kind::forward) f_at[cell(o.stage, o.microbatch)] = k;
      if (produces_input_gradient(o.kind)) b_at[cell(o.stage, o.microbatch)] = k;
    }
  // [direction: 0 activation, 1 gradient][send 0 / receive 1][cell]: seen already
  std::vector<std::uint8_t> seen(4 * cells, 0);
  for (const comm_action& a : actions) {
    const std::string what = "rank " + std::to_string(a.rank) + ", " + detail::action_text(a) + ": ";
    if (a.stage >= stages || a.microbatch >= m)
      detail::fail_at(source, a.line, a.column, what + "names a stage or microbatch that no compute op of the file has");
    const std::int32_t holder = s.rank_of(a.stage, a.microbatch);
    if (holder != a.rank)
      detail::fail_at(source, a.line, a.column, what + "stage " + std::to_string(a.stage) + " runs on rank " +
                                                    std::to_string(holder) + ", so this action belongs to that rank's row");
    // The stage at the other end of the message.
    const std::int32_t peer = a.activation == a.send ? a.stage + 1 : a.stage - 1;
    if (peer < 0 || peer >= stages || s.rank_of(peer, a.microbatch) == a.rank)
      detail::fail_at(source, a.line, a.column, what + "no message: " +
                                                    (peer < 0 || peer >= stages ? std::string("stage ") + std::to_string(peer) + " does not exist"
                                                                                : std::string("stage ") + std::to_string(peer) + " is on the same rank") +
                                                    "; remove the action");
    const std::size_t op_at = (a.activation ? f_at : b_at)[cell(a.stage, a.microbatch)];
    if (a.send && a.position <= op_at)
      detail::fail_at(source, a.line, a.column, what + "a send must follow the op that produces its data (" +
                                                    (a.activation ? "F" : "the backward") + " of stage " + std::to_string(a.stage) + ")");
    if (!a.send && a.position > op_at)
      detail::fail_at(source, a.line, a.column, what + "a receive must come before the op that consumes its data (" +
                                                    (a.activation ? "F" : "the backward") + " of stage " + std::to_string(a.stage) + ")");
    std::uint8_t& mark = seen[(static_cast<std::size_t>(a.activation ? 0 : 2) + (a.send ? 0 : 1)) * cells + cell(a.stage, a.microbatch)];
    if (mark) detail::fail_at(source, a.line, a.column, what + "appears twice; each message is sent and received once");
    mark = 1;
  }
  // Every implied message has both ends.
  for (std::int32_t st = 0; st < stages; ++st)
    for (std::int32_t j = 0; j < m; ++j) {
      const std::int32_t r = s.rank_of(st, j);
      auto need = [&](bool activation, bool send, std::int32_t stage) {
        if (seen[(static_cast<std::size_t>(activation ? 0 : 2) + (send ? 0 : 1)) * cells + cell(stage, j)]) return;
        comm_action a;
        a.send = send, a.activation = activation, a.stage = stage, a.microbatch = j;
        detail::fail_at(source, 0, 0, "rank " + std::to_string(s.rank_of(stage, j)) + " lacks " + detail::action_text(a) +
                                          ": the file has communication actions, so every message between ranks needs its send and its receive");
      };
      if (st + 1 < stages && s.rank_of(st + 1, j) != r) need(true, true, st), need(true, false, st + 1);
      if (st > 0 && s.rank_of(st - 1, j) != r) need(false, true, st), need(false, false, st - 1);
    }
}

/**
@brief Reads the per-rank op lists of a CSV schedule, each op with its line and column.

Rows are lines (LF or CRLF; a final newline does not add a rank). Cells are separated by commas
and may be quoted ("..."), as Python's csv module writes them; empty cells are idle steps.
@throws format_error with `source`, line and column for a malformed token or quote.
*/
inline std::vector<std::vector<located_op>> read_csv_lists(std::string_view text, std::string_view source,
                                                           std::vector<comm_action>* actions = nullptr) {
  std::vector<std::vector<located_op>> lists;
  std::size_t line = 1;
  std::size_t pos = 0;
  if (text.starts_with("\xEF\xBB\xBF")) pos = 3;  // a UTF-8 byte-order mark
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view row = text.substr(pos, end - pos);
    if (row.ends_with('\r')) row.remove_suffix(1);
    if (lists.size() >= static_cast<std::size_t>(max_file_ranks))
      detail::fail_at(source, line, 0, "more than " + std::to_string(max_file_ranks) + " rows (ranks)");
    auto& list = lists.emplace_back();
    std::size_t cell = 0;
    while (cell <= row.size()) {
      std::size_t stop = row.find(',', cell);
      if (stop == std::string_view::npos) stop = row.size();
      std::string_view token = row.substr(cell, stop - cell);
      std::size_t column = cell + 1;
      if (token.starts_with('"')) {
        // Quoted: up to the closing quote; a token never holds a comma or a quote itself.
        const std::size_t close = row.find('"', cell + 1);
        if (close == std::string_view::npos)
          detail::fail_at(source, line, cell + 1, "a quoted cell has no closing quote");
        token = row.substr(cell + 1, close - cell - 1);
        column = cell + 2;
        stop = row.find(',', close + 1);
        if (stop == std::string_view::npos) stop = row.size();
        for (std::size_t k = close + 1; k < stop; ++k)
          if (row[k] != ' ' && row[k] != '\t')
            detail::fail_at(source, line, k + 1, "unexpected text after a quoted cell");
      }
      parse_token(token, list, source, line, column);
      if (actions != nullptr)
        if (std::optional<comm_action> a = detail::comm_action_of(token)) {
          a->rank = static_cast<std::int32_t>(lists.size() - 1);
          a->position = list.size();
          a->line = line;
          a->column = column;
          actions->push_back(*a);
        }
      cell = stop + 1;
    }
    pos = end + 1;
    ++line;
  }
  return lists;
}

/**
@brief Reads a schedule from PyTorch pipelining's CSV, compute-only or with communication
actions (checked by `check_communication`), infers shape, placement and replicas and validates
it (`build_schedule`).

**Both token dialects.** Current PyTorch writes I (input backward), W (weight backward) and B
(fused backward); older versions wrote B for the input backward and BW for the fused one (e.g.
the ZB-1p artifacts of PyTorch's own tests). A fused backward never has a W of its own, so a B
whose (stage, microbatch) also has a W in the file is read as the input backward.
@param source the file name used in messages.
@throws format_error for a syntax error (line, column) or a broken schedule rule (rank, op, line, column).
*/
inline schedule read_csv(std::string_view text, std::string_view source = "", const import_options& options = {}) {
  std::vector<comm_action> actions;
  std::vector<std::vector<located_op>> lists = read_csv_lists(text, source, &actions);
  std::vector<std::pair<std::int32_t, std::int32_t>> weights;  // (stage, microbatch) of every W
  for (const auto& list : lists)
    for (const located_op& o : list)
      if (o.what.kind == op_kind::backward_weight) weights.emplace_back(o.what.stage, o.what.microbatch);
  if (!weights.empty()) {
    std::sort(weights.begin(), weights.end());
    for (auto& list : lists)
      for (located_op& o : list)
        if (o.what.kind == op_kind::backward &&
            std::binary_search(weights.begin(), weights.end(), std::pair{o.what.stage, o.what.microbatch}))
          o.what.kind = op_kind::backward_input;
  }
  schedule out = build_schedule(lists, options, source);
  check_communication(out, lists, actions, source);
  return out;
}

}  // namespace stretto::io
