#pragma once
// The Fashion-MNIST demo's reliability options: what to do with a non-finite loss or gradient
// (--on-nonfinite), the numerical checks of each step, and hidden fault-injection hooks for the
// fault tests (test/fault): a NaN in one stage's gradient, a rank that kills or stops itself at
// start-up or mid-step, random stalls. See docs/reliability.md.

#include <mpi.h>

#include <CLI/CLI.hpp>

#include <charconv>
#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <stretto/detail/text.hpp>
#include <stretto/kokkos/executor.hpp>
#include <stretto/mpi/collectives.hpp>

namespace stretto::examples {

// The shortest text that reads back as `v` (distinct values give distinct texts).
inline std::string number_text(double v) {
  char out[32];
  const auto end = std::to_chars(out, out + sizeof out, v).ptr;
  return std::string(out, end);
}

struct reliability_options {
  std::string on_nonfinite = "abort";  // abort | skip
  // Fault injection (hidden options, for the fault tests):
  std::string nan_gradient;  // "STAGE@STEP": a NaN in STAGE's gradient at global step STEP (0-based)
  std::string stop;          // "RANK@STEP" or "RANK@start": that rank stops itself (SIGSTOP)
  std::string kill;          // "RANK@STEP": that rank kills itself (SIGKILL)
  double stall_ms = 0.0;     // > 0: random stalls of 0..stall_ms ms (see stall_injector)
  std::uint64_t stall_seed = 1;
  bool exact_loss = false;   // print each epoch's loss sum in hexadecimal (bit-exact comparisons)
  bool skip_agreement = false;  // no start-up agreement: lets ranks that disagree meet a later check
};

inline void add_reliability_options(CLI::App& app, reliability_options& o) {
  app.add_option("--on-nonfinite", o.on_nonfinite,
                 "a non-finite loss or gradient: abort (the job, naming rank, stage and microbatch) or skip "
                 "(every rank skips that optimizer step)")
      ->check(CLI::IsMember({"abort", "skip"}))
      ->capture_default_str();
  // Hidden (empty group): test hooks.
  app.add_option("--fault-nan-gradient", o.nan_gradient)->group("");
  app.add_option("--fault-stop", o.stop)->group("");
  app.add_option("--fault-kill", o.kill)->group("");
  app.add_option("--fault-stall-ms", o.stall_ms)->group("");
  app.add_option("--fault-stall-seed", o.stall_seed)->group("");
  app.add_flag("--exact-loss", o.exact_loss)->group("");
  app.add_flag("--fault-skip-agreement", o.skip_agreement)->group("");
}

// "A@B" → {A, B}; B may be "start" (−1). Throws std::invalid_argument naming the option.
struct at_spec {
  std::int64_t who{-1};
  std::int64_t when{-2};  // -1: start-up
};
inline std::optional<at_spec> parse_at(const std::string& text, const char* option) {
  if (text.empty()) return std::nullopt;
  const auto at = text.find('@');
  try {
    if (at == std::string::npos) throw std::invalid_argument(text);
    at_spec s;
    s.who = std::stoll(text.substr(0, at));
    const std::string when = text.substr(at + 1);
    s.when = when == "start" ? -1 : std::stoll(when);
    return s;
  } catch (const std::exception&) {
    throw std::invalid_argument(stretto::detail::cat(option, " takes WHO@STEP (or WHO@start), got '", text, "'"));
  }
}

// Checks the numeric options the demo takes: a NaN compares false with every bound, so each is
// tested for being finite first. Returns an error text, empty if all are fine.
inline std::string check_numbers(double timeout, double lr, double momentum, double memory_limit, double stall_ms) {
  if (!std::isfinite(timeout) || timeout <= 0)
    return stretto::detail::cat("--timeout must be a finite number of seconds above 0 (got ", number_text(timeout), "); e.g. 300");
  if (!std::isfinite(lr) || lr <= 0)
    return stretto::detail::cat("--lr must be a finite number above 0 (got ", number_text(lr), "); e.g. 0.05");
  if (!std::isfinite(momentum) || momentum < 0 || momentum >= 1)
    return stretto::detail::cat("--momentum must be a finite number in [0, 1) (got ", number_text(momentum), "); e.g. 0.9");
  if (!std::isfinite(memory_limit) || memory_limit < 0)
    return stretto::detail::cat("--memory-limit must be a finite number >= 0 (got ", number_text(memory_limit), ")");
  if (!std::isfinite(stall_ms) || stall_ms < 0 || stall_ms > 10000)
    return stretto::detail::cat("--fault-stall-ms must be in [0, 10000] (got ", number_text(stall_ms), ")");
  return {};
}

// Kills or stops this rank as --fault-kill / --fault-stop ask, at start-up (step −1). Prints the
// wall-clock time of the fault first (t = seconds since the epoch), from which the fault tests
// measure the time to failure.
inline void maybe_fail_at(const reliability_options& o, int rank, std::int64_t step) {
  const auto announce = [&](const char* what) {
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::fprintf(stderr, "fault injection: rank %d %s itself at %s (t = %.3f)\n", rank, what,
                 step < 0 ? "start-up" : stretto::detail::cat("step ", step).c_str(), now);
    std::fflush(stderr);
  };
  const auto kill = parse_at(o.kill, "--fault-kill");
  if (kill && kill->who == rank && kill->when == step) {
    announce("kills");
    std::raise(SIGKILL);
  }
  const auto stop = parse_at(o.stop, "--fault-stop");
  if (stop && stop->who == rank && stop->when == step) {
    announce("stops");
    std::raise(SIGSTOP);
  }
}

// An executor observer that injects faults inside a step: a stop (SIGSTOP) or kill in the middle
// of the op list at the step --fault-stop / --fault-kill name, and, with --fault-stall-ms, random
// stalls: at each step each rank, with probability 1/8, sleeps 0..stall_ms ms before one random op
// (seeded by --fault-stall-seed, the rank and the step). Stalls change timing only: results must
// be bit-identical.
class fault_observer final : public stretto::kokkos::observer {
 public:
  fault_observer(const reliability_options& o, int rank) : options_(o), rank_(rank) {}
  void set_step(std::int64_t step) { step_ = step; }
  void on_step_begin(std::span<const stretto::op> ops, clock::time_point) override {
    ops_ = ops.size();
    stall_at_ = ops_;
    stall_ = std::chrono::microseconds(0);
    if (options_.stall_ms > 0 && ops_ > 0) {
      std::mt19937_64 engine(options_.stall_seed * 1000003ULL + static_cast<std::uint64_t>(rank_) * 7919ULL +
                             static_cast<std::uint64_t>(step_));
      if (std::uniform_int_distribution<int>(0, 7)(engine) == 0) {
        stall_at_ = std::uniform_int_distribution<std::size_t>(0, ops_ - 1)(engine);
        stall_ = std::chrono::microseconds(
            static_cast<std::int64_t>(std::uniform_real_distribution<double>(0.0, options_.stall_ms * 1e3)(engine)));
      }
    }
  }
  void on_wait_begin(std::size_t index, const stretto::op&, clock::time_point) override {
    if (index == stall_at_) std::this_thread::sleep_for(stall_);
    if (index == ops_ / 2) maybe_fail_at(options_, rank_, step_);
  }

 private:
  const reliability_options& options_;
  int rank_;
  std::int64_t step_{0};
  std::size_t ops_{0}, stall_at_{0};
  std::chrono::microseconds stall_{0};
};

// A non-finite value found in a step: where, and how close to its origin. A NaN loss makes every
// gradient of that microbatch NaN, and a NaN gradient of stage s makes those of the stages before
// it NaN, so several ranks find one in the same step; the one of highest `priority` (the loss,
// else the highest stage) is the origin, and only it is reported.
struct nonfinite_fault {
  int priority{0};  // 0: none
  std::string text;
};

// The numerical check of one step, before the optimizer step (and before the replicas' gradient
// sum, so that the stage where a NaN appears is the one named): the loss of every microbatch on
// the last stage, the gradients of every local stage.
template <class Model>
nonfinite_fault find_nonfinite(const Model& model, std::span<const std::int32_t> local_stages, std::int32_t last_stage) {
  for (const std::int32_t s : local_stages)
    if (s == last_stage) {
      const std::vector<double>& losses = model.microbatch_losses();
      for (std::size_t mb = 0; mb < losses.size(); ++mb)
        if (!std::isfinite(losses[mb]))
          return {2 * last_stage + 3,
                  stretto::detail::cat("non-finite loss (", number_text(losses[mb]), ") of microbatch ", mb, " on stage ", s)};
    }
  nonfinite_fault found;
  for (const std::int32_t s : local_stages)
    if (s + 1 > found.priority && !model.gradients_finite(s))
      found = {s + 1, stretto::detail::cat("non-finite gradient of stage ", s)};
  return found;
}

// The step's decision, after find_nonfinite: one bounded all-reduce (MAXLOC of the priority)
// tells every rank whether any rank found a non-finite value, and which rank found its origin.
// With --on-nonfinite abort that rank throws (the demo's run_or_abort reports it and ends the
// job) while the others wait for the abort; with skip every rank skips the optimizer step
// (post-validation in the manner of the Zero Bubble paper, §5), and that rank says why.
// Returns whether to apply the step.
inline bool agree_on_step(const nonfinite_fault& fault, const reliability_options& o, int rank, std::int32_t epoch,
                          std::int64_t step, const stretto::mpi::collective_options& bounded) {
  int mine[2] = {fault.priority, rank}, worst[2] = {0, 0};
  stretto::mpi::allreduce(mine, worst, 1, MPI_2INT, MPI_MAXLOC, MPI_COMM_WORLD, bounded,
                          "non-finite check: does any rank find a NaN or inf in this step");
  if (worst[0] == 0) return true;
  const std::string where = stretto::detail::cat("step ", step + 1, " of epoch ", epoch);
  if (o.on_nonfinite == "abort") {
    if (worst[1] == rank)
      throw std::runtime_error(stretto::detail::cat(fault.text, " in ", where,
                                                    " (--on-nonfinite skip skips such steps; a smaller --lr may help)"));
    std::this_thread::sleep_for(std::chrono::seconds(10));  // rank worst[1]'s abort ends this process first
    throw std::runtime_error(stretto::detail::cat("rank ", worst[1], " found a non-finite value in ", where));
  }
  if (worst[1] == rank) {
    std::fprintf(stderr, "fashion_mnist: rank %d: %s in %s; every rank skips this optimizer step\n", rank,
                 fault.text.c_str(), where.c_str());
    std::fflush(stderr);
  }
  return false;
}

}  // namespace stretto::examples
