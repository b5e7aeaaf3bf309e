// Negative tests of stretto::validate, one or more per schedule_rule: the rule, the rank, the
// culprit op and a message that names the rule and the op (docs/failure-kinds.md 10). Each bad
// schedule is also checked against the independent invariant checker.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <stretto/stretto.hpp>

#include "common/invariants.hpp"
#include "core/support.hpp"

namespace {

using stretto::op;
using stretto::op_kind;
using stretto::pipeline_shape;
using stretto::placement_kind;
using stretto::schedule;
using stretto::schedule_rule;
using stretto::testing::edited;
using stretto::testing::first_broken_invariant;
using stretto::testing::from_rows;
using stretto::testing::without;

struct expected_rejection {
  schedule_rule rule;
  std::int32_t rank;
  op culprit;
  std::initializer_list<std::string_view> message_contains;
  int invariant;  // the invariant of common/invariants.hpp that breaks too; 0: none does
};

void check_rejected(const schedule& s, const expected_rejection& e) {
  const stretto::validation_result got = stretto::validate(s);
  INFO("message: " << got.message);
  CHECK_FALSE(got.ok());
  CHECK_FALSE(static_cast<bool>(got));
  CHECK(got.rule == e.rule);
  CHECK(got.rank == e.rank);
  CHECK(got.culprit == e.culprit);
  for (std::string_view fragment : e.message_contains) {
    CAPTURE(fragment);
    CHECK(got.message.find(fragment) != std::string::npos);
  }
  CHECK_THROWS_AS(stretto::validate_or_throw(s), stretto::validation_error);
  CHECK_THROWS_AS(stretto::sim::simulate(s, stretto::sim::uniform_costs{}), stretto::validation_error);
  const auto broken = first_broken_invariant(s);
  INFO("invariant checker: " << broken.what);
  CHECK(broken.number == e.invariant);
}

// Moves `o` within its rank's list to position `index`.
schedule moved(const schedule& s, op o, std::size_t index) {
  return edited(s, [&](std::int32_t, std::vector<op>& list) {
    const auto at = std::find(list.begin(), list.end(), o);
    if (at == list.end()) return;
    list.erase(at);
    list.insert(list.begin() + static_cast<std::ptrdiff_t>(index), o);
  });
}

schedule appended(const schedule& s, std::int32_t rank, op o) {
  return edited(s, [&](std::int32_t r, std::vector<op>& list) {
    if (r == rank) list.push_back(o);
  });
}

const schedule one_f_one_b_4_8 = stretto::make_schedule<stretto::policies::one_f_one_b>({4, 8, 1});
const schedule zb_h1_4_8 = stretto::make_schedule<stretto::policies::zb_h1>({4, 8, 1});

}  // namespace

TEST_CASE("validate.accepts.generated" * doctest::timeout(5)) {
  for (const schedule* s : {&one_f_one_b_4_8, &zb_h1_4_8}) {
    const auto got = stretto::validate(*s);
    CHECK(got.ok());
    CHECK(got.rule == schedule_rule::valid);
    CHECK(got.message.empty());
    CHECK_NOTHROW(stretto::validate_or_throw(*s));
  }
}

TEST_CASE("validate.rule_names" * doctest::timeout(5)) {
  CHECK(stretto::to_string(schedule_rule::valid) == "valid");
  CHECK(stretto::to_string(schedule_rule::bad_shape) == "bad_shape");
  CHECK(stretto::to_string(schedule_rule::stage_out_of_range) == "stage_out_of_range");
  CHECK(stretto::to_string(schedule_rule::microbatch_out_of_range) == "microbatch_out_of_range");
  CHECK(stretto::to_string(schedule_rule::wrong_rank) == "wrong_rank");
  CHECK(stretto::to_string(schedule_rule::duplicate_op) == "duplicate_op");
  CHECK(stretto::to_string(schedule_rule::mixed_backward) == "mixed_backward");
  CHECK(stretto::to_string(schedule_rule::missing_op) == "missing_op");
  CHECK(stretto::to_string(schedule_rule::order) == "order");
  CHECK(stretto::to_string(schedule_rule::deadlock) == "deadlock");
  CHECK(stretto::to_string(op{op_kind::forward, 1, 2}) == "F(stage 1, mb 2)");
  CHECK(stretto::to_string(op{op_kind::backward, 0, 10}) == "BW(stage 0, mb 10)");
  CHECK(stretto::to_string(op{op_kind::backward_input, 3, 0}) == "B(stage 3, mb 0)");
  CHECK(stretto::to_string(op{op_kind::backward_weight, 7, 7}) == "W(stage 7, mb 7)");
}

TEST_CASE("validate.bad_shape.below_one" * doctest::timeout(5)) {
  struct bad {
    pipeline_shape shape;
    std::string_view names;
  };
  for (const bad& x : {bad{{0, 4, 1}, "p = 0"}, bad{{2, 0, 1}, "m = 0"}, bad{{2, 4, 0}, "v = 0"},
                       bad{{-1, 4, 1}, "p = -1"}}) {
    CAPTURE(x.names);
    const schedule s(x.shape, placement_kind::linear);
    check_rejected(s, {schedule_rule::bad_shape, -1, op{}, {"[bad_shape]", x.names}, 1});
  }
}

TEST_CASE("validate.stage_out_of_range.past_end_and_negative" * doctest::timeout(5)) {
  const auto s = stretto::make_schedule<stretto::policies::one_f_one_b>({2, 2, 1});
  check_rejected(appended(s, 1, op{op_kind::forward, 2, 0}),
                 {schedule_rule::stage_out_of_range, 1, op{op_kind::forward, 2, 0},
                  {"[stage_out_of_range]", "F(stage 2, mb 0)", "0..1"}, 2});
  check_rejected(appended(s, 0, op{op_kind::backward, -1, 1}),
                 {schedule_rule::stage_out_of_range, 0, op{op_kind::backward, -1, 1},
                  {"[stage_out_of_range]", "BW(stage -1, mb 1)"}, 2});
}

TEST_CASE("validate.microbatch_out_of_range.past_end_and_negative" * doctest::timeout(5)) {
  const auto s = stretto::make_schedule<stretto::policies::one_f_one_b>({2, 2, 1});
  check_rejected(appended(s, 0, op{op_kind::backward, 0, 2}),
                 {schedule_rule::microbatch_out_of_range, 0, op{op_kind::backward, 0, 2},
                  {"[microbatch_out_of_range]", "BW(stage 0, mb 2)", "0..1"}, 2});
  check_rejected(appended(s, 1, op{op_kind::forward, 1, -1}),
                 {schedule_rule::microbatch_out_of_range, 1, op{op_kind::forward, 1, -1},
                  {"[microbatch_out_of_range]", "F(stage 1, mb -1)"}, 2});
}

TEST_CASE("validate.wrong_rank.op_moved_to_other_rank" * doctest::timeout(5)) {
  const op f{op_kind::forward, 1, 0};
  const auto s = edited(stretto::make_schedule<stretto::policies::one_f_one_b>({2, 2, 1}),
                        [&](std::int32_t r, std::vector<op>& list) {
                          if (r == 1) std::erase(list, f);
                          if (r == 0) list.push_back(f);
                        });
  check_rejected(s, {schedule_rule::wrong_rank, 0, f,
                     {"[wrong_rank]", "F(stage 1, mb 0)", "on rank 0", "stage 1 on rank 1"}, 3});
}

TEST_CASE("validate.duplicate_op.forward_and_weight" * doctest::timeout(5)) {
  check_rejected(appended(one_f_one_b_4_8, 1, op{op_kind::forward, 1, 2}),
                 {schedule_rule::duplicate_op, 1, op{op_kind::forward, 1, 2},
                  {"duplicate_op", "F(stage 1, mb 2)"}, 4});
  check_rejected(appended(zb_h1_4_8, 2, op{op_kind::backward_weight, 2, 5}),
                 {schedule_rule::duplicate_op, 2, op{op_kind::backward_weight, 2, 5},
                  {"duplicate_op", "W(stage 2, mb 5)"}, 5});
}

TEST_CASE("validate.missing_op.forward" * doctest::timeout(5)) {
  const op f{op_kind::forward, 2, 3};
  check_rejected(without(one_f_one_b_4_8, f),
                 {schedule_rule::missing_op, 2, f, {"missing_op", "F(stage 2, mb 3)"}, 4});
  // An empty schedule lacks its very first F.
  check_rejected(schedule({2, 2, 1}, placement_kind::linear),
                 {schedule_rule::missing_op, 0, op{op_kind::forward, 0, 0},
                  {"missing_op", "F(stage 0, mb 0)"}, 4});
}

TEST_CASE("validate.missing_op.weight_gradient" * doctest::timeout(5)) {
  const op w{op_kind::backward_weight, 1, 4};
  check_rejected(without(zb_h1_4_8, w),
                 {schedule_rule::missing_op, 1, w, {"[missing_op]", "W(stage 1, mb 4) is missing from rank 1"}, 5});
}

TEST_CASE("validate.missing_op.input_gradient" * doctest::timeout(5)) {
  const op b{op_kind::backward_input, 3, 7};
  check_rejected(without(zb_h1_4_8, b),
                 {schedule_rule::missing_op, 3, b, {"[missing_op]", "B(stage 3, mb 7) is missing from rank 3"}, 5});
}

TEST_CASE("validate.missing_op.fused_backward" * doctest::timeout(5)) {
  // The culprit's kind for a fused schedule that lacks its BW is not specified; check the rest.
  const auto got = stretto::validate(without(one_f_one_b_4_8, op{op_kind::backward, 2, 5}));
  INFO("message: " << got.message);
  CHECK(got.rule == schedule_rule::missing_op);
  CHECK(got.rank == 2);
  CHECK(got.culprit.stage == 2);
  CHECK(got.culprit.microbatch == 5);
  CHECK(got.message.find("missing_op") != std::string::npos);
  CHECK(got.message.find("stage 2, mb 5") != std::string::npos);
}

TEST_CASE("validate.mixed_backward.fused_and_split" * doctest::timeout(5)) {
  // A fused BW added to a split schedule, and a split B added to a fused one.
  check_rejected(appended(zb_h1_4_8, 1, op{op_kind::backward, 1, 2}),
                 {schedule_rule::mixed_backward, 1, op{op_kind::backward, 1, 2},
                  {"[mixed_backward]", "stage 1, mb 2"}, 5});
  check_rejected(appended(one_f_one_b_4_8, 0, op{op_kind::backward_input, 0, 6}),
                 {schedule_rule::mixed_backward, 0, op{op_kind::backward, 0, 6},
                  {"[mixed_backward]", "stage 0, mb 6"}, 5});
}

// Every rule's message contains the culprit op as to_string(culprit) writes it, e.g.
// "F(stage 2, mb 3)", so that a log can be searched for the op.
TEST_CASE("validate.message_names_culprit.missing_and_mixed" * doctest::timeout(5)) {
  const schedule bad[] = {
      without(zb_h1_4_8, op{op_kind::backward_weight, 1, 4}),
      without(zb_h1_4_8, op{op_kind::backward_input, 3, 7}),
      appended(zb_h1_4_8, 1, op{op_kind::backward, 1, 2}),
      appended(one_f_one_b_4_8, 0, op{op_kind::backward_input, 0, 6}),
  };
  const std::string_view culprit_text[] = {"W(stage 1, mb 4)", "B(stage 3, mb 7)",
                                           "BW(stage 1, mb 2)", "BW(stage 0, mb 6)"};
  for (std::size_t i = 0; i < std::size(bad); ++i) {
    const auto got = stretto::validate(bad[i]);
    CAPTURE(culprit_text[i]);
    INFO("message: " << got.message);
    CHECK(got.message.find(culprit_text[i]) != std::string::npos);
  }
}

TEST_CASE("validate.order.backward_before_forward" * doctest::timeout(5)) {
  // Rank 1 of 1F1B p = 2, m = 2 is F0 BW0 F1 BW1; run BW0 first.
  const op bw{op_kind::backward, 1, 0};
  check_rejected(moved(stretto::make_schedule<stretto::policies::one_f_one_b>({2, 2, 1}), bw, 0),
                 {schedule_rule::order, 1, bw, {"[order]", "BW(stage 1, mb 0)"}, 6});
  // Rank 0 list [BW(0,0), F(0,0)] for p = 1, m = 1.
  check_rejected(from_rows({1, 1, 1}, placement_kind::linear,
                           {{op{op_kind::backward, 0, 0}, op{op_kind::forward, 0, 0}}}),
                 {schedule_rule::order, 0, op{op_kind::backward, 0, 0},
                  {"[order]", "BW(stage 0, mb 0)"}, 6});
  // A split B ahead of its F.
  const op b{op_kind::backward_input, 2, 4};
  check_rejected(moved(zb_h1_4_8, b, 0), {schedule_rule::order, 2, b, {"[order]", "B(stage 2, mb 4)"}, 6});
}

TEST_CASE("validate.order.weight_before_input_gradient" * doctest::timeout(5)) {
  const op w{op_kind::backward_weight, 2, 0};
  check_rejected(moved(zb_h1_4_8, w, 0), {schedule_rule::order, 2, w, {"[order]", "W(stage 2, mb 0)"}, 6});
}

TEST_CASE("validate.deadlock.cross_rank_wait_cycle" * doctest::timeout(5)) {
  // p = 2, m = 2. Every stage is in order on its rank (F before BW), yet:
  //   rank 0: F(0,0) BW(0,0) F(0,1) BW(0,1)   - BW(0,0) waits for BW(1,0) from rank 1;
  //   rank 1: F(1,1) BW(1,1) F(1,0) BW(1,0)   - F(1,1) waits for F(0,1), which rank 0 runs
  //                                            only after BW(0,0).
  const auto s = from_rows({2, 2, 1}, placement_kind::linear,
                           {{op{op_kind::forward, 0, 0}, op{op_kind::backward, 0, 0},
                             op{op_kind::forward, 0, 1}, op{op_kind::backward, 0, 1}},
                            {op{op_kind::forward, 1, 1}, op{op_kind::backward, 1, 1},
                             op{op_kind::forward, 1, 0}, op{op_kind::backward, 1, 0}}});
  check_rejected(s, {schedule_rule::deadlock, 0, op{op_kind::backward, 0, 0},
                     {"[deadlock]", "BW(stage 0, mb 0)", "B|BW(stage 1, mb 0) on rank 1",
                      "F(stage 1, mb 1)", "F(stage 0, mb 1) on rank 0"},
                     0});
}

TEST_CASE("validate.deadlock.three_rank_cycle_from_generated" * doctest::timeout(5)) {
  // ZB-H1 p = 4, m = 8 with rank 2 running F(2,4) right after F(2,0): rank 2 then waits for
  // F(1,4), which rank 1 runs only after B(1,0), which waits for B(2,0) from rank 2 - a wait
  // cycle between ranks 1 and 2; rank 0 (at B(0,0)) and rank 3 (at F(3,1)) stall behind it.
  const op f{op_kind::forward, 2, 4};
  const auto s = moved(zb_h1_4_8, f, 1);
  CHECK(first_broken_invariant(s).ok());
  const auto got = stretto::validate(s);
  INFO("message: " << got.message);
  CHECK(got.rule == schedule_rule::deadlock);
  CHECK(got.message.find("[deadlock]") != std::string::npos);
  CHECK(got.message.find("rank 2 is stuck at F(stage 2, mb 4)") != std::string::npos);
  CHECK(got.message.find("F(stage 1, mb 4) on rank 1") != std::string::npos);
}

TEST_CASE("validate.wrong_rank.mirrored_replica" * doctest::timeout(5)) {
  // Bidirectional placement (shape.hpp, rank_of_stage): microbatch 1 flows through replica 1,
  // the mirror image, so its stage 0 is on rank 1 and its stage 1 on rank 0.
  auto mirrored = [](bool misplace) {
    schedule s({2, 2, 1}, placement_kind::linear);
    s.set_replica(1, 1);
    const std::int32_t r0 = misplace ? 1 : 0;  // where mb 1's stage 1 goes
    const std::int32_t r1 = misplace ? 0 : 1;  // where mb 1's stage 0 goes
    s.push_back(0, {op_kind::forward, 0, 0});
    s.push_back(r1, {op_kind::forward, 0, 1});
    s.push_back(1, {op_kind::forward, 1, 0});
    s.push_back(r0, {op_kind::forward, 1, 1});
    s.push_back(r0, {op_kind::backward, 1, 1});
    s.push_back(1, {op_kind::backward, 1, 0});
    s.push_back(0, {op_kind::backward, 0, 0});
    s.push_back(r1, {op_kind::backward, 0, 1});
    return s;
  };
  const auto good = mirrored(false);
  CHECK(stretto::testing::check_schedule_invariants(good));
  CHECK(stretto::sim::simulate(good, stretto::sim::uniform_costs{}).metrics.span > 0.0);
  check_rejected(mirrored(true), {schedule_rule::wrong_rank, 0, op{op_kind::forward, 0, 1},
                                  {"[wrong_rank]", "F(stage 0, mb 1)", "on rank 0"}, 3});
}
