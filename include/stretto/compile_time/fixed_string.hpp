#pragma once
/**
@file
@brief `fixed_string`: text of a length fixed at compile time, usable as a template argument.

C++20 `static_assert` messages must be string literals, so a message computed in constant
evaluation (which rule a schedule breaks, on which rank, at which op) cannot be the message of
a `static_assert`. It can be a *template argument* instead: GCC and Clang print the template
arguments of the instantiation that fails, so the computed text appears in the diagnostic.
*/

#include <cstddef>
#include <string_view>

namespace stretto::compile_time {

/**
@brief `N` characters (and a terminating zero) held by value: a structural type, so a valid
non-type template argument.

**Example.** `fixed_string<5>{"hello"}`; the diagnostic of a failed instantiation prints it as
`fixed_string<5>{"hello"}`.
*/
template <std::size_t N>
struct fixed_string {
  char text[N + 1]{};

  /** @brief Returns the `N` characters. */
  constexpr std::string_view view() const noexcept { return {text, N}; }
  /** @brief Returns `N`. */
  static constexpr std::size_t size() noexcept { return N; }
};

/** @brief Deduces `N` from a string literal, e.g. `fixed_string{"abc"}` is `fixed_string<3>`. */
template <std::size_t M>
fixed_string(const char (&)[M]) -> fixed_string<M - 1>;

/**
@brief Returns the first `N` characters of `text` as a `fixed_string<N>`.
@pre `text.size() >= N`.
*/
template <std::size_t N>
constexpr fixed_string<N> to_fixed_string(std::string_view text) noexcept {
  fixed_string<N> out;
  for (std::size_t i = 0; i < N; ++i) out.text[i] = text[i];
  return out;
}

}  // namespace stretto::compile_time
