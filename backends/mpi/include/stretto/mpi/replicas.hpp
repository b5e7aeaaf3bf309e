#pragma once
/**
@file
@brief Keeps the two copies of each stage identical in bidirectional schedules (Chimera, BitPipe):
their gradients are summed across the two ranks that hold them, once per step.
*/

#include <mpi.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <stretto/core/op.hpp>
#include <stretto/core/schedule.hpp>
#include <stretto/core/transport.hpp>

#include "communicator.hpp"

namespace stretto::mpi {

/**
@brief Sums, for every stage that `s` places on two ranks (replica 0 on one, the mirrored
replica 1 on the other), the gradients of its two copies, so that both copies then take the same
optimizer step (Chimera, Li & Hoefler 2021, §3.4; BitPipe, Wu et al. 2024, §3.3).

`pack(stage)` returns this rank's gradients of `stage` as one `std::vector<double>`;
`unpack(stage, std::span<const double>)` stores the sum back. Stages are visited in increasing
order on every rank, one message each way per stage, so the exchange cannot deadlock; every
wait has the communicator's timeout. Does nothing for schedules with one replica.

@param comm a communicator used only for this (construct one next to the pipeline's: the
tags of the two must not meet).
@pre called by every rank of the pipeline after its step, before the optimizer step.
*/
template <class Pack, class Unpack>
void allreduce_replica_gradients(communicator& comm, const schedule& s, Pack&& pack, Unpack&& unpack) {
  if (s.num_replicas() < 2) return;
  const std::int32_t me = comm.rank();
  for (std::int32_t stage = 0; stage < s.num_stages(); ++stage) {
    const std::int32_t first = rank_of_stage(s.placement(), s.shape(), stage, 0);
    const std::int32_t second = rank_of_stage(s.placement(), s.shape(), stage, 1);
    if (first == second || (me != first && me != second)) continue;
    const std::int32_t partner = me == first ? second : first;
    std::vector<double> mine = pack(stage);
    std::vector<double> theirs(mine.size());
    const message_key in{message_direction::gradient, stage, stage, 0};
    auto receive = comm.post_receive(in, partner, theirs.data(), theirs.size());
    auto send = comm.post_send(in, partner, static_cast<const double*>(mine.data()), mine.size());
    const op waiting{op_kind::backward_weight, stage, 0};
    comm.wait(receive, waiting);
    comm.wait(send, waiting);
    for (std::size_t i = 0; i < mine.size(); ++i) mine[i] += theirs[i];
    unpack(stage, std::span<const double>(mine));
  }
}

/**
@brief The same for a model that packs its own gradients: `model.pack_gradients(stage)` returns a
`std::vector<double>` and `model.unpack_gradients(stage, std::span<const double>)` stores them.
*/
template <class Model>
  requires requires(Model& m, std::int32_t s, std::span<const double> g) {
    { m.pack_gradients(s) } -> std::same_as<std::vector<double>>;
    m.unpack_gradients(s, g);
  }
void allreduce_replica_gradients(communicator& comm, const schedule& s, Model& model) {
  allreduce_replica_gradients(
      comm, s, [&](std::int32_t stage) { return model.pack_gradients(stage); },
      [&](std::int32_t stage, std::span<const double> g) { model.unpack_gradients(stage, g); });
}

}  // namespace stretto::mpi
