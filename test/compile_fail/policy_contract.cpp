// A policy that declares the linear placement but generates a looped schedule breaks the
// schedule_policy contract (generate must return a schedule of the shape and placement asked
// for). With STRETTO_COMPILE_FAIL_TWIN defined it keeps its word (the twin, which must compile);
// without, compilation must fail with a diagnostic matching:
//
// expected-error: stretto policy contract broken
#include <string>
#include <string_view>

#include <stretto/compile_time/static_schedule.hpp>

namespace {

struct inconsistent_policy {
  using policy_concept = stretto::schedule_policy_tag;
  static constexpr std::string_view name = "inconsistent";
  static constexpr stretto::placement_kind placement = stretto::placement_kind::linear;

  static constexpr std::string check(const stretto::pipeline_shape&) { return {}; }

  static constexpr stretto::schedule generate(const stretto::pipeline_shape& shape) {
#ifdef STRETTO_COMPILE_FAIL_TWIN
    stretto::schedule s(shape, placement);
#else
    stretto::schedule s(shape, stretto::placement_kind::looped);  // not the declared placement
#endif
    s.push_back(0, {stretto::op_kind::forward, 0, 0});
    s.push_back(0, {stretto::op_kind::backward, 0, 0});
    return s;
  }
};

}  // namespace

stretto::op first_op() {
  return stretto::compile_time::static_schedule<inconsistent_policy, stretto::pipeline_shape{1, 1, 1}>::ops(0).front();
}
