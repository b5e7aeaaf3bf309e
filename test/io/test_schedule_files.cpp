// Schedule files (stretto/io): every policy, and the automatic schedulers, written as PyTorch CSV
// and as JSON and read back give the same schedule (==, placement and replicas included) and the
// same simulated span; malformed files are refused with their line and column, broken schedules
// with the rank, the op and the rule.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <stretto/io/schedule_csv.hpp>
#include <stretto/io/schedule_json.hpp>
#include <stretto/plan/auto_schedule.hpp>
#include <stretto/plan/auto_schedule_v.hpp>
#include <stretto/policies/registry.hpp>

namespace {

using stretto::pipeline_shape;
using stretto::schedule;
namespace io = stretto::io;

void check_round_trip(const schedule& s, const std::string& what) {
  CAPTURE(what);
  const stretto::sim::uniform_costs costs{1.0, 1.0, 1.0, 0.0};
  const double span = stretto::sim::simulate(s, costs).metrics.span;
  const schedule from_json = io::read_json(io::to_json(s, what), "test.json");
  CHECK(from_json == s);
  CHECK(stretto::sim::simulate(from_json, costs).metrics.span == span);
  // CSV does not record the placement; at p = 1 placements and replicas coincide.
  if (s.num_ranks() > 1 && !(s.shape().num_chunks == 1 && s.placement() != stretto::placement_kind::linear)) {
    const schedule from_csv = io::read_csv(io::to_csv(s), "test.csv");
    CHECK(from_csv == s);
    CHECK(stretto::sim::simulate(from_csv, costs).metrics.span == span);
  }
}

}  // namespace

TEST_CASE("every policy round-trips through CSV and JSON at edge shapes") {
  int checked = 0;
  for (const auto& policy : stretto::policies::all_policies)
    for (const auto& [p, m] : std::vector<std::pair<int, int>>{{2, 1}, {2, 2}, {3, 5}, {4, 4}, {4, 8}, {5, 3}, {1, 3}}) {
      const pipeline_shape shape{p, m, policy.default_chunks};
      if (!policy.check(shape).empty()) continue;
      check_round_trip(policy.generate(shape), std::string(policy.name) + " p=" + std::to_string(p) + " m=" + std::to_string(m));
      ++checked;
    }
  CHECK(checked >= 50);
}

TEST_CASE("automatic schedules round-trip: zb-1p, zb-2p and auto-v on the 1.5B row") {
  const pipeline_shape shape{8, 24, 1};
  const stretto::sim::uniform_costs costs{18.522, 18.086, 9.337, 0.601};
  check_round_trip(stretto::plan::auto_schedule(shape, costs, stretto::plan::zb_memory_limit(shape, costs, 1)), "zb-1p");
  check_round_trip(stretto::plan::auto_schedule(shape, costs, stretto::plan::zb_memory_limit(shape, costs, 2)), "zb-2p");
  const pipeline_shape v_shape{8, 24, 2};
  check_round_trip(stretto::plan::auto_schedule_v(v_shape, costs, 8.0), "auto-v");
}

TEST_CASE("CSV is PyTorch's compute-only grid: 1F1B at p = 2, m = 2") {
  // Lock-step, one step per op: rank 1 runs F0 at step 1 and B0 at step 2, so rank 0's B0 (which
  // needs it) runs at step 3; PyTorch's B is the fused backward, I the input backward.
  const schedule s = stretto::policies::make_schedule("1f1b", {2, 2, 1});
  CHECK(io::to_csv(s) == "0F0,0F1,,0B0,,0B1\n,1F0,1B0,1F1,1B1\n");
  const schedule zb = stretto::policies::make_schedule("zb-h1", {2, 2, 1});
  CHECK(io::to_csv(zb) == "0F0,0F1,,0I0,0W0,0I1,0W1\n,1F0,1I0,1F1,1I1,1W0,1W1\n");
}

TEST_CASE("CSV of older PyTorch versions: B is the input backward, BW the fused one") {
  // ZB-H1 at p = 2, m = 2 in the older tokens (I written B), next to the current ones above.
  const schedule zb = stretto::policies::make_schedule("zb-h1", {2, 2, 1});
  CHECK(io::read_csv("0F0,0F1,,0B0,0W0,0B1,0W1\n,1F0,1B0,1F1,1B1,1W0,1W1\n") == zb);
  // A fused backward in the older tokens, and a file that mixes a fused stage with split ones.
  const schedule one_f_one_b = stretto::policies::make_schedule("1f1b", {2, 2, 1});
  CHECK(io::read_csv("0F0,0F1,,0BW0,,0BW1\n,1F0,1BW0,1F1,1BW1\n") == one_f_one_b);
  const schedule mixed = io::read_csv("0F0,,0B0,0W0\n,1F0,1BW0\n");
  CHECK(mixed.ops(0)[1].kind == stretto::op_kind::backward_input);
  CHECK(mixed.ops(1)[1].kind == stretto::op_kind::backward);
  // Current tokens are unchanged: a fused B without a W stays fused.
  CHECK(io::read_csv(io::to_csv(one_f_one_b)) == one_f_one_b);
}

TEST_CASE("CSV with communication: sends and receives are checked against the compute order") {
  // 1F1B at p = 2, m = 1 with every message: F(0) -> stage 1, B(1) -> stage 0.
  const schedule s = stretto::policies::make_schedule("1f1b", {2, 1, 1});
  CHECK(io::read_csv("0F0,0SEND_F0,0RECV_B0,0B0\n1RECV_F0,1F0,1B0,1SEND_B0\n") == s);
  auto error_of = [](std::string_view text) {
    try {
      (void)io::read_csv(text, "c.csv");
    } catch (const io::format_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // A send before the op that produces its data.
  CHECK(error_of("0SEND_F0,0F0,0RECV_B0,0B0\n1RECV_F0,1F0,1B0,1SEND_B0\n") ==
        "c.csv:1:1: rank 0, 0SEND_F0: a send must follow the op that produces its data (F of stage 0)");
  // A receive after the op that needs it.
  CHECK(error_of("0F0,0SEND_F0,0B0,0RECV_B0\n1RECV_F0,1F0,1B0,1SEND_B0\n") ==
        "c.csv:1:18: rank 0, 0RECV_B0: a receive must come before the op that consumes its data (the backward of stage 0)");
  // On the wrong row, twice, a message that does not exist, one missing.
  CHECK(error_of("0F0,0SEND_F0,1RECV_F0,0RECV_B0,0B0\n1F0,1B0,1SEND_B0\n").find("stage 1 runs on rank 1") != std::string::npos);
  CHECK(error_of("0F0,0SEND_F0,0SEND_F0,0RECV_B0,0B0\n1RECV_F0,1F0,1B0,1SEND_B0\n").find("appears twice") != std::string::npos);
  CHECK(error_of("0F0,0SEND_F0,0SEND_B0,0RECV_B0,0B0\n1RECV_F0,1F0,1B0,1SEND_B0\n").find("stage -1 does not exist") != std::string::npos);
  CHECK(error_of("0F0,0SEND_F0,0RECV_B0,0B0\n1RECV_F0,1F0,1B0\n") ==
        "c.csv: rank 1 lacks 1SEND_B0: the file has communication actions, so every message between ranks needs its send and its receive");
}

TEST_CASE("CSV reading: quotes, CRLF, communication actions and idle cells are accepted") {
  const schedule s = stretto::policies::make_schedule("1f1b", {2, 2, 1});
  CHECK(io::read_csv("\"0F0\",0F1,0SEND_F0,0SEND_F1,0RECV_B0,0B0,,0RECV_B1,0B1\r\n"
                     "1RECV_F0,1F0,1B0,1SEND_B0,1RECV_F1, 1F1 ,1B1,1SEND_B1,1REDUCE_GRAD\r\n") == s);
}

TEST_CASE("overlapped F&B pairs are one cell, (F;B)OVERLAP_F_B") {
  const schedule s = stretto::policies::make_schedule("dualpipev", {4, 8, 2});
  const std::string csv = io::to_csv(s);
  CHECK(csv.find(")OVERLAP_F_B") != std::string::npos);
  CHECK(io::read_csv(csv) == s);
}

TEST_CASE("inference: placement and replicas from which stages each rank runs") {
  const schedule zbv = io::read_csv(io::to_csv(stretto::policies::make_schedule("zb-v", {4, 8, 2})));
  CHECK(zbv.placement() == stretto::placement_kind::v_shape);
  CHECK(zbv.shape() == pipeline_shape{4, 8, 2});
  const schedule looped = io::read_csv(io::to_csv(stretto::policies::make_schedule("interleaved-1f1b", {4, 8, 2})));
  CHECK(looped.placement() == stretto::placement_kind::looped);
  const schedule chimera = io::read_csv(io::to_csv(stretto::policies::make_schedule("chimera", {4, 8, 1})));
  CHECK(chimera.num_replicas() == 2);
  CHECK(chimera == stretto::policies::make_schedule("chimera", {4, 8, 1}));
}

TEST_CASE("syntax errors name the line and column") {
  const auto message = [](auto&& read) -> std::string {
    try {
      read();
    } catch (const io::format_error& e) {
      return std::string(e.what()) + " @" + std::to_string(e.line()) + ":" + std::to_string(e.column());
    }
    return "no error";
  };
  CHECK(message([] { io::read_csv("0F0,0B0\n1F0,1X0\n", "f.csv"); }).starts_with("f.csv:2:6: '1X0': unknown op kind 'X'"));
  CHECK(message([] { io::read_csv("0F0,0B\n", "f.csv"); }).starts_with("f.csv:1:7: '0B' needs a microbatch index"));
  CHECK(message([] { io::read_csv("F0\n", "f.csv"); }).starts_with("f.csv:1:1: 'F0' does not start with a stage index"));
  CHECK(message([] { io::read_json("{\"ops\": [[\"0F0\", \"0B0\"],\n [\"1F0\" \"1B0\"]]}", "f.json"); })
            .starts_with("f.json:2:9: expected ',' or ']' in an array"));
  CHECK(message([] { io::read_json("{\"ops\": [], \"ops\": []}", "f.json"); }).starts_with("f.json:1:20: the key \"ops\" appears twice"));
  CHECK(message([] { io::read_json("{\"opz\": []}", "f.json"); }).starts_with("f.json:1:9: unknown key \"opz\""));
  CHECK(message([] { io::read_json(std::string(100, '['), "f.json"); }).find("nesting deeper than 64") != std::string::npos);
}

TEST_CASE("schedule-rule errors name the rank, the op and the rule") {
  const auto message = [](const std::string& csv) -> std::string {
    try {
      io::read_csv(csv, "f.csv");
    } catch (const io::format_error& e) {
      return e.what();
    }
    return "no error";
  };
  // Rank 1 runs B0 before F0.
  CHECK(message("0F0,0B0\n1B0,1F0\n").starts_with("f.csv:2:1: rank 1, op 1B0: rule "));
  // Microbatch 1's backward is missing on rank 0.
  CHECK(message("0F0,0F1,0B0\n1F0,1B0,1F1,1B1\n").find("rule missing_op") != std::string::npos);
  // Stage 1 on rank 0 fits no placement of 2 stages on 2 ranks.
  CHECK(message("0F0,1F0,1B0,0B0\n\n").find("rule: placement") != std::string::npos);
  // Three stages on two ranks.
  CHECK(message("0F0,2F0\n1F0\n").find("not a multiple of the 2 ranks") != std::string::npos);
  // Rank 1 starts with microbatch 1, whose F rank 0 runs only after its B0, which waits for rank 1.
  CHECK(message("0F0,0B0,0F1,0B1\n1F1,1B1,1F0,1B0\n").find("deadlock") != std::string::npos);
}
