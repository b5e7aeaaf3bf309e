#pragma once
/**
@file
@brief Saving and resuming a pipeline's training state over MPI: every rank's stage weights and
optimizer state, and the step and epoch counters, in the format of `stretto/io/checkpoint.hpp`
(one file per pipeline rank and a manifest; docs/checkpoints.md). Used by
`training::pipeline::save` and `resume`, and directly by loops that own their grid, schedule and
model (the Fashion-MNIST demo).

**Which ranks write.** Every data-parallel copy (and each replica of a bidirectional schedule)
holds the same weights after an optimizer step, so the ranks of copy 0 write: pipeline rank r's
file holds the stages `plan.stages_on_rank(r)`. On resume every rank reads its pipeline rank's file.

**Collective.** Both functions are collective over `grid.world()`, called between steps on every
rank. World rank 0 creates the folders and writes the manifest; every wait is bounded
(`mpi::collective_options`). A failure on any rank (a file that cannot be written, a checkpoint
that does not fit) is thrown as the same `io::checkpoint_error` on every rank, so a job ends
cleanly with one message.
*/

#include <mpi.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <stretto/core/schedule.hpp>
#include <stretto/detail/text.hpp>
#include <stretto/io/checkpoint.hpp>
#include <stretto/mpi/collectives.hpp>
#include <stretto/mpi/process_grid.hpp>

namespace stretto::training {

/**
@brief The optional model customisation that makes a model checkpointable:

| Valid expression | Meaning |
|---|---|
| `model.checkpoint_state(stage)` | a `std::vector<io::tensor_ref>`: every tensor that stage `stage`'s training needs to continue exactly (weights, biases, optimizer buffers such as momentum), each named (unique within the stage, no spaces), typed and shaped, over host memory the save reads and the resume overwrites in place |

It is called only for the stages this rank holds, between steps. The list (names, types, shapes,
order) must be the same on every run that saves or resumes the checkpoint: it is compared, and a
difference is refused naming the tensor. Gradients need not be listed: they are zero between steps.
*/
template <class M>
concept checkpointable_model = requires(M& model, std::int32_t stage) {
  { model.checkpoint_state(stage) } -> std::convertible_to<std::vector<io::tensor_ref>>;
};

/** @brief Options of `save_checkpoint` and `resume_checkpoint` (and the pipeline's `save` and `resume`). */
struct checkpoint_options {
  /// The schedule's name as recorded and compared (e.g. "1f1b"); empty: "ops-" and the CRC-32 of
  /// the schedule's op lists, so that another schedule of the same shape is still told apart.
  std::string schedule_name;
  /// The model's fingerprint, one line compared as text (e.g. the layer widths and the scalar
  /// type); empty: "unnamed" (the tensors' names, types and shapes are compared in any case).
  std::string model;
  /// Resume with another data-parallel size: every copy holds the same weights, so the files fit;
  /// only the order of the gradient sums changes, hence the last bits of the results.
  bool allow_data_parallel_change{false};
  /// After a save, keep this many checkpoints in the directory (the newest), removing older
  /// `step-*` folders; 0 keeps all.
  std::int32_t keep_last{0};
  /// Tensors of an optimizer that lives outside the model, per stage, saved after the model's
  /// (same rules as `checkpoint_state`); empty: none.
  std::function<std::vector<io::tensor_ref>(std::int32_t stage)> optimizer_state;
  mpi::collective_options collectives{};  ///< the bound of every wait (timeout, abort or throw)
};

namespace detail {

// The first non-empty `mine` over the ranks of `comm` (lowest rank first), on every rank; with
// `name_rank`, prefixed "rank R: ". Collective.
inline std::string first_error(MPI_Comm comm, const std::string& mine, bool name_rank, const mpi::collective_options& o,
                               std::string_view what) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int length = static_cast<int>(mine.size());
  std::vector<int> lengths(static_cast<std::size_t>(size));
  mpi::allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm, o, what);
  int from = -1;
  for (int r = 0; r < size && from < 0; ++r)
    if (lengths[static_cast<std::size_t>(r)] > 0) from = r;
  if (from < 0) return {};
  std::string text = rank == from ? mine : std::string(static_cast<std::size_t>(lengths[static_cast<std::size_t>(from)]), ' ');
  mpi::broadcast(text.data(), static_cast<int>(text.size()), MPI_CHAR, from, comm, o, what);
  return name_rank && size > 1 ? stretto::detail::cat("rank ", from, ": ", text) : text;
}

// Runs `f` and returns its checkpoint_error or argument_error's message (empty if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const io::checkpoint_error& e) {
    return e.what();
  } catch (const argument_error& e) {
    return e.what();
  } catch (const std::filesystem::filesystem_error& e) {
    return stretto::detail::cat("checkpoint: ", e.what());
  }
  return {};
}

// Throws the first error over the ranks as an io::checkpoint_error on every rank.
inline void raise_any(MPI_Comm comm, const std::string& mine, bool name_rank, const mpi::collective_options& o,
                      std::string_view what) {
  if (std::string e = first_error(comm, mine, name_rank, o, what); !e.empty()) throw io::checkpoint_error(e);
}

inline std::string schedule_name(const schedule& plan, const checkpoint_options& options) {
  if (!options.schedule_name.empty()) return options.schedule_name;
  std::string ops;
  for (std::int32_t r = 0; r < plan.num_ranks(); ++r) {
    for (const op& o : plan.ops(r)) ops += to_string(o) + ' ';
    ops += '\n';
  }
  return "ops-" + io::detail::hex32(io::crc32(0, ops));
}

inline io::checkpoint_layout layout_of(const mpi::process_grid& grid, const schedule& plan, const checkpoint_options& options) {
  return io::checkpoint_layout::of(plan, schedule_name(plan, options), options.model.empty() ? "unnamed" : options.model,
                                   grid.data_parallel_size());
}

// This rank's stages with their tensors: the model's, then the optimizer's.
template <class Model>
std::vector<io::stage_tensors> local_state(const schedule& plan, const mpi::process_grid& grid, Model& model,
                                           const checkpoint_options& options) {
  std::vector<io::stage_tensors> out;
  for (const std::int32_t s : plan.stages_on_rank(grid.pipeline_rank())) {
    io::stage_tensors st{s, model.checkpoint_state(s)};
    if (options.optimizer_state)
      for (io::tensor_ref& t : options.optimizer_state(s)) st.tensors.push_back(std::move(t));
    out.push_back(std::move(st));
  }
  return out;
}

// The lowest pipeline rank that holds `stage` (two do in bidirectional schedules).
inline std::int32_t first_holder(const schedule& plan, std::int32_t stage) {
  for (std::int32_t r = 0; r < plan.num_ranks(); ++r) {
    const std::vector<std::int32_t> stages = plan.stages_on_rank(r);
    if (std::find(stages.begin(), stages.end(), stage) != stages.end()) return r;
  }
  return -1;
}

inline std::vector<io::tensor_spec> specs_of(const io::stage_tensors& s) {
  std::vector<io::tensor_spec> out;
  for (const io::tensor_ref& t : s.tensors) out.push_back(t.spec());
  return out;
}

// Removes the oldest step-* folders of `dir` beyond the newest `keep`.
inline void prune(const std::filesystem::path& dir, std::int32_t keep) {
  if (keep <= 0) return;
  std::vector<std::filesystem::path> folders;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.size() == 17 && name.rfind("step-", 0) == 0 &&
        name.find_first_not_of("0123456789", 5) == std::string::npos && std::filesystem::exists(entry.path() / "manifest"))
      folders.push_back(entry.path());
  }
  std::sort(folders.begin(), folders.end());
  for (std::size_t k = 0; k + static_cast<std::size_t>(keep) < folders.size(); ++k) std::filesystem::remove_all(folders[k]);
}

}  // namespace detail

/**
@brief Saves a checkpoint of the training state into `dir` (created if missing): the folder
`dir/step-NNNNNNNNNNNN` (`counters.step`, 12 digits) with one file per pipeline rank and the
manifest, then `dir/latest` naming it. An existing folder of the same step is replaced.

Collective over `grid.world()`, between steps; `plan` is the schedule the ranks run, `model`
this rank's model (`checkpointable_model`), `counters` the same on every rank (world rank 0's
are recorded).

**Atomicity.** The files are written into `dir/step-….partial`, renamed to their folder once the
manifest is complete, and only then is `dir/latest` replaced: a job killed while saving leaves
`latest` naming the previous complete checkpoint (and a `.partial` folder the next save removes).

@return the checkpoint's folder.
@throws io::checkpoint_error (on every rank) naming the rank and the file that could not be written.
*/
template <class Model>
  requires checkpointable_model<Model>
std::filesystem::path save_checkpoint(const std::filesystem::path& dir, const mpi::process_grid& grid, const schedule& plan,
                                      Model& model, const io::training_counters& counters,
                                      const checkpoint_options& options = {}) {
  namespace fs = std::filesystem;
  const MPI_Comm world = grid.world();
  const bool root = grid.world_rank() == 0;
  const auto& o = options.collectives;
  const std::string name = io::checkpoint_folder_name(counters.step);
  const fs::path folder = dir / name, partial = dir / (name + ".partial");
  io::checkpoint_layout layout;
  std::string error = detail::error_of([&] {
    layout = detail::layout_of(grid, plan, options);
    if (root) {
      fs::create_directories(dir);
      fs::remove_all(partial);
      fs::create_directory(partial);
    }
  });
  detail::raise_any(world, error, false, o, "checkpoint: the folder");

  // Copy 0 writes each pipeline rank's file; every writer reports its entry and tensor specs.
  std::string report;
  error = detail::error_of([&] {
    if (grid.data_parallel_rank() != 0) return;
    const std::vector<io::stage_tensors> state = detail::local_state(plan, grid, model, options);
    const io::file_entry entry =
        io::write_rank_file(partial / io::rank_file_name(grid.pipeline_rank()), grid.pipeline_rank(), state);
    report = stretto::detail::cat("file ", grid.pipeline_rank(), " ", entry.name, " ", entry.bytes, " ",
                                  io::detail::hex32(entry.crc32), "\n");
    for (const io::stage_tensors& s : state)  // a stage's tensors from the first pipeline rank that holds it
      if (detail::first_holder(plan, s.stage) == grid.pipeline_rank())
        for (const io::tensor_ref& t : s.tensors) report += stretto::detail::cat("tensor ", s.stage, " ", io::to_string(t.spec()), "\n");
  });
  detail::raise_any(world, error, true, o, "checkpoint: the rank files");
  int length = static_cast<int>(report.size());
  std::vector<int> lengths(root ? static_cast<std::size_t>(grid.world_size()) : 0), offsets(lengths.size());
  mpi::gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, world, o, "checkpoint: the rank files' entries");
  std::string reports;
  if (root) {
    for (std::size_t r = 1; r < lengths.size(); ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
    reports.resize(lengths.empty() ? 0 : static_cast<std::size_t>(offsets.back() + lengths.back()));
  }
  mpi::gatherv(report.data(), length, MPI_CHAR, reports.data(), lengths.data(), offsets.data(), MPI_CHAR, 0, world, o,
               "checkpoint: the rank files' entries");

  // World rank 0: the manifest (the writers' reports read back as manifest lines), then the rename.
  error = detail::error_of([&] {
    if (!root) return;
    io::checkpoint_manifest m;
    m.layout = layout;
    m.counters = counters;
    m.stage_tensors.resize(static_cast<std::size_t>(plan.num_stages()));
    m.files.resize(static_cast<std::size_t>(plan.num_ranks()));
    io::checkpoint_manifest shell = m;
    shell.stage_tensors.clear();
    shell.files.clear();
    std::string text = io::manifest_text(shell);
    text.resize(text.size() - 4);  // without "end\n"
    const io::checkpoint_manifest parsed = io::parse_manifest(text + reports + "end\n", "(the ranks' reports)");
    m.stage_tensors = parsed.stage_tensors;
    m.files = parsed.files;
    io::write_text_file(partial / "manifest", io::manifest_text(m));
    const fs::path old = dir / (name + ".old");
    fs::remove_all(old);
    if (fs::exists(folder)) fs::rename(folder, old);
    fs::rename(partial, folder);
    io::write_text_file(dir / "latest", name + "\n");
    fs::remove_all(old);
    detail::prune(dir, options.keep_last);
  });
  detail::raise_any(world, error, false, o, "checkpoint: the manifest");
  return folder;
}

/**
@brief Resumes from the checkpoint in `dir` (`dir/latest`'s folder, or `dir` itself when it holds
a manifest): checks that it fits this run, then reads every rank's stages into `model` in place.
@return the saved counters (epoch, step, named values).

Collective over `grid.world()`, before the first step (or between steps).

**Checks** (each refusal names the file and what differs, on every rank):
- the manifest: format and version, then the layout: the model fingerprint, p, v, m, the schedule
  name, the placement of stages on pipeline ranks, the replicas and the data-parallel size (unless
  `allow_data_parallel_change`);
- each stage's tensors: names, types, shapes and order against `model.checkpoint_state` (and
  `optimizer_state`);
- each rank's file: its size and CRC-32 against the manifest (a truncated or corrupted file) and
  its header against this rank's stages, before any tensor is overwritten.

@throws io::checkpoint_error as described; the model is unchanged unless a file changed between
its check and its read.
*/
template <class Model>
  requires checkpointable_model<Model>
io::training_counters resume_checkpoint(const std::filesystem::path& dir, const mpi::process_grid& grid,
                                        const schedule& plan, Model& model, const checkpoint_options& options = {}) {
  namespace fs = std::filesystem;
  const MPI_Comm world = grid.world();
  const auto& o = options.collectives;
  // World rank 0 finds the checkpoint and reads the manifest; every rank gets its text.
  std::string text;
  std::string error = detail::error_of([&] {
    if (grid.world_rank() != 0) return;
    const fs::path folder = io::resolve_checkpoint(dir);
    text = folder.string() + "\n" + io::read_text_file(folder / "manifest");
  });
  detail::raise_any(world, error, false, o, "checkpoint: the manifest");
  int length = static_cast<int>(text.size());
  mpi::broadcast(&length, 1, MPI_INT, 0, world, o, "checkpoint: the manifest");
  text.resize(static_cast<std::size_t>(length));
  mpi::broadcast(text.data(), length, MPI_CHAR, 0, world, o, "checkpoint: the manifest");
  const fs::path folder = text.substr(0, text.find('\n'));
  const std::string manifest_file = (folder / "manifest").string();

  // The manifest and the layout: the same on every rank.
  io::checkpoint_manifest m;
  error = detail::error_of([&] {
    m = io::parse_manifest(std::string_view(text).substr(text.find('\n') + 1), manifest_file);
    const std::vector<std::string> differences =
        io::layout_differences(m.layout, detail::layout_of(grid, plan, options), options.allow_data_parallel_change);
    if (!differences.empty())
      throw io::checkpoint_error(stretto::detail::cat("checkpoint ", manifest_file, " does not fit this run: ",
                                                      io::join(differences)));
    for (std::size_t k = 0; k < m.files.size(); ++k)
      if (m.files[k].name != io::rank_file_name(static_cast<std::int32_t>(k)))
        throw io::checkpoint_error(stretto::detail::cat("checkpoint ", manifest_file, " names the file '", m.files[k].name,
                                                        "' for pipeline rank ", k, "; expected ",
                                                        io::rank_file_name(static_cast<std::int32_t>(k))));
  });
  detail::raise_any(world, error, false, o, "checkpoint: the layout");

  // This rank's stages: their tensors against the manifest, then its file's size and checksum.
  std::vector<io::stage_tensors> state;
  const std::int32_t r = grid.pipeline_rank();
  const fs::path file = folder / m.files[static_cast<std::size_t>(r)].name;
  error = detail::error_of([&] {
    state = detail::local_state(plan, grid, model, options);
    std::vector<std::string> differences;
    for (const io::stage_tensors& s : state)
      for (std::string& d :
           io::tensor_differences(s.stage, m.stage_tensors[static_cast<std::size_t>(s.stage)], detail::specs_of(s)))
        differences.push_back(std::move(d));
    if (!differences.empty())
      throw io::checkpoint_error(stretto::detail::cat("checkpoint ", manifest_file,
                                                      " does not fit this run's model: ", io::join(differences)));
    io::verify_rank_file(file, m.files[static_cast<std::size_t>(r)]);
  });
  detail::raise_any(world, error, true, o, "checkpoint: the rank files");
  error = detail::error_of([&] { io::read_rank_file(file, m.files[static_cast<std::size_t>(r)], r, state); });
  detail::raise_any(world, error, true, o, "checkpoint: reading the rank files");
  return m.counters;
}

}  // namespace stretto::training
