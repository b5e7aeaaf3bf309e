#pragma once
// The Fashion-MNIST demo's checkpoints: --save DIR writes one at the end of every epoch (the
// stages' weights and momentum, the epoch and step counters), --resume DIR continues from the
// newest one in DIR, bit for bit as if the run had not stopped: the shuffling of epoch e depends
// only on --seed and e, so the counters are all the state besides the model. See docs/checkpoints.md.

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include <stretto/core/schedule.hpp>
#include <stretto/detail/text.hpp>
#include <stretto/io/checkpoint.hpp>
#include <stretto/mpi/process_grid.hpp>
#include <stretto/training/checkpoint.hpp>

namespace stretto::examples {

struct checkpoint_flags {
  std::string save;    // --save DIR: a checkpoint at the end of every epoch
  std::string resume;  // --resume DIR: continue from DIR's newest checkpoint
};

inline void add_checkpoint_options(CLI::App& app, checkpoint_flags& f) {
  app.add_option("--save", f.save,
                 "write a checkpoint into DIR at the end of every epoch (each rank's stage weights and momentum, the "
                 "epoch and step; DIR/latest names the newest)");
  app.add_option("--resume", f.resume,
                 "continue from the newest checkpoint in DIR (or a checkpoint folder), with --epochs the total; the "
                 "run must have the checkpoint's ranks, schedule, placement and model");
}

// The demo's training state besides the model: completed epochs, optimizer steps, skipped steps.
struct demo_counters {
  std::int32_t epoch{0};
  std::int64_t step{0};
  std::int64_t skipped{0};
};

// What the demo records and compares: the schedule's name (--schedule) and a fingerprint of the
// model (layer widths, scalar type). The stages' layers (the cut by flops) are compared through
// each stage's tensor names and shapes.
template <class Scalar>
training::checkpoint_options demo_checkpoint_options(const std::string& schedule_name,
                                                     const std::vector<std::int64_t>& widths, double timeout) {
  training::checkpoint_options o;
  o.schedule_name = schedule_name;
  for (std::size_t k = 0; k < widths.size(); ++k) o.model += stretto::detail::cat(k == 0 ? "" : "-", widths[k]);
  o.model += std::is_same_v<Scalar, double> ? " f64" : " f32";
  o.collectives = {std::chrono::duration<double>(timeout), mpi::timeout_action::abort};
  return o;
}

// A model whose weights live in device memory has no `checkpoint_state` (it hands out host views).
inline constexpr const char* unsupported_checkpoint =
    "--save and --resume need the model's weights in host-accessible memory; this build keeps them on the device";

// --resume: reads the newest checkpoint into `model`; returns its counters. Every rank throws the
// same io::checkpoint_error when it does not fit (the caller reports it once).
template <class Model>
demo_counters resume_demo(const checkpoint_flags& f, const mpi::process_grid& grid, const schedule& plan, Model& model,
                          const training::checkpoint_options& o) {
  if constexpr (!training::checkpointable_model<Model>) {
    throw io::checkpoint_error(unsupported_checkpoint);
  } else {
    const io::training_counters c = training::resume_checkpoint(f.resume, grid, plan, model, o);
    demo_counters out{static_cast<std::int32_t>(c.epoch), c.step, 0};
    if (const auto it = c.values.find("skipped-steps"); it != c.values.end()) out.skipped = std::stoll(it->second);
    if (grid.world_rank() == 0) {
      std::printf("checkpoint: resumed from %s after epoch %d (%lld steps)\n", f.resume.c_str(), out.epoch,
                  static_cast<long long>(out.step));
      std::fflush(stdout);
    }
    return out;
  }
}

// --save: the checkpoint of the end of epoch `c.epoch`.
template <class Model>
void save_demo(const checkpoint_flags& f, const mpi::process_grid& grid, const schedule& plan, Model& model,
               const demo_counters& c, const training::checkpoint_options& o) {
  if constexpr (!training::checkpointable_model<Model>) {
    throw io::checkpoint_error(unsupported_checkpoint);
  } else {
    const auto folder = training::save_checkpoint(f.save, grid, plan, model,
                                                  {c.epoch, c.step, {{"skipped-steps", std::to_string(c.skipped)}}}, o);
    if (grid.world_rank() == 0) {
      std::printf("checkpoint: epoch %d saved to %s\n", c.epoch, folder.string().c_str());
      std::fflush(stdout);
    }
  }
}

}  // namespace stretto::examples
