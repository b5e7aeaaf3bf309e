// Checkpoints of the step API (stretto/training/checkpoint.hpp, pipeline::save and resume) at
// every pipeline size pp dividing the number of ranks W (dp = W / pp copies): 4 steps straight
// equal 2 steps + save + resume in a new pipeline + 2 steps bit for bit (every loss, every weight
// and momentum, and the files of a checkpoint saved at the end, byte for byte), for 1F1B, ZB-V
// (two chunks, V-shaped) and Chimera (two replicas). A checkpoint is refused, on every rank and
// with a message naming what differs, when a rank file is truncated or has a flipped byte, or
// the run has another p, schedule, placement or model shape; a refused resume leaves the model
// as it was. A save that dies half-way leaves `latest` on the previous checkpoint; keep_last
// prunes old ones.
#include <doctest/doctest.h>

#include <mpi.h>

#include <Kokkos_Core.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include <stretto/stretto.hpp>
#include <stretto/training/pipeline.hpp>

#include "fashion_mnist/mlp_model.hpp"
#include "common/mpi_world.hpp"

namespace {

namespace fs = std::filesystem;
using model_type = stretto::examples::mlp_model<double>;
using stretto::training::pipeline;

const std::vector<std::int64_t> widths{12, 10, 9, 8, 8, 7, 6, 6, 5};  // 8 layers: ZB-V on 4 ranks has 8 stages
constexpr std::int64_t batch = 42;
constexpr double lr = 0.1, momentum = 0.9;


// A folder every rank names the same (world rank 0's process id), empty.
fs::path shared_folder(const std::string& name) {
  long long pid = static_cast<long long>(::getpid());
  MPI_Bcast(&pid, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  const fs::path p = fs::temp_directory_path() / ("stretto-mpi-checkpoint-" + std::to_string(pid) + "-" + name);
  if (world_rank() == 0) {
    fs::remove_all(p);
    fs::create_directories(p);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return p;
}

stretto::training::pipeline_options test_options() {
  stretto::training::pipeline_options o;
  o.grid.timeout = o.communicator.timeout = o.reduction.timeout = std::chrono::duration<double>(60.0);
  o.grid.on_timeout = o.communicator.on_timeout = o.reduction.on_timeout = stretto::mpi::timeout_action::throw_error;
  return o;
}
stretto::training::checkpoint_options checkpoint_options(const std::string& schedule_name,
                                                         const std::vector<std::int64_t>& w = widths) {
  stretto::training::checkpoint_options o;
  o.schedule_name = schedule_name;
  for (auto x : w) o.model += std::to_string(x) + " ";
  o.model += "f64";
  o.collectives = {std::chrono::duration<double>(60.0), stretto::mpi::timeout_action::throw_error};
  return o;
}

struct run_setup {
  std::string name;
  stretto::schedule plan;
  std::vector<std::int64_t> widths;
};

pipeline<model_type> make_pipeline(const run_setup& setup) {
  return pipeline<model_type>(
      MPI_COMM_WORLD, setup.plan,
      [&](std::vector<std::int32_t> local) { return model_type(setup.widths, setup.plan.num_stages(), local, 7); },
      test_options());
}

// Steps [first, last) on batches 900 + k; the loss of each, as the pipeline reports it.
std::vector<double> train(pipeline<model_type>& pipe, const std::vector<model_type::batch_data>& data, int first, int last) {
  std::vector<double> losses;
  model_type& model = pipe.model();
  for (int k = first; k < last; ++k)
    losses.push_back(pipe.step(data[static_cast<std::size_t>(k)], [&](std::int32_t stage, std::span<double>) {
                           model.apply_gradients(stage, lr, momentum);
                         }).loss);
  return losses;
}

// Every tensor of the local stages, bytes concatenated (weights and momentum).
std::vector<std::byte> state_bytes(pipeline<model_type>& pipe) {
  std::vector<std::byte> out;
  for (const std::int32_t s : pipe.plan().stages_on_rank(pipe.grid().pipeline_rank()))
    for (const auto& t : pipe.model().checkpoint_state(s)) out.insert(out.end(), t.bytes().begin(), t.bytes().end());
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Resume that must fail on every rank with a message matching `pattern`; the model is unchanged.
void check_refused(pipeline<model_type>& pipe, const fs::path& dir, const stretto::training::checkpoint_options& o,
                   const std::string& pattern) {
  CAPTURE(pattern);
  const std::vector<std::byte> before = state_bytes(pipe);
  std::string message;
  try {
    pipe.resume(dir, o);
  } catch (const stretto::io::checkpoint_error& e) {
    message = e.what();
  }
  CAPTURE(message);
  CHECK(std::regex_search(message, std::regex(pattern)));
  CHECK(state_bytes(pipe) == before);
}

}  // namespace

TEST_CASE("mpi.checkpoint.resume_equals_straight_run_bit_for_bit" * doctest::timeout(280)) {
  const int w = world_size();
  model_type sample(widths, 1, {0}, 7);
  std::vector<model_type::batch_data> data;
  for (int k = 0; k < 4; ++k) data.push_back(sample.random_batch(batch, 900 + static_cast<std::uint64_t>(k)));
  int combos = 0;
  for (const std::int32_t pp : {1, 2, 4}) {
    if (w % pp != 0) continue;
    for (const std::string name : {"1f1b", "zb-v", "chimera"}) {
      const auto& policy = stretto::policies::find_policy(name);
      const stretto::pipeline_shape shape{pp, 2 * pp, policy.default_chunks};
      if (!policy.check(shape).empty()) continue;
      CAPTURE(name);
      CAPTURE(pp);
      const run_setup setup{name, stretto::policies::make_schedule(name, shape), widths};
      const fs::path straight_dir = shared_folder("straight"), resumed_dir = shared_folder("resumed");
      const auto o = checkpoint_options(name);

      auto straight = make_pipeline(setup);
      const std::vector<double> straight_losses = train(straight, data, 0, 4);
      straight.save(straight_dir, {2, 4, {{"note", "straight"}}}, o);

      std::vector<double> resumed_losses;
      {
        auto first = make_pipeline(setup);
        resumed_losses = train(first, data, 0, 2);
        const fs::path folder = first.save(resumed_dir, {1, 2, {{"note", "half"}}}, o);
        CHECK(folder == resumed_dir / "step-000000000002");
      }
      auto second = make_pipeline(setup);
      const stretto::io::training_counters counters = second.resume(resumed_dir, o);
      CHECK(counters == stretto::io::training_counters{1, 2, {{"note", "half"}}});
      for (double l : train(second, data, 2, 4)) resumed_losses.push_back(l);
      second.save(resumed_dir, {2, 4, {{"note", "straight"}}}, o);

      // Bit for bit: the losses, this rank's weights and momentum, and the checkpoint files.
      REQUIRE(resumed_losses.size() == straight_losses.size());
      for (std::size_t k = 0; k < straight_losses.size(); ++k)
        CHECK(std::memcmp(&resumed_losses[k], &straight_losses[k], sizeof(double)) == 0);
      CHECK(state_bytes(second) == state_bytes(straight));
      if (world_rank() == 0) {
        const fs::path a = straight_dir / "step-000000000004", b = resumed_dir / "step-000000000004";
        CHECK(slurp(a / "manifest") == slurp(b / "manifest"));
        for (std::int32_t r = 0; r < pp; ++r) {
          const std::string file = stretto::io::rank_file_name(r);
          CHECK(slurp(a / file).size() > 0);
          CHECK(slurp(a / file) == slurp(b / file));
        }
        CHECK(slurp(resumed_dir / "latest") == "step-000000000004\n");
        CHECK(fs::exists(resumed_dir / "step-000000000002"));  // keep_last 0 keeps all
      }
      ++combos;
    }
  }
  CHECK(combos >= 2);
}

TEST_CASE("mpi.checkpoint.refuses_what_does_not_fit" * doctest::timeout(280)) {
  const int w = world_size();
  const std::int32_t pp = w >= 2 ? 2 : 1;
  const run_setup setup{"1f1b", stretto::policies::make_schedule("1f1b", {pp, 4, 1}), widths};
  const fs::path dir = shared_folder("refuse");
  const auto o = checkpoint_options("1f1b");
  model_type sample(widths, 1, {0}, 7);
  const std::vector<model_type::batch_data> data{sample.random_batch(batch, 900)};
  {
    auto saved = make_pipeline(setup);
    train(saved, data, 0, 1);
    saved.save(dir, {1, 1, {}}, o);
  }
  auto fresh = make_pipeline(setup);
  const fs::path folder = dir / "step-000000000001", file = folder / "rank-00000.bin";
  const std::string good = world_rank() == 0 ? slurp(file) : std::string();
  const auto damage = [&](const std::string& bytes) {
    if (world_rank() == 0) std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
    MPI_Barrier(MPI_COMM_WORLD);
  };

  // Truncated, then one flipped bit: found by the size and the CRC-32 before any tensor is read.
  damage(good.substr(0, good.size() / 2));
  const std::string rank0 = w > 1 ? "^rank 0: " : "^";
  check_refused(fresh, dir, o,
                rank0 + "checkpoint file .*step-000000000001/rank-00000\\.bin has [0-9]+ bytes, the manifest records [0-9]+ "
                        "\\(the file is truncated\\)$");
  std::string flipped = good;
  if (!flipped.empty()) flipped[flipped.size() - 3] ^= 0x01;
  damage(flipped);
  check_refused(fresh, dir, o,
                rank0 + "checkpoint file .*rank-00000\\.bin has CRC-32 [0-9a-f]{8}, the manifest records [0-9a-f]{8} "
                        "\\(the file is corrupted\\)$");
  damage(good);
  CHECK_NOTHROW(fresh.resume(dir, o));

  // Another schedule of the same shape and placement.
  {
    const run_setup other{"gpipe", stretto::policies::make_schedule("gpipe", {pp, 4, 1}), widths};
    auto p = make_pipeline(other);
    check_refused(p, dir, checkpoint_options("gpipe"),
                  "^checkpoint .*step-000000000001/manifest does not fit this run: checkpoint has schedule '1f1b', this "
                  "run has 'gpipe'$");
  }
  // Another placement (looped, two chunks per rank).
  {
    const run_setup other{"interleaved-1f1b", stretto::policies::make_schedule("interleaved-1f1b", {pp, 4, 2}), widths};
    auto p = make_pipeline(other);
    check_refused(p, dir, checkpoint_options("interleaved-1f1b"),
                  "does not fit this run: checkpoint has v = 1 chunks per rank, this run has v = 2; checkpoint has "
                  "schedule '1f1b', this run has 'interleaved-1f1b'; checkpoint has placement linear, this run has looped; "
                  "checkpoint places stages 0 on pipeline rank 0, this run places 0,");
  }
  // Another model shape: layer 0 is 11 wide instead of 10 (fingerprint and tensor shapes).
  {
    std::vector<std::int64_t> wider = widths;
    wider[1] = 11;
    const run_setup other{"1f1b", setup.plan, wider};
    auto p = make_pipeline(other);
    check_refused(p, dir, checkpoint_options("1f1b", wider),
                  "does not fit this run: checkpoint has model '12 10 9 8 8 7 6 6 5 f64', this run has '12 11 9 8 8 7 6 6 5 f64'$");
    auto same_name = checkpoint_options("1f1b");  // the fingerprint hides the change: the tensors show it
    check_refused(p, dir, same_name,
                  rank0 + "checkpoint .*manifest does not fit this run's model: stage 0: tensor layer0\\.weight is f64 "
                          "10x12 in the checkpoint, f64 11x12 in this run's model; stage 0: tensor layer0\\.bias is f64 10 "
                          "in the checkpoint, f64 11 in this run's model");
  }
  // Another p: a pipeline of one rank (with w copies) against the checkpoint of pp ranks.
  if (pp == 2) {
    const run_setup other{"1f1b", stretto::policies::make_schedule("1f1b", {1, 4, 1}), widths};
    auto p = make_pipeline(other);
    check_refused(p, dir, o,
                  "does not fit this run: checkpoint has p = 2 pipeline ranks, this run has p = 1; .*checkpoint has "
                  "data-parallel size " + std::to_string(w / 2) + ", this run has " + std::to_string(w));
  }
  check_refused(fresh, dir / "nothing-here", o, "^checkpoint directory .*nothing-here holds neither a manifest nor a "
                                                "'latest' file");
}

TEST_CASE("mpi.checkpoint.interrupted_save_keeps_the_last_good_one_and_keep_last_prunes" * doctest::timeout(280)) {
  const int w = world_size();
  const std::int32_t pp = w >= 2 ? 2 : 1;
  const run_setup setup{"1f1b", stretto::policies::make_schedule("1f1b", {pp, 4, 1}), widths};
  const fs::path dir = shared_folder("interrupted");
  auto o = checkpoint_options("1f1b");
  model_type sample(widths, 1, {0}, 7);
  std::vector<model_type::batch_data> data;
  for (int k = 0; k < 3; ++k) data.push_back(sample.random_batch(batch, 900 + static_cast<std::uint64_t>(k)));
  auto pipe = make_pipeline(setup);
  train(pipe, data, 0, 1);
  pipe.save(dir, {0, 1, {}}, o);
  const std::vector<std::byte> at_one = state_bytes(pipe);
  train(pipe, data, 1, 2);
  // A save killed after writing some files: its .partial folder holds a rank file, latest is untouched.
  if (world_rank() == 0) {
    fs::create_directories(dir / "step-000000000002.partial");
    std::ofstream(dir / "step-000000000002.partial" / "rank-00000.bin") << "half";
  }
  MPI_Barrier(MPI_COMM_WORLD);
  auto other = make_pipeline(setup);
  CHECK(other.resume(dir, o).step == 1);
  CHECK(state_bytes(other) == at_one);
  // The next saves clear the partial folder; keep_last 1 leaves the newest only.
  o.keep_last = 1;
  pipe.save(dir, {0, 2, {}}, o);
  train(pipe, data, 2, 3);
  pipe.save(dir, {0, 3, {}}, o);
  if (world_rank() == 0) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"latest", "step-000000000003"});
  }
}
