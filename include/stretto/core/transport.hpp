#pragma once
/**
@file
@brief What an executor needs from a message layer: the `transport` concept and the key that
identifies each message of a step.

The Kokkos executor is written against this concept; the MPI backend models it
(`stretto::mpi::communicator`). The core includes no backend.
*/

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "../detail/text.hpp"
#include "op.hpp"

namespace stretto {

/** @brief Which way a message flows: activations forward, input gradients backward. */
enum class message_direction : std::uint8_t { activation, gradient };

/**
@brief The identity of one message of a step: (direction, source stage, destination stage,
microbatch). Messages are never identified by peer alone (docs/failure-kinds.md, item 2).
*/
struct message_key {
  message_direction direction{message_direction::activation};
  std::int32_t from_stage{0};
  std::int32_t to_stage{0};
  std::int32_t microbatch{0};

  friend constexpr bool operator==(const message_key&, const message_key&) = default;
};

/** @brief Returns e.g. `"activation of mb 3 from stage 1 to stage 2"`. */
constexpr std::string to_string(const message_key& k) {
  return detail::cat(k.direction == message_direction::activation ? "activation" : "gradient",
                     " of mb ", k.microbatch, " from stage ", k.from_stage, " to stage ", k.to_stage);
}

/**
@brief Thrown (or reported before an abort) when a wait on a message exceeds its timeout.
The message names the rank, the op that waits and the message it waits for.
*/
class timeout_error : public std::runtime_error {
 public:
  explicit timeout_error(const std::string& what) : std::runtime_error(what) {}
};

/**
@brief A point-to-point message layer between the ranks of one pipeline.

**Notation.** `T` a transport, `t` a `T&`, `k` a `message_key`, `r` a rank, `p` a `double*`,
`cp` a `const double*`, `n` a `std::size_t`, `q` a `typename T::request&`, `o` an `op`.

| Valid expression | Meaning |
|---|---|
| `t.rank()` | this process's rank in the pipeline |
| `t.post_receive(k, r, p, n)` | starts receiving the `n` values of message `k` from rank `r` into `p`; returns a request |
| `t.post_send(k, r, cp, n)` | starts sending `n` values to rank `r`; `cp` must stay valid until the request completes |
| `t.test(q)` | `bool`: whether `q` has completed; never blocks |
| `t.wait(q, o)` | blocks until `q` completes; past the timeout reports the rank, the op `o` and the message |

Sends never block (they are buffered or asynchronous): only receives wait. This is the
message semantics under which `stretto::validate` proves a schedule deadlock-free.
*/
template <class T>
concept transport = requires(T& t, const message_key& k, std::int32_t r, double* p, const double* cp,
                             std::size_t n, typename T::request& q, const op& o) {
  typename T::request;
  { t.rank() } -> std::convertible_to<std::int32_t>;
  { t.post_receive(k, r, p, n) } -> std::same_as<typename T::request>;
  { t.post_send(k, r, cp, n) } -> std::same_as<typename T::request>;
  { t.test(q) } -> std::same_as<bool>;
  t.wait(q, o);
};

}  // namespace stretto
