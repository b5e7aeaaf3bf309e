#pragma once
/**
@file
@brief `rows_policy<Rows>`: a schedule policy whose op lists are written out by hand, for the
compile-fail cases. It accepts every shape (so that only `stretto::validate`'s invariants decide)
and generates what `Rows::fill(schedule&)` appends, with the linear placement.
*/

#include <string>
#include <string_view>

#include <stretto/core/concepts.hpp>
#include <stretto/core/schedule.hpp>

namespace stretto::testing {

template <class Rows>
struct rows_policy {
  using policy_concept = schedule_policy_tag;
  static constexpr std::string_view name = "hand-written";
  static constexpr placement_kind placement = placement_kind::linear;

  static constexpr std::string check(const pipeline_shape&) { return {}; }

  static constexpr schedule generate(const pipeline_shape& shape) {
    schedule s(shape, placement);
    Rows::fill(s);
    return s;
  }
};

}  // namespace stretto::testing
