// Exact per-rank op orders against the rows and rules written in docs/schedules.md §1, §2 and §7.2.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <stretto/stretto.hpp>

#include "core/support.hpp"

namespace {

using stretto::op;
using stretto::op_kind;
using stretto::testing::grid_max_ranks;
using stretto::testing::grid_microbatches;
using stretto::testing::parse_row;
using stretto::testing::row_text;
using stretto::testing::to_vector;

// docs/schedules.md §2 (0-based device i): warm-up w_i = min(p−i−1, m) forwards F(0..w_i−1); steady
// state for k = 0..m−w_i−1: F(w_i+k), then BW(k); cool-down BW(m−w_i..m−1). With `split`, BW
// becomes B (§7.2 rule 1).
std::vector<op> paper_one_f_one_b_row(std::int32_t p, std::int32_t m, std::int32_t i, bool split) {
  const op_kind backward = split ? op_kind::backward_input : op_kind::backward;
  const std::int32_t w = std::min(p - i - 1, m);
  std::vector<op> row;
  for (std::int32_t j = 0; j < w; ++j) row.push_back({op_kind::forward, i, j});
  for (std::int32_t k = 0; k < m - w; ++k) {
    row.push_back({op_kind::forward, i, w + k});
    row.push_back({backward, i, k});
  }
  for (std::int32_t k = m - w; k < m; ++k) row.push_back({backward, i, k});
  return row;
}

// docs/schedules.md §7.2 (1-based device d = i + 1, 1-based microbatches J = j + 1): the 1F1B order with
// B for BW; W_J immediately after B_{J+d−1} for J = 1..m−d+1; the other W's at the end, in order.
std::vector<op> paper_zb_h1_row(std::int32_t p, std::int32_t m, std::int32_t i) {
  const std::int32_t d = i + 1;
  std::vector<op> row;
  std::vector<bool> placed(static_cast<std::size_t>(m), false);
  for (const op& o : paper_one_f_one_b_row(p, m, i, true)) {
    row.push_back(o);
    if (o.kind != op_kind::backward_input) continue;
    const std::int32_t b = o.microbatch + 1;  // 1-based B index
    const std::int32_t w = b - d + 1;         // the W_J with J + d − 1 = b
    if (w >= 1 && w <= m - d + 1) {
      row.push_back({op_kind::backward_weight, i, w - 1});
      placed[static_cast<std::size_t>(w - 1)] = true;
    }
  }
  for (std::int32_t j = 0; j < m; ++j)
    if (!placed[static_cast<std::size_t>(j)]) row.push_back({op_kind::backward_weight, i, j});
  return row;
}

}  // namespace

TEST_CASE("policies.zb_h1.paper_rows_p4_m8" * doctest::timeout(5)) {
  // docs/schedules.md §7.2, "Example, p=4, m=8 (devices 1 and 4)", 1-based microbatches.
  const auto s = stretto::make_schedule<stretto::policies::zb_h1>({4, 8, 1});
  const auto device1 =
      parse_row("F1 F2 F3 F4 B1 W1 F5 B2 W2 F6 B3 W3 F7 B4 W4 F8 B5 W5 B6 W6 B7 W7 B8 W8", 0, 1);
  const auto device4 =
      parse_row("F1 B1 F2 B2 F3 B3 F4 B4 W1 F5 B5 W2 F6 B6 W3 F7 B7 W4 F8 B8 W5 W6 W7 W8", 3, 1);
  REQUIRE(device1.size() == 24);
  REQUIRE(device4.size() == 24);
  INFO("rank 0: " << row_text(s.ops(0), true));
  CHECK(to_vector(s.ops(0)) == device1);
  INFO("rank 3: " << row_text(s.ops(3), true));
  CHECK(to_vector(s.ops(3)) == device4);
}

TEST_CASE("policies.one_f_one_b.last_rank_alternates" * doctest::timeout(5)) {
  // docs/schedules.md §2: "The last device therefore alternates F0 BW0 F1 BW1 …".
  for (std::int32_t p = 1; p <= grid_max_ranks; ++p) {
    for (std::int32_t m : grid_microbatches(p)) {
      CAPTURE(p);
      CAPTURE(m);
      const auto s = stretto::make_schedule<stretto::policies::one_f_one_b>({p, m, 1});
      std::vector<op> expected;
      for (std::int32_t j = 0; j < m; ++j) {
        expected.push_back({op_kind::forward, p - 1, j});
        expected.push_back({op_kind::backward, p - 1, j});
      }
      INFO("last rank: " << row_text(s.ops(p - 1), true));
      CHECK(to_vector(s.ops(p - 1)) == expected);
    }
  }
  // The written-down row for p = 4, m = 4 (0-based microbatches).
  const auto s = stretto::make_schedule<stretto::policies::one_f_one_b>({4, 4, 1});
  CHECK(to_vector(s.ops(3)) == parse_row("F0 BW0 F1 BW1 F2 BW2 F3 BW3", 3, 0));
}

TEST_CASE("policies.one_f_one_b.first_rank_warmup" * doctest::timeout(5)) {
  // docs/schedules.md §2: "device 0 runs p forwards before its first backward" (m ≥ p); with
  // m < p it runs all m forwards first (w_0 = min(p−1, m), then one more F while F's remain).
  for (std::int32_t p = 1; p <= grid_max_ranks; ++p) {
    for (std::int32_t m : grid_microbatches(p)) {
      CAPTURE(p);
      CAPTURE(m);
      const auto s = stretto::make_schedule<stretto::policies::one_f_one_b>({p, m, 1});
      const auto row = s.ops(0);
      const auto first_backward = std::find_if(row.begin(), row.end(), [](const op& o) {
        return o.kind != op_kind::forward;
      });
      REQUIRE(first_backward != row.end());
      CHECK(first_backward - row.begin() == std::min(p, m));
      CHECK(*first_backward == op{op_kind::backward, 0, 0});
    }
  }
  const auto s = stretto::make_schedule<stretto::policies::one_f_one_b>({4, 8, 1});
  CHECK(to_vector(s.ops(0)) ==
        parse_row("F0 F1 F2 F3 BW0 F4 BW1 F5 BW2 F6 BW3 F7 BW4 BW5 BW6 BW7", 0, 0));
}

TEST_CASE("policies.one_f_one_b.rows_follow_paper_rule" * doctest::timeout(5)) {
  for (std::int32_t p = 1; p <= grid_max_ranks; ++p) {
    for (std::int32_t m : grid_microbatches(p)) {
      const auto s = stretto::make_schedule<stretto::policies::one_f_one_b>({p, m, 1});
      for (std::int32_t r = 0; r < p; ++r) {
        CAPTURE(p);
        CAPTURE(m);
        CAPTURE(r);
        INFO("got: " << row_text(s.ops(r), true));
        CHECK(to_vector(s.ops(r)) == paper_one_f_one_b_row(p, m, r, false));
      }
    }
  }
}

TEST_CASE("policies.zb_h1.rows_follow_paper_rule" * doctest::timeout(5)) {
  for (std::int32_t p = 1; p <= grid_max_ranks; ++p) {
    for (std::int32_t m : grid_microbatches(p)) {
      const auto s = stretto::make_schedule<stretto::policies::zb_h1>({p, m, 1});
      for (std::int32_t r = 0; r < p; ++r) {
        CAPTURE(p);
        CAPTURE(m);
        CAPTURE(r);
        INFO("got: " << row_text(s.ops(r), true));
        CHECK(to_vector(s.ops(r)) == paper_zb_h1_row(p, m, r));
      }
    }
  }
}

TEST_CASE("policies.gpipe.rows_follow_paper" * doctest::timeout(5)) {
  // docs/schedules.md §1: F(1..m), then BW in reverse microbatch order (GPipe's own order).
  for (std::int32_t p = 1; p <= grid_max_ranks; ++p) {
    for (std::int32_t m : grid_microbatches(p)) {
      const auto s = stretto::make_schedule<stretto::policies::gpipe>({p, m, 1});
      for (std::int32_t r = 0; r < p; ++r) {
        CAPTURE(p);
        CAPTURE(m);
        CAPTURE(r);
        std::vector<op> expected;
        for (std::int32_t j = 0; j < m; ++j) expected.push_back({op_kind::forward, r, j});
        for (std::int32_t j = m - 1; j >= 0; --j) expected.push_back({op_kind::backward, r, j});
        CHECK(to_vector(s.ops(r)) == expected);
      }
    }
  }
  CHECK(to_vector(stretto::make_schedule<stretto::policies::gpipe>({2, 3, 1}).ops(1)) ==
        parse_row("F0 F1 F2 BW2 BW1 BW0", 1, 0));
}
