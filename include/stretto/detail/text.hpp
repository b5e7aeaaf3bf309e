#pragma once
/**
@file
@brief Constant-evaluable text helpers used to build diagnostics.

`std::to_string` and `std::format` are not `constexpr` in C++20, but the validators and
policy constraint checks must run inside `static_assert`. These helpers build `std::string`
values from string views and integers in a way that also works at compile time.
*/

#include <concepts>
#include <string>
#include <string_view>
#include <type_traits>

namespace stretto::detail {

/** @brief Appends the decimal form of `value` to `out`. */
constexpr void append(std::string& out, unsigned long long value) {
  char digits[24]{};
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (n > 0) out.push_back(digits[--n]);
}

/** @brief Appends the decimal form of `value` to `out`, with a leading '-' when negative. */
constexpr void append(std::string& out, long long value) {
  if (value < 0) {
    out.push_back('-');
    // Negate in unsigned arithmetic so that the most negative value is handled.
    append(out, 0ULL - static_cast<unsigned long long>(value));
  } else {
    append(out, static_cast<unsigned long long>(value));
  }
}

constexpr void append(std::string& out, std::string_view text) { out.append(text); }
constexpr void append(std::string& out, const char* text) { out.append(text); }
constexpr void append(std::string& out, const std::string& text) { out.append(text); }
constexpr void append(std::string& out, char c) { out.push_back(c); }

template <std::integral T>
  requires(!std::same_as<T, char> && !std::same_as<T, bool> && !std::same_as<T, long long> &&
           !std::same_as<T, unsigned long long>)
constexpr void append(std::string& out, T value) {
  if constexpr (std::is_signed_v<T>) {
    append(out, static_cast<long long>(value));
  } else {
    append(out, static_cast<unsigned long long>(value));
  }
}

/** @brief Concatenates text pieces and integers into one string; usable in constant evaluation. */
template <class... Parts>
constexpr std::string cat(const Parts&... parts) {
  std::string out;
  (append(out, parts), ...);
  return out;
}

}  // namespace stretto::detail
