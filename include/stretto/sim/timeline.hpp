#pragma once
/**
@file
@brief A timeline (when each op ran on each rank) and the metrics computed from it. The
simulator produces one; the executors record one from a real run; both use the same metrics
and exporters.
*/

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ranges>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/op.hpp"

namespace stretto::sim {

/** @brief One op's interval on its rank. Times in the unit of the cost model (or seconds when measured). */
struct op_timing {
  op what{};
  double start{0.0};
  double end{0.0};

  friend constexpr bool operator==(const op_timing&, const op_timing&) = default;
};

/**
@brief Per rank, the intervals of its ops in execution order.

Stored flat: one buffer holds every rank's intervals, rank r's in a segment of its own, so a
timeline is one allocation however many ranks it has. (ZB-V at p = 32, m = 256 records 49 152
intervals, 1.5 MB; kept as p separate lists, glibc handed that memory back to the kernel on every
free and the next simulation faulted it in again, a third of its time.) Give each rank's capacity
up front (`timeline(capacity)`, e.g. the length of its list) and nothing moves. A rank that
outgrows its segment makes the buffer be rebuilt with twice the room for every rank (at least
one interval each), so appending without capacities is amortised O(1) per interval, at up to
twice the memory.

**Invariants.** `num_ranks()` is the number of ranks given at construction or by the last
`reset`; `ops(r)` is rank r's intervals in the order they were added. A moved-from timeline has
no ranks.

**Spans.** A span from `ops` stays valid until the next `push_back` that rebuilds the buffer
(a segment was full), `reset`, assignment, move or swap; any of these may move every rank's
intervals, not only the one pushed to.

**Errors.** `reset` and the capacity constructor throw std::length_error when the capacities
add up to more than fits in memory, std::bad_alloc when the allocation fails; both leave the
timeline as it was. `push_back` has the same guarantee when it rebuilds.
*/
class timeline {
 public:
  /** @brief A timeline of no ranks. */
  constexpr timeline() = default;

  /** @brief A timeline of `capacity.size()` ranks, none with an interval yet; rank r has room for `capacity[r]`. */
  constexpr explicit timeline(std::span<const std::size_t> capacity) { reset(capacity); }

  /**
  @brief A timeline holding the given intervals, one braced list per rank, e.g.
  `timeline{{{f0, 0.0, 1.0}, {b0, 1.0, 2.0}}, {}}` for two ranks, the second idle.
  */
  constexpr timeline(std::initializer_list<std::initializer_list<op_timing>> ranks) { assign(ranks); }

  /**
  @brief A timeline holding `ranks[r]` as rank r's intervals: e.g. every rank's
  `stretto::kokkos::step_record::ops` of a measured step, gathered on one rank.
  */
  constexpr explicit timeline(std::span<const std::vector<op_timing>> ranks) { assign(ranks); }

  constexpr timeline(const timeline& other)
      : storage_(other.begin_.empty() ? 0 : other.begin_.back()), begin_(other.begin_), size_(other.size_) {
    for (std::size_t r = 0; r < size_.size(); ++r)
      for (std::size_t i = begin_[r]; i < begin_[r] + size_[r]; ++i) std::construct_at(storage_.data + i, other.storage_.data[i]);
  }
  constexpr timeline(timeline&& other) noexcept
      : storage_(std::move(other.storage_)), begin_(std::move(other.begin_)), size_(std::move(other.size_)) {
    other.begin_.clear();
    other.size_.clear();
  }
  constexpr timeline& operator=(const timeline& other) {
    if (this != &other) *this = timeline(other);
    return *this;
  }
  constexpr timeline& operator=(timeline&& other) noexcept {
    if (this != &other) {
      storage_ = std::move(other.storage_);
      begin_ = std::move(other.begin_);
      size_ = std::move(other.size_);
      other.begin_.clear();
      other.size_.clear();
    }
    return *this;
  }
  constexpr ~timeline() = default;

  friend constexpr void swap(timeline& a, timeline& b) noexcept {
    std::swap(a.storage_.data, b.storage_.data);
    std::swap(a.storage_.capacity, b.storage_.capacity);
    a.begin_.swap(b.begin_);
    a.size_.swap(b.size_);
  }

  /**
  @brief Empties the timeline and gives it `capacity.size()` ranks, rank r with room for
  `capacity[r]` intervals. Reuses the buffer when it is large enough.
  @throws std::length_error if the capacities add up to more than fits in memory; std::bad_alloc.
  Either way the timeline is left as it was.
  */
  constexpr void reset(std::span<const std::size_t> capacity) {
    std::vector<std::size_t> begin(capacity.size() + 1, 0);
    const std::size_t most = std::allocator_traits<std::allocator<op_timing>>::max_size(std::allocator<op_timing>{});
    for (std::size_t r = 0; r < capacity.size(); ++r) {
      if (capacity[r] > most - begin[r])
        throw std::length_error("stretto::sim::timeline: the ranks' capacities add up to more intervals than fit in memory");
      begin[r + 1] = begin[r] + capacity[r];
    }
    std::vector<std::size_t> size(capacity.size(), 0);
    if (storage_.capacity < begin.back()) storage_ = buffer(begin.back());  // the last step that may throw
    begin_.swap(begin);
    size_.swap(size);
  }

  /** @brief Number of ranks. */
  constexpr std::int32_t num_ranks() const noexcept { return static_cast<std::int32_t>(size_.size()); }

  /** @brief Rank `rank`'s intervals in execution order. @pre `0 <= rank < num_ranks()`. */
  constexpr std::span<const op_timing> ops(std::int32_t rank) const noexcept {
    const auto r = static_cast<std::size_t>(rank);
    return {storage_.data + begin_[r], size_[r]};
  }

  /** @brief Number of intervals over all ranks. */
  constexpr std::size_t num_ops() const noexcept {
    std::size_t n = 0;
    for (const std::size_t k : size_) n += k;
    return n;
  }

  /**
  @brief Appends `t` to rank `rank`'s intervals. `t` is taken by value, so it may be one of this
  timeline's own intervals. @pre `0 <= rank < num_ranks()`.
  */
  constexpr void push_back(std::int32_t rank, op_timing t) {
    const auto r = static_cast<std::size_t>(rank);
    if (begin_[r] + size_[r] == begin_[r + 1]) grow();
    std::construct_at(storage_.data + begin_[r] + size_[r]++, t);
  }

  /** @brief Equal when both have the same number of ranks and equal intervals on each (capacities aside). */
  friend constexpr bool operator==(const timeline& a, const timeline& b) noexcept {
    if (a.num_ranks() != b.num_ranks()) return false;
    for (std::int32_t r = 0; r < a.num_ranks(); ++r)
      if (!std::ranges::equal(a.ops(r), b.ops(r))) return false;
    return true;
  }

 private:
  // Sized exactly for `ranks` (a range of per-rank ranges of intervals), then filled from it.
  template <class Ranks>
  constexpr void assign(const Ranks& ranks) {
    std::vector<std::size_t> capacity;
    capacity.reserve(std::ranges::size(ranks));
    for (const auto& rank : ranks) capacity.push_back(std::ranges::size(rank));
    reset(capacity);
    std::int32_t r = 0;
    for (const auto& rank : ranks) {
      for (const op_timing& t : rank) push_back(r, t);
      ++r;
    }
  }

  // Room for `capacity` intervals, allocated but not initialised: setting up a timeline writes
  // nothing, and only the used part of each segment holds objects (built by `push_back`). A
  // zero-filled vector cost one more pass over the whole buffer per simulation.
  struct buffer {
    op_timing* data{nullptr};
    std::size_t capacity{0};

    constexpr buffer() = default;
    constexpr explicit buffer(std::size_t n) : data(n > 0 ? std::allocator<op_timing>{}.allocate(n) : nullptr), capacity(n) {}
    constexpr buffer(buffer&& other) noexcept
        : data(std::exchange(other.data, nullptr)), capacity(std::exchange(other.capacity, 0)) {}
    constexpr buffer& operator=(buffer&& other) noexcept {
      if (this != &other) {
        release();
        data = std::exchange(other.data, nullptr);
        capacity = std::exchange(other.capacity, 0);
      }
      return *this;
    }
    buffer(const buffer&) = delete;
    buffer& operator=(const buffer&) = delete;
    constexpr ~buffer() { release(); }

    // `op_timing` is trivially destructible: its objects end with their storage.
    constexpr void release() noexcept {
      if (data != nullptr) std::allocator<op_timing>{}.deallocate(data, capacity);
      data = nullptr;
      capacity = 0;
    }
  };
  static_assert(std::is_trivially_destructible_v<op_timing> && std::is_trivially_copyable_v<op_timing>);

  // Rebuilds the buffer with twice every rank's room (at least one interval each). Kept out of
  // line: the simulator sizes every segment exactly, and this must not crowd its hot loop.
  [[gnu::noinline]] constexpr void grow() {
    std::vector<std::size_t> capacity(size_.size());
    for (std::size_t k = 0; k < capacity.size(); ++k) {
      const std::size_t room = begin_[k + 1] - begin_[k];
      capacity[k] = room > 0 ? 2 * room : 1;
    }
    timeline bigger(capacity);
    for (std::size_t k = 0; k < size_.size(); ++k)
      for (std::size_t i = 0; i < size_[k]; ++i) bigger.push_back(static_cast<std::int32_t>(k), storage_.data[begin_[k] + i]);
    *this = std::move(bigger);
  }

  buffer storage_;
  std::vector<std::size_t> begin_;  // p + 1 entries: rank r's segment is [begin_[r], begin_[r + 1])
  std::vector<std::size_t> size_;   // p entries: intervals used in rank r's segment
};

/**
@brief Metrics of a timeline (docs/schedules.md §0, items 5–7).

- `span`: the longest rank's first start to last end (Zero Bubble §5.3, objective (3) of App. G).
- `busy[r]`: the sum of rank r's op durations; an overlapped F&B pair (`op::overlapped`) whose two
  events share one interval, as the simulator records it, counts once.
- `bubble_rate`: (p·span − Σ_r busy[r]) / (p·span), the idle fraction of the pipeline. With equal
  work per rank this is the Zero Bubble paper's (span − m·(T_F+T_B+T_W)) / span.
- `bubble_overhead`: idle time over ideal time, (p·span − Σ busy) / Σ busy: the Megatron/BFPP
  normalisation, (p−1)/m for GPipe and 1F1B.
*/
struct timeline_metrics {
  double span{0.0};
  double bubble_rate{0.0};
  double bubble_overhead{0.0};
  std::vector<double> busy;
};

/** @brief Computes `timeline_metrics` of `t`; all zero for an empty timeline. */
constexpr timeline_metrics measure(const timeline& t) {
  timeline_metrics out;
  const auto p = static_cast<std::size_t>(t.num_ranks());
  out.busy.assign(p, 0.0);
  double total_busy = 0.0;
  for (std::size_t r = 0; r < p; ++r) {
    const std::span<const op_timing> ops = t.ops(static_cast<std::int32_t>(r));
    if (ops.empty()) continue;
    double first = ops.front().start;
    double last = ops.front().end;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const auto& o = ops[i];
      // The two ops of a simulated F&B pair share one interval: count it once.
      const bool shared = o.what.overlapped && i + 1 < ops.size() && ops[i + 1].start == o.start &&
                          ops[i + 1].end == o.end;
      if (!shared) out.busy[r] += o.end - o.start;
      first = o.start < first ? o.start : first;
      last = o.end > last ? o.end : last;
    }
    out.span = last - first > out.span ? last - first : out.span;
    total_busy += out.busy[r];
  }
  const double capacity = out.span * static_cast<double>(p);
  if (capacity > 0.0) out.bubble_rate = (capacity - total_busy) / capacity;
  if (total_busy > 0.0) out.bubble_overhead = (capacity - total_busy) / total_busy;
  return out;
}

}  // namespace stretto::sim
