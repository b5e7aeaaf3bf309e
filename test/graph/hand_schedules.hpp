#pragma once
/**
@file
@brief Schedules built by hand for the graph tests: looped placements with several chunks per
rank (so that two ranks exchange messages in both directions), and lowered schedules written
op by op. These are test fixtures, not policies.
*/

#include <cstdint>

#include <stretto/core/schedule.hpp>
#include <stretto/graph/lowering.hpp>

namespace stretto::testing {

/**
@brief A looped schedule (stage s on rank s mod p), breadth first: each rank runs the forwards
of its chunks in order, chunk by chunk and microbatch by microbatch, then the fused backwards in
the reverse order. With p = 2 and v = 2, rank 0 holds stages 0 and 2 and rank 1 stages 1 and 3,
so activations and gradients flow both ways between the two ranks.
*/
inline schedule looped_breadth_first(std::int32_t p, std::int32_t m, std::int32_t v) {
  schedule s({p, m, v}, placement_kind::looped);
  for (std::int32_t r = 0; r < p; ++r) {
    for (std::int32_t c = 0; c < v; ++c)
      for (std::int32_t j = 0; j < m; ++j) s.push_back(r, op{op_kind::forward, c * p + r, j});
    for (std::int32_t c = v - 1; c >= 0; --c)
      for (std::int32_t j = m - 1; j >= 0; --j) s.push_back(r, op{op_kind::backward, c * p + r, j});
  }
  return s;
}

/**
@brief A looped schedule, depth first with split backwards: each rank runs microbatch by
microbatch the forwards of all its chunks, then, microbatch by microbatch, B and W of its chunks
in the reverse chunk order (the order a microbatch's backward visits the chunks).
*/
inline schedule looped_depth_first(std::int32_t p, std::int32_t m, std::int32_t v) {
  schedule s({p, m, v}, placement_kind::looped);
  for (std::int32_t r = 0; r < p; ++r) {
    for (std::int32_t j = 0; j < m; ++j)
      for (std::int32_t c = 0; c < v; ++c) s.push_back(r, op{op_kind::forward, c * p + r, j});
    for (std::int32_t j = 0; j < m; ++j)
      for (std::int32_t c = v - 1; c >= 0; --c) {
        s.push_back(r, op{op_kind::backward_input, c * p + r, j});
        s.push_back(r, op{op_kind::backward_weight, c * p + r, j});
      }
  }
  return s;
}

/**
@brief A lowered p = 2, m = 2 schedule that is deadlock-free when sends are buffered but
deadlocks under rendezvous semantics:

    rank 0: F0 F1 send(a0) send(a1) recv(g0) BW0 recv(g1) BW1
    rank 1: recv(a0) F0 BW0 send(g0) recv(a1) F1 BW1 send(g1)

Rank 0 blocks in send(a1) (position 3) until rank 1 posts recv(a1); rank 1 blocks before that,
in send(g0) (position 3), until rank 0 posts recv(g0), which comes after send(a1). With `fixed`,
rank 0 sends a1 after BW0 instead (rank 0: F0 F1 send(a0) recv(g0) BW0 send(a1) recv(g1) BW1),
which does not deadlock. Both have the same compute ops in the same order.
*/
inline graph::lowered_schedule two_rank_exchange(bool fixed) {
  using graph::lowered_op;
  const pipeline_shape shape{2, 2, 1};
  schedule compute(shape, placement_kind::linear);
  graph::lowered_schedule l(compute);
  auto act = [](std::int32_t j) { return message_key{message_direction::activation, 0, 1, j}; };
  auto grad = [](std::int32_t j) { return message_key{message_direction::gradient, 1, 0, j}; };
  auto run = [](op_kind kind, std::int32_t stage, std::int32_t j) { return lowered_op::run(op{kind, stage, j}); };
  l.push_back(0, run(op_kind::forward, 0, 0));
  l.push_back(0, run(op_kind::forward, 0, 1));
  l.push_back(0, lowered_op::send(act(0), 1));
  if (!fixed) l.push_back(0, lowered_op::send(act(1), 1));
  l.push_back(0, lowered_op::receive(grad(0), 1));
  l.push_back(0, run(op_kind::backward, 0, 0));
  if (fixed) l.push_back(0, lowered_op::send(act(1), 1));
  l.push_back(0, lowered_op::receive(grad(1), 1));
  l.push_back(0, run(op_kind::backward, 0, 1));

  l.push_back(1, lowered_op::receive(act(0), 0));
  l.push_back(1, run(op_kind::forward, 1, 0));
  l.push_back(1, run(op_kind::backward, 1, 0));
  l.push_back(1, lowered_op::send(grad(0), 0));
  l.push_back(1, lowered_op::receive(act(1), 0));
  l.push_back(1, run(op_kind::forward, 1, 1));
  l.push_back(1, run(op_kind::backward, 1, 1));
  l.push_back(1, lowered_op::send(grad(1), 0));
  return l;
}

}  // namespace stretto::testing
