#pragma once
/**
@file
@brief The process grid of data × pipeline parallelism: splits a communicator into pipeline groups
(the ranks of one copy of the pipeline) and data-parallel groups (the ranks that run the same
pipeline rank on different slices of the batch), and, for a schedule, the gradient group of each
stage (every rank that holds a copy of it, both replicas of a bidirectional schedule included).
*/

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <stretto/core/errors.hpp>
#include <stretto/core/schedule.hpp>
#include <stretto/detail/text.hpp>

#include "communicator.hpp"

namespace stretto::mpi {

/**
@brief How the ranks of the communicator are laid out on the grid of `pp` pipeline ranks × `dp`
data-parallel groups.
*/
enum class rank_order : std::uint8_t {
  /// rank = data-parallel index × pp + pipeline rank (the default): the ranks of one pipeline are
  /// consecutive, so with consecutive ranks per node (Slurm's and mpirun's block placement) a
  /// pipeline stays inside one node when it fits, and its activations never cross the network;
  /// the gradient all-reduce (once per step) does.
  pipeline_major,
  /// rank = pipeline rank × dp + data-parallel index: the copies of one stage are consecutive, so
  /// the gradient all-reduce stays inside a node and the pipeline's messages cross nodes.
  data_parallel_major,
};

/** @brief Returns `"pipeline-major"` or `"data-parallel-major"`. */
inline const char* to_string(rank_order o) noexcept {
  return o == rank_order::pipeline_major ? "pipeline-major" : "data-parallel-major";
}

/** @brief Options of a `process_grid`. */
struct process_grid_options {
  rank_order order{rank_order::pipeline_major};
  /// The number of data-parallel groups; 0 (the default): the communicator's size / pp.
  std::int32_t data_parallel{0};
  /// How long the grid's setup (a barrier over all ranks) may wait for a rank. Default 300 s.
  std::chrono::duration<double> timeout{300.0};
  timeout_action on_timeout{timeout_action::abort};
};

namespace detail {
inline std::string divisors_text(int n) {
  std::string out;
  for (int d = 1; d <= n; ++d)
    if (n % d == 0) out += stretto::detail::cat(out.empty() ? "" : ", ", d);
  return out;
}
}  // namespace detail

/**
@brief Splits a communicator of `pp × dp` ranks into `dp` pipelines of `pp` ranks and `pp`
data-parallel groups of `dp` ranks.

**Rank order.** The communicator's rank `w` has pipeline rank `w mod pp` and data-parallel index
`⌊w / pp⌋` (`rank_order::pipeline_major`, the default, as Megatron-LM orders its groups: pipeline
neighbours are adjacent, so that a pipeline of up to a node's cores stays inside the node), or
pipeline rank `⌊w / dp⌋` and data-parallel index `w mod dp` (`rank_order::data_parallel_major`).
`world_rank_of(d, r)` gives the rank of any grid position.

**Groups.** `pipeline()` holds the `pp` ranks of this rank's pipeline, ranked by pipeline rank:
construct the `communicator` on it. `data_parallel()` holds the `dp` ranks with this pipeline
rank, ranked by data-parallel index. `stage_groups(s)` builds, per stage of schedule `s`, the
group that sums its gradients: the `dp` ranks that hold it, or `2·dp` in a bidirectional
schedule whose two replicas of the stage sit on two ranks of each pipeline (Chimera, Li & Hoefler
2021, §3.4; BitPipe, Wu et al. 2024, §3.3).

**Errors.** `argument_error` when the communicator's size is not a multiple of `pp` (naming the
rule ranks = dp × pp and the valid pipeline sizes), when `data_parallel` is given and
`pp × data_parallel` differs from the size, or when `pp < 1`. The setup starts with a barrier over
all ranks that waits at most `timeout` (a rank that never constructs the grid is reported, with
the rank, instead of hanging); the splits follow.

@pre `MPI_Init` has run. Construction and destruction are collective over `comm`.
*/
class process_grid {
 public:
  process_grid(MPI_Comm comm, std::int32_t pipeline_ranks, process_grid_options options = {})
      : options_(options), pp_(pipeline_ranks) {
    int size = 0, rank = 0;
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);
    if (pipeline_ranks < 1)
      throw argument_error(stretto::detail::cat("stretto::mpi::process_grid: the pipeline needs at least 1 rank, not ",
                                                pipeline_ranks));
    if (size % pipeline_ranks != 0)
      throw argument_error(stretto::detail::cat(
          "stretto::mpi::process_grid: the communicator has ", size, " ranks, which is not a multiple of the ",
          pipeline_ranks, " pipeline ranks (ranks = data-parallel groups × pipeline ranks); launch with -n ",
          pipeline_ranks, ", ", 2 * pipeline_ranks, ", ", 4 * pipeline_ranks, " … or use a pipeline of ",
          detail::divisors_text(size), " ranks"));
    dp_ = size / pipeline_ranks;
    if (options.data_parallel > 0 && options.data_parallel != dp_)
      throw argument_error(stretto::detail::cat(
          "stretto::mpi::process_grid: ", options.data_parallel, " data-parallel groups of ", pipeline_ranks,
          " pipeline ranks need ", static_cast<long long>(options.data_parallel) * pipeline_ranks,
          " ranks but the communicator has ", size, "; launch with -n ",
          static_cast<long long>(options.data_parallel) * pipeline_ranks, " or use --data-parallel ", dp_));
    world_rank_ = rank;
    world_size_ = size;
    MPI_Comm_dup(comm, &world_);
    barrier("the process grid's setup");
    if (options_.order == rank_order::pipeline_major) {
      pipeline_rank_ = rank % pp_;
      dp_rank_ = rank / pp_;
    } else {
      pipeline_rank_ = rank / dp_;
      dp_rank_ = rank % dp_;
    }
    MPI_Comm_split(world_, dp_rank_, pipeline_rank_, &pipeline_);
    MPI_Comm_split(world_, pipeline_rank_, dp_rank_, &data_parallel_);
  }
  process_grid(const process_grid&) = delete;
  process_grid& operator=(const process_grid&) = delete;
  ~process_grid() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    for (MPI_Comm* c : {&pipeline_, &data_parallel_, &world_})
      if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
  }

  std::int32_t pipeline_size() const noexcept { return pp_; }        ///< pp: ranks per pipeline
  std::int32_t data_parallel_size() const noexcept { return dp_; }   ///< dp: copies of the pipeline
  std::int32_t pipeline_rank() const noexcept { return pipeline_rank_; }  ///< this rank's place in its pipeline
  std::int32_t data_parallel_rank() const noexcept { return dp_rank_; }   ///< which copy of the pipeline
  std::int32_t world_rank() const noexcept { return world_rank_; }
  std::int32_t world_size() const noexcept { return world_size_; }
  rank_order order() const noexcept { return options_.order; }
  const process_grid_options& options() const noexcept { return options_; }

  /** @brief The rank (in the grid's communicator) of pipeline rank `r` of data-parallel copy `d`. */
  std::int32_t world_rank_of(std::int32_t d, std::int32_t r) const noexcept {
    return options_.order == rank_order::pipeline_major ? d * pp_ + r : r * dp_ + d;
  }

  MPI_Comm world() const noexcept { return world_; }                  ///< a duplicate of the grid's communicator
  MPI_Comm pipeline() const noexcept { return pipeline_; }            ///< this rank's pipeline, by pipeline rank
  MPI_Comm data_parallel() const noexcept { return data_parallel_; }  ///< same pipeline rank, by data-parallel index

  /**
  @brief The grid ranks that hold a copy of `stage` of `s`, ascending: the rank of each replica
  of the stage (one, or two in a bidirectional schedule) in each of the `dp` pipelines.
  */
  std::vector<std::int32_t> holders(const schedule& s, std::int32_t stage) const {
    std::vector<std::int32_t> pipeline_ranks{rank_of_stage(s.placement(), s.shape(), stage, 0)};
    if (s.num_replicas() > 1) {
      const std::int32_t other = rank_of_stage(s.placement(), s.shape(), stage, 1);
      if (other != pipeline_ranks.front()) pipeline_ranks.push_back(other);
    }
    std::vector<std::int32_t> out;
    for (std::int32_t d = 0; d < dp_; ++d)
      for (std::int32_t r : pipeline_ranks) out.push_back(world_rank_of(d, r));
    std::sort(out.begin(), out.end());
    return out;
  }

  /**
  @brief Per stage of `s`, the communicator of `holders(s, stage)` (`MPI_COMM_NULL` for stages
  this rank does not hold), each its own, so that the all-reduces of different stages never
  have to be started in the same order on every rank. Owns them.
  */
  class stage_group_set {
   public:
    stage_group_set() = default;
    stage_group_set(stage_group_set&& o) noexcept : groups_(std::move(o.groups_)), sizes_(std::move(o.sizes_)) {}
    stage_group_set& operator=(stage_group_set&& o) noexcept {
      std::swap(groups_, o.groups_);
      std::swap(sizes_, o.sizes_);
      return *this;
    }
    ~stage_group_set() {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (finalized) return;
      for (MPI_Comm& c : groups_)
        if (c != MPI_COMM_NULL) MPI_Comm_free(&c);
    }
    /// The communicator of `stage`'s holders; `MPI_COMM_NULL` if this rank holds no copy.
    MPI_Comm group(std::int32_t stage) const noexcept { return groups_[static_cast<std::size_t>(stage)]; }
    /// The number of ranks that hold `stage` (dp, or 2·dp for two replicas on two ranks).
    std::int32_t size(std::int32_t stage) const noexcept { return sizes_[static_cast<std::size_t>(stage)]; }
    std::int32_t num_stages() const noexcept { return static_cast<std::int32_t>(groups_.size()); }

   private:
    friend class process_grid;
    std::vector<MPI_Comm> groups_;
    std::vector<std::int32_t> sizes_;
  };

  /**
  @brief Builds the gradient group of every stage of `s` (collective over the grid).
  @throws argument_error if `s` has another number of ranks than the pipeline.
  */
  stage_group_set stage_groups(const schedule& s) const {
    if (s.num_ranks() != pp_)
      throw argument_error(stretto::detail::cat("stretto::mpi::process_grid: the schedule has ", s.num_ranks(),
                                                " ranks but the grid's pipelines have ", pp_,
                                                "; build the grid with pipeline_ranks = ", s.num_ranks()));
    barrier("the stage groups' setup");
    stage_group_set out;
    for (std::int32_t stage = 0; stage < s.num_stages(); ++stage) {
      const std::vector<std::int32_t> who = holders(s, stage);
      const bool mine = std::find(who.begin(), who.end(), world_rank_) != who.end();
      MPI_Comm c = MPI_COMM_NULL;
      MPI_Comm_split(world_, mine ? 0 : MPI_UNDEFINED, world_rank_, &c);
      out.groups_.push_back(c);
      out.sizes_.push_back(static_cast<std::int32_t>(who.size()));
    }
    return out;
  }

 private:
  // A barrier over the grid that waits at most `timeout`.
  void barrier(const char* what) const {
    MPI_Request request = MPI_REQUEST_NULL;
    MPI_Ibarrier(world_, &request);
    if (detail::wait_bounded(request, options_.timeout)) return;
    detail::fail_collective(
        world_,
        stretto::detail::cat("stretto::mpi: rank ", world_rank_, " timed out after ", detail::seconds_text(options_.timeout.count()),
                             " s in ", what, " waiting for all ", world_size_,
                             " ranks (every rank must construct the grid with the same pipeline size)"),
        options_.on_timeout);
  }

  process_grid_options options_{};
  std::int32_t pp_{1}, dp_{1};
  std::int32_t pipeline_rank_{0}, dp_rank_{0};
  std::int32_t world_rank_{0}, world_size_{1};
  MPI_Comm world_{MPI_COMM_NULL};
  MPI_Comm pipeline_{MPI_COMM_NULL};
  MPI_Comm data_parallel_{MPI_COMM_NULL};
};

}  // namespace stretto::mpi
