#pragma once
// The Fashion-MNIST demo's reliability options: what to do with a non-finite loss or gradient
// (--on-nonfinite; the check itself is the step API's, stretto::training::pipeline::step), and
// hidden fault-injection hooks for the fault tests (test/fault): a NaN in one stage's gradient, a rank that kills or stops itself at
// start-up or mid-step, random stalls. See docs/reliability.md.

#include <mpi.h>

#include <CLI/CLI.hpp>

#include <charconv>
#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
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
// of the op list at the step --fault-stop / --fault-kill name; with --fault-nan-gradient
// STAGE@STEP, a NaN in STAGE's gradient (`inject_nan(STAGE)`, on the ranks that hold it) before
// the stage's first W or BW of that step, so that it arises in the backward and meets the gradient
// reduction and the step's non-finite check as a real one would; and, with --fault-stall-ms,
// random stalls: at each step each rank, with probability 1/8, sleeps 0..stall_ms ms before one
// random op (seeded by --fault-stall-seed, the rank and the step). Stalls change timing only:
// results must be bit-identical.
class fault_observer final : public stretto::kokkos::observer {
 public:
  fault_observer(const reliability_options& o, int rank, std::function<void(std::int32_t)> inject_nan = {})
      : options_(o), rank_(rank), nan_at_(parse_at(o.nan_gradient, "--fault-nan-gradient")),
        inject_nan_(std::move(inject_nan)) {}
  /// The global step (0-based) that the next executor step is.
  void set_step(std::int64_t step) { step_ = step; }
  void on_step_begin(std::span<const stretto::op> ops, clock::time_point) override {
    nan_pending_ = nan_at_ && inject_nan_ && nan_at_->when == step_;
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
  void on_compute_begin(std::size_t, const stretto::op& o, clock::time_point) override {
    if (nan_pending_ && o.stage == nan_at_->who &&
        (o.kind == stretto::op_kind::backward_weight || o.kind == stretto::op_kind::backward)) {
      inject_nan_(o.stage);
      nan_pending_ = false;
    }
  }

 private:
  const reliability_options& options_;
  int rank_;
  std::optional<at_spec> nan_at_;
  std::function<void(std::int32_t)> inject_nan_;
  bool nan_pending_{false};
  std::int64_t step_{0};
  std::size_t ops_{0}, stall_at_{0};
  std::chrono::microseconds stall_{0};
};

}  // namespace stretto::examples
