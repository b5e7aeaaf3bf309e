// Every path rule of stretto/skippipe/paths.hpp broken by a hand-written path set, and named in
// the error with its microbatch and node.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <stretto/core/errors.hpp>
#include <stretto/skippipe/paths.hpp>

#include "common.hpp"

namespace {

using stretto::skippipe::find_violations;
using stretto::skippipe::path;
using stretto::skippipe::setting;

// 8 stages, node k serves stage k; 1 microbatch, memory 1, path length 4.
setting eight() {
  setting s = skippipe_test::line(std::vector<double>(8, 1.0), 0.5);
  s.microbatches = 1;
  s.memory = 1;
  s.path_length = 4;
  s.check();
  return s;
}

// The single violation of `paths` on `s`, checked to be exactly one with `rule` on `node`.
void expect_only(const setting& s, const std::vector<path>& paths, const std::string& rule, int microbatch, int node,
                 bool collisions = false) {
  const auto found = find_violations(s, paths, collisions);
  REQUIRE(found.size() == 1);
  CHECK(found[0].rule == rule);
  CHECK(found[0].microbatch == microbatch);
  CHECK(found[0].node == node);
  const std::string head = "microbatch " + std::to_string(microbatch) + ", node " + std::to_string(node) + ": rule " + rule;
  CHECK(found[0].message.starts_with(head));
  // validate_paths throws with that message.
  try {
    stretto::skippipe::validate_paths(s, paths, collisions);
    FAIL("validate_paths accepted a broken path set");
  } catch (const stretto::validation_error& e) {
    CHECK(std::string(e.what()).find(head) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("skippipe.paths.valid_set_passes") {
  const setting s = eight();
  CHECK(find_violations(s, {{0, 1, 2, 3}}).empty());
  CHECK(find_violations(s, {{0, 2, 1, 4}}).empty());  // one adjacent swap
  CHECK(find_violations(s, {{0, 4, 5, 6}}).empty());  // a jump of exactly 4
  CHECK_NOTHROW(stretto::skippipe::validate_paths(s, {{0, 3, 2, 5}}));
}

TEST_CASE("skippipe.paths.each_rule_is_named") {
  const setting s = eight();
  expect_only(s, {{0, 9, 2, 3}}, "node-range", 0, 9);
  expect_only(s, {{1, 2, 3, 4}}, "start", 0, 1);              // must start on its stage-0 node 0
  expect_only(s, {{0, 2, 2, 3}}, "stage-once", 0, 2);
  expect_only(s, {{0, 1, 0, 2}}, "stage-once", 0, 0);         // stage 0 only first (and last)
  expect_only(s, {{0, 1, 2}}, "path-length", 0, 2);
  expect_only(s, {{0, 1, 2, 3, 4}}, "path-length", 0, 4);
  expect_only(s, {{0, 3, 1, 4}}, "swap-adjacent", 0, 1);      // back 2 stages
  expect_only(s, {{0, 1, 6, 7}}, "jump", 0, 6);               // 5 stages past the highest
  {
    setting seven = eight();
    seven.path_length = 7;
    seven.max_swap_distance = 5;
    expect_only(seven, {{0, 2, 1, 4, 3, 6, 5}}, "swap-count", 0, 5);  // the third swap
  }
  {
    setting tight = eight();
    tight.path_length = 5;
    tight.max_swap_distance = 1;
    expect_only(tight, {{0, 2, 1, 4, 3}}, "swap-distance", 0, 3);  // two swaps of 1 > 1
  }
  // The plan has the wrong number of paths.
  const auto found = find_violations(s, {{0, 1, 2, 3}, {0, 1, 2, 3}});
  REQUIRE(found.size() == 1);
  CHECK(found[0].rule == "path-count");
}

TEST_CASE("skippipe.paths.caps") {
  // Stage 0 = {0, 1}, stage 1 = {2, 3}, stage 2 = {4}; memory 1, 1 microbatch per data node,
  // path length 2: node cap (TC1) 1, stage-1 cap 2, stage-2 cap 1.
  setting s = skippipe_test::line({1, 1, 1, 1, 1}, 0.5);
  s.stages = {{0, 1}, {2, 3}, {4}};
  s.microbatches = 1;
  s.memory = 1;
  s.path_length = 2;
  s.check();
  CHECK(find_violations(s, {{0, 2}, {1, 3}}).empty());
  CHECK(find_violations(s, {{0, 2}, {1, 4}}).empty());
  // TC1 alone: both on node 2 (stage 1 gets 2 = its cap).
  expect_only(s, {{0, 2}, {1, 2}}, "node-memory", 1, 2);
  // Stage 2 over its cap of 1 (and, with one node, node 4 over TC1 as well).
  const auto found = find_violations(s, {{0, 4}, {1, 4}});
  REQUIRE(found.size() == 2);
  CHECK(found[0].rule == "stage-cap");
  CHECK(found[0].microbatch == 1);
  CHECK(found[0].node == 4);
  CHECK(found[0].message.starts_with("microbatch 1, node 4: rule stage-cap"));
  CHECK(found[1].rule == "node-memory");
  // Two waves double the caps: 2 microbatches per data node, memory 1.
  s.microbatches = 2;
  CHECK(find_violations(s, {{0, 4}, {0, 4}, {1, 3}, {1, 3}}).empty());
  expect_only(s, {{0, 3}, {0, 3}, {1, 3}, {1, 2}}, "node-memory", 2, 3);
}

TEST_CASE("skippipe.paths.collision") {
  // Stage 0 = {0} (w 1), stage 1 = {1} (w 3), stage 2 = {2}; hops 0.5; memory 2, 2 microbatches:
  // both are agents, released at 0 and 1 (after the first one's forward on node 0).
  // Microbatch 0 runs F on node 1 over [1.5, 4.5); microbatch 1 arrives at 2.5: they overlap in
  // forward on node 1. Through node 2 instead, microbatch 1 runs F over [2.5, 3.5) alone.
  setting s = skippipe_test::line({1, 3, 1}, 0.5);
  s.microbatches = 2;
  s.memory = 2;
  s.path_length = 2;
  s.check();
  CHECK(find_violations(s, {{0, 1}, {0, 1}}).empty());  // TC2 not asked
  expect_only(s, {{0, 1}, {0, 1}}, "collision", 1, 1, true);
  // F of microbatch 0 on node 1 ends at 4.5; then loss on 0 [5, 5.25), backward on 1 from 5.75:
  // microbatch 1's forward on node 2 at [2.5, 3.5) and its backward later never meet it.
  CHECK(find_violations(s, {{0, 1}, {0, 2}}, true).empty());
}
