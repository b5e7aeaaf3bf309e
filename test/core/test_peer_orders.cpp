// The looped and bidirectional schedules against their peers' own orders: PyTorch's
// ScheduleInterleaved1F1B and ScheduleInterleavedZeroBubble, Megatron-LM's interleaved groups
// (microbatch_group_size_per_vp_stage) and the official BitPipe order for m > p. Each peer's
// order is transcribed below from its description (rounds and groups, warm-up counts, the W
// lag, BitPipe's steps with the boundary overlap) independently of the policy code, and the
// policies must produce exactly those orders. Spans and peaks are the peers' worked values at
// T = (1, 1, 1) ("E") and (1, 2, 1) ("U1") per full stage, T_comm = 0, a chunk costing T/v.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include <stretto/stretto.hpp>

#include "common/invariants.hpp"
#include "core/support.hpp"

using stretto::op;
using stretto::op_kind;
using stretto::pipeline_shape;
using stretto::schedule;
using stretto::sim::uniform_costs;

namespace {

constexpr uniform_costs equal{1.0, 1.0, 1.0, 0.0};
constexpr uniform_costs unequal{1.0, 2.0, 1.0, 0.0};
// Cost sets for "never longer": the two above, a slower B, and communication.
const std::vector<uniform_costs> cost_sets{equal,
                                           unequal,
                                           {2.0, 3.0, 1.0, 0.0},
                                           {1.0, 1.0, 1.0, 0.25},
                                           {1.0, 2.0, 1.0, 0.5},
                                           {3.0, 2.0, 0.5, 1.0}};

double span_of(const schedule& s, const uniform_costs& costs) { return stretto::sim::simulate(s, costs).metrics.span; }

double span_of(std::string_view name, pipeline_shape shape, const uniform_costs& costs) {
  return span_of(stretto::policies::make_schedule(name, shape), costs);
}

double rank0_peak(const schedule& s) { return stretto::sim::simulate(s, equal).peak_memory.front(); }

bool same_orders(const schedule& got, const std::vector<std::vector<op>>& want) {
  if (static_cast<std::size_t>(got.num_ranks()) != want.size()) return false;
  for (std::int32_t r = 0; r < got.num_ranks(); ++r) {
    const auto ops = got.ops(r);
    if (!std::equal(ops.begin(), ops.end(), want[static_cast<std::size_t>(r)].begin(),
                    want[static_cast<std::size_t>(r)].end())) {
      MESSAGE("rank " << r << " got  " << stretto::testing::row_text(ops, true));
      MESSAGE("rank " << r << " want " << stretto::testing::row_text(want[static_cast<std::size_t>(r)], true));
      return false;
    }
  }
  return true;
}

// ---- PyTorch's interleaved generator (Interleaved1F1B: fused BW, warm-up factor 2;
// InterleavedZeroBubble: B and W, factor 1, W after the k-th B once k >= r, FIFO) ------------

// PyTorch's rounds: R = max(1, floor(m/p)); it accepts m only when R divides m.
bool pytorch_accepts(std::int32_t p, std::int32_t m) { return m % std::max(1, m / p) == 0; }

std::vector<std::vector<op>> pytorch_interleaved(std::int32_t p, std::int32_t m, std::int32_t v, bool zero_bubble) {
  const std::int32_t rounds = std::max(1, m / p), group = m / rounds, total = m * v;
  std::vector<std::vector<op>> out(static_cast<std::size_t>(p));
  for (std::int32_t r = 0; r < p; ++r) {
    auto& row = out[static_cast<std::size_t>(r)];
    std::vector<std::int32_t> next_f(static_cast<std::size_t>(v), 0), next_b(static_cast<std::size_t>(v), 0);
    std::int32_t f_step = 0, b_step = 0;
    std::deque<op> owed;  // B's still without their W, oldest first
    auto forward = [&] {
      const std::int32_t chunk = (f_step++ / group) % v;
      row.push_back({op_kind::forward, chunk * p + r, next_f[static_cast<std::size_t>(chunk)]++});
    };
    auto backward = [&] {
      const std::int32_t k = b_step++;
      const std::int32_t chunk = v - 1 - (k / group) % v;
      const op b{zero_bubble ? op_kind::backward_input : op_kind::backward, chunk * p + r,
                 next_b[static_cast<std::size_t>(chunk)]++};
      row.push_back(b);
      if (!zero_bubble) return;
      owed.push_back(b);
      if (k >= r) {
        row.push_back({op_kind::backward_weight, owed.front().stage, owed.front().microbatch});
        owed.pop_front();
      }
    };
    const std::int32_t warmup = std::min((v - 1) * group + (zero_bubble ? 1 : 2) * (p - 1 - r), total);
    for (std::int32_t i = 0; i < warmup; ++i) forward();
    for (std::int32_t i = 0; i < total - warmup; ++i) forward(), backward();
    for (std::int32_t i = 0; i < warmup; ++i) backward();
    for (; !owed.empty(); owed.pop_front())
      row.push_back({op_kind::backward_weight, owed.front().stage, owed.front().microbatch});
  }
  return out;
}

// ---- Megatron-LM's interleaved schedule with group size N: groups of N, the last one the
// remainder; each group walks the chunks in order; warm-up 2(p-1-r) + (v-1)N, capped -------

std::vector<std::vector<op>> megatron_interleaved(std::int32_t p, std::int32_t m, std::int32_t v, std::int32_t n) {
  struct entry {
    std::int32_t chunk, microbatch;
  };
  std::vector<entry> table;
  for (std::int32_t first = 0; first < m; first += n)
    for (std::int32_t c = 0; c < v; ++c)
      for (std::int32_t j = first; j < std::min(first + n, m); ++j) table.push_back({c, j});
  const std::int32_t total = m * v;
  std::vector<std::vector<op>> out(static_cast<std::size_t>(p));
  for (std::int32_t r = 0; r < p; ++r) {
    auto& row = out[static_cast<std::size_t>(r)];
    auto f = [&](std::int32_t k) {
      const entry e = table[static_cast<std::size_t>(k)];
      row.push_back({op_kind::forward, e.chunk * p + r, e.microbatch});
    };
    auto b = [&](std::int32_t k) {
      const entry e = table[static_cast<std::size_t>(k)];
      row.push_back({op_kind::backward, (v - 1 - e.chunk) * p + r, e.microbatch});
    };
    const std::int32_t warmup = std::min(2 * (p - 1 - r) + (v - 1) * n, total);
    std::int32_t k = 0;
    for (; k < warmup; ++k) f(k);
    for (std::int32_t kb = 0; kb < total; ++kb) {
      if (k < total) f(k++);
      b(kb);
    }
  }
  return out;
}

bool megatron_accepts(std::int32_t p, std::int32_t m, std::int32_t n) {
  return p <= n && n <= m && (m % n == 0 || m % n >= p);
}

// ---- the official BitPipe order ----------------------------------------------------------

struct bitpipe_lists {
  std::vector<op> forwards, backwards;  // 2m chunks each, unit after unit
  std::int32_t warmup;
};

// Rank r's forward and backward lists. The k-th down microbatch is floor(k/u)·P + k mod u, the
// k-th up one u more. Down replica: first half (A) on stage r, second half (C) on 2P-1-r; up
// replica: A on P-1-r, C on P+r. Own = down for r < u.
bitpipe_lists bitpipe_rank_lists(std::int32_t big_p, std::int32_t m, std::int32_t r) {
  const std::int32_t u = big_p / 2;
  const bool own_down = r < u;
  const std::int32_t n0 = own_down ? u - r : r - u + 1;
  auto real = [&](bool down, std::int32_t k) { return (k / u) * big_p + k % u + (down ? 0 : u); };
  auto stage = [&](bool down, bool first_half) {
    return down ? (first_half ? r : 2 * big_p - 1 - r) : (first_half ? big_p - 1 - r : big_p + r);
  };
  bitpipe_lists out{{}, {}, big_p + u + std::min(r, big_p - 1 - r)};
  for (std::int32_t unit = 0; unit < m / big_p; ++unit) {
    // (list, first half?, own?) in the order the five parts use them; the backward swaps A and C.
    for (const bool fwd : {true, false}) {
      auto& list = fwd ? out.forwards : out.backwards;
      const op_kind kind = fwd ? op_kind::forward : op_kind::backward;
      auto put = [&](bool own, bool a, std::int32_t t) {
        const bool down = own ? own_down : !own_down;
        const bool first_half = fwd ? a : !a;
        list.push_back({kind, stage(down, first_half), real(down, unit * u + t)});
      };
      for (std::int32_t t = 0; t < n0; ++t) put(true, true, t);
      for (std::int32_t t = 0; t < u - n0; ++t) put(false, true, t), put(true, true, n0 + t);
      for (std::int32_t t = 0; t < n0; ++t) put(false, true, u - n0 + t), put(false, false, t);
      for (std::int32_t t = 0; t < u - n0; ++t) put(true, false, t), put(false, false, n0 + t);
      for (std::int32_t t = 0; t < n0; ++t) put(true, false, u - n0 + t);
    }
  }
  return out;
}

// The official order: W warm-up forwards; per unit but the last, (a) U pairs, (b) W-U+1
// backwards, (c) U-1 pairs of the next unit's forwards with this unit's backwards, (d) the next
// unit's other W-U+1 forwards; the last unit: U pairs, then every backward left.
std::vector<std::vector<op>> bitpipe_official(std::int32_t big_p, std::int32_t m) {
  std::vector<std::vector<op>> out(static_cast<std::size_t>(big_p));
  for (std::int32_t r = 0; r < big_p; ++r) {
    const bitpipe_lists l = bitpipe_rank_lists(big_p, m, r);
    auto& row = out[static_cast<std::size_t>(r)];
    auto f = [&](std::int32_t i) { row.push_back(l.forwards[static_cast<std::size_t>(i)]); };
    auto b = [&](std::int32_t i) { row.push_back(l.backwards[static_cast<std::size_t>(i)]); };
    const std::int32_t w = l.warmup, steady = 2 * big_p - w, units = m / big_p;
    for (std::int32_t i = 0; i < w; ++i) f(i);
    for (std::int32_t j = 0; j + 1 < units; ++j) {
      const std::int32_t o = 2 * big_p * j;
      for (std::int32_t t = 0; t < steady; ++t) f(o + w + t), b(o + t);
      for (std::int32_t i = o + steady; i <= o + w; ++i) b(i);
      for (std::int32_t t = 0; t + 1 < steady; ++t) f(o + 2 * big_p + t), b(o + w + 1 + t);
      for (std::int32_t i = o + 2 * big_p + steady - 1; i <= o + 2 * big_p + w - 1; ++i) f(i);
    }
    const std::int32_t o = 2 * big_p * (units - 1);
    for (std::int32_t t = 0; t < steady; ++t) f(o + w + t), b(o + t);
    for (std::int32_t i = o + steady; i < 2 * m; ++i) b(i);
  }
  return out;
}

// The order before the boundary overlap: each unit's m = P order, run back to back.
schedule bitpipe_concatenated(std::int32_t big_p, std::int32_t m) {
  const schedule unit = stretto::make_schedule<stretto::policies::bitpipe>({big_p, big_p, 2});
  schedule out({big_p, m, 2}, stretto::placement_kind::v_shape);
  for (std::int32_t j = 0; j < m; ++j) out.set_replica(j, (j % big_p) < big_p / 2 ? 0 : 1);
  for (std::int32_t r = 0; r < big_p; ++r)
    for (std::int32_t k = 0; k < m / big_p; ++k)
      for (const op& o : unit.ops(r)) out.push_back(r, {o.kind, o.stage, o.microbatch + k * big_p});
  return out;
}

// Parses BitPipe's notation for one rank of P ranks: "F4da" = forward of microbatch 4, down
// replica, first half (a) or second half (c); "B" is the fused backward.
std::vector<op> bitpipe_row(std::string_view text, std::int32_t big_p, std::int32_t r) {
  std::vector<op> out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    const op_kind kind = text[i++] == 'F' ? op_kind::forward : op_kind::backward;
    std::int32_t mb = 0;
    while (text[i] >= '0' && text[i] <= '9') mb = mb * 10 + (text[i++] - '0');
    const bool down = text[i++] == 'd', first_half = text[i++] == 'a';
    const std::int32_t stage = down ? (first_half ? r : 2 * big_p - 1 - r) : (first_half ? big_p - 1 - r : big_p + r);
    out.push_back({kind, stage, mb});
  }
  return out;
}

}  // namespace

// =============================== BitPipe, m > p ==============================================

TEST_CASE("peers.bitpipe.official_example_rank0" * doctest::timeout(10)) {
  // P = 4, m = 8, rank 0 (W = 6, U = 2): 6 F; 2 pairs; 5 BW; 1 pair across the unit boundary
  // (F4da B1da); 5 F; 2 pairs; 6 BW.
  const schedule s = stretto::make_schedule<stretto::policies::bitpipe>({4, 8, 2});
  const std::vector<op> want = bitpipe_row(
      "F0da F1da F2ua F2uc F3ua F3uc "
      "F0dc B0dc F1dc B1dc "
      "B2uc B2ua B3uc B3ua B0da "
      "F4da B1da "
      "F5da F6ua F6uc F7ua F7uc "
      "F4dc B4dc F5dc B5dc "
      "B6uc B6ua B7uc B7ua B4da B5da",
      4, 0);
  CHECK(stretto::testing::row_text(s.ops(0), true) == stretto::testing::row_text(want, true));
  // The middle ranks (U = 1) have no pair across the boundary: the unit's last BW is followed by
  // the next unit's W = 7 forwards.
  const auto rank1 = s.ops(1);
  const auto first_next = std::find_if(rank1.begin(), rank1.end(), [](const op& o) { return o.microbatch >= 4; });
  REQUIRE(first_next != rank1.end());
  CHECK(std::count_if(rank1.begin(), first_next, [](const op& o) { return o.kind == op_kind::backward; }) == 8);
  CHECK(std::all_of(first_next, first_next + 7, [](const op& o) { return o.kind == op_kind::forward; }));
}

TEST_CASE("peers.bitpipe.orders_equal_the_official_transcription" * doctest::timeout(30)) {
  for (std::int32_t big_p : {2, 4, 6, 8})
    for (std::int32_t units : {1, 2, 3, 4}) {
      const std::int32_t m = units * big_p;
      CAPTURE(big_p);
      CAPTURE(m);
      const schedule s = stretto::make_schedule<stretto::policies::bitpipe>({big_p, m, 2});
      CHECK(same_orders(s, bitpipe_official(big_p, m)));
      CHECK(stretto::validate(s).ok());
      CHECK(stretto::testing::check_schedule_invariants(s));
      // Never longer than the official order (the same order) nor than running units back to
      // back, at any of the cost sets; strictly shorter than back to back at equal times once
      // there are two units and the edge ranks overlap (P >= 4).
      const schedule back_to_back = bitpipe_concatenated(big_p, m);
      for (const auto& costs : cost_sets) {
        CAPTURE(costs.t_forward);
        CAPTURE(costs.t_backward_input);
        CAPTURE(costs.t_comm);
        CHECK(span_of(s, costs) <= span_of(back_to_back, costs));
      }
      if (units > 1 && big_p >= 4) CHECK(span_of(s, equal) < span_of(back_to_back, equal));
    }
}

TEST_CASE("peers.bitpipe.worked_spans_and_peaks" * doctest::timeout(20)) {
  struct row {
    std::int32_t p, m;
    double e, u1;
  };
  // BitPipe official, v = 2 (chunk = T/2): 14/19, 27/37, 40/55 at P = 4; 30/41, 57/79, 84/117 at P = 8.
  for (const row& w : {row{4, 4, 14, 19}, row{4, 8, 27, 37}, row{4, 12, 40, 55}, row{8, 8, 30, 41},
                       row{8, 16, 57, 79}, row{8, 24, 84, 117}}) {
    CAPTURE(w.p);
    CAPTURE(w.m);
    CHECK(span_of("bitpipe", {w.p, w.m, 2}, equal) == w.e);
    CHECK(span_of("bitpipe", {w.p, w.m, 2}, unequal) == w.u1);
    // Each unit after the first adds (P-2)/2 of bubble at equal times (back to back: P-2).
    CHECK(w.e == 3.0 * w.m + (w.p - 2) * (1.0 + (w.m / w.p - 1) / 2.0));
  }
  // Peak (W_r + 1)/2 M_B with W_r = P + P/2 + min(r, P-1-r), independent of m.
  for (std::int32_t big_p : {2, 4, 6, 8})
    for (std::int32_t units : {1, 2, 3}) {
      CAPTURE(big_p);
      CAPTURE(units);
      const auto peak = stretto::sim::simulate(stretto::make_schedule<stretto::policies::bitpipe>({big_p, units * big_p, 2}), equal)
                            .peak_memory;
      for (std::int32_t r = 0; r < big_p; ++r)
        CHECK(peak[static_cast<std::size_t>(r)] == (big_p + big_p / 2 + std::min(r, big_p - 1 - r) + 1) / 2.0);
    }
}

// =============================== interleaved 1F1B, any m =====================================

TEST_CASE("peers.interleaved_1f1b.orders_equal_pytorch_and_megatron" * doctest::timeout(30)) {
  // p = 4: m = 10 runs PyTorch's 2 rounds of 5, m = 6 one round of 6 (all-forward rank 0).
  CHECK(same_orders(stretto::make_schedule<stretto::policies::interleaved_1f1b>({4, 10, 2}), pytorch_interleaved(4, 10, 2, false)));
  CHECK(same_orders(stretto::make_schedule<stretto::policies::interleaved_1f1b>({4, 6, 2}), pytorch_interleaved(4, 6, 2, false)));
  const schedule six = stretto::make_schedule<stretto::policies::interleaved_1f1b>({4, 6, 2});
  CHECK(std::all_of(six.ops(0).begin(), six.ops(0).begin() + 12, [](const op& o) { return o.kind == op_kind::forward; }));
  // Every m PyTorch accepts, m < p included: PyTorch's order. Every m: Megatron's order with the
  // smallest group size it accepts (PyTorch's G whenever PyTorch accepts m).
  for (std::int32_t p = 1; p <= 6; ++p)
    for (std::int32_t v = 2; v <= 3; ++v)
      for (std::int32_t m = 1; m <= 4 * p + 1; ++m) {
        CAPTURE(p);
        CAPTURE(v);
        CAPTURE(m);
        const schedule s = stretto::policies::make_schedule("interleaved-1f1b", {p, m, v});
        CHECK(stretto::validate(s).ok());
        if (pytorch_accepts(p, m)) CHECK(same_orders(s, pytorch_interleaved(p, m, v, false)));
        if (m >= p) {
          std::int32_t n = p;
          while (!megatron_accepts(p, m, n)) ++n;
          CHECK(same_orders(s, megatron_interleaved(p, m, v, n)));
          if (pytorch_accepts(p, m)) CHECK(n == m / std::max(1, m / p));
        }
      }
  // The group template is Megatron's microbatch_group_size_per_vp_stage, remainder group included.
  CHECK(same_orders(stretto::make_schedule<stretto::policies::interleaved_1f1b_group<6>>({4, 10, 2}),
                    megatron_interleaved(4, 10, 2, 6)));
  CHECK(same_orders(stretto::make_schedule<stretto::policies::interleaved_1f1b_group<10>>({4, 10, 2}),
                    megatron_interleaved(4, 10, 2, 10)));
  CHECK(same_orders(stretto::make_schedule<stretto::policies::interleaved_1f1b_group<5>>({4, 9, 3}),
                    megatron_interleaved(4, 9, 3, 5)));
  // p = 4, m = 9: PyTorch raises (2 rounds do not divide 9); Megatron runs groups of 5 + 4.
  CHECK_FALSE(pytorch_accepts(4, 9));
  CHECK(same_orders(stretto::policies::make_schedule("interleaved-1f1b", {4, 9, 2}), megatron_interleaved(4, 9, 2, 5)));
}

TEST_CASE("peers.interleaved_1f1b.worked_spans_and_peaks" * doctest::timeout(10)) {
  struct row {
    pipeline_shape shape;
    double e, u1, peak;
  };
  // PyTorch Interleaved1F1B: (4,8,2) 28.5/38 peak 5.5; (4,10,2) 34.5/46 6.0 (= Megatron N = 5);
  // (4,6,2) 22.5/30 6.0 (= Megatron N = 6); (8,16,2) 58.5/78 11.5; (4,8,4) 26.25/35 4.75.
  for (const row& w : {row{{4, 8, 2}, 28.5, 38, 5.5}, row{{4, 10, 2}, 34.5, 46, 6.0}, row{{4, 6, 2}, 22.5, 30, 6.0},
                       row{{8, 16, 2}, 58.5, 78, 11.5}, row{{4, 8, 4}, 26.25, 35, 4.75}}) {
    CAPTURE(w.shape.num_ranks);
    CAPTURE(w.shape.num_microbatches);
    CAPTURE(w.shape.num_chunks);
    const schedule s = stretto::policies::make_schedule("interleaved-1f1b", w.shape);
    CHECK(span_of(s, equal) == w.e);
    CHECK(span_of(s, unequal) == w.u1);
    CHECK(rank0_peak(s) == w.peak);
  }
  // Megatron N = 6 (groups 6 + 4) and N = 10 at m = 10: the same spans, more memory.
  const schedule six = stretto::make_schedule<stretto::policies::interleaved_1f1b_group<6>>({4, 10, 2});
  const schedule ten = stretto::make_schedule<stretto::policies::interleaved_1f1b_group<10>>({4, 10, 2});
  CHECK(span_of(six, equal) == 34.5);
  CHECK(span_of(six, unequal) == 46.0);
  CHECK(rank0_peak(six) == 6.5);
  CHECK(span_of(ten, equal) == 34.5);
  CHECK(span_of(ten, unequal) == 46.0);
  CHECK(rank0_peak(ten) == 8.5);
  // At every m >= p, every accepted group size, the bubble is (p-1)(T_F + T_BW)/v.
  for (std::int32_t p = 2; p <= 8; ++p)
    for (std::int32_t v = 2; v <= 4; ++v)
      for (std::int32_t m = p; m <= 3 * p + 1; ++m)
        for (const auto& costs : {equal, unequal}) {
          CAPTURE(p);
          CAPTURE(v);
          CAPTURE(m);
          const double stage = costs.t_forward + costs.t_backward_input + costs.t_backward_weight;
          CHECK(span_of("interleaved-1f1b", {p, m, v}, costs) == doctest::Approx(m * stage + (p - 1) * stage / v));
        }
}

TEST_CASE("peers.interleaved_1f1b.group_size_errors_name_the_rule" * doctest::timeout(10)) {
  using group4 = stretto::policies::interleaved_1f1b_group<4>;
  // Megatron N = 4 at p = 4: m = 10 and m = 6 leave a last group of 2 < p.
  const std::string ten = group4::check({4, 10, 2});
  INFO(ten);
  CHECK(ten.starts_with("interleaved-1f1b-group: "));
  CHECK(ten.find("the last microbatch group, m mod N = 2, must be 0 or at least p = 4") != std::string::npos);
  CHECK(ten.find("use m = 8 or 12") != std::string::npos);
  CHECK(ten.find("interleaved-1f1b, which picks N for any m") != std::string::npos);
  CHECK(group4::check({4, 6, 2}).find("use m = 4 or 8") != std::string::npos);
  // N = 5 at p = 4: m = 9 (4 left over) is accepted, m = 11 (1 left over) is not; next valid 14.
  CHECK(stretto::policies::interleaved_1f1b_group<5>::check({4, 9, 2}).empty());
  CHECK(stretto::policies::interleaved_1f1b_group<5>::check({4, 11, 2}).find("use m = 10 or 14") != std::string::npos);
  // p <= N <= m.
  const std::string small = group4::check({4, 2, 2});
  CHECK(small.find("p <= N <= m") != std::string::npos);
  CHECK(small.find("use m >= 4") != std::string::npos);
  CHECK(stretto::policies::interleaved_1f1b_group<2>::check({4, 8, 2}).find("p <= N <= m") != std::string::npos);
  // The default accepts every m >= 1 with v >= 2, and names the chunk rule otherwise.
  for (std::int32_t m = 1; m <= 20; ++m) CHECK(stretto::policies::interleaved_1f1b::check({4, m, 2}).empty());
  CHECK(stretto::policies::interleaved_1f1b::check({4, 8, 1}).find("at least 2 chunks") != std::string::npos);
}

// =============================== interleaved zero bubble =====================================

TEST_CASE("peers.interleaved_zb.orders_equal_pytorch" * doctest::timeout(30)) {
  // Rank 0 runs F B W triples after its warm-up; rank r's first W follows its (r+1)-th B.
  const schedule s48 = stretto::make_schedule<stretto::policies::interleaved_zb>({4, 8, 2});
  for (std::int32_t r = 0; r < 4; ++r) {
    const auto ops = s48.ops(r);
    const auto first_w = std::find_if(ops.begin(), ops.end(), [](const op& o) { return o.kind == op_kind::backward_weight; });
    CHECK(std::count_if(ops.begin(), first_w, [](const op& o) { return o.kind == op_kind::backward_input; }) == r + 1);
    // Warm-up (v-1)G + p-1-r = 4 + 3 - r forwards, then the first steady step's F before its B.
    CHECK(std::find_if(ops.begin(), ops.end(), [](const op& o) { return o.kind != op_kind::forward; }) - ops.begin() ==
          8 - r);
  }
  for (std::int32_t p = 1; p <= 6; ++p)
    for (std::int32_t v = 2; v <= 4; ++v)
      for (std::int32_t m = 1; m <= 3 * p + 1; ++m) {
        if (!pytorch_accepts(p, m)) continue;
        CAPTURE(p);
        CAPTURE(v);
        CAPTURE(m);
        CHECK(same_orders(stretto::make_schedule<stretto::policies::interleaved_zb>({p, m, v}), pytorch_interleaved(p, m, v, true)));
      }
}

TEST_CASE("peers.interleaved_zb.worked_spans_peaks_and_grid" * doctest::timeout(30)) {
  struct row {
    pipeline_shape shape;
    double e, u1, peak;
  };
  // PyTorch InterleavedZeroBubble: (4,8,2) 25.5/35 peak 4; (4,10,2) 31.5/43 4.5; (4,6,2) 19.5/27 5;
  // (8,16,2) 51.5/71 8; (4,8,4) 24.75/33.5 4.
  for (const row& w : {row{{4, 8, 2}, 25.5, 35, 4.0}, row{{4, 10, 2}, 31.5, 43, 4.5}, row{{4, 6, 2}, 19.5, 27, 5.0},
                       row{{8, 16, 2}, 51.5, 71, 8.0}, row{{4, 8, 4}, 24.75, 33.5, 4.0}}) {
    CAPTURE(w.shape.num_ranks);
    CAPTURE(w.shape.num_microbatches);
    CAPTURE(w.shape.num_chunks);
    const schedule s = stretto::policies::make_schedule("interleaved-zb", w.shape);
    CHECK(span_of(s, equal) == w.e);
    CHECK(span_of(s, unequal) == w.u1);
    CHECK(rank0_peak(s) == w.peak);
  }
  // Every p <= 8, v <= 4, m from 1 to 3p + 1 (m < p, m = p, p not dividing m, PyTorch-rejected m):
  // valid, 3·p·v·m ops, 3m of work per rank; for m >= p the bubble is (p-1)(T_F + T_B - T_W)/v
  // at every cost set without communication, never more than interleaved 1F1B's.
  for (std::int32_t p = 1; p <= 8; ++p)
    for (std::int32_t v = 2; v <= 4; ++v)
      for (std::int32_t m = 1; m <= 3 * p + 1; ++m) {
        CAPTURE(p);
        CAPTURE(v);
        CAPTURE(m);
        const schedule s = stretto::make_schedule<stretto::policies::interleaved_zb>({p, m, v});
        CHECK(stretto::testing::check_schedule_invariants(s));
        CHECK(s.num_ops() == static_cast<std::size_t>(3 * p * v * m));
        const auto sim = stretto::sim::simulate(s, equal);
        for (double busy : sim.metrics.busy) CHECK(busy == doctest::Approx(3.0 * m));
        if (m < p) continue;
        for (const auto& costs : cost_sets) {
          // With communication PyTorch's short warm-up (p-1-r, half interleaved 1F1B's) can lose
          // to interleaved 1F1B (p = 3, m = 8, v = 2, T = (1, 2, 1), T_comm = 0.5: 41.5 against
          // 39); the peer's order is kept as it is.
          if (costs.t_comm != 0.0) continue;
          CAPTURE(costs.t_forward);
          CAPTURE(costs.t_backward_input);
          CHECK(span_of(s, costs) ==
                doctest::Approx(m * (costs.t_forward + costs.t_backward_input + costs.t_backward_weight) +
                                (p - 1) * (costs.t_forward + costs.t_backward_input - costs.t_backward_weight) / v));
          CHECK(span_of(s, costs) <= span_of("interleaved-1f1b", {p, m, v}, costs) + 1e-9);
        }
      }
  CHECK(stretto::policies::find_policy("interleaved-zb").check({4, 8, 1}).starts_with("interleaved-zb: "));
  CHECK(stretto::policies::find_policy("interleaved-zb").default_chunks == 2);
}
