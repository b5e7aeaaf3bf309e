#pragma once
/**
@file
@brief Pipeline checkpoints on disk: one file per pipeline rank with the tensors of the stages
that rank holds (weights, optimizer state), and a text manifest with the pipeline's layout, the
training counters, every stage's tensor names, types and shapes, and each rank file's size and
CRC-32. The format and its checks only; `stretto::training` (`training/checkpoint.hpp`) saves and
resumes a running pipeline with it over MPI. docs/checkpoints.md describes the format.

**Directory.** A checkpoint directory `DIR` holds one folder per saved checkpoint and a file
`DIR/latest` naming the newest complete one:

@code{.txt}
DIR/latest                     "step-000000000468\n"
DIR/step-000000000468/manifest
DIR/step-000000000468/rank-00000.bin   (pipeline rank 0's stages)
DIR/step-000000000468/rank-00001.bin
@endcode

**Rank file** (`rank-RRRRR.bin`): a text header, then the tensors' bytes back to back in the
header's order, in the machine's byte order (recorded, and refused on a machine of the other):

@code{.txt}
stretto-checkpoint-rank 1
byte-order little
pipeline-rank 1
stage 1 tensors 2
tensor layer1.weight f64 64x128
tensor layer1.weight_velocity f64 64x128
payload 131072
<131072 bytes>
@endcode

**Atomic writes.** Every file is written to `NAME.tmp`, flushed to the disk (`fsync` where POSIX
has it) and renamed over `NAME`; `DIR/latest` is rewritten last. A job killed while saving leaves
`DIR/latest` naming the previous complete checkpoint.

**Errors.** `checkpoint_error`, naming the file, the rule broken and what differs (e.g.
"checkpoint DIR/step-…/manifest has p = 4 pipeline ranks, this run has p = 2").
*/

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define STRETTO_CHECKPOINT_FSYNC 1
#endif

#include "../core/errors.hpp"
#include "../core/schedule.hpp"
#include "../core/shape.hpp"
#include "../detail/text.hpp"

namespace stretto::io {

/**
@brief A checkpoint that cannot be written or read, or that does not fit this run: the message
names the file, the rule and what differs.
*/
class checkpoint_error : public std::runtime_error {
 public:
  explicit checkpoint_error(const std::string& what) : std::runtime_error(what) {}
};

// ---- CRC-32 ---------------------------------------------------------------------------------

namespace detail {
inline constexpr auto crc32_table = [] {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t n = 0; n < 256; ++n) {
    std::uint32_t c = n;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[n] = c;
  }
  return table;
}();
}  // namespace detail

/**
@brief CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, the checksum of zlib's `crc32`, gzip
and PNG) of `data`, continuing from `crc` (0 to start): `crc32(crc32(0, a), b) == crc32(0, a + b)`.
`crc32(0, "123456789") == 0xCBF43926`.
*/
inline std::uint32_t crc32(std::uint32_t crc, std::span<const std::byte> data) noexcept {
  crc = ~crc;
  for (const std::byte b : data) crc = detail::crc32_table[(crc ^ static_cast<std::uint32_t>(b)) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}
/** @brief CRC-32 of the bytes of `text` (see the other overload). */
inline std::uint32_t crc32(std::uint32_t crc, std::string_view text) noexcept {
  return crc32(crc, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

// ---- tensors --------------------------------------------------------------------------------

/** @brief The element type of a saved tensor. */
enum class tensor_type : std::uint8_t { f32, f64, i32, i64, u8, u64 };

/** @brief "f32", "f64", "i32", "i64", "u8", "u64". */
constexpr std::string_view to_string(tensor_type t) noexcept {
  switch (t) {
    case tensor_type::f32: return "f32";
    case tensor_type::f64: return "f64";
    case tensor_type::i32: return "i32";
    case tensor_type::i64: return "i64";
    case tensor_type::u8: return "u8";
    case tensor_type::u64: return "u64";
  }
  return "?";
}
/** @brief Bytes per element. */
constexpr std::size_t size_of(tensor_type t) noexcept {
  switch (t) {
    case tensor_type::f32:
    case tensor_type::i32: return 4;
    case tensor_type::f64:
    case tensor_type::i64:
    case tensor_type::u64: return 8;
    case tensor_type::u8: return 1;
  }
  return 0;
}
/** @brief The `tensor_type` of the C++ type `T` (float, double, int32, int64, uint8, uint64). */
template <class T>
constexpr tensor_type tensor_type_of() noexcept {
  using U = std::remove_cv_t<T>;
  static_assert(std::is_same_v<U, float> || std::is_same_v<U, double> || std::is_same_v<U, std::int32_t> ||
                    std::is_same_v<U, std::int64_t> || std::is_same_v<U, std::uint8_t> ||
                    std::is_same_v<U, std::uint64_t>,
                "stretto::io: a checkpoint tensor holds float, double, std::int32_t, std::int64_t, std::uint8_t or "
                "std::uint64_t");
  if constexpr (std::is_same_v<U, float>) return tensor_type::f32;
  else if constexpr (std::is_same_v<U, double>) return tensor_type::f64;
  else if constexpr (std::is_same_v<U, std::int32_t>) return tensor_type::i32;
  else if constexpr (std::is_same_v<U, std::int64_t>) return tensor_type::i64;
  else if constexpr (std::is_same_v<U, std::uint8_t>) return tensor_type::u8;
  else return tensor_type::u64;
}

/** @brief A tensor's name, element type and shape: what a checkpoint and a model must agree on. */
struct tensor_spec {
  std::string name;                 ///< unique within its stage; no white space
  tensor_type type{tensor_type::f64};
  std::vector<std::int64_t> shape;  ///< at least one dimension, each ≥ 0
  std::uint64_t elements() const noexcept {
    std::uint64_t n = 1;
    for (const auto d : shape) n *= static_cast<std::uint64_t>(d);
    return n;
  }
  std::uint64_t bytes() const noexcept { return elements() * size_of(type); }
  friend bool operator==(const tensor_spec&, const tensor_spec&) = default;
};

/** @brief "512x784". */
inline std::string shape_text(std::span<const std::int64_t> shape) {
  std::string out;
  for (std::size_t k = 0; k < shape.size(); ++k) out += stretto::detail::cat(k == 0 ? "" : "x", shape[k]);
  return out;
}
/** @brief "layer0.weight f64 512x784". */
inline std::string to_string(const tensor_spec& t) {
  return stretto::detail::cat(t.name, " ", to_string(t.type), " ", shape_text(t.shape));
}

/**
@brief One tensor of a stage's state as the model exposes it: its spec and its host memory, which
a save reads and a resume overwrites in place.
*/
class tensor_ref {
 public:
  /** @brief A vector: shape `{data.size()}`. */
  template <class T>
  tensor_ref(std::string name, std::span<T> data)
      : tensor_ref(std::move(name), data, {static_cast<std::int64_t>(data.size())}) {}
  /**
  @brief A tensor of `shape` (row-major) over `data`.
  @throws argument_error if the name is empty or holds white space, or the shape's product is
  not `data.size()`.
  */
  template <class T>
  tensor_ref(std::string name, std::span<T> data, std::vector<std::int64_t> shape)
      : spec_{std::move(name), tensor_type_of<T>(), std::move(shape)},
        bytes_(reinterpret_cast<std::byte*>(data.data()), data.size_bytes()) {
    static_assert(!std::is_const_v<T>, "stretto::io::tensor_ref: a resume writes the tensor, so its elements "
                                       "cannot be const");
    check_name(spec_.name);
    bool valid = !spec_.shape.empty();
    for (const auto d : spec_.shape) valid = valid && d >= 0;
    if (!valid || spec_.elements() != data.size())
      throw argument_error(stretto::detail::cat("stretto::io::tensor_ref: tensor '", spec_.name, "' has ", data.size(),
                                                " elements but the shape ", shape_text(spec_.shape),
                                                " (at least one dimension, none negative) holds ", spec_.elements(),
                                                "; give a shape whose product is the number of elements"));
  }
  const tensor_spec& spec() const noexcept { return spec_; }
  std::span<std::byte> bytes() const noexcept { return bytes_; }

  /** @brief Whether `name` is non-empty and has no white space or control character. */
  static bool is_name(std::string_view name) noexcept {
    bool valid = !name.empty();
    for (const char c : name) valid = valid && static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
    return valid;
  }

  /** @throws argument_error unless `name` is non-empty and has no white space or control character. */
  static void check_name(std::string_view name) {
    if (!is_name(name))
      throw argument_error(stretto::detail::cat("stretto::io: a checkpoint tensor name must be non-empty without spaces "
                                                "or control characters (got '", name, "'); e.g. layer3.weight"));
  }

 private:
  tensor_spec spec_;
  std::span<std::byte> bytes_;
};

/** @brief The tensors of one stage, in the order the model lists them. */
struct stage_tensors {
  std::int32_t stage{0};
  std::vector<tensor_ref> tensors;
};

// ---- layout, counters, manifest -------------------------------------------------------------

/**
@brief What a checkpoint and the run that resumes it must agree on: the model, the schedule and
its shape, the placement of stages onto pipeline ranks, the data-parallel size.
*/
struct checkpoint_layout {
  std::string model;      ///< the model's fingerprint (e.g. "784-512-10 f64"); one line, compared as text
  std::string schedule;   ///< the schedule's name (e.g. "1f1b"); one word
  placement_kind placement{placement_kind::linear};
  pipeline_shape shape{};       ///< p pipeline ranks, m microbatches, v chunks per rank
  std::int32_t replicas{1};     ///< 2 for bidirectional schedules (Chimera, BitPipe)
  std::int32_t data_parallel{1};
  std::vector<std::vector<std::int32_t>> rank_stages;  ///< [pipeline rank]: the stages it holds, increasing

  /** @brief The layout of a run of `plan` named `schedule_name` with `data_parallel` copies. */
  static checkpoint_layout of(const stretto::schedule& plan, std::string schedule_name, std::string model_fingerprint,
                              std::int32_t data_parallel) {
    checkpoint_layout l;
    l.model = std::move(model_fingerprint);
    l.schedule = std::move(schedule_name);
    l.placement = plan.placement();
    l.shape = plan.shape();
    l.replicas = plan.num_replicas();
    l.data_parallel = data_parallel;
    for (std::int32_t r = 0; r < plan.num_ranks(); ++r) l.rank_stages.push_back(plan.stages_on_rank(r));
    return l;
  }
  friend bool operator==(const checkpoint_layout&, const checkpoint_layout&) = default;
};

/**
@brief The counters that continue across a resume: completed epochs, optimizer steps taken, and any
named values (one line of text each, e.g. an RNG's state) the training loop needs to continue exactly.
*/
struct training_counters {
  std::int64_t epoch{0};  ///< completed epochs
  std::int64_t step{0};   ///< optimizer steps taken (over all epochs)
  std::map<std::string, std::string> values;  ///< name (no white space) → one line of text
  friend bool operator==(const training_counters&, const training_counters&) = default;
};

/** @brief A rank file as the manifest records it. */
struct file_entry {
  std::string name;  ///< relative to the checkpoint's folder
  std::uint64_t bytes{0};
  std::uint32_t crc32{0};
  friend bool operator==(const file_entry&, const file_entry&) = default;
};

/** @brief Everything the manifest holds. */
struct checkpoint_manifest {
  checkpoint_layout layout;
  training_counters counters;
  std::vector<std::vector<tensor_spec>> stage_tensors;  ///< [stage]
  std::vector<file_entry> files;                        ///< [pipeline rank]
  friend bool operator==(const checkpoint_manifest&, const checkpoint_manifest&) = default;
};

inline constexpr int checkpoint_version = 1;  ///< the format version this header writes and reads

namespace detail {
inline std::string hex32(std::uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "%08x", v);
  return text;
}
inline std::string stage_list(std::span<const std::int32_t> stages) {
  std::string out;
  for (std::size_t k = 0; k < stages.size(); ++k) out += stretto::detail::cat(k == 0 ? "" : ",", stages[k]);
  return out.empty() ? "-" : out;
}
inline void check_line(std::string_view what, std::string_view text) {
  if (text.find_first_of("\r\n") != std::string_view::npos || text.empty())
    throw argument_error(stretto::detail::cat("stretto::io: the checkpoint's ", what,
                                              " must be one non-empty line of text (got '", text, "')"));
}
inline std::vector<std::string> words(std::string_view line) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < line.size()) {
    while (at < line.size() && line[at] == ' ') ++at;
    const std::size_t end = std::min(line.find(' ', at), line.size());
    if (end > at) out.emplace_back(line.substr(at, end - at));
    at = end;
  }
  return out;
}
// A parse failure of `file`, line `line`.
[[noreturn]] inline void malformed(std::string_view file, std::size_t line, std::string_view what) {
  throw checkpoint_error(stretto::detail::cat("checkpoint ", file, ":", line, ": ", what,
                                              " (the file is damaged or not a Stretto checkpoint)"));
}
inline std::int64_t integer(std::string_view text, std::string_view file, std::size_t line, std::string_view what) {
  std::int64_t v = 0;
  bool negative = false;
  std::size_t k = 0;
  if (!text.empty() && text[0] == '-') negative = true, k = 1;
  if (k == text.size() || text.size() - k > 18) malformed(file, line, stretto::detail::cat(what, " '", text, "' is not an integer"));
  for (; k < text.size(); ++k) {
    if (text[k] < '0' || text[k] > '9') malformed(file, line, stretto::detail::cat(what, " '", text, "' is not an integer"));
    v = v * 10 + (text[k] - '0');
  }
  return negative ? -v : v;
}
inline tensor_type type_named(std::string_view text, std::string_view file, std::size_t line) {
  for (const auto t : {tensor_type::f32, tensor_type::f64, tensor_type::i32, tensor_type::i64, tensor_type::u8,
                       tensor_type::u64})
    if (to_string(t) == text) return t;
  malformed(file, line, stretto::detail::cat("unknown element type '", text, "' (f32, f64, i32, i64, u8, u64)"));
}
inline std::vector<std::int64_t> shape_named(std::string_view text, std::string_view file, std::size_t line) {
  std::vector<std::int64_t> shape;
  std::size_t at = 0;
  for (;;) {
    const std::size_t end = std::min(text.find('x', at), text.size());
    const std::int64_t d = integer(text.substr(at, end - at), file, line, "a dimension");
    if (d < 0) malformed(file, line, "a negative dimension");
    shape.push_back(d);
    if (end == text.size()) return shape;
    at = end + 1;
  }
}
inline std::vector<std::int32_t> stages_named(std::string_view text, std::string_view file, std::size_t line) {
  std::vector<std::int32_t> out;
  if (text == "-") return out;
  std::size_t at = 0;
  for (;;) {
    const std::size_t end = std::min(text.find(',', at), text.size());
    out.push_back(static_cast<std::int32_t>(integer(text.substr(at, end - at), file, line, "a stage")));
    if (end == text.size()) return out;
    at = end + 1;
  }
}
inline placement_kind placement_named(std::string_view text, std::string_view file, std::size_t line) {
  for (const auto p : {placement_kind::linear, placement_kind::looped, placement_kind::v_shape})
    if (to_string(p) == text) return p;
  malformed(file, line, stretto::detail::cat("unknown placement '", text, "' (linear, looped, v-shape)"));
}
inline std::string_view byte_order_name() noexcept { return std::endian::native == std::endian::little ? "little" : "big"; }
}  // namespace detail

/**
@brief The manifest as text (docs/checkpoints.md): one `key values…` line per field, the format's
name and version first.
@throws argument_error if the model fingerprint or a value is not one line, or a name has white space.
*/
inline std::string manifest_text(const checkpoint_manifest& m) {
  const checkpoint_layout& l = m.layout;
  detail::check_line("model fingerprint", l.model);
  if (l.schedule.empty() || l.schedule.find_first_of(" \t\r\n") != std::string::npos)
    throw argument_error(stretto::detail::cat("stretto::io: the checkpoint's schedule name must be one word (got '",
                                              l.schedule, "')"));
  std::string out = stretto::detail::cat("stretto-checkpoint ", checkpoint_version, "\n");
  out += "model " + l.model + "\n";
  out += "schedule " + l.schedule + "\n";
  out += stretto::detail::cat("placement ", to_string(l.placement), "\n");
  out += stretto::detail::cat("pipeline-ranks ", l.shape.num_ranks, "\n");
  out += stretto::detail::cat("microbatches ", l.shape.num_microbatches, "\n");
  out += stretto::detail::cat("chunks ", l.shape.num_chunks, "\n");
  out += stretto::detail::cat("replicas ", l.replicas, "\n");
  out += stretto::detail::cat("data-parallel ", l.data_parallel, "\n");
  for (std::size_t r = 0; r < l.rank_stages.size(); ++r)
    out += stretto::detail::cat("rank-stages ", r, " ", detail::stage_list(l.rank_stages[r]), "\n");
  out += stretto::detail::cat("epoch ", m.counters.epoch, "\n");
  out += stretto::detail::cat("step ", m.counters.step, "\n");
  for (const auto& [name, value] : m.counters.values) {
    tensor_ref::check_name(name);
    detail::check_line(stretto::detail::cat("value '", name, "'"), value);
    out += "value " + name + " " + value + "\n";
  }
  for (std::size_t s = 0; s < m.stage_tensors.size(); ++s)
    for (const tensor_spec& t : m.stage_tensors[s]) out += stretto::detail::cat("tensor ", s, " ", to_string(t), "\n");
  for (std::size_t r = 0; r < m.files.size(); ++r)
    out += stretto::detail::cat("file ", r, " ", m.files[r].name, " ", m.files[r].bytes, " ", detail::hex32(m.files[r].crc32),
                                "\n");
  out += "end\n";
  return out;
}

/**
@brief Reads a manifest written by `manifest_text`; `file` names it in errors.
@throws checkpoint_error naming `file`, the line and what is wrong (an unknown format or version,
a malformed or missing line, a truncated file without its final `end`).
*/
inline checkpoint_manifest parse_manifest(std::string_view text, std::string_view file) {
  checkpoint_manifest m;
  std::size_t line_number = 0, at = 0;
  bool ended = false, has_version = false;
  int seen = 0;  // bit per required key
  const char* required[] = {"model", "schedule", "placement", "pipeline-ranks", "microbatches", "chunks", "replicas",
                            "data-parallel", "epoch", "step"};
  while (at < text.size()) {
    const std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) detail::malformed(file, line_number + 1, "the last line has no end of line (truncated?)");
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    ++line_number;
    if (ended) detail::malformed(file, line_number, "text after the final 'end'");
    // Only what `manifest_text` writes is read: no carriage return or other line break inside a line.
    if (line.find('\r') != std::string_view::npos) detail::malformed(file, line_number, "a carriage return in a line");
    const std::vector<std::string> w = detail::words(line);
    if (w.empty()) detail::malformed(file, line_number, "an empty line");
    const auto name = [&](std::size_t k, std::string_view what) -> const std::string& {
      if (!tensor_ref::is_name(w[k]))
        detail::malformed(file, line_number, stretto::detail::cat("a ", what, " with a space or control character"));
      return w[k];
    };
    const std::string& key = w[0];
    const auto need = [&](std::size_t n) {
      if (w.size() != n) detail::malformed(file, line_number, stretto::detail::cat("'", key, "' takes ", n - 1, " values"));
    };
    const auto number = [&](std::size_t k) { return detail::integer(w[k], file, line_number, key); };
    const auto count = [&](std::int64_t most) {  // a size of the layout, 1 ≤ value ≤ most
      const std::int64_t v = number(1);
      if (v < 1 || v > most) detail::malformed(file, line_number, stretto::detail::cat("'", key, "' out of range [1, ", most, "]"));
      return static_cast<std::int32_t>(v);
    };
    if (line_number == 1) {
      if (key != "stretto-checkpoint" || w.size() != 2)
        detail::malformed(file, 1, "the first line is not 'stretto-checkpoint VERSION'");
      if (number(1) != checkpoint_version)
        throw checkpoint_error(stretto::detail::cat("checkpoint ", file, " has format version ", w[1],
                                                    "; this build reads version ", checkpoint_version));
      has_version = true;
      continue;
    }
    for (int k = 0; k < 10; ++k)
      if (key == required[k]) seen |= 1 << k;
    if (key == "model") {
      if (line.rfind("model ", 0) != 0 || line.size() == 6) detail::malformed(file, line_number, "'model' takes a fingerprint");
      m.layout.model = std::string(line.substr(6));
    } else if (key == "schedule") need(2), m.layout.schedule = name(1, "schedule name");
    else if (key == "placement") need(2), m.layout.placement = detail::placement_named(w[1], file, line_number);
    else if (key == "pipeline-ranks") need(2), m.layout.shape.num_ranks = count(1 << 16);
    else if (key == "microbatches") need(2), m.layout.shape.num_microbatches = count(1 << 24);
    else if (key == "chunks") need(2), m.layout.shape.num_chunks = count(1 << 10);
    else if (key == "replicas") need(2), m.layout.replicas = count(2);
    else if (key == "data-parallel") need(2), m.layout.data_parallel = count(1 << 24);
    else if (key == "epoch") need(2), m.counters.epoch = number(1);
    else if (key == "step") need(2), m.counters.step = number(1);
    else if (key == "rank-stages") {
      need(3);
      if (number(1) != static_cast<std::int64_t>(m.layout.rank_stages.size()))
        detail::malformed(file, line_number, "rank-stages out of order");
      m.layout.rank_stages.push_back(detail::stages_named(w[2], file, line_number));
    } else if (key == "value") {
      const std::string prefix = "value " + (w.size() > 1 ? w[1] : std::string()) + " ";
      if (w.size() < 3 || line.rfind(prefix, 0) != 0)
        detail::malformed(file, line_number, "'value' takes a name and a value");
      m.counters.values[name(1, "value name")] = std::string(line.substr(prefix.size()));
    } else if (key == "tensor") {
      need(5);
      const std::int64_t s = number(1);
      if (s < 0 || s > 1 << 20) detail::malformed(file, line_number, "a tensor's stage out of range");
      if (m.stage_tensors.size() <= static_cast<std::size_t>(s)) m.stage_tensors.resize(static_cast<std::size_t>(s) + 1);
      m.stage_tensors[static_cast<std::size_t>(s)].push_back(
          {name(2, "tensor name"), detail::type_named(w[3], file, line_number), detail::shape_named(w[4], file, line_number)});
    } else if (key == "file") {
      need(5);
      if (number(1) != static_cast<std::int64_t>(m.files.size())) detail::malformed(file, line_number, "files out of order");
      const std::int64_t bytes = number(3);
      char* stop = nullptr;
      const unsigned long crc = std::strtoul(w[4].c_str(), &stop, 16);
      if (bytes < 0 || w[4].size() != 8 || *stop != '\0') detail::malformed(file, line_number, "a malformed file size or CRC");
      m.files.push_back({name(2, "file name"), static_cast<std::uint64_t>(bytes), static_cast<std::uint32_t>(crc)});
    } else if (key == "end") {
      need(1);
      ended = true;
    } else {
      detail::malformed(file, line_number, stretto::detail::cat("unknown key '", key, "'"));
    }
  }
  if (!has_version) detail::malformed(file, 1, "empty file");
  if (!ended) detail::malformed(file, line_number, "no final 'end' line (the file is truncated)");
  for (int k = 0; k < 10; ++k)
    if (!(seen & (1 << k))) detail::malformed(file, line_number, stretto::detail::cat("the key '", required[k], "' is missing"));
  if (m.files.size() != m.layout.rank_stages.size() ||
      m.layout.rank_stages.size() != static_cast<std::size_t>(std::max(m.layout.shape.num_ranks, 0)))
    detail::malformed(file, line_number, "the numbers of rank-stages and file lines differ from pipeline-ranks");
  const auto stages = static_cast<std::size_t>(std::max(m.layout.shape.num_stages(), 0));
  if (m.stage_tensors.size() > stages) detail::malformed(file, line_number, "a tensor of a stage beyond the last");
  m.stage_tensors.resize(stages);  // stages without tensors
  return m;
}

/**
@brief The differences between the layout a checkpoint was saved with (`saved`) and this run's
(`run`), one phrase each ("checkpoint has p = 4 pipeline ranks, this run has p = 2"); empty when
they fit. A different data-parallel size is a difference unless `allow_data_parallel_change`
(every copy holds the same weights, so the files fit any size; only the order of the gradient
sums, hence the last bits, change).
*/
inline std::vector<std::string> layout_differences(const checkpoint_layout& saved, const checkpoint_layout& run,
                                                   bool allow_data_parallel_change = false) {
  std::vector<std::string> out;
  using stretto::detail::cat;
  if (saved.model != run.model) out.push_back(cat("checkpoint has model '", saved.model, "', this run has '", run.model, "'"));
  if (saved.shape.num_ranks != run.shape.num_ranks)
    out.push_back(cat("checkpoint has p = ", saved.shape.num_ranks, " pipeline ranks, this run has p = ", run.shape.num_ranks));
  if (saved.shape.num_chunks != run.shape.num_chunks)
    out.push_back(cat("checkpoint has v = ", saved.shape.num_chunks, " chunks per rank, this run has v = ",
                      run.shape.num_chunks));
  if (saved.shape.num_microbatches != run.shape.num_microbatches)
    out.push_back(cat("checkpoint has m = ", saved.shape.num_microbatches, " microbatches, this run has m = ",
                      run.shape.num_microbatches));
  if (saved.schedule != run.schedule)
    out.push_back(cat("checkpoint has schedule '", saved.schedule, "', this run has '", run.schedule, "'"));
  if (saved.placement != run.placement)
    out.push_back(cat("checkpoint has placement ", to_string(saved.placement), ", this run has ", to_string(run.placement)));
  if (saved.replicas != run.replicas)
    out.push_back(cat("checkpoint has ", saved.replicas, " model replicas, this run has ", run.replicas));
  if (saved.rank_stages != run.rank_stages)
    for (std::size_t r = 0; r < std::min(saved.rank_stages.size(), run.rank_stages.size()); ++r)
      if (saved.rank_stages[r] != run.rank_stages[r]) {
        out.push_back(cat("checkpoint places stages ", detail::stage_list(saved.rank_stages[r]), " on pipeline rank ", r,
                          ", this run places ", detail::stage_list(run.rank_stages[r])));
        break;
      }
  if (!allow_data_parallel_change && saved.data_parallel != run.data_parallel)
    out.push_back(cat("checkpoint has data-parallel size ", saved.data_parallel, ", this run has ", run.data_parallel));
  return out;
}

/**
@brief The differences between stage `stage`'s tensors in a checkpoint (`saved`) and in this run's
model (`run`): a missing or extra tensor, another type or shape, another order. Empty when equal.
*/
inline std::vector<std::string> tensor_differences(std::int32_t stage, std::span<const tensor_spec> saved,
                                                   std::span<const tensor_spec> run) {
  std::vector<std::string> out;
  using stretto::detail::cat;
  for (const tensor_spec& t : run) {
    const auto it = std::find_if(saved.begin(), saved.end(), [&](const tensor_spec& o) { return o.name == t.name; });
    if (it == saved.end()) out.push_back(cat("stage ", stage, ": the model's tensor ", t.name, " is not in the checkpoint"));
    else if (it->type != t.type || it->shape != t.shape)
      out.push_back(cat("stage ", stage, ": tensor ", t.name, " is ", to_string(it->type), " ", shape_text(it->shape),
                        " in the checkpoint, ", to_string(t.type), " ", shape_text(t.shape), " in this run's model"));
  }
  for (const tensor_spec& t : saved)
    if (std::none_of(run.begin(), run.end(), [&](const tensor_spec& o) { return o.name == t.name; }))
      out.push_back(cat("stage ", stage, ": the checkpoint's tensor ", t.name, " is not in this run's model"));
  if (out.empty() && !std::equal(saved.begin(), saved.end(), run.begin(), run.end()))
    out.push_back(cat("stage ", stage, ": the model lists its tensors in another order than the checkpoint"));
  return out;
}

/** @brief "a; b; c". */
inline std::string join(std::span<const std::string> parts, std::string_view separator = "; ") {
  std::string out;
  for (std::size_t k = 0; k < parts.size(); ++k) out += (k == 0 ? "" : std::string(separator)) + parts[k];
  return out;
}

// ---- files ----------------------------------------------------------------------------------

/** @brief "rank-00003.bin": pipeline rank r's file. */
inline std::string rank_file_name(std::int32_t r) {
  char text[32];
  std::snprintf(text, sizeof text, "rank-%05d.bin", static_cast<int>(r));
  return text;
}
/** @brief "step-000000000468": the folder of the checkpoint taken after `step` optimizer steps. */
inline std::string checkpoint_folder_name(std::int64_t step) {
  char text[40];
  std::snprintf(text, sizeof text, "step-%012lld", static_cast<long long>(step));
  return text;
}

namespace detail {
// A file written to `path`.tmp, fsync'ed and renamed over `path`.
class atomic_file {
 public:
  explicit atomic_file(std::filesystem::path path) : path_(std::move(path)), temporary_(path_) {
    temporary_ += ".tmp";
    file_ = std::fopen(temporary_.string().c_str(), "wb");
    if (!file_) fail("cannot be created");
  }
  atomic_file(const atomic_file&) = delete;
  atomic_file& operator=(const atomic_file&) = delete;
  ~atomic_file() {
    if (file_) {
      std::fclose(file_);
      std::error_code ignored;
      std::filesystem::remove(temporary_, ignored);
    }
  }
  void write(std::span<const std::byte> data) {
    if (!data.empty() && std::fwrite(data.data(), 1, data.size(), file_) != data.size()) fail("cannot be written");
    crc_ = crc32(crc_, data);
    bytes_ += data.size();
  }
  void write(std::string_view text) { write(std::as_bytes(std::span<const char>(text.data(), text.size()))); }
  /// Flushes, syncs, closes and renames; returns the size and CRC of what was written.
  file_entry commit() {
    if (std::fflush(file_) != 0) fail("cannot be written");
#ifdef STRETTO_CHECKPOINT_FSYNC
    if (::fsync(::fileno(file_)) != 0) fail("cannot be synced to the disk");
#endif
    const int closed = std::fclose(file_);
    file_ = nullptr;
    if (closed != 0) fail("cannot be closed");
    std::error_code ec;
    std::filesystem::rename(temporary_, path_, ec);
    if (ec)
      throw checkpoint_error(stretto::detail::cat("checkpoint: cannot rename ", temporary_.string(), " to ", path_.string(),
                                                  ": ", ec.message()));
    return {path_.filename().string(), bytes_, crc_};
  }

 private:
  [[noreturn]] void fail(std::string_view what) {
    const std::string reason = std::strerror(errno);
    throw checkpoint_error(stretto::detail::cat("checkpoint: ", temporary_.string(), " ", what, ": ", reason));
  }
  std::filesystem::path path_, temporary_;
  std::FILE* file_{nullptr};
  std::uint32_t crc_{0};
  std::uint64_t bytes_{0};
};

inline std::string rank_header(std::int32_t pipeline_rank, std::span<const stage_tensors> stages) {
  std::string out = stretto::detail::cat("stretto-checkpoint-rank ", checkpoint_version, "\nbyte-order ",
                                         byte_order_name(), "\npipeline-rank ", pipeline_rank, "\n");
  std::uint64_t payload = 0;
  for (const stage_tensors& s : stages) {
    out += stretto::detail::cat("stage ", s.stage, " tensors ", s.tensors.size(), "\n");
    for (const tensor_ref& t : s.tensors) {
      out += "tensor " + to_string(t.spec()) + "\n";
      payload += t.spec().bytes();
    }
  }
  return out + stretto::detail::cat("payload ", payload, "\n");
}

struct reader {
  explicit reader(const std::filesystem::path& p) : path(p), file(std::fopen(p.string().c_str(), "rb")) {
    if (!file) throw checkpoint_error(stretto::detail::cat("checkpoint: cannot open ", p.string(), ": ", std::strerror(errno)));
  }
  reader(const reader&) = delete;
  reader& operator=(const reader&) = delete;
  ~reader() { std::fclose(file); }
  // Reads `out.size()` bytes or throws (a file shorter than its header says).
  void read(std::span<std::byte> out) {
    if (!out.empty() && std::fread(out.data(), 1, out.size(), file) != out.size())
      throw checkpoint_error(stretto::detail::cat("checkpoint ", path.string(), " ends before its ", read_so_far + out.size(),
                                                  "th byte (the file is truncated)"));
    read_so_far += out.size();
    crc = crc32(crc, out);
  }
  std::string line() {
    std::string out;
    for (;;) {
      std::byte b{};
      read(std::span<std::byte>(&b, 1));
      if (static_cast<char>(b) == '\n') return out;
      out.push_back(static_cast<char>(b));
      if (out.size() > 4096)
        throw checkpoint_error(stretto::detail::cat("checkpoint ", path.string(), ": a header line longer than 4096 bytes "
                                                    "(the file is damaged or not a Stretto rank file)"));
    }
  }
  std::filesystem::path path;
  std::FILE* file;
  std::uint32_t crc{0};
  std::uint64_t read_so_far{0};
};
}  // namespace detail

/**
@brief Writes pipeline rank `pipeline_rank`'s file at `path` (atomically: `path`.tmp, then
rename), the tensors of `stages` in order.
@return the entry the manifest records: the file's name, size and CRC-32.
@throws checkpoint_error naming the file when it cannot be written.
*/
inline file_entry write_rank_file(const std::filesystem::path& path, std::int32_t pipeline_rank,
                                  std::span<const stage_tensors> stages) {
  detail::atomic_file out(path);
  out.write(detail::rank_header(pipeline_rank, stages));
  for (const stage_tensors& s : stages)
    for (const tensor_ref& t : s.tensors) out.write(std::span<const std::byte>(t.bytes()));
  return out.commit();
}

/**
@brief Checks a rank file against the manifest's entry without reading it into a model: its size,
then its CRC-32.
@throws checkpoint_error naming the file: missing, truncated or longer ("has N bytes, the
manifest records M"), or corrupted ("CRC-32 … differs from the manifest's …").
*/
inline void verify_rank_file(const std::filesystem::path& path, const file_entry& expected) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw checkpoint_error(stretto::detail::cat("checkpoint file ", path.string(), " cannot be read: ", ec.message()));
  if (size != expected.bytes)
    throw checkpoint_error(stretto::detail::cat("checkpoint file ", path.string(), " has ", size,
                                                " bytes, the manifest records ", expected.bytes, " (the file is ",
                                                size < expected.bytes ? "truncated" : "longer than written", ")"));
  detail::reader in(path);
  std::vector<std::byte> chunk(1 << 20);
  for (std::uint64_t left = size; left > 0;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk.size()));
    in.read(std::span<std::byte>(chunk.data(), n));
    left -= n;
  }
  if (in.crc != expected.crc32)
    throw checkpoint_error(stretto::detail::cat("checkpoint file ", path.string(), " has CRC-32 ", detail::hex32(in.crc),
                                                ", the manifest records ", detail::hex32(expected.crc32),
                                                " (the file is corrupted)"));
}

/**
@brief Reads pipeline rank `pipeline_rank`'s file at `path` into the tensors of `stages` (their
memory is overwritten in place), checking its header against them (rank, stages, tensor names,
types and shapes, byte order) and its size and CRC-32 against `expected`.
Call `verify_rank_file` first when a failure must leave the model untouched: this function
finds a corrupted payload only at its end, after writing the tensors.
@throws checkpoint_error naming the file and what differs.
*/
inline void read_rank_file(const std::filesystem::path& path, const file_entry& expected, std::int32_t pipeline_rank,
                           std::span<const stage_tensors> stages) {
  detail::reader in(path);
  const std::string expected_header = detail::rank_header(pipeline_rank, stages);
  std::string header;
  for (;;) {
    const std::string line = in.line();
    header += line + "\n";
    if (header.size() == line.size() + 1 && line != stretto::detail::cat("stretto-checkpoint-rank ", checkpoint_version))
      throw checkpoint_error(stretto::detail::cat("checkpoint file ", path.string(), " does not start with "
                                                  "'stretto-checkpoint-rank ", checkpoint_version, "' (got '", line, "')"));
    if (line.rfind("byte-order ", 0) == 0 && line != stretto::detail::cat("byte-order ", detail::byte_order_name()))
      throw checkpoint_error(stretto::detail::cat("checkpoint file ", path.string(), " was written on a ", line.substr(11),
                                                  "-endian machine; this one is ", detail::byte_order_name(), "-endian"));
    if (line.rfind("payload ", 0) == 0) break;
  }
  if (header != expected_header)
    throw checkpoint_error(stretto::detail::cat("checkpoint file ", path.string(), " holds\n", header,
                                                "but this run's pipeline rank ", pipeline_rank, " expects\n",
                                                expected_header));
  for (const stage_tensors& s : stages)
    for (const tensor_ref& t : s.tensors) in.read(t.bytes());
  std::byte extra{};
  if (std::fread(&extra, 1, 1, in.file) == 1)
    throw checkpoint_error(stretto::detail::cat("checkpoint file ", path.string(), " is longer than its header says"));
  if (in.read_so_far != expected.bytes || in.crc != expected.crc32)
    throw checkpoint_error(stretto::detail::cat("checkpoint file ", path.string(), " has ", in.read_so_far, " bytes, CRC-32 ",
                                                detail::hex32(in.crc), "; the manifest records ", expected.bytes, " bytes, ",
                                                detail::hex32(expected.crc32), " (the file changed while being read)"));
}

/**
@brief Writes `text` to `path` atomically (`path`.tmp, fsync, rename).
@throws checkpoint_error naming the file.
*/
inline void write_text_file(const std::filesystem::path& path, std::string_view text) {
  detail::atomic_file out(path);
  out.write(text);
  out.commit();
}

/** @brief The whole of a text file. @throws checkpoint_error naming the file when it cannot be read. */
inline std::string read_text_file(const std::filesystem::path& path) {
  detail::reader in(path);
  std::string out;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, in.file)) > 0;) out.append(buffer, n);
  if (std::ferror(in.file))
    throw checkpoint_error(stretto::detail::cat("checkpoint: cannot read ", path.string(), ": ", std::strerror(errno)));
  return out;
}

/**
@brief The folder of the checkpoint to resume from `dir`: `dir` itself when it holds a
`manifest`, else the folder `dir/latest` names.
@throws checkpoint_error when `dir` holds neither, or `latest` names no folder with a manifest.
*/
inline std::filesystem::path resolve_checkpoint(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir / "manifest", ec)) return dir;
  if (!std::filesystem::exists(dir / "latest", ec))
    throw checkpoint_error(stretto::detail::cat("checkpoint directory ", dir.string(), " holds neither a manifest nor a "
                                                "'latest' file; give the directory a run saved into"));
  std::string name = read_text_file(dir / "latest");
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r' || name.back() == ' ')) name.pop_back();
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    throw checkpoint_error(stretto::detail::cat("checkpoint ", (dir / "latest").string(), " does not name a folder of ",
                                                dir.string(), " (got '", name, "')"));
  const std::filesystem::path folder = dir / name;
  if (!std::filesystem::exists(folder / "manifest", ec))
    throw checkpoint_error(stretto::detail::cat("checkpoint ", (dir / "latest").string(), " names ", folder.string(),
                                                ", which holds no manifest"));
  return folder;
}

}  // namespace stretto::io
