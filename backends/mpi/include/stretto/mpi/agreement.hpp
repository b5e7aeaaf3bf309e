#pragma once
/**
@file
@brief Agreement at start-up: every rank fingerprints what must be identical across ranks (the
schedule, the shape, the cost model, the model's dimensions, the data type, the seed, the
options), the ranks compare, and any difference ends the job at once, naming the ranks and the
fields that differ ("rank 1 disagrees with rank 0 on: microbatches (4 vs 8), seed (2 vs 1)").

Ranks started with different arguments otherwise run different schedules (and hang, or fail
minutes later with a timeout that names a message, not the cause) or the same schedule on
different data (and train to garbage with exit 0).

The caller lists its fields as (name, value) pairs, values as text. Each rank sends, per field,
a 64-bit hash of the whole value and its first 31 characters (for the message); two collectives
(bounded, `collectives.hpp`): one that checks that every rank lists the same field names, one
that exchanges the values.
*/

#include <mpi.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <stretto/detail/text.hpp>

#include "abort.hpp"
#include "collectives.hpp"

namespace stretto::mpi {

/** @brief One thing every rank must agree on: its name and its value as text. */
struct agreement_field {
  std::string name;
  std::string value;
};

/** @brief The 64-bit FNV-1a hash of `text` (stable across runs, builds and machines). */
constexpr std::uint64_t fingerprint(std::string_view text, std::uint64_t hash = 14695981039346656037ULL) noexcept {
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return hash;
}

/** @brief `fingerprint` as 16 hex digits, for a field whose value is too long to show. */
inline std::string fingerprint_text(std::string_view text) {
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(fingerprint(text)));
  return out;
}

/** @brief What one rank sends per field: the value's hash and its beginning. */
struct field_record {
  std::uint64_t hash{0};
  std::array<char, 32> shown{};  ///< the value's first 31 characters ("…" marks a cut), NUL-terminated
};

/** @brief A rank that differs from the reference rank (the lowest rank), and how. */
struct disagreement {
  int rank{0};
  int reference_rank{0};
  std::vector<std::string> fields;  ///< "name (this rank's value vs the reference's)"
  /// "rank R disagrees with rank Q on: a (x vs y), b (u vs v)"
  std::string text() const {
    std::string out = stretto::detail::cat("rank ", rank, " disagrees with rank ", reference_rank, " on: ");
    for (std::size_t i = 0; i < fields.size(); ++i) out += (i ? ", " : "") + fields[i];
    return out;
  }
};

/** @brief The record of one field's value. */
inline field_record record_of(std::string_view value) {
  field_record r;
  r.hash = fingerprint(value);
  if (value.size() < r.shown.size()) {
    std::copy(value.begin(), value.end(), r.shown.begin());
  } else {
    const std::string_view cut = "...";
    const std::size_t keep = r.shown.size() - 1 - cut.size();
    std::copy(value.begin(), value.begin() + static_cast<std::ptrdiff_t>(keep), r.shown.begin());
    std::copy(cut.begin(), cut.end(), r.shown.begin() + static_cast<std::ptrdiff_t>(keep));
  }
  return r;
}

/**
@brief Compares every rank's records (`records[rank * names.size() + field]`) with rank 0's;
returns one `disagreement` per rank that differs, in rank order (empty: all agree).
*/
inline std::vector<disagreement> compare_records(std::span<const std::string> names, std::span<const field_record> records) {
  std::vector<disagreement> out;
  const std::size_t n = names.size();
  if (n == 0) return out;
  const std::size_t ranks = records.size() / n;
  for (std::size_t r = 1; r < ranks; ++r) {
    disagreement d{static_cast<int>(r), 0, {}};
    for (std::size_t f = 0; f < n; ++f) {
      const field_record& mine = records[r * n + f];
      const field_record& reference = records[f];
      if (mine.hash == reference.hash) continue;
      d.fields.push_back(stretto::detail::cat(names[f], " (", mine.shown.data(), " vs ", reference.shown.data(), ")"));
    }
    if (!d.fields.empty()) out.push_back(std::move(d));
  }
  return out;
}

/**
@brief Collective over `comm`: exchanges every rank's `fields` and returns the ranks that differ
from rank 0 (identical on every rank; empty when all agree). Bounded by `o.timeout`.

Ranks that list different field names (different builds of the program) are reported as one
disagreement on the field "fields" (their counts and name hashes).
*/
inline std::vector<disagreement> compare_across_ranks(MPI_Comm comm, std::span<const agreement_field> fields,
                                                      const collective_options& o) {
  int size = 0;
  MPI_Comm_size(comm, &size);
  std::vector<std::string> names;
  std::string all_names;
  for (const auto& f : fields) {
    names.push_back(f.name);
    all_names += f.name + '\n';
  }
  // First the list of names: the records can only be compared field by field if it is the same.
  const field_record header = record_of(stretto::detail::cat(fields.size(), " fields #", fingerprint_text(all_names)));
  std::vector<field_record> headers(static_cast<std::size_t>(size));
  allgather(&header, sizeof header, MPI_BYTE, headers.data(), sizeof header, MPI_BYTE, comm, o,
            "start-up agreement: the list of fields");
  const std::string header_name[] = {"fields"};
  std::vector<disagreement> out = compare_records(header_name, headers);
  if (!out.empty()) return out;
  std::vector<field_record> mine;
  for (const auto& f : fields) mine.push_back(record_of(f.value));
  std::vector<field_record> records(mine.size() * static_cast<std::size_t>(size));
  const int bytes = static_cast<int>(mine.size() * sizeof(field_record));
  allgather(mine.data(), bytes, MPI_BYTE, records.data(), bytes, MPI_BYTE, comm, o, "start-up agreement: the values");
  return compare_records(names, records);
}

/**
@brief `compare_across_ranks`, and on any difference ends the job: rank 0 prints one line per
differing rank ("PROGRAM: rank 1 disagrees with rank 0 on: microbatches (4 vs 8), seed (2 vs 1)")
and calls `MPI_Abort(comm, code)`; the other ranks wait for that (at most 10 s, then abort
themselves). Returns normally only when every rank agrees.
*/
inline void require_agreement(MPI_Comm comm, std::span<const agreement_field> fields, const collective_options& o,
                              std::string_view program = {}, int code = 2) {
  const std::vector<disagreement> found = compare_across_ranks(comm, fields, o);
  if (found.empty()) return;
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    const std::string prefix = program.empty() ? std::string() : stretto::detail::cat(program, ": ");
    std::string text;
    for (std::size_t i = 0; i < found.size(); ++i) text += (i ? "\n" : "") + prefix + found[i].text();
    text += "; start every rank with the same arguments";
    detail::abort_with(comm, text, code);
  }
  std::this_thread::sleep_for(std::chrono::seconds(10));  // rank 0's abort ends this process first
  abort_job(comm, found.front().text(), program, code);
}

}  // namespace stretto::mpi
