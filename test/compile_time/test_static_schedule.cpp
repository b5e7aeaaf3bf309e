// Compile-time schedules (stretto::compile_time): the op table generated while compiling equals
// the run-time schedule, is sized exactly by the counting pass, and every schedule_rule is
// detected at compile time. The compile errors themselves are tested in test/compile_fail/.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <stretto/compile_time/static_schedule.hpp>
#include <stretto/compile_time/static_validate.hpp>
#include <stretto/policies/registry.hpp>
#include <stretto/sim/cost_model.hpp>
#include <stretto/sim/simulator.hpp>

#include "compile_time/hand_policies.hpp"

namespace {

using namespace stretto;
using compile_time::static_schedule;
using testing::hand_policy;

template <class Static, class Policy>
constexpr bool equals_run_time_schedule() {
  return Static::to_schedule() == make_schedule<Policy>(Static::shape());
}

// ---- the table equals the run-time schedule; closed-form sizes -------------------------------
using zb_4_8 = static_schedule<policies::zb_h1, pipeline_shape{4, 8, 1}>;
using one_f_one_b_3_5 = static_schedule<policies::one_f_one_b, pipeline_shape{3, 5, 1}>;
using gpipe_5_2 = static_schedule<policies::gpipe, pipeline_shape{5, 2, 1}>;
using zb_8_64 = static_schedule<policies::zb_h1, pipeline_shape{8, 64, 1}>;

static_assert(equals_run_time_schedule<zb_4_8, policies::zb_h1>());
static_assert(equals_run_time_schedule<one_f_one_b_3_5, policies::one_f_one_b>());
static_assert(equals_run_time_schedule<gpipe_5_2, policies::gpipe>());
// Looped, V-shaped and bidirectional placements (several chunks, a mirrored replica).
using zb_v_4_6 = static_schedule<policies::zb_v, pipeline_shape{4, 6, 2}>;
using interleaved_2_4 = static_schedule<policies::interleaved_1f1b, pipeline_shape{2, 4, 2}>;
using chimera_4_8 = static_schedule<policies::chimera, pipeline_shape{4, 8, 1}>;
static_assert(equals_run_time_schedule<zb_v_4_6, policies::zb_v>());
static_assert(equals_run_time_schedule<interleaved_2_4, policies::interleaved_1f1b>());
static_assert(equals_run_time_schedule<chimera_4_8, policies::chimera>());
static_assert(chimera_4_8::replica_of(0) != chimera_4_8::replica_of(chimera_4_8::num_microbatches() - 1));
static_assert(chimera_4_8::rank_of(0, 0) != chimera_4_8::rank_of(0, chimera_4_8::num_microbatches() - 1));
static_assert(zb_v_4_6::num_ops() == 3 * 4 * 2 * 6 && zb_v_4_6::rank_of(7) == 0);
// The peers' orders at build time: interleaved 1F1B with PyTorch's groups of 5 (p does not
// divide m), interleaved zero bubble, BitPipe over two units with the boundary overlap; their
// equal-time spans are the peers' worked values (34.5, 25.5, 27).
using interleaved_4_10 = static_schedule<policies::interleaved_1f1b, pipeline_shape{4, 10, 2}>;
using interleaved_zb_4_8 = static_schedule<policies::interleaved_zb, pipeline_shape{4, 8, 2}>;
using interleaved_zb_3_2 = static_schedule<policies::interleaved_zb, pipeline_shape{3, 2, 3}>;
using bitpipe_4_8 = static_schedule<policies::bitpipe, pipeline_shape{4, 8, 2}>;
static_assert(equals_run_time_schedule<interleaved_4_10, policies::interleaved_1f1b>());
static_assert(equals_run_time_schedule<interleaved_zb_4_8, policies::interleaved_zb>());
static_assert(equals_run_time_schedule<interleaved_zb_3_2, policies::interleaved_zb>());
static_assert(equals_run_time_schedule<bitpipe_4_8, policies::bitpipe>());
static_assert(interleaved_zb_4_8::num_ops() == 3 * 4 * 2 * 8 && interleaved_4_10::num_ops() == 2 * 4 * 2 * 10);
// Rank 0: (v-1)G + p-1 = 7 warm-up F's, then F B W triples.
static_assert(interleaved_zb_4_8::ops(0)[7] == op{op_kind::forward, 4, 3});
static_assert(interleaved_zb_4_8::ops(0)[8] == op{op_kind::backward_input, 4, 0});
static_assert(interleaved_zb_4_8::ops(0)[9] == op{op_kind::backward_weight, 4, 0});
static_assert(sim::simulate(interleaved_4_10::to_schedule(), sim::uniform_costs{}).metrics.span == 34.5);
static_assert(sim::simulate(interleaved_zb_4_8::to_schedule(), sim::uniform_costs{}).metrics.span == 25.5);
static_assert(sim::simulate(bitpipe_4_8::to_schedule(), sim::uniform_costs{}).metrics.span == 27.0);
// V-Half and V-Min (controllable memory): the greedy squeeze runs at compile time too. V-Half at
// p = 4, m = 8 starts rank 0 with five F's of chunk A, then F, B, W of chunk C; equal-time span
// 26.5 (bubble 2.5 over 24 of work).
using v_half_4_8 = static_schedule<policies::v_half, pipeline_shape{4, 8, 2}>;
using v_min_3_2 = static_schedule<policies::v_min, pipeline_shape{3, 2, 2}>;
static_assert(equals_run_time_schedule<v_half_4_8, policies::v_half>());
static_assert(equals_run_time_schedule<v_min_3_2, policies::v_min>());
static_assert(v_half_4_8::num_ops() == 3 * 4 * 2 * 8 && v_half_4_8::placement() == placement_kind::v_shape);
static_assert(v_half_4_8::ops(0)[4] == op{op_kind::forward, 0, 4} && v_half_4_8::ops(0)[5] == op{op_kind::forward, 7, 0} &&
              v_half_4_8::ops(0)[6] == op{op_kind::backward_input, 7, 0} &&
              v_half_4_8::ops(0)[7] == op{op_kind::backward_weight, 7, 0});
static_assert(sim::simulate(v_half_4_8::to_schedule(), sim::uniform_costs{}).metrics.span == 26.5);

// nvcc's front end cannot name a variable template with a class-type argument (pipeline_shape)
// outside a template: it writes the argument out as an undeclared name. These helpers name them
// inside one, so that the test also compiles with nvcc (docs/gpu.md).
template <class Policy, pipeline_shape Shape>
constexpr std::size_t table_bytes() {
  return sizeof(compile_time::detail::table_v<Policy, Shape>.ops);
}
template <class Policy, pipeline_shape Shape>
constexpr compile_time::diag::failure failure_of() {
  return compile_time::detail::summary_v<Policy, Shape>.failure;
}
template <class Policy, pipeline_shape Shape>
constexpr std::string_view message_of() {
  const auto& s = compile_time::detail::summary_v<Policy, Shape>;
  return {s.message, s.message_length};
}
template <class Policy, pipeline_shape Shape>
constexpr schedule_rule broken_rule() {
  return compile_time::broken_rule_v<Policy, Shape>;
}

// The counting pass sizes the table exactly: 3·p·m ops with split backwards, 2·p·m with fused.
static_assert(zb_4_8::num_ops() == 3 * 4 * 8);
static_assert(table_bytes<policies::zb_h1, pipeline_shape{4, 8, 1}>() == 3 * 4 * 8 * sizeof(op));
static_assert(one_f_one_b_3_5::num_ops() == 2 * 3 * 5);
static_assert(gpipe_5_2::num_ops() == 2 * 5 * 2);
static_assert(zb_8_64::num_ops() == 3 * 8 * 64);
static_assert(zb_8_64::max_ops_per_rank() == 3 * 64);
static_assert(zb_4_8::ops(3).size() == 24 && zb_4_8::ops(3).front() == op{op_kind::forward, 3, 0});
// ZB-H1 rank 1 of 4: 3 forwards of warm-up, then B0 F3 B1 W0 (W trails B by the rank index).
static_assert(zb_4_8::ops(1)[3] == op{op_kind::backward_input, 1, 0});
static_assert(zb_4_8::ops(1)[5] == op{op_kind::backward_input, 1, 1});
static_assert(zb_4_8::ops(1)[6] == op{op_kind::backward_weight, 1, 0});
static_assert(zb_4_8::rank_of(2) == 2 && zb_4_8::rank_of(2, 5) == 2 && zb_4_8::replica_of(5) == 0);
static_assert(zb_4_8::shape() == pipeline_shape{4, 8, 1} && zb_4_8::placement() == placement_kind::linear);
static_assert(compile_time::is_static_schedule_v<zb_4_8> && !compile_time::is_static_schedule_v<schedule>);

// A compile-time schedule simulates like the run-time one: docs/reference-numbers.md, equal times
// p = 4, m = 8: ZB-H1 span 27.
static_assert(sim::simulate(zb_4_8::to_schedule(), sim::uniform_costs{}).metrics.span == 27.0);

// ---- every rule is caught at compile time, as a value (no hard error) -------------------------
constexpr pipeline_shape hand_shape{2, 2, 1};
static_assert(compile_time::is_valid_v<hand_policy<schedule_rule::valid>, hand_shape>);
template <schedule_rule Rule, pipeline_shape Shape = hand_shape>
constexpr bool caught = !compile_time::is_valid_v<hand_policy<Rule>, Shape> &&
                        compile_time::broken_rule_v<hand_policy<Rule>, Shape> == Rule;
static_assert(caught<schedule_rule::bad_shape, pipeline_shape{2, 0, 1}>);
static_assert(caught<schedule_rule::stage_out_of_range>);
static_assert(caught<schedule_rule::microbatch_out_of_range>);
static_assert(caught<schedule_rule::wrong_rank>);
static_assert(caught<schedule_rule::duplicate_op>);
static_assert(caught<schedule_rule::mixed_backward>);
static_assert(caught<schedule_rule::missing_op>);
static_assert(caught<schedule_rule::order>);
static_assert(caught<schedule_rule::deadlock>);
// A shape the policy rejects is not a broken rule: it is reported before generation.
static_assert(!compile_time::is_valid_v<policies::zb_h1, pipeline_shape{4, 8, 2}>);
static_assert(compile_time::broken_rule_v<policies::zb_h1, pipeline_shape{4, 8, 2}> == schedule_rule::valid);
static_assert(failure_of<policies::zb_h1, pipeline_shape{4, 8, 2}>() == compile_time::diag::failure::shape_rejected);

// The message carried into the diagnostic names the policy, the shape and the rule.
static_assert(message_of<hand_policy<schedule_rule::deadlock>, hand_shape>().starts_with("hand at (p, m, v) = (2, 2, 1): invalid schedule [deadlock]: "));

// ---- the value path ------------------------------------------------------------------------
static_assert(compile_time::check(make_schedule<policies::zb_h1>({4, 8, 1})));
static_assert(compile_time::check(hand_policy<schedule_rule::valid>::generate(hand_shape)));

}  // namespace

TEST_CASE("static_schedule.same_values_at_run_time" * doctest::timeout(10)) {
  // The static_asserts above are the test; these repeat some at run time, reading the table
  // from static storage, so that a constexpr-only divergence would show.
  CHECK(zb_4_8::to_schedule() == make_schedule<policies::zb_h1>({4, 8, 1}));
  CHECK(zb_8_64::to_schedule() == make_schedule<policies::zb_h1>({8, 64, 1}));
  const schedule run_time = make_schedule<policies::zb_h1>({8, 64, 1});
  std::size_t total = 0;
  for (std::int32_t r = 0; r < zb_8_64::num_ranks(); ++r) {
    const auto ops = zb_8_64::ops(r);
    const auto expected = run_time.ops(r);
    CHECK(ops.size() == expected.size());
    for (std::size_t i = 0; i < ops.size() && i < expected.size(); ++i) CHECK(ops[i] == expected[i]);
    total += ops.size();
  }
  CHECK(total == zb_8_64::num_ops());
  CHECK(broken_rule<hand_policy<schedule_rule::order>, hand_shape>() == schedule_rule::order);
}
