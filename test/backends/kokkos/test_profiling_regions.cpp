// stretto::kokkos::profiling_regions: the Kokkos Tools regions it opens, checked through Kokkos
// Tools' own region callbacks (the ones a profiling library installs).
#include <doctest/doctest.h>

#include <Kokkos_Core.hpp>

#include <string>
#include <vector>

#include <stretto/kokkos/profiling.hpp>
#include <stretto/policies/registry.hpp>

namespace {

std::vector<std::string> events;  // "+name" per push, "-" per pop
void on_push(const char* name) { events.push_back(std::string("+") + name); }
void on_pop() { events.emplace_back("-"); }

struct tool_callbacks {
  tool_callbacks() {
    events.clear();
    Kokkos::Tools::Experimental::set_push_region_callback(&on_push);
    Kokkos::Tools::Experimental::set_pop_region_callback(&on_pop);
  }
  ~tool_callbacks() {
    Kokkos::Tools::Experimental::set_push_region_callback(nullptr);
    Kokkos::Tools::Experimental::set_pop_region_callback(nullptr);
  }
};

// What the executor does per step, in its order of events (without waits and sends).
void run_step(stretto::kokkos::profiling_regions& regions, std::span<const stretto::op> ops) {
  const auto t = stretto::kokkos::observer::clock::now();
  regions.on_step_begin(ops, t);
  for (std::size_t i = 0; i < ops.size(); ++i) {
    regions.on_compute_begin(i, ops[i], t);
    regions.on_compute_end(i, ops[i], t);
  }
  regions.on_step_end(t);
}

}  // namespace

TEST_CASE("profiling_regions.one_region_per_op_inside_the_step") {
  using namespace stretto;
  const tool_callbacks tools;
  // 1F1B, p = 2, m = 2, rank 1 (the last stage): F0 BW0 F1 BW1.
  const schedule s = make_schedule<policies::one_f_one_b>({2, 2, 1});
  const auto ops = s.ops(1);
  REQUIRE(ops.size() == 4);
  kokkos::profiling_regions regions("rank 1 ");
  run_step(regions, ops);
  const std::vector<std::string> expected{
      "+rank 1 step",
      "+rank 1 F(stage 1, mb 0)", "-", "+rank 1 BW(stage 1, mb 0)", "-",
      "+rank 1 F(stage 1, mb 1)", "-", "+rank 1 BW(stage 1, mb 1)", "-",
      "-"};
  CHECK(events == expected);

  // A second step with another op list (rank 0's: F0 F1 BW0 BW1) renames what changed.
  events.clear();
  const auto rank0 = s.ops(0);
  run_step(regions, rank0);
  REQUIRE(events.size() == 2 + 2 * rank0.size());
  for (std::size_t i = 0; i < rank0.size(); ++i) CHECK(events[1 + 2 * i] == "+rank 1 " + to_string(rank0[i]));
}

TEST_CASE("profiling_regions.names_are_to_string_of_each_op") {
  using namespace stretto;
  // Every op of ZB-V (p = 3, m = 4, two chunks: F, B and W on stages 0..5).
  const schedule s = make_schedule<policies::zb_v>({3, 4, 2});
  const kokkos::profiling_regions regions;
  std::size_t checked = 0;
  for (std::int32_t r = 0; r < 3; ++r)
    for (const op& o : s.ops(r)) {
      CHECK(regions.name_of(o) == to_string(o));
      ++checked;
    }
  CHECK(checked == 3 * 4 * 2 * 3);
  CHECK(regions.name_of(op{op_kind::backward_weight, 5, 11}) == "W(stage 5, mb 11)");
}
