// Checkpoint files (stretto/io/checkpoint.hpp): CRC-32 against zlib's published check values, a
// manifest that round-trips and refuses damage with its line, rank files that round-trip bit for
// bit and refuse truncation, a flipped byte and a header that does not fit, and the layout and
// tensor comparisons naming what differs.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <stretto/io/checkpoint.hpp>
#include <stretto/policies/registry.hpp>

namespace {

namespace io = stretto::io;
namespace fs = std::filesystem;

// A fresh, empty folder under the system's temporary directory.
fs::path fresh_folder(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("stretto-test-checkpoint-" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void spill(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Two stages of state: a weight matrix, its momentum and a step counter.
struct toy_state {
  std::vector<double> w0, v0, w1;
  std::vector<std::int64_t> count;
  std::vector<io::stage_tensors> stages() {
    std::vector<io::stage_tensors> out(2);
    out[0].stage = 2;
    out[0].tensors.emplace_back("layer2.weight", std::span(w0), std::vector<std::int64_t>{2, 3});
    out[0].tensors.emplace_back("layer2.velocity", std::span(v0), std::vector<std::int64_t>{2, 3});
    out[1].stage = 5;
    out[1].tensors.emplace_back("layer5.weight", std::span(w1));
    out[1].tensors.emplace_back("count", std::span(count));
    return out;
  }
};
toy_state filled() {
  return {{0.1, -2.5, 1e-300, 3.0, 4.0, -0.0}, {6, 5, 4, 3, 2, 1}, {0.125, 7.0, 1.0 / 3.0}, {42}};
}

io::checkpoint_manifest sample_manifest() {
  const stretto::schedule plan = stretto::policies::make_schedule("interleaved-1f1b", {2, 4, 2});
  io::checkpoint_manifest m;
  m.layout = io::checkpoint_layout::of(plan, "interleaved-1f1b", "784-64-10 f64 boundaries 0 1 2", 1);
  m.counters = {3, 1404, {{"rng", "12 34 56"}, {"skipped", "1"}, {"v", " x  y"}}};
  m.stage_tensors = {{{"a", io::tensor_type::f64, {4, 3}}}, {{"b", io::tensor_type::f32, {7}}}, {}, {}};
  m.files = {{"rank-00000.bin", 1000, 0xdeadbeef}, {"rank-00001.bin", 2000, 0x00000001}};
  return m;
}

}  // namespace

TEST_CASE("crc32 gives zlib's check values and continues over pieces") {
  CHECK(io::crc32(0, std::string_view("123456789")) == 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  CHECK(io::crc32(0, std::string_view("")) == 0u);
  CHECK(io::crc32(0, std::string_view("The quick brown fox jumps over the lazy dog")) == 0x414FA339u);
  CHECK(io::crc32(io::crc32(0, std::string_view("12345")), std::string_view("6789")) == 0xCBF43926u);
}

TEST_CASE("a tensor_ref checks its name and its shape") {
  std::vector<double> v(6);
  CHECK(io::tensor_ref("w", std::span(v), {2, 3}).spec().bytes() == 48);
  CHECK(io::tensor_ref("w", std::span(v)).spec().shape == std::vector<std::int64_t>{6});
  CHECK_THROWS_WITH_AS(io::tensor_ref("w", std::span(v), {4, 2}),
                       doctest::Contains("tensor 'w' has 6 elements but the shape 4x2"), stretto::argument_error);
  CHECK_THROWS_WITH_AS(io::tensor_ref("a b", std::span(v)), doctest::Contains("without spaces"), stretto::argument_error);
  CHECK_THROWS_AS(io::tensor_ref("", std::span(v)), stretto::argument_error);
}

TEST_CASE("the manifest round-trips through its text") {
  const io::checkpoint_manifest m = sample_manifest();
  const std::string text = io::manifest_text(m);
  CHECK(text.rfind("stretto-checkpoint 1\nmodel 784-64-10 f64 boundaries 0 1 2\nschedule interleaved-1f1b\n"
                   "placement looped\npipeline-ranks 2\nmicrobatches 4\nchunks 2\n", 0) == 0);
  CHECK(text.find("rank-stages 0 0,2\nrank-stages 1 1,3\n") != std::string::npos);
  CHECK(text.find("value rng 12 34 56\n") != std::string::npos);
  CHECK(text.find("tensor 1 b f32 7\n") != std::string::npos);
  CHECK(text.find("file 0 rank-00000.bin 1000 deadbeef\n") != std::string::npos);
  CHECK(io::parse_manifest(text, "m") == m);
}

TEST_CASE("a damaged manifest is refused with its line") {
  const std::string text = io::manifest_text(sample_manifest());
  CHECK_THROWS_WITH_AS(io::parse_manifest(text.substr(0, text.size() - 4), "DIR/manifest"),
                       doctest::Contains("checkpoint DIR/manifest:"), io::checkpoint_error);
  CHECK_THROWS_WITH_AS(io::parse_manifest(text.substr(0, text.size() - 20), "DIR/manifest"),
                       doctest::Contains("truncated"), io::checkpoint_error);
  std::string other = text;
  other.replace(0, 20, "stretto-checkpoint 7");
  CHECK_THROWS_WITH_AS(io::parse_manifest(other, "DIR/manifest"),
                       "checkpoint DIR/manifest has format version 7; this build reads version 1", io::checkpoint_error);
  other = text;
  other.replace(other.find("chunks"), 6, "chonks");
  CHECK_THROWS_WITH_AS(io::parse_manifest(other, "DIR/manifest"),
                       doctest::Contains("checkpoint DIR/manifest:7: unknown key 'chonks'"), io::checkpoint_error);
  CHECK_THROWS_WITH_AS(io::parse_manifest("", "DIR/manifest"), doctest::Contains("empty file"), io::checkpoint_error);
}

TEST_CASE("every prefix and every flipped byte of a manifest is parsed or refused as a checkpoint_error") {
  const std::string text = io::manifest_text(sample_manifest());
  std::size_t refused = 0;
  const auto parse = [&](const std::string& damaged) {
    try {
      (void)io::parse_manifest(damaged, "m");
    } catch (const io::checkpoint_error&) {
      ++refused;
    }
  };
  for (std::size_t n = 0; n < text.size(); ++n) parse(text.substr(0, n));
  CHECK(refused == text.size());  // no prefix is complete: the final "end" line is missing
  for (std::size_t k = 0; k < text.size(); ++k)
    for (const char c : {'\n', ' ', '9', 'x', '-', '\0'}) {
      std::string damaged = text;
      damaged[k] = c;
      parse(damaged);
    }
  CHECK(refused > text.size());
}

TEST_CASE("layout differences name each field that differs") {
  const io::checkpoint_layout saved = sample_manifest().layout;
  CHECK(io::layout_differences(saved, saved).empty());
  const stretto::schedule four = stretto::policies::make_schedule("1f1b", {4, 8, 1});
  const io::checkpoint_layout run = io::checkpoint_layout::of(four, "1f1b", "784-64-10 f64 boundaries 0 1 2", 2);
  const std::string all = io::join(io::layout_differences(saved, run));
  CHECK(all == "checkpoint has p = 2 pipeline ranks, this run has p = 4; "
               "checkpoint has v = 2 chunks per rank, this run has v = 1; "
               "checkpoint has m = 4 microbatches, this run has m = 8; "
               "checkpoint has schedule 'interleaved-1f1b', this run has '1f1b'; "
               "checkpoint has placement looped, this run has linear; "
               "checkpoint places stages 0,2 on pipeline rank 0, this run places 0; "
               "checkpoint has data-parallel size 1, this run has 2");
  io::checkpoint_layout wider = saved;
  wider.model = "784-128-10 f64 boundaries 0 1 2";
  wider.data_parallel = 4;
  CHECK(io::join(io::layout_differences(saved, wider, true)) ==
        "checkpoint has model '784-64-10 f64 boundaries 0 1 2', this run has '784-128-10 f64 boundaries 0 1 2'");
}

TEST_CASE("tensor differences name the tensor, its type and shape") {
  const std::vector<io::tensor_spec> saved{{"w", io::tensor_type::f64, {4, 3}}, {"b", io::tensor_type::f64, {4}}};
  CHECK(io::tensor_differences(1, saved, saved).empty());
  const std::vector<io::tensor_spec> run{{"w", io::tensor_type::f32, {4, 5}}, {"v", io::tensor_type::f64, {4}}};
  CHECK(io::join(io::tensor_differences(1, saved, run)) ==
        "stage 1: tensor w is f64 4x3 in the checkpoint, f32 4x5 in this run's model; "
        "stage 1: the model's tensor v is not in the checkpoint; "
        "stage 1: the checkpoint's tensor b is not in this run's model");
  const std::vector<io::tensor_spec> swapped{saved[1], saved[0]};
  CHECK(io::join(io::tensor_differences(1, saved, swapped)) ==
        "stage 1: the model lists its tensors in another order than the checkpoint");
}

TEST_CASE("a rank file round-trips bit for bit") {
  const fs::path dir = fresh_folder("round-trip");
  toy_state a = filled();
  const io::file_entry entry = io::write_rank_file(dir / "rank-00001.bin", 1, a.stages());
  CHECK(entry.name == "rank-00001.bin");
  CHECK(entry.bytes == fs::file_size(dir / "rank-00001.bin"));
  const std::string bytes = slurp(dir / "rank-00001.bin");
  CHECK(entry.crc32 == io::crc32(0, std::string_view(bytes)));
  CHECK(bytes.rfind("stretto-checkpoint-rank 1\nbyte-order little\npipeline-rank 1\nstage 2 tensors 2\n"
                    "tensor layer2.weight f64 2x3\ntensor layer2.velocity f64 2x3\nstage 5 tensors 2\n"
                    "tensor layer5.weight f64 3\ntensor count i64 1\npayload 128\n", 0) == 0);
  CHECK(!fs::exists(dir / "rank-00001.bin.tmp"));
  io::verify_rank_file(dir / "rank-00001.bin", entry);
  toy_state b{std::vector<double>(6), std::vector<double>(6), std::vector<double>(3), {0}};
  io::read_rank_file(dir / "rank-00001.bin", entry, 1, b.stages());
  CHECK(std::memcmp(a.w0.data(), b.w0.data(), 48) == 0);  // -0.0 and 1e-300 included
  CHECK(b.v0 == a.v0);
  CHECK(b.w1 == a.w1);
  CHECK(b.count == a.count);
}

TEST_CASE("a truncated, corrupted or foreign rank file is refused") {
  const fs::path dir = fresh_folder("refuse");
  toy_state a = filled();
  const fs::path file = dir / "rank-00001.bin";
  const io::file_entry entry = io::write_rank_file(file, 1, a.stages());
  const std::string bytes = slurp(file);
  toy_state b{std::vector<double>(6), std::vector<double>(6), std::vector<double>(3), {0}};

  spill(file, bytes.substr(0, bytes.size() - 5));
  CHECK_THROWS_WITH_AS(io::verify_rank_file(file, entry),
                       (std::string("checkpoint file ") + file.string() + " has " + std::to_string(bytes.size() - 5) +
                        " bytes, the manifest records " + std::to_string(bytes.size()) + " (the file is truncated)")
                           .c_str(),
                       io::checkpoint_error);
  CHECK_THROWS_WITH_AS(io::read_rank_file(file, entry, 1, b.stages()), doctest::Contains("(the file is truncated)"),
                       io::checkpoint_error);

  std::string flipped = bytes;
  flipped[bytes.size() - 20] ^= 0x10;
  spill(file, flipped);
  const std::string corrupted = ", the manifest records " + io::detail::hex32(entry.crc32) + " (the file is corrupted)";
  CHECK_THROWS_WITH_AS(io::verify_rank_file(file, entry), doctest::Contains(corrupted.c_str()),
                       io::checkpoint_error);

  spill(file, bytes);
  std::vector<double> longer(4);
  std::vector<io::stage_tensors> other = b.stages();
  other[1].tensors[0] = io::tensor_ref("layer5.weight", std::span(longer));
  CHECK_THROWS_WITH_AS(io::read_rank_file(file, entry, 1, other),
                       doctest::Contains("tensor layer5.weight f64 3\ntensor count i64 1\npayload 128\nbut this run's "
                                         "pipeline rank 1 expects\n"),
                       io::checkpoint_error);
  CHECK_THROWS_WITH_AS(io::read_rank_file(file, entry, 0, b.stages()), doctest::Contains("pipeline rank 0 expects"),
                       io::checkpoint_error);
  spill(file, "PK\3\4 not a checkpoint\n");
  CHECK_THROWS_WITH_AS(io::read_rank_file(file, entry, 1, b.stages()),
                       doctest::Contains("does not start with 'stretto-checkpoint-rank 1'"), io::checkpoint_error);
}

TEST_CASE("resolve_checkpoint follows latest and refuses a folder without a checkpoint") {
  const fs::path dir = fresh_folder("resolve");
  CHECK_THROWS_WITH_AS(io::resolve_checkpoint(dir), doctest::Contains("holds neither a manifest nor a 'latest' file"),
                       io::checkpoint_error);
  fs::create_directories(dir / io::checkpoint_folder_name(468));
  io::write_text_file(dir / "latest", io::checkpoint_folder_name(468) + "\n");
  CHECK_THROWS_WITH_AS(io::resolve_checkpoint(dir), doctest::Contains("step-000000000468, which holds no manifest"),
                       io::checkpoint_error);
  io::write_text_file(dir / "step-000000000468" / "manifest", "x\n");
  CHECK(io::resolve_checkpoint(dir) == dir / "step-000000000468");
  CHECK(io::resolve_checkpoint(dir / "step-000000000468") == dir / "step-000000000468");
  io::write_text_file(dir / "latest", "../elsewhere\n");
  CHECK_THROWS_WITH_AS(io::resolve_checkpoint(dir), doctest::Contains("does not name a folder"), io::checkpoint_error);
}
