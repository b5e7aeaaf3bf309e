// Regression tests named after the kinds of fault that pipeline schedulers show in the field
// (docs/failure-kinds.md; docs/known-failures.md maps each kind to its test). This file holds the
// kinds decided from the schedule alone (generation, validation, lowering, simulation);
// test_known_failures_mpi.cpp holds those that need the executor and real gradients.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <stretto/graph/lowering.hpp>
#include <stretto/plan/auto_schedule.hpp>
#include <stretto/stretto.hpp>

namespace {

using stretto::op;
using stretto::op_kind;
using stretto::pipeline_shape;
using stretto::schedule;
using stretto::sim::uniform_costs;

// T_F = T_B = T_W = 1 per full stage, no message delay, M_B = 1, M_W = 0.5.
constexpr uniform_costs equal_times{1.0, 1.0, 1.0, 0.0, 1.0, 0.5};

/// The edge shapes of the field reports: one microbatch, one fewer than the stages, as many, one more.
std::vector<std::int32_t> edge_microbatches(std::int32_t p) {
  std::vector<std::int32_t> out;
  for (const std::int32_t m : {1, p - 1, p, p + 1})
    if (m >= 1 && std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  return out;
}

/// The chunk counts a policy is tried with: its default, and 1 and 2.
std::vector<std::int32_t> chunk_counts(const stretto::policies::policy_info& policy) {
  std::vector<std::int32_t> out{policy.default_chunks};
  for (const std::int32_t v : {1, 2})
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  return out;
}

/// Policies whose rules accept every shape with one chunk per rank: a rule of another schedule
/// that leaked into them would reject some edge shape.
bool accepts_every_linear_shape(std::string_view name) {
  return name == "gpipe" || name == "1f1b" || name == "zb-h1" || name == "zb-h2" || name == "gpipe-2bp" ||
         name == "1f1b-2bp";
}

/// Runs the lowered lists of `l` with rendezvous semantics: a send and its receive complete
/// together, only once both ranks have reached them; compute ops complete on their own.
/// Returns true when every rank reaches the end of its list.
bool completes_under_rendezvous(const stretto::graph::lowered_schedule& l) {
  using stretto::graph::lowered_kind;
  const auto p = static_cast<std::size_t>(l.num_ranks());
  std::vector<std::size_t> at(p, 0);
  for (bool moved = true; moved;) {
    moved = false;
    for (std::size_t r = 0; r < p; ++r) {
      const auto ops = l.ops(static_cast<std::int32_t>(r));
      while (at[r] < ops.size()) {
        const auto& o = ops[at[r]];
        if (o.kind == lowered_kind::compute) {
          ++at[r];
          moved = true;
          continue;
        }
        if (o.kind != lowered_kind::send) break;  // a receive completes with its send
        const auto q = static_cast<std::size_t>(o.peer);
        const auto peer_ops = l.ops(o.peer);
        if (at[q] < peer_ops.size() && peer_ops[at[q]].kind == lowered_kind::receive &&
            peer_ops[at[q]].message == o.message && peer_ops[at[q]].peer == static_cast<std::int32_t>(r)) {
          ++at[r];
          ++at[q];
          moved = true;
          continue;
        }
        break;
      }
    }
  }
  for (std::size_t r = 0; r < p; ++r)
    if (at[r] != l.ops(static_cast<std::int32_t>(r)).size()) return false;
  return true;
}

bool is_backward(op_kind k) { return k == op_kind::backward_input || k == op_kind::backward; }

}  // namespace

TEST_CASE("regression.hang_at_edge_shapes" * doctest::timeout(20)) {
  // Known failure 1: every registered policy, p in {2, 3, 4, 5}, m in {1, p − 1, p, p + 1}, its
  // default chunk count and 1 and 2: either generated, valid, and simulated to completion with
  // all of the model's work done (3m per full stage at equal times: Σ busy = 3·m·p), and for
  // the policies with a closed form exactly that span; or rejected up front by a rule that names
  // the policy itself. ZB-1p (the planned schedule) runs on the same grid.
  std::int32_t ran = 0, rejected = 0;
  for (const auto& policy : stretto::policies::all_policies) {
    const std::string name(policy.name);
    for (std::int32_t p = 2; p <= 5; ++p)
      for (const std::int32_t m : edge_microbatches(p))
        for (const std::int32_t v : chunk_counts(policy)) {
          CAPTURE(name);
          CAPTURE(p);
          CAPTURE(m);
          CAPTURE(v);
          const pipeline_shape shape{p, m, v};
          const std::string problem = policy.check(shape);
          if (!problem.empty()) {
            ++rejected;
            CHECK_MESSAGE(problem.rfind(name + ":", 0) == 0, problem);  // the policy's own rule
            CHECK_THROWS_WITH_AS(stretto::policies::make_schedule(name, shape), problem.c_str(), stretto::shape_error);
            if (v == 1) CHECK_FALSE(accepts_every_linear_shape(name));
            continue;
          }
          ++ran;
          const schedule s = policy.generate(shape);
          REQUIRE(stretto::validate(s).ok());
          const auto run = stretto::sim::simulate(s, equal_times);
          double busy = 0.0;
          for (const double b : run.metrics.busy) busy += b;
          CHECK(busy == doctest::Approx(3.0 * m * p));
          CHECK(std::isfinite(run.metrics.span));
          if (name == "gpipe" || name == "1f1b") CHECK(run.metrics.span == 3.0 * (m + p - 1));  // (m+p−1)(T_F+T_B+T_W)
          if (name == "zb-h1" && m >= p) CHECK(run.metrics.span == 3.0 * m + (p - 1));       // + (p−1)(T_F+T_B−T_W)
        }
  }
  for (std::int32_t p = 2; p <= 5; ++p)
    for (const std::int32_t m : edge_microbatches(p)) {
      CAPTURE(p);
      CAPTURE(m);
      const pipeline_shape shape{p, m, 1};
      const schedule zb_1p =
          stretto::plan::auto_schedule(shape, equal_times, stretto::plan::zb_memory_limit(shape, equal_times, 1.0));
      REQUIRE(stretto::validate(zb_1p).ok());
      CHECK(stretto::sim::simulate(zb_1p, equal_times).metrics.span <= 3.0 * (m + p - 1));  // never worse than 1F1B
    }
  CHECK(ran > 150);
  CHECK(rejected > 0);
}

TEST_CASE("regression.message_ordering_deadlock" * doctest::timeout(20)) {
  // Known failure 2: every registered policy at p = 2 (the next and the previous rank are the
  // same rank) and p = 3, m from 1 to 2p + 2, lowered to sends and receives: the lowering's own
  // message check passes, the lists run to completion when every send waits for its receive
  // (rendezvous), and each message is identified by (direction, source stage, destination stage,
  // microbatch): no two sends share a key, and every key's stages sit on the sender's and the
  // receiver's ranks.
  std::int32_t lowered = 0;
  for (const auto& policy : stretto::policies::all_policies) {
    const std::string name(policy.name);
    for (std::int32_t p = 2; p <= 3; ++p)
      for (std::int32_t m = 1; m <= 2 * p + 2; ++m) {
        const pipeline_shape shape{p, m, policy.default_chunks};
        if (!policy.check(shape).empty()) continue;
        CAPTURE(name);
        CAPTURE(p);
        CAPTURE(m);
        const schedule s = policy.generate(shape);
        const stretto::graph::lowered_schedule l = stretto::graph::lower(s, equal_times);
        const stretto::graph::lowering_result check = stretto::graph::check_messages(l);
        CHECK_MESSAGE(check.ok(), check.message);
        CHECK(completes_under_rendezvous(l));
        std::set<std::tuple<int, std::int32_t, std::int32_t, std::int32_t>> keys;
        std::size_t sends = 0;
        for (std::int32_t r = 0; r < p; ++r)
          for (const auto& o : l.ops(r)) {
            if (o.kind != stretto::graph::lowered_kind::send) continue;
            ++sends;
            const auto& k = o.message;
            keys.emplace(static_cast<int>(k.direction), k.from_stage, k.to_stage, k.microbatch);
            CHECK(s.rank_of(k.from_stage, k.microbatch) == r);
            CHECK(s.rank_of(k.to_stage, k.microbatch) == o.peer);
            CHECK(o.peer != r);
          }
        CHECK(keys.size() == sends);
        CHECK(sends == stretto::graph::messages_of(s).size());
        ++lowered;
      }
  }
  CHECK(lowered > 50);
}

TEST_CASE("regression.wrong_backward_order_across_chunks" * doctest::timeout(20)) {
  // Known failure 3: every policy with several chunks per rank (looped and V-shaped, one or two
  // replicas), p in {2, 3, 4}, m in {p, 2p}: for every microbatch the input-gradient backwards
  // (B or BW) visit the stages in exactly the reverse of the order the forwards visited them,
  // both in the simulated times and in each rank's list (the chunks a rank holds).
  std::int32_t checked = 0;
  for (const auto& policy : stretto::policies::all_policies) {
    if (policy.default_chunks < 2) continue;
    const std::string name(policy.name);
    for (std::int32_t p = 2; p <= 4; ++p)
      for (const std::int32_t m : {p, 2 * p}) {
        const pipeline_shape shape{p, m, policy.default_chunks};
        if (!policy.check(shape).empty()) continue;
        CAPTURE(name);
        CAPTURE(p);
        CAPTURE(m);
        const schedule s = policy.generate(shape);
        const auto run = stretto::sim::simulate(s, equal_times);
        const std::int32_t stages = s.num_stages();
        for (std::int32_t j = 0; j < m; ++j) {
          CAPTURE(j);
          // Simulated start of F and of B/BW per stage.
          std::vector<double> f_start(static_cast<std::size_t>(stages), -1.0), b_start(f_start);
          for (std::int32_t r = 0; r < p; ++r) {
            const auto ops = s.ops(r);
            const auto times = run.events.ops(r);
            std::vector<std::int32_t> f_chunks, b_chunks;  // stages of mb j on this rank, in list order
            for (std::size_t i = 0; i < ops.size(); ++i) {
              if (ops[i].microbatch != j) continue;
              if (ops[i].kind == op_kind::forward) {
                f_chunks.push_back(ops[i].stage);
                f_start[static_cast<std::size_t>(ops[i].stage)] = times[i].start;
              } else if (is_backward(ops[i].kind)) {
                b_chunks.push_back(ops[i].stage);
                b_start[static_cast<std::size_t>(ops[i].stage)] = times[i].start;
              }
            }
            std::reverse(b_chunks.begin(), b_chunks.end());
            CHECK(b_chunks == f_chunks);
          }
          for (std::int32_t st = 0; st + 1 < stages; ++st) {
            CHECK(f_start[static_cast<std::size_t>(st)] < f_start[static_cast<std::size_t>(st + 1)]);
            CHECK(b_start[static_cast<std::size_t>(st)] > b_start[static_cast<std::size_t>(st + 1)]);
          }
        }
        ++checked;
      }
  }
  CHECK(checked >= 15);
}

TEST_CASE("regression.memory_grows_with_m" * doctest::timeout(20)) {
  // Known failure 7: the simulated peak per rank equals the policy's formula, and for the
  // policies that promise a bound it stays there as m grows (p in {3, 4, 5}, m = 2p − 1 ... 8p):
  // 1F1B min(p − r, m)·M_B; ZB-H1 (p − r)·M_B + r·M_W; ZB-H2 (2p − 2r − 1)·M_B + 2r·M_W; ZB-V
  // exactly p·M_B on every rank; GPipe m·M_B (it keeps every microbatch by design); ZB-1p at
  // most its limit p·M_B.
  for (std::int32_t p = 3; p <= 5; ++p)
    for (const std::int32_t m : {2 * p - 1, 2 * p, 4 * p, 8 * p}) {
      CAPTURE(p);
      CAPTURE(m);
      const auto peak = [&](const char* name, std::int32_t v) {
        return stretto::sim::peak_memory(stretto::policies::make_schedule(name, {p, m, v}), equal_times);
      };
      const auto gpipe = peak("gpipe", 1), one_f_one_b = peak("1f1b", 1), h1 = peak("zb-h1", 1),
                 h2 = peak("zb-h2", 1), zb_v = peak("zb-v", 2);
      for (std::int32_t r = 0; r < p; ++r) {
        CAPTURE(r);
        const auto i = static_cast<std::size_t>(r);
        CHECK(gpipe[i] == double(m));
        CHECK(one_f_one_b[i] == double(std::min(p - r, m)));
        CHECK(h1[i] == (p - r) * 1.0 + r * 0.5);
        CHECK(h2[i] == (2 * p - 2 * r - 1) * 1.0 + 2 * r * 0.5);
        CHECK(zb_v[i] == double(p));
      }
      const pipeline_shape shape{p, m, 1};
      const auto zb_1p = stretto::sim::peak_memory(stretto::plan::auto_schedule(shape, equal_times, double(p)), equal_times);
      CHECK(*std::max_element(zb_1p.begin(), zb_1p.end()) <= double(p));
    }
}

TEST_CASE("regression.schedule_worse_than_its_paper" * doctest::timeout(20)) {
  // Known failure 8: simulated spans equal the closed forms at equal times (T_F = T_B = T_W = 1,
  // no delay), p in {2, ..., 6}, m in {p, 2p − 1, 2p, 3p + 1}: GPipe and 1F1B (m + p − 1)·3;
  // ZB-H1 3m + (p − 1) (m ≥ p); ZB-H2 and ZB-V zero bubble, 3m, once m ≥ 2p − 1 (the paper's
  // condition) — beyond the small p where a broken construction still looks right. The Zero
  // Bubble paper's Table 5 bubble rates are checked in test_reference_numbers.cpp.
  for (std::int32_t p = 2; p <= 6; ++p)
    for (const std::int32_t m : {p, 2 * p - 1, 2 * p, 3 * p + 1}) {
      CAPTURE(p);
      CAPTURE(m);
      const auto span = [&](const char* name, std::int32_t v) {
        return stretto::sim::simulate(stretto::policies::make_schedule(name, {p, m, v}), equal_times).metrics.span;
      };
      CHECK(span("gpipe", 1) == 3.0 * (m + p - 1));
      CHECK(span("1f1b", 1) == 3.0 * (m + p - 1));
      CHECK(span("zb-h1", 1) == 3.0 * m + (p - 1));
      if (m >= 2 * p - 1) {
        CHECK(span("zb-h2", 1) == 3.0 * m);
        CHECK(span("zb-v", 2) == 3.0 * m);
      }
    }
}

TEST_CASE("regression.unclear_rejections" * doctest::timeout(20)) {
  // Known failure 10: every shape a policy rejects (p from 1 to 6, m from 1 to 2p + 2, v from 1
  // to 3) is refused with a shape_error (never an assertion) whose message starts with the
  // policy's name, states the rule (it is longer than the name) and has a non-empty valid range:
  // the same p and v accept some m up to 4p + 4, or (a rule on p or v) some shape with p' up to
  // 8 or the policy's default chunks is accepted.
  std::int32_t rejections = 0;
  for (const auto& policy : stretto::policies::all_policies) {
    const std::string name(policy.name);
    for (std::int32_t p = 1; p <= 6; ++p)
      for (std::int32_t v = 1; v <= 3; ++v)
        for (std::int32_t m = 1; m <= 2 * p + 2; ++m) {
          const pipeline_shape shape{p, m, v};
          const std::string problem = policy.check(shape);
          if (problem.empty()) continue;
          ++rejections;
          CAPTURE(name);
          CAPTURE(p);
          CAPTURE(m);
          CAPTURE(v);
          CHECK_MESSAGE(problem.rfind(name + ": ", 0) == 0, problem);
          CHECK(problem.size() > name.size() + 20);
          CHECK_THROWS_AS(stretto::policies::make_schedule(name, shape), stretto::shape_error);
          bool valid_range = false;
          for (std::int32_t m2 = 1; m2 <= 4 * p + 4 && !valid_range; ++m2)
            valid_range = policy.check({p, m2, v}).empty();
          for (std::int32_t p2 = 1; p2 <= 8 && !valid_range; ++p2)
            for (std::int32_t m2 = 1; m2 <= 4 * p2 + 4 && !valid_range; ++m2)
              valid_range = policy.check({p2, m2, v}).empty() || policy.check({p2, m2, policy.default_chunks}).empty();
          CHECK_MESSAGE(valid_range, problem);
        }
  }
  CHECK(rejections > 100);
  // The planners' rejections name the rule and the alternative too.
  const auto message_of = [](auto&& run) -> std::string {
    try {
      run();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return {};
  };
  CHECK(message_of([] { (void)stretto::plan::auto_schedule(pipeline_shape{4, 8, 2}, equal_times, 4.0); })
            .find("auto: the Zero Bubble heuristic places one stage per rank, so chunks must be 1 (got 2); use zb-v "
                  "or interleaved-1f1b") == 0);
  const std::string low = message_of([] { (void)stretto::plan::auto_schedule(pipeline_shape{4, 8, 1}, equal_times, 0.5); });
  CHECK(low.find("is below one microbatch's activations on stage 0") != std::string::npos);
  CHECK(low.find("use p*M_B (zb-1p)") != std::string::npos);
}
