// Exporters of timelines (stretto/io): SVG, Chrome trace JSON and the text grid. Each op is one
// SVG box and one trace event; every message between ranks is one flow; the text grid places ops
// at the columns of their simulated start times.
#include <doctest/doctest.h>

#include <cstddef>
#include <string>

#include <stretto/io/chrome_trace.hpp>
#include <stretto/io/svg.hpp>
#include <stretto/io/text_grid.hpp>
#include <stretto/policies/registry.hpp>
#include <stretto/sim/simulator.hpp>

namespace {

namespace io = stretto::io;

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const stretto::sim::uniform_costs equal_costs{1.0, 1.0, 1.0, 0.0};

io::svg_options titled(std::string title) {
  io::svg_options options;
  options.title = std::move(title);
  return options;
}

io::svg_options wide(double width) {
  io::svg_options options;
  options.width = width;
  return options;
}

}  // namespace

TEST_CASE("SVG: one box per op for every policy, coloured by kind, chunk and replica") {
  for (const auto& policy : stretto::policies::all_policies) {
    CAPTURE(policy.name);
    const stretto::pipeline_shape shape{4, 8, policy.default_chunks};
    const auto s = policy.generate(shape);
    const auto run = stretto::sim::simulate(s, equal_costs);
    const std::string svg = io::to_svg(run.events, io::context_of(s, std::string(policy.name)), titled(std::string(policy.name)));
    CHECK(count(svg, "<rect class=\"op ") == s.num_ops());
    CHECK(count(svg, "class=\"idle\"") == 4);
    CHECK(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    CHECK(svg.ends_with("</svg>\n"));
    std::size_t second_chunk = 0;
    for (std::int32_t r = 0; r < s.num_ranks(); ++r)
      for (const auto& o : s.ops(r)) second_chunk += o.stage >= shape.num_ranks ? 1 : 0;
    CHECK(count(svg, " chunk1\"") + count(svg, " chunk1 ") == second_chunk);
    if (policy.bidirectional) CHECK(count(svg, "replica1") > 0);
  }
}

TEST_CASE("SVG geometry: 1F1B at p = 2, m = 2 with the time area 360 px wide") {
  const auto s = stretto::policies::make_schedule("1f1b", {2, 2, 1});
  // Rank 0: F0 F1 . . BW0 BW0 . BW1 BW1 (BW0 waits for rank 1's BW0, which ends at t = 4).
  const auto run = stretto::sim::simulate(s, equal_costs);
  CHECK(run.metrics.span == 9.0);
  const std::string svg = io::to_svg(run.events, io::context_of(s), wide(360.0));
  // As wide as the legend (587 px > 60 + 360 + 20), 24 + 2·22 + 70 high; 40 px per time unit;
  // rank 1's F0 starts at t = 1.
  CHECK(svg.find("width=\"587\" height=\"138\"") != std::string::npos);
  CHECK(svg.find("class=\"op F\" data-rank=\"1\" data-stage=\"1\" data-microbatch=\"0\" x=\"100\" y=\"47\" width=\"40\"") != std::string::npos);
  CHECK(svg.find("class=\"op BW\" data-rank=\"0\" data-stage=\"0\" data-microbatch=\"0\" x=\"220\" y=\"25\" width=\"80\"") != std::string::npos);
}

TEST_CASE("SVG at p = 32, m = 128 (ZB-V) stays legible: labels drop where boxes are too narrow") {
  const auto s = stretto::policies::make_schedule("zb-v", {32, 128, 2});
  const auto run = stretto::sim::simulate(s, equal_costs);
  const std::string svg = io::to_svg(run.events, io::context_of(s));
  CHECK(count(svg, "<rect class=\"op ") == s.num_ops());
  CHECK(count(svg, "text-anchor=\"middle\">") < s.num_ops() / 4);  // few labels fit at 2400 px
  CHECK(svg.find("width=\"2480\"") != std::string::npos);
}

TEST_CASE("Chrome trace: complete events per op, flows per message") {
  const auto s = stretto::policies::make_schedule("1f1b", {4, 8, 1});
  const auto run = stretto::sim::simulate(s, equal_costs);
  const std::string trace = io::to_chrome_trace(run.events, io::context_of(s, "1f1b"));
  CHECK(count(trace, "\"ph\": \"X\"") == s.num_ops());
  // Activations cross (p − 1)·m rank boundaries downwards, gradients as many upwards.
  CHECK(count(trace, "\"ph\": \"s\"") == 2 * 3 * 8);
  CHECK(count(trace, "\"ph\": \"f\"") == 2 * 3 * 8);
  CHECK(count(trace, "\"name\": \"process_name\"") == 4);
  // Rank 1's F0 runs from t = 1 to t = 2 model units: 1000 µs at the default 1 unit = 1 ms.
  CHECK(trace.find("{\"name\": \"F0\", \"cat\": \"F\", \"ph\": \"X\", \"pid\": 1, \"tid\": 0, \"ts\": 1000, \"dur\": 1000, "
                   "\"args\": {\"stage\": 1, \"microbatch\": 0, \"kind\": \"forward\", \"chunk\": 0, \"replica\": 0, \"overlapped\": false}}") !=
        std::string::npos);
  // The first flow: rank 1's BW0 (ends at t = 10) sends its gradient to rank 0's BW0 (starts at 10).
  CHECK(trace.find("\"ph\": \"s\", \"id\": 1, \"pid\": 1, \"tid\": 0, \"ts\": 9999.999}") != std::string::npos);
  CHECK(trace.find("\"ph\": \"f\", \"bp\": \"e\", \"id\": 1, \"pid\": 0, \"tid\": 0, \"ts\": 10000}") != std::string::npos);
}

TEST_CASE("Chrome trace of ZB-V: chunk 1 on every rank, no flow inside a rank") {
  const auto s = stretto::policies::make_schedule("zb-v", {4, 8, 2});
  const auto run = stretto::sim::simulate(s, equal_costs);
  const std::string trace = io::to_chrome_trace(run.events, io::context_of(s, "zb-v"));
  CHECK(count(trace, "\"chunk\": 1") == s.num_ops() / 2);
  // The V turns on rank 3 (stages 3 and 4): 2·(2p − 2) = 12 crossings per microbatch.
  CHECK(count(trace, "\"ph\": \"s\"") == 12 * 8);
}

TEST_CASE("text grid: 1F1B at p = 2, m = 2, one column per unit") {
  const auto s = stretto::policies::make_schedule("1f1b", {2, 2, 1});
  const auto run = stretto::sim::simulate(s, equal_costs);
  const std::string grid = io::to_text_grid(run.events, io::context_of(s));
  // Rank 0 idles two units before BW0 and one before BW1; rank 1 idles at the start and the end.
  CHECK(grid == "        0                                   \n"
                "rank 0| F0- F1- ... ... BW0---- ... BW1---- \n"
                "rank 1| ... F0- BW0---- F1- BW1---- ... ... \n");
  const std::string colored = io::to_text_grid(run.events, io::context_of(s), {.color = true, .unit = 0.0});
  CHECK(colored.find("\x1b[30;44mF0 \x1b[0m \x1b[30;44mF1 \x1b[0m") != std::string::npos);
  CHECK(colored.find("\x1b[30;45mBW0    \x1b[0m") != std::string::npos);
}
