#include <doctest/doctest.h>

#include <stretto/stretto.hpp>

TEST_CASE("core.smoke.zb_h1_equal_times" * doctest::timeout(30)) {
  const auto s = stretto::make_schedule<stretto::policies::zb_h1>({4, 8, 1});
  CHECK(stretto::sim::simulate(s, stretto::sim::uniform_costs{}).metrics.span == 27.0);
}
