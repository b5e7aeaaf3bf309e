#pragma once
// Shared by the stage_model_* compile-fail cases: a one-rank transport and the call through
// which a user meets the concept, constructing an executor.
#include <stretto/kokkos/executor.hpp>
#include <stretto/stretto.hpp>

#include <cstddef>
#include <cstdint>

namespace stretto::testing {

/** @brief A transport for one rank: with p = 1 the executor never sends or receives. */
struct single_rank_transport {
  struct request {};
  std::int32_t rank() const { return 0; }
  request post_receive(const message_key&, std::int32_t, double*, std::size_t) { return {}; }
  request post_send(const message_key&, std::int32_t, const double*, std::size_t) { return {}; }
  bool test(request&) { return true; }
  void wait(request&, const op&) {}
};

/** @brief Runs one 1F1B step of `model` on one rank, as a user's trainer would. */
template <class Model>
double run_one_step(Model& model) {
  const schedule plan = make_schedule<policies::one_f_one_b>({1, 2, 1});
  single_rank_transport comm;
  stretto::kokkos::executor exec(plan, model, comm);
  return exec.run_step().loss;
}

}  // namespace stretto::testing
