#pragma once
// Progress of a training run on stderr, written by one rank: per epoch the steps done, samples/s,
// and the time left of the epoch and of the run (ETA). On a terminal it is one live line
// rewritten in place ("\r", at most 4 times a second); otherwise (a log file, a pipe, srun's
// output) plain lines: one at each tenth of an epoch and one when the epoch's training ends.
// stdout is left to the results.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>

namespace stretto::examples {

class progress_meter {
 public:
  using clock = std::chrono::steady_clock;

  /// @param enabled false on every rank but one; @param samples_per_step the global batch.
  progress_meter(bool enabled, std::int32_t epochs, std::int64_t steps_per_epoch, std::int64_t samples_per_step)
      : enabled_(enabled), live_(enabled && ::isatty(STDERR_FILENO) != 0), epochs_(epochs),
        steps_(steps_per_epoch), samples_per_step_(samples_per_step) {}

  void begin_epoch(std::int32_t epoch) {
    epoch_ = epoch;
    epoch_start_ = last_shown_ = clock::now();
    next_tenth_ = 1;
  }

  /// After each training step; `done` steps of the epoch are finished.
  void step(std::int64_t done) {
    if (!enabled_) return;
    const auto now = clock::now();
    if (live_) {
      if (now - last_shown_ < std::chrono::milliseconds(250) && done < steps_) return;
      last_shown_ = now;
      show(done, now, "\r", "\033[K");
    } else if (done * 10 >= next_tenth_ * steps_ && done < steps_) {
      while (done * 10 >= next_tenth_ * steps_) ++next_tenth_;
      show(done, now, "", "\n");
    }
  }

  /// When the epoch's training steps are done (before its evaluation).
  void end_epoch() {
    if (!enabled_) return;
    const double seconds = std::chrono::duration<double>(clock::now() - epoch_start_).count();
    total_seconds_ += seconds;
    const double left = total_seconds_ / epoch_ * (epochs_ - epoch_);
    std::fprintf(stderr, "%sprogress: epoch %d/%d trained in %.1f s, %.0f samples/s; training ETA %s\n", live_ ? "\r\033[K" : "",
                 epoch_, epochs_, seconds, static_cast<double>(steps_ * samples_per_step_) / seconds, clock_text(left).c_str());
    std::fflush(stderr);
  }

 private:
  void show(std::int64_t done, clock::time_point now, const char* before, const char* after) const {
    const double seconds = std::chrono::duration<double>(now - epoch_start_).count();
    const double per_step = done > 0 ? seconds / static_cast<double>(done) : 0.0;
    const double epoch_left = per_step * static_cast<double>(steps_ - done);
    // The run's later epochs at this epoch's pace (finished epochs' pace once there are some).
    const double epoch_time = epoch_ > 1 ? total_seconds_ / (epoch_ - 1) : per_step * static_cast<double>(steps_);
    const double run_left = epoch_left + epoch_time * (epochs_ - epoch_);
    std::fprintf(stderr, "%sprogress: epoch %d/%d  step %lld/%lld  %.0f samples/s  epoch ETA %s  training ETA %s%s", before,
                 epoch_, epochs_, static_cast<long long>(done), static_cast<long long>(steps_),
                 per_step > 0 ? static_cast<double>(samples_per_step_) / per_step : 0.0, clock_text(epoch_left).c_str(),
                 clock_text(run_left).c_str(), after);
    std::fflush(stderr);
  }

  struct text {
    char chars[32];
    const char* c_str() const { return chars; }
  };
  // m:ss, or h:mm:ss from an hour on.
  static text clock_text(double seconds) {
    text t{};
    const auto s = static_cast<long long>(seconds + 0.5);
    if (s >= 3600) std::snprintf(t.chars, sizeof t.chars, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(t.chars, sizeof t.chars, "%lld:%02lld", s / 60, s % 60);
    return t;
  }

  bool enabled_, live_;
  std::int32_t epochs_, epoch_{0};
  std::int64_t steps_, samples_per_step_;
  std::int64_t next_tenth_{1};
  double total_seconds_{0.0};  // training time of the finished epochs
  clock::time_point epoch_start_{}, last_shown_{};
};

}  // namespace stretto::examples
