// Rejections: the exception type and a message that names the rule broken and a valid
// alternative (errors.hpp; docs/failure-kinds.md 10).
#include <doctest/doctest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include <stretto/stretto.hpp>

namespace {

constexpr std::string_view no_exception = "<no exception>";

// The what() of the `Error` that `f` throws; other exceptions propagate and fail the case.
template <class Error, class F>
std::string message_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return std::string(no_exception);
}

bool contains(const std::string& text, std::string_view fragment) {
  return text.find(fragment) != std::string::npos;
}

}  // namespace

TEST_CASE("errors.hierarchy" * doctest::timeout(5)) {
  CHECK(std::is_base_of_v<std::invalid_argument, stretto::shape_error>);
  CHECK(std::is_base_of_v<std::invalid_argument, stretto::argument_error>);
  CHECK(std::is_base_of_v<std::logic_error, stretto::validation_error>);
}

TEST_CASE("errors.shape.one_f_one_b_rejects_chunks" * doctest::timeout(5)) {
  const std::string what = message_of<stretto::shape_error>(
      [] { (void)stretto::make_schedule<stretto::policies::one_f_one_b>({4, 8, 2}); });
  INFO(what);
  CHECK(what != no_exception);
  CHECK(contains(what, "chunks"));
  CHECK(contains(what, "got 2"));
  CHECK(what.starts_with("1f1b"));
}

TEST_CASE("errors.shape.every_policy_names_the_broken_rule" * doctest::timeout(5)) {
  struct bad {
    stretto::pipeline_shape shape;
    std::string_view names;  // the quantity the message must name
  };
  for (const auto& policy : stretto::policies::all_policies) {
    const std::int32_t v = policy.default_chunks;
    for (const bad& x : {bad{{4, 0, v}, "microbatches"}, bad{{4, -3, v}, "microbatches"},
                         bad{{0, 8, v}, "ranks"}, bad{{-2, 8, v}, "ranks"}}) {
      const std::string name(policy.name);
      CAPTURE(name);
      CAPTURE(x.shape.num_ranks);
      CAPTURE(x.shape.num_microbatches);
      const std::string problem = policy.check(x.shape);
      INFO(problem);
      CHECK(contains(problem, x.names));
      CHECK(contains(problem, "at least 1"));
      CHECK(problem.starts_with(name));
      const std::string what = message_of<stretto::shape_error>(
          [&] { (void)stretto::policies::make_schedule(policy.name, x.shape); });
      CHECK(what == problem);
    }
  }
}

TEST_CASE("errors.shape.zero_microbatches_through_template" * doctest::timeout(5)) {
  for (const std::string& what :
       {message_of<stretto::shape_error>([] { (void)stretto::make_schedule<stretto::policies::gpipe>({4, 0, 1}); }),
        message_of<stretto::shape_error>([] { (void)stretto::make_schedule<stretto::policies::one_f_one_b>({4, 0, 1}); }),
        message_of<stretto::shape_error>([] { (void)stretto::make_schedule<stretto::policies::zb_h1>({4, 0, 1}); })}) {
    INFO(what);
    CHECK(contains(what, "microbatches"));
    CHECK(contains(what, "got 0"));
  }
}

TEST_CASE("errors.registry.unknown_name_lists_valid_names" * doctest::timeout(5)) {
  const std::string what = message_of<stretto::argument_error>(
      [] { (void)stretto::policies::make_schedule("nope", {4, 8, 1}); });
  INFO(what);
  CHECK(contains(what, "nope"));
  CHECK(contains(what, "gpipe, 1f1b, interleaved-1f1b, breadth-first, zb-h1, zb-h2, zb-v, v-half, v-min, gpipe-2bp, 1f1b-2bp, chimera, bitpipe"));
  CHECK(message_of<stretto::argument_error>([] { (void)stretto::policies::find_policy(""); }) != no_exception);
  // Names are exact: no case folding, no prefix match.
  CHECK(message_of<stretto::argument_error>([] { (void)stretto::policies::find_policy("ZB-H1"); }) != no_exception);
  CHECK(message_of<stretto::argument_error>([] { (void)stretto::policies::find_policy("zb"); }) != no_exception);
  CHECK(stretto::policies::find_policy("zb-h1").name == "zb-h1");
  CHECK(contains(stretto::policies::policy_names(), "gpipe, 1f1b, interleaved-1f1b, breadth-first, zb-h1, zb-h2, zb-v, v-half, v-min, gpipe-2bp, 1f1b-2bp, chimera, bitpipe"));
}

TEST_CASE("errors.cost_model.rejects_bad_parameters" * doctest::timeout(5)) {
  using stretto::sim::uniform_costs;
  CHECK_NOTHROW(uniform_costs{}.check());
  CHECK_NOTHROW((uniform_costs{18.522, 18.086, 9.337, 0.601}.check()));
  const std::string negative =
      message_of<stretto::argument_error>([] { uniform_costs{1.0, -1.0, 1.0, 0.0}.check(); });
  CHECK(contains(negative, "non-negative"));
  CHECK(message_of<stretto::argument_error>([] { uniform_costs{1.0, 1.0, 1.0, -0.5}.check(); }) != no_exception);
  // M_W > M_B is allowed (B allocates M_W − M_B); negative memory is not.
  CHECK_NOTHROW((uniform_costs{1.0, 1.0, 1.0, 0.0, 0.5, 1.0}.check()));
  const std::string memory =
      message_of<stretto::argument_error>([] { uniform_costs{1.0, 1.0, 1.0, 0.0, 1.0, -0.5}.check(); });
  CHECK(contains(memory, "M_W >= 0"));
}
