#pragma once
/**
@file
@brief Schedules as JSON (schema in docs/schedule-files.md), written and read without a JSON
library: a small reader for the subset of JSON (RFC 8259) the schema needs, with line and column
in every error.

@code{.json}
{
  "format": "stretto-schedule",
  "version": 1,
  "name": "zb-v",
  "ranks": 2, "microbatches": 2, "chunks": 2,
  "placement": "v-shape",
  "replicas": [0, 0],
  "ops": [["0F0", "0F1", "3F0", ...], ["1F0", ...]]
}
@endcode

`ops[r]` is rank r's list in execution order, in the tokens of `schedule_tokens.hpp` (no idle
cells: times come from the simulator). Reading requires `ops`; `format` must be
"stretto-schedule" and `version` 1 when present; `ranks`, `microbatches` and `chunks`, when
present, must match what the ops name; `placement` and `replicas`, when present, are used instead
of being inferred (so a JSON file round-trips exactly, ambiguous shapes included); `name` and
unknown keys starting with `x-` are ignored; other keys are refused.
*/

#include <cmath>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/schedule.hpp"
#include "schedule_tokens.hpp"

namespace stretto::io {

/** @brief Returns `text` as a JSON string literal (quotes included, control characters escaped). */
inline std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[(c >> 4) & 0xf];
          out += hex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

/**
@brief Writes `s` in the JSON schema above, one rank's list per line.
@param name the schedule's name for the `name` key; left out when empty.
*/
inline void write_json(std::ostream& out, const schedule& s, std::string_view name = {}) {
  out << "{\n  \"format\": \"stretto-schedule\",\n  \"version\": 1,\n";
  if (!name.empty()) out << "  \"name\": " << json_quote(name) << ",\n";
  out << "  \"ranks\": " << s.num_ranks() << ",\n  \"microbatches\": " << s.num_microbatches()
      << ",\n  \"chunks\": " << s.shape().num_chunks << ",\n  \"placement\": \"" << to_string(s.placement())
      << "\",\n  \"replicas\": [";
  for (std::int32_t j = 0; j < s.num_microbatches(); ++j) out << (j > 0 ? ", " : "") << s.replica_of(j);
  out << "],\n  \"ops\": [";
  const auto tokens = rank_tokens(s);
  for (std::size_t r = 0; r < tokens.size(); ++r) {
    out << (r > 0 ? ",\n    [" : "\n    [");
    for (std::size_t i = 0; i < tokens[r].size(); ++i) out << (i > 0 ? ", " : "") << '"' << tokens[r][i] << '"';
    out << ']';
  }
  out << "\n  ]\n}\n";
}

/** @brief `write_json` into a string. */
inline std::string to_json(const schedule& s, std::string_view name = {}) {
  std::ostringstream out;
  write_json(out, s, name);
  return out.str();
}

namespace detail {

/** @brief A parsed JSON value with where it started. */
struct json_value {
  enum class type : std::uint8_t { null, boolean, number, string, array, object };
  type kind{type::null};
  bool boolean{false};
  double number{0.0};
  std::string text;
  std::vector<json_value> items;  // array elements, or an object's values (in file order)
  std::vector<std::string> keys;  // an object's keys, one per entry of `items`
  std::size_t line{1};
  std::size_t column{1};
};

/** @brief A recursive-descent reader of RFC 8259 JSON (depth limited to 64). */
class json_reader {
 public:
  json_reader(std::string_view text, std::string_view source) : text_(text), source_(source) {}

  json_value read_document() {
    if (text_.starts_with("\xEF\xBB\xBF")) advance(3);
    skip_space();
    json_value v = read_value(0);
    skip_space();
    if (pos_ < text_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const { fail_at(source_, line_, column_, message); }

  void advance(std::size_t n = 1) {
    for (std::size_t k = 0; k < n && pos_ < text_.size(); ++k, ++pos_) {
      if (text_[pos_] == '\n') {
        ++line_;
        column_ = 1;
      } else {
        ++column_;
      }
    }
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      advance();
  }
  bool take(std::string_view word) {
    if (text_.substr(pos_).starts_with(word)) {
      advance(word.size());
      return true;
    }
    return false;
  }

  json_value read_value(int depth) {
    if (depth > 64) fail("nesting deeper than 64 levels");
    json_value v;
    v.line = line_;
    v.column = column_;
    if (pos_ >= text_.size()) fail("unexpected end of the file; expected a JSON value");
    const char c = text_[pos_];
    if (c == '{') {
      v.kind = json_value::type::object;
      advance();
      skip_space();
      if (take("}")) return v;
      while (true) {
        skip_space();
        if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected a key in double quotes");
        std::string key = read_string();
        skip_space();
        if (!take(":")) fail("expected ':' after the key \"" + key + "\"");
        skip_space();
        for (const std::string& seen : v.keys)
          if (seen == key) fail("the key \"" + key + "\" appears twice");
        json_value member = read_value(depth + 1);
        v.keys.push_back(std::move(key));
        v.items.push_back(std::move(member));
        skip_space();
        if (take("}")) return v;
        if (!take(",")) fail("expected ',' or '}' in an object");
      }
    }
    if (c == '[') {
      v.kind = json_value::type::array;
      advance();
      skip_space();
      if (take("]")) return v;
      while (true) {
        skip_space();
        v.items.push_back(read_value(depth + 1));
        skip_space();
        if (take("]")) return v;
        if (!take(",")) fail("expected ',' or ']' in an array");
      }
    }
    if (c == '"') {
      v.kind = json_value::type::string;
      v.text = read_string();
      return v;
    }
    if (take("true")) {
      v.kind = json_value::type::boolean;
      v.boolean = true;
      return v;
    }
    if (take("false")) {
      v.kind = json_value::type::boolean;
      return v;
    }
    if (take("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = json_value::type::number;
      std::size_t end = pos_;
      if (text_[end] == '-') ++end;
      const auto digits = [&] {
        const std::size_t from = end;
        while (end < text_.size() && text_[end] >= '0' && text_[end] <= '9') ++end;
        return end > from;
      };
      if (!digits()) fail("a number needs digits");
      if (end < text_.size() && text_[end] == '.') {
        ++end;
        if (!digits()) fail("a number needs digits after '.'");
      }
      if (end < text_.size() && (text_[end] == 'e' || text_[end] == 'E')) {
        ++end;
        if (end < text_.size() && (text_[end] == '+' || text_[end] == '-')) ++end;
        if (!digits()) fail("a number needs digits in its exponent");
      }
      const std::string literal(text_.substr(pos_, end - pos_));
      v.number = std::strtod(literal.c_str(), nullptr);
      advance(end - pos_);
      return v;
    }
    fail(std::string("unexpected character '") + c + "'; expected a JSON value (object, array, string, number, true, false or null)");
  }

  std::string read_string() {
    advance();  // the opening quote
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) fail("a string has no closing quote");
      const char c = text_[pos_];
      if (c == '"') {
        advance();
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("a control character inside a string (escape it)");
      if (c != '\\') {
        out += c;
        advance();
        continue;
      }
      advance();
      if (pos_ >= text_.size()) fail("a string ends inside an escape");
      const char e = text_[pos_];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned code = 0;
          for (int k = 1; k <= 4; ++k) {
            const char h = pos_ + static_cast<std::size_t>(k) < text_.size() ? text_[pos_ + static_cast<std::size_t>(k)] : '\0';
            unsigned digit = 0;
            if (h >= '0' && h <= '9') digit = static_cast<unsigned>(h - '0');
            else if (h >= 'a' && h <= 'f') digit = static_cast<unsigned>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') digit = static_cast<unsigned>(h - 'A' + 10);
            else fail("\\u needs four hexadecimal digits");
            code = code * 16 + digit;
          }
          advance(4);
          // Schedule files are ASCII; other characters are kept as UTF-8 (surrogates as given).
          if (code < 0x80) {
            out += static_cast<char>(code);
          } else if (code < 0x800) {
            out += static_cast<char>(0xC0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
          }
          break;
        }
        default: fail(std::string("unknown escape '\\") + e + "' in a string");
      }
      advance();
    }
  }

  std::string_view text_;
  std::string_view source_;
  std::size_t pos_{0};
  std::size_t line_{1};
  std::size_t column_{1};
};

inline std::int64_t json_count(const json_value& v, std::string_view key, std::string_view source) {
  if (v.kind != json_value::type::number || !(v.number >= 0.0) || v.number > 1e9 || std::floor(v.number) != v.number)
    fail_at(source, v.line, v.column, std::string(key) + " must be a whole number >= 0");
  return static_cast<std::int64_t>(v.number);
}

}  // namespace detail

/**
@brief Reads a schedule from the JSON schema above and validates it (`build_schedule`).
@param source the file name used in messages.
@param options a forced placement (`--placement`) overrides the file's.
@throws format_error for a syntax error or a schema violation (line, column), or a broken
schedule rule (rank, op, line, column).
*/
inline schedule read_json(std::string_view text, std::string_view source = "", import_options options = {}) {
  using detail::json_value;
  const json_value doc = detail::json_reader(text, source).read_document();
  if (doc.kind != json_value::type::object)
    detail::fail_at(source, doc.line, doc.column, "a schedule file is one JSON object with the key \"ops\"");
  const json_value* ops = nullptr;
  std::optional<std::int64_t> ranks, microbatches, chunks;
  const json_value* ranks_at = nullptr;
  for (std::size_t k = 0; k < doc.keys.size(); ++k) {
    const std::string& key = doc.keys[k];
    const json_value& v = doc.items[k];
    if (key == "ops") {
      ops = &v;
    } else if (key == "format") {
      if (v.kind != json_value::type::string || v.text != "stretto-schedule")
        detail::fail_at(source, v.line, v.column, "format must be \"stretto-schedule\"");
    } else if (key == "version") {
      if (detail::json_count(v, key, source) != 1)
        detail::fail_at(source, v.line, v.column, "version must be 1 (the only version this reader knows)");
    } else if (key == "name") {
      if (v.kind != json_value::type::string) detail::fail_at(source, v.line, v.column, "name must be a string");
    } else if (key == "ranks") {
      ranks = detail::json_count(v, key, source);
      ranks_at = &v;
    } else if (key == "microbatches") {
      microbatches = detail::json_count(v, key, source);
    } else if (key == "chunks") {
      chunks = detail::json_count(v, key, source);
    } else if (key == "placement") {
      if (options.placement) continue;  // forced by the caller
      if (v.kind == json_value::type::string && v.text == "linear") options.placement = placement_kind::linear;
      else if (v.kind == json_value::type::string && v.text == "looped") options.placement = placement_kind::looped;
      else if (v.kind == json_value::type::string && v.text == "v-shape") options.placement = placement_kind::v_shape;
      else detail::fail_at(source, v.line, v.column, "placement must be \"linear\", \"looped\" or \"v-shape\"");
    } else if (key == "replicas") {
      if (v.kind != json_value::type::array)
        detail::fail_at(source, v.line, v.column, "replicas must be an array of 0 or 1, one per microbatch");
      if (static_cast<std::int64_t>(v.items.size()) > max_file_index)
        detail::fail_at(source, v.line, v.column, "replicas has too many entries");
      std::vector<std::int32_t> replicas;
      for (const json_value& item : v.items) {
        const std::int64_t replica = detail::json_count(item, "a replica", source);
        if (replica > 1) detail::fail_at(source, item.line, item.column, "a replica must be 0 or 1");
        replicas.push_back(static_cast<std::int32_t>(replica));
      }
      options.replicas = std::move(replicas);
    } else if (!key.starts_with("x-")) {
      detail::fail_at(source, v.line, v.column,
                      "unknown key \"" + key + "\"; valid keys are format, version, name, ranks, microbatches, chunks, "
                      "placement, replicas, ops (and x-... for your own data)");
    }
  }
  if (ops == nullptr) detail::fail_at(source, doc.line, doc.column, "the key \"ops\" (one list of op tokens per rank) is missing");
  if (ops->kind != json_value::type::array)
    detail::fail_at(source, ops->line, ops->column, "ops must be an array of arrays of op tokens, one per rank");
  std::vector<std::vector<located_op>> lists;
  for (const json_value& rank : ops->items) {
    if (rank.kind != json_value::type::array)
      detail::fail_at(source, rank.line, rank.column, "each entry of ops is one rank's array of op tokens, e.g. [\"0F0\", \"0I0\"]");
    auto& list = lists.emplace_back();
    for (const json_value& token : rank.items) {
      if (token.kind != json_value::type::string)
        detail::fail_at(source, token.line, token.column, "an op is a string token such as \"0F0\"");
      if (token.text.empty()) detail::fail_at(source, token.line, token.column, "an empty op token; JSON lists have no idle cells");
      parse_token(token.text, list, source, token.line, token.column + 1);
    }
  }
  const schedule s = build_schedule(lists, options, source);
  const auto mismatch = [&](std::string_view key, std::int64_t given, std::int64_t found) {
    detail::fail_at(source, ranks_at != nullptr ? ranks_at->line : doc.line, 0,
                    std::string(key) + " is " + std::to_string(given) + " but the ops describe " + std::to_string(found));
  };
  if (ranks && *ranks != s.num_ranks()) mismatch("ranks", *ranks, s.num_ranks());
  if (microbatches && *microbatches != s.num_microbatches()) mismatch("microbatches", *microbatches, s.num_microbatches());
  if (chunks && *chunks != s.shape().num_chunks) mismatch("chunks", *chunks, s.shape().num_chunks);
  return s;
}

}  // namespace stretto::io
