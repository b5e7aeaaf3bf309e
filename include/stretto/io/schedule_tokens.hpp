#pragma once
/**
@file
@brief The op tokens of schedule files and the step that turns per-rank op lists read from a file
into a `schedule`: placement and replicas inferred, every rule of `stretto::validate` checked,
each error located by file, line and column.

**Tokens** (PyTorch pipelining's action notation, `torch.distributed.pipelining`): an op is
`{stage}{kind}{microbatch}` with kind `F` (forward), `I` (input backward, Stretto's B), `W`
(weight backward) or `B` (fused backward, Stretto's BW), e.g. `3F0`, `1I7`. An overlapped F&B pair
(DualPipe) is `({first};{second})OVERLAP_F_B`, e.g. `(0F5;7B1)OVERLAP_F_B`. PyTorch's
communication and sharding actions (`{stage}SEND_F{mb}`, `RECV_F`, `SEND_B`, `RECV_B`,
`{stage}UNSHARD`, `RESHARD`, `REDUCE_GRAD`) are accepted and skipped: Stretto derives its messages
from the compute ops (`stretto::graph::lowering`), so they carry no information it needs; they are
checked for syntax only. Note the letter swap: PyTorch's `B` is Stretto's fused `BW`, PyTorch's
`I` is Stretto's `B`.
*/

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../core/op.hpp"
#include "../core/schedule.hpp"
#include "../core/shape.hpp"
#include "../validate/validate.hpp"

namespace stretto::io {

/**
@brief A schedule file that cannot be read: a syntax error (with its line and column), or a
schedule that breaks a rule of `stretto::validate` (with the rank, the op and where it was read).
It is an `argument_error`: the input is at fault, not the program.
*/
class format_error : public argument_error {
 public:
  format_error(const std::string& what, std::size_t line, std::size_t column)
      : argument_error(what), line_(line), column_(column) {}
  /** @brief 1-based line of the error, 0 when it concerns the whole file. */
  std::size_t line() const noexcept { return line_; }
  /** @brief 1-based column (in bytes) of the error, 0 when it concerns the whole file or line. */
  std::size_t column() const noexcept { return column_; }

 private:
  std::size_t line_;
  std::size_t column_;
};

/** @brief Limits that keep a malformed or hostile file from exhausting memory. */
inline constexpr std::int64_t max_file_ranks = 100'000;
/** @brief The largest stage or microbatch index a file may name (inclusive). */
inline constexpr std::int64_t max_file_index = 1'000'000;
/** @brief The largest number of (stage, microbatch) pairs p·v·m a file may describe. */
inline constexpr std::int64_t max_file_pairs = 1'000'000;

/** @brief PyTorch's letter for `kind`: F, I (input backward), W (weight backward), B (fused backward). */
constexpr char pytorch_letter(op_kind kind) noexcept {
  switch (kind) {
    case op_kind::forward: return 'F';
    case op_kind::backward_input: return 'I';
    case op_kind::backward_weight: return 'W';
    case op_kind::backward: return 'B';
  }
  return '?';
}

/** @brief Returns the token of one op, e.g. `"3F0"` (the `overlapped` flag is not part of it). */
inline std::string to_token(const op& o) {
  return std::to_string(o.stage) + pytorch_letter(o.kind) + std::to_string(o.microbatch);
}

/** @brief Returns the token of an overlapped F&B pair, e.g. `"(0F5;7B1)OVERLAP_F_B"`. */
inline std::string to_pair_token(const op& first, const op& second) {
  return "(" + to_token(first) + ";" + to_token(second) + ")OVERLAP_F_B";
}

/**
@brief Per rank, the tokens of its list in order: an overlapped pair is one token. Used by the
CSV and JSON writers.
*/
inline std::vector<std::vector<std::string>> rank_tokens(const schedule& s) {
  std::vector<std::vector<std::string>> out(static_cast<std::size_t>(s.num_ranks()));
  for (std::int32_t r = 0; r < s.num_ranks(); ++r) {
    const auto list = s.ops(r);
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i].overlapped && i + 1 < list.size()) {
        out[static_cast<std::size_t>(r)].push_back(to_pair_token(list[i], list[i + 1]));
        ++i;
      } else {
        out[static_cast<std::size_t>(r)].push_back(to_token(list[i]));
      }
    }
  }
  return out;
}

/** @brief One op read from a file, with where it was read (for diagnostics). */
struct located_op {
  op what{};
  std::size_t line{0};
  std::size_t column{0};
};

namespace detail {

/** @brief "source:line:column: " (parts that are 0 are left out). */
inline std::string where(std::string_view source, std::size_t line, std::size_t column) {
  std::string out(source);
  if (line > 0) out += ":" + std::to_string(line);
  if (column > 0) out += ":" + std::to_string(column);
  if (!out.empty()) out += ": ";
  return out;
}

[[noreturn]] inline void fail_at(std::string_view source, std::size_t line, std::size_t column, const std::string& message) {
  throw format_error(where(source, line, column) + message, line, column);
}

/** @brief Reads a decimal index in [0, max_file_index] at `text[pos]`; advances `pos`. */
inline std::optional<std::int32_t> read_index(std::string_view text, std::size_t& pos) {
  std::size_t end = pos;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
  if (end == pos) return std::nullopt;
  std::int64_t value = 0;
  const auto [stop, error] = std::from_chars(text.data() + pos, text.data() + end, value);
  if (error != std::errc{} || stop != text.data() + end || value > max_file_index) return std::nullopt;
  pos = end;
  return static_cast<std::int32_t>(value);
}

inline constexpr std::string_view token_help =
    "expected an op token {stage}{F|I|W|B}{microbatch} such as 0F3 (I: input backward, W: weight backward, "
    "B: fused backward; older files: B input backward, BW fused), an overlapped pair (0F5;7B1)OVERLAP_F_B, or a communication action such as 1SEND_F0";

/** @brief Parses one single-op token; returns nullopt for an accepted communication action. */
inline std::optional<op> parse_single(std::string_view token, std::string_view source, std::size_t line, std::size_t column) {
  std::size_t pos = 0;
  const std::optional<std::int32_t> stage = read_index(token, pos);
  if (!stage)
    fail_at(source, line, column,
            "'" + std::string(token) + "' does not start with a stage index (0 to " + std::to_string(max_file_index) +
                "); " + std::string(token_help));
  const std::string_view rest = token.substr(pos);
  for (std::string_view action : {"UNSHARD", "RESHARD", "REDUCE_GRAD"})
    if (rest == action) return std::nullopt;
  for (std::string_view action : {"SEND_F", "RECV_F", "SEND_B", "RECV_B"})
    if (rest.starts_with(action)) {
      std::size_t at = pos + action.size();
      if (!read_index(token, at) || at != token.size())
        fail_at(source, line, column, "'" + std::string(token) + "': " + std::string(action) +
                                          " needs a microbatch index after it, e.g. 1" + std::string(action) + "0");
      return std::nullopt;
    }
  if (rest.empty())
    fail_at(source, line, column, "'" + std::string(token) + "' has no op kind; " + std::string(token_help));
  op o;
  o.stage = *stage;
  // Older PyTorch files write the fused backward "BW" (their "B" is then the input backward,
  // see `read_csv`).
  if (rest.size() > 2 && rest.starts_with("BW") && rest[2] >= '0' && rest[2] <= '9') {
    std::size_t at = pos + 2;
    const std::optional<std::int32_t> mb = read_index(token, at);
    if (mb && at == token.size()) return op{op_kind::backward, *stage, *mb};
  }
  switch (rest.front()) {
    case 'F': o.kind = op_kind::forward; break;
    case 'I': o.kind = op_kind::backward_input; break;
    case 'W': o.kind = op_kind::backward_weight; break;
    case 'B': o.kind = op_kind::backward; break;
    default:
      fail_at(source, line, column + pos,
              "'" + std::string(token) + "': unknown op kind '" + std::string(rest.substr(0, 1)) + "'; " +
                  std::string(token_help));
  }
  ++pos;
  const std::optional<std::int32_t> microbatch = read_index(token, pos);
  if (!microbatch)
    fail_at(source, line, column + pos,
            "'" + std::string(token) + "' needs a microbatch index (0 to " + std::to_string(max_file_index) +
                ") after its kind, e.g. " + std::to_string(*stage) + rest.front() + "0");
  if (pos != token.size())
    fail_at(source, line, column + pos, "'" + std::string(token) + "' has unexpected text after the microbatch index");
  o.microbatch = *microbatch;
  return o;
}

}  // namespace detail

/**
@brief Parses one token (surrounding spaces allowed) and appends its ops to `out` (none for a
communication action, two for an overlapped pair, the first flagged `overlapped`).
`line`, `column` locate the token for error messages; `source` names the file.
@throws format_error naming the token and what a valid one looks like.
*/
inline void parse_token(std::string_view token, std::vector<located_op>& out, std::string_view source,
                        std::size_t line, std::size_t column) {
  while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
    token.remove_prefix(1);
    ++column;
  }
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t' || token.back() == '\r')) token.remove_suffix(1);
  if (token.empty()) return;
  if (token.front() == '(') {
    const std::size_t close = token.find(')');
    if (close == std::string_view::npos || token.substr(close + 1) != "OVERLAP_F_B")
      detail::fail_at(source, line, column,
                      "'" + std::string(token) + "': an overlapped pair is written (F;B)OVERLAP_F_B, e.g. (0F5;7B1)OVERLAP_F_B");
    const std::string_view inner = token.substr(1, close - 1);
    const std::size_t semicolon = inner.find(';');
    if (semicolon == std::string_view::npos || inner.find(';', semicolon + 1) != std::string_view::npos)
      detail::fail_at(source, line, column,
                      "'" + std::string(token) + "': an overlapped pair holds exactly two ops separated by ';'");
    std::size_t at = column + 1;
    for (std::string_view part : {inner.substr(0, semicolon), inner.substr(semicolon + 1)}) {
      std::size_t lead = 0;
      while (lead < part.size() && part[lead] == ' ') ++lead;
      std::string_view trimmed = part.substr(lead);
      while (!trimmed.empty() && trimmed.back() == ' ') trimmed.remove_suffix(1);
      const std::optional<op> o = detail::parse_single(trimmed, source, line, at + lead);
      if (!o)
        detail::fail_at(source, line, at + lead,
                        "'" + std::string(trimmed) + "': an overlapped pair holds compute ops (F, I, W or B), not communication");
      out.push_back({*o, line, at + lead});
      at += part.size() + 1;
    }
    out[out.size() - 2].what.overlapped = true;
    return;
  }
  if (const std::optional<op> o = detail::parse_single(token, source, line, column)) out.push_back({*o, line, column});
}

/** @brief How `build_schedule` decides what it cannot read from the ops alone. */
struct import_options {
  /// Force this placement instead of inferring it (`--placement`).
  std::optional<placement_kind> placement;
  /// The replica (0 or 1) of every microbatch instead of inferring it (JSON files record it).
  std::optional<std::vector<std::int32_t>> replicas;
};

namespace detail {

/** @brief The chunk of `stage` on its rank under `placement` (0 for linear, stage / p otherwise). */
constexpr std::int32_t chunk_of(placement_kind placement, const pipeline_shape& shape, std::int32_t stage) noexcept {
  if (placement == placement_kind::linear || shape.num_ranks <= 0) return 0;
  return stage / shape.num_ranks;
}

/**
@brief Tries `placement` on `lists`: returns the replica of every microbatch, or, through
`culprit`, the first op no replica puts on its rank.
*/
inline std::optional<std::vector<std::int32_t>> replicas_under(placement_kind placement, const pipeline_shape& shape,
                                                               const std::vector<std::vector<located_op>>& lists,
                                                               const std::optional<std::vector<std::int32_t>>& given,
                                                               std::pair<std::int32_t, const located_op*>& culprit) {
  const auto m = static_cast<std::size_t>(shape.num_microbatches);
  // bit 0: replica 0 fits every op seen so far, bit 1: replica 1 does.
  std::vector<std::uint8_t> fits(m, 3);
  if (given)
    for (std::size_t j = 0; j < m; ++j) fits[j] = static_cast<std::uint8_t>(1u << ((*given)[j] != 0 ? 1 : 0));
  std::vector<std::pair<std::int32_t, const located_op*>> first_miss(m, {-1, nullptr});
  for (std::size_t r = 0; r < lists.size(); ++r)
    for (const located_op& o : lists[r]) {
      const auto j = static_cast<std::size_t>(o.what.microbatch);
      for (std::int32_t replica = 0; replica < 2; ++replica)
        if ((fits[j] >> replica & 1) && rank_of_stage(placement, shape, o.what.stage, replica) != static_cast<std::int32_t>(r)) {
          fits[j] = static_cast<std::uint8_t>(fits[j] & ~(1u << replica));
          if (fits[j] == 0) first_miss[j] = {static_cast<std::int32_t>(r), &o};
        }
    }
  std::vector<std::int32_t> replicas(m, 0);
  for (std::size_t j = 0; j < m; ++j) {
    if (fits[j] == 0) {
      culprit = first_miss[j];
      return std::nullopt;
    }
    replicas[j] = (fits[j] & 1) ? 0 : 1;
  }
  return replicas;
}

}  // namespace detail

/**
@brief Builds and validates the schedule whose rank r runs `lists[r]` in order.

**Inference.** p = `lists.size()`; m = 1 + the largest microbatch index; S = 1 + the largest stage
index, which must be a multiple of p, and v = S / p. The placement is `options.placement` if
given, else the first of these that puts every op on the rank that runs it: `linear` (v = 1),
`v-shape` then `looped` (v = 2), `looped` (v > 2). Each microbatch gets replica 0 if the
placement puts all its ops where they are, else replica 1 (the mirrored copy of bidirectional
schedules), else the placement does not fit. Ambiguities: at v = 1 a looped schedule reads as
linear (the same mapping); at p = 1 a looped one with v = 2 reads as v-shape and a second
replica cannot be told apart (give `--placement`, or use the JSON format, which records both).

**Validation.** The schedule must pass every rule of `stretto::validate` (op set, per-stage order,
placement, overlapped pairs, deadlock freedom).
@throws format_error with `source`, the line and column of the op, its rank and the rule broken.
*/
inline schedule build_schedule(const std::vector<std::vector<located_op>>& lists, const import_options& options,
                               std::string_view source) {
  if (lists.empty()) detail::fail_at(source, 0, 0, "the file holds no rank; give one row (CSV) or list (JSON) per rank");
  if (static_cast<std::int64_t>(lists.size()) > max_file_ranks)
    detail::fail_at(source, 0, 0, "the file holds " + std::to_string(lists.size()) + " ranks; at most " +
                                      std::to_string(max_file_ranks) + " are accepted");
  std::int64_t stages = 0, microbatches = 0;
  for (const auto& list : lists)
    for (const located_op& o : list) {
      stages = std::max<std::int64_t>(stages, o.what.stage + 1);
      microbatches = std::max<std::int64_t>(microbatches, o.what.microbatch + 1);
    }
  if (stages == 0) detail::fail_at(source, 0, 0, "the file holds no compute op (F, I, W or B); a schedule needs at least one microbatch");
  const auto p = static_cast<std::int64_t>(lists.size());
  if (stages % p != 0)
    detail::fail_at(source, 0, 0,
                    "the ops name " + std::to_string(stages) + " stages (0 to " + std::to_string(stages - 1) + "), not a multiple of the " +
                        std::to_string(p) + " ranks (rows); every rank holds the same number of chunks v, so there must be p·v stages");
  if (stages * microbatches > max_file_pairs)
    detail::fail_at(source, 0, 0, "the file describes " + std::to_string(stages) + " stages x " + std::to_string(microbatches) +
                                      " microbatches; at most " + std::to_string(max_file_pairs) + " (stage, microbatch) pairs are accepted");
  const pipeline_shape shape{static_cast<std::int32_t>(p), static_cast<std::int32_t>(microbatches),
                             static_cast<std::int32_t>(stages / p)};

  if (options.replicas) {
    if (options.replicas->size() != static_cast<std::size_t>(shape.num_microbatches))
      detail::fail_at(source, 0, 0, "replicas has " + std::to_string(options.replicas->size()) +
                                        " entries, but the ops name " + std::to_string(shape.num_microbatches) +
                                        " microbatches; give one replica (0 or 1) per microbatch");
    for (const std::int32_t replica : *options.replicas)
      if (replica != 0 && replica != 1) detail::fail_at(source, 0, 0, "every replica must be 0 or 1 (got " + std::to_string(replica) + ")");
  }
  std::vector<placement_kind> candidates;
  if (options.placement)
    candidates.push_back(*options.placement);
  else if (shape.num_chunks == 1)
    candidates.push_back(placement_kind::linear);
  else if (shape.num_chunks == 2)
    candidates = {placement_kind::v_shape, placement_kind::looped};
  else
    candidates.push_back(placement_kind::looped);
  if (options.placement && *options.placement == placement_kind::linear && shape.num_chunks != 1)
    detail::fail_at(source, 0, 0, "--placement linear needs one stage per rank, but the ops name " + std::to_string(stages) +
                                      " stages on " + std::to_string(p) + " ranks; use looped or v-shape");
  if (options.placement && *options.placement == placement_kind::v_shape && shape.num_chunks != 2)
    detail::fail_at(source, 0, 0, "--placement v-shape needs two chunks per rank (2p stages), but the ops name " +
                                      std::to_string(stages) + " stages on " + std::to_string(p) + " ranks; use looped");

  std::optional<std::vector<std::int32_t>> replicas;
  placement_kind placement = candidates.front();
  std::pair<std::int32_t, const located_op*> culprit{-1, nullptr}, first_culprit{-1, nullptr};
  for (placement_kind candidate : candidates) {
    replicas = detail::replicas_under(candidate, shape, lists, options.replicas, culprit);
    if (replicas) {
      placement = candidate;
      break;
    }
    if (first_culprit.second == nullptr) first_culprit = culprit;
  }
  if (!replicas) {
    const located_op& o = *first_culprit.second;
    std::string tried;
    for (placement_kind candidate : candidates) tried += (tried.empty() ? "" : " or ") + std::string(to_string(candidate));
    detail::fail_at(source, o.line, o.column,
                    "rank " + std::to_string(first_culprit.first) + " runs " + to_string(o.what) + ", but under the " + tried +
                        " placement (" + std::to_string(shape.num_chunks) + " chunks per rank) stage " + std::to_string(o.what.stage) +
                        " is on rank " + std::to_string(rank_of_stage(candidates.front(), shape, o.what.stage, 0)) +
                        " (or its mirror " + std::to_string(rank_of_stage(candidates.front(), shape, o.what.stage, 1)) +
                        " for the second replica) and the other ops of microbatch " + std::to_string(o.what.microbatch) +
                        " fix its replica; rule: placement (give --placement to choose another)");
  }

  schedule s(shape, placement);
  for (std::size_t j = 0; j < replicas->size(); ++j)
    s.set_replica(static_cast<std::int32_t>(j), (*replicas)[j]);
  for (std::size_t r = 0; r < lists.size(); ++r)
    for (const located_op& o : lists[r]) s.push_back(static_cast<std::int32_t>(r), o.what);

  if (const validation_result check = validate(s); !check) {
    std::size_t line = 0, column = 0;
    if (check.rank >= 0 && static_cast<std::size_t>(check.rank) < lists.size())
      for (const located_op& o : lists[static_cast<std::size_t>(check.rank)])
        if (o.what.kind == check.culprit.kind && o.what.stage == check.culprit.stage &&
            o.what.microbatch == check.culprit.microbatch) {
          line = o.line;
          column = o.column;
          break;
        }
    std::string where_op = check.rank >= 0 ? "rank " + std::to_string(check.rank) + ", op " + to_token(check.culprit) + ": "
                                           : "op " + to_token(check.culprit) + ": ";
    detail::fail_at(source, line, column,
                    where_op + "rule " + std::string(to_string(check.rule)) + ": " + check.message);
  }
  return s;
}

}  // namespace stretto::io
