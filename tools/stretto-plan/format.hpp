#pragma once
/**
@file
@brief Number formatting shared by `stretto-plan`'s reports and error messages.
*/

#include <iomanip>
#include <sstream>
#include <string>

namespace stretto_plan {

/** @brief Returns `value` in the shortest general form with 6 significant digits, e.g. "27", "0.5". */
inline std::string format_number(double value) {
  std::ostringstream text;
  text << std::setprecision(6) << value;
  return text.str();
}

/** @brief Returns `value` with exactly `decimals` digits after the point, e.g. "0.1111". */
inline std::string format_fixed(double value, int decimals) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(decimals) << value;
  return text.str();
}

}  // namespace stretto_plan
