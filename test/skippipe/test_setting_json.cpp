// The JSON reader of SkipPipe settings: round trip, defaults, and strict refusals that name the
// key's path, the line and the column.
#include <doctest/doctest.h>

#include <sstream>
#include <string>

#include <stretto/io/skippipe_setting.hpp>
#include <stretto/skippipe/presets.hpp>

namespace {

using stretto::io::format_error;
using stretto::io::read_skippipe_setting;

const char* const minimal = R"({
  "compute": [1, 2, 1.5],
  "latency": 0.25,
  "bandwidth": [[0, 100, 100], [100, 0, 50], [100, 50, 0]],
  "activation_bytes": 50,
  "stages": [[0], [1], [2]],
  "path_length": 2, "memory": 2, "microbatches": 4
})";

// The message of the format_error `text` raises; fails the test when it is accepted.
std::string refusal(const std::string& text) {
  try {
    (void)read_skippipe_setting(text, "s.json");
  } catch (const format_error& e) {
    return e.what();
  }
  FAIL("accepted: " << text);
  return {};
}

}  // namespace

TEST_CASE("skippipe.setting_json.reads_and_defaults") {
  const auto s = read_skippipe_setting(minimal, "s.json");
  CHECK(s.compute == std::vector<double>{1, 2, 1.5});
  CHECK(s.latency[0][1] == 0.25);
  CHECK(s.latency[1][1] == 0.0);
  CHECK(s.delay(1, 2) == 0.25 + 50.0 / 50.0);
  CHECK(s.stages == std::vector<std::vector<std::int32_t>>{{0}, {1}, {2}});
  CHECK(s.memory == 2);
  CHECK(s.microbatches == 4);
  CHECK(s.backward_factor == 1.5);  // defaults
  CHECK(s.loss_factor == 0.25);
  CHECK(s.max_jump == 4);
  CHECK(s.collision_avoidance);
}

TEST_CASE("skippipe.setting_json.round_trip") {
  const auto s = stretto::skippipe::make_preset("geo-distributed", 3);
  std::ostringstream out;
  stretto::io::write_skippipe_setting(out, s);
  const auto t = read_skippipe_setting(out.str());
  CHECK(t.compute == s.compute);
  CHECK(t.latency == s.latency);
  CHECK(t.bandwidth == s.bandwidth);
  CHECK(t.activation_bytes == s.activation_bytes);
  CHECK(t.stages == s.stages);
  CHECK(t.names == s.names);
  CHECK(t.memory == s.memory);
  CHECK(t.path_length == s.path_length);
}

TEST_CASE("skippipe.setting_json.stage_sizes_assign_nodes") {
  // Nodes 0,1 close, 2,3 close, far apart between the pairs: the tour 0,1,... keeps neighbours
  // together, so the two columns are {0, 1} and {2, 3}.
  const auto s = read_skippipe_setting(R"({"compute": [1, 1, 1, 1], "bandwidth": 1, "path_length": 2,
    "latency": [[0, 1, 9, 9], [1, 0, 9, 9], [9, 9, 0, 1], [9, 9, 1, 0]], "stage_sizes": [2, 2]})");
  CHECK(s.stages == std::vector<std::vector<std::int32_t>>{{0, 2}, {1, 3}});
  CHECK(refusal(R"({"compute": [1, 1, 1], "bandwidth": 1, "latency": 1, "stage_sizes": [2, 2]})")
            .find("stage_sizes add up to 4 but there are 3 nodes") != std::string::npos);
}

TEST_CASE("skippipe.setting_json.refusals_name_the_path") {
  // Unknown key, with where it is.
  CHECK(refusal(R"({"compute": [1, 1], "latency": 1, "bandwidth": 1, "stages": [[0], [1]], "speed": 2})")
            .starts_with("s.json:1:82: speed: unknown key; valid keys: "));
  // Repeated key.
  CHECK(refusal(R"({"compute": [1, 1], "compute": [1, 1]})").find("the key \"compute\" appears twice") != std::string::npos);
  // Wrong types, with the path into arrays.
  CHECK(refusal(R"({"compute": [1, "x"], "latency": 1, "bandwidth": 1, "stages": [[0], [1]]})")
            .starts_with("s.json:1:17: compute[1]: must be a finite number"));
  CHECK(refusal(R"({"compute": [1, 1], "latency": [[0, 1], [1, true]], "bandwidth": 1, "stages": [[0], [1]]})")
            .find("latency[1][1]: must be a finite number") != std::string::npos);
  CHECK(refusal(R"({"compute": [1, 1], "latency": 1, "bandwidth": 1, "stages": [[0], [1.5]]})")
            .find("stages[1][0]: must be a whole number") != std::string::npos);
  CHECK(refusal(R"({"compute": [1, 1], "latency": 1, "bandwidth": 1, "stages": [[0], [1]], "memory": "3"})")
            .find("memory: must be a whole number") != std::string::npos);
  CHECK(refusal(R"({"compute": [1, 1], "latency": 1, "bandwidth": 1, "stages": [[0], [1]], "collision_avoidance": 1})")
            .find("collision_avoidance: must be true or false") != std::string::npos);
  CHECK(refusal(R"({"compute": [1, 1], "latency": [[0, 1]], "bandwidth": 1, "stages": [[0], [1]]})")
            .find("latency: must have 2 rows") != std::string::npos);
  CHECK(refusal(R"({"compute": [1, 1], "latency": 1, "bandwidth": 1, "stages": [[0], [1]], "format": "x"})")
            .find("format: must be \"stretto-skippipe-setting\"") != std::string::npos);
  // Missing or conflicting keys.
  CHECK(refusal(R"({"compute": [1, 1], "latency": 1, "stages": [[0], [1]]})").find("the key bandwidth is required") !=
        std::string::npos);
  CHECK(refusal(R"({"compute": [1, 1], "latency": 1, "bandwidth": 1})").find("give exactly one of stages") != std::string::npos);
  // The setting's own rules come through with the file name.
  CHECK(refusal(R"({"compute": [1, 1], "latency": 1, "bandwidth": 1, "stages": [[0, 1], [1]]})")
            .find("node 1 serves two stages") != std::string::npos);
  CHECK(refusal(R"({"compute": [1, 0], "latency": 1, "bandwidth": 1, "stages": [[0], [1]]})")
            .find("compute[1] must be a finite time > 0") != std::string::npos);
  // Not JSON, or not one object.
  CHECK(refusal("[1, 2]").find("one JSON object") != std::string::npos);
  CHECK(refusal("{\"compute\": [1, 1]} x").find("unexpected text after the JSON value") != std::string::npos);
}
