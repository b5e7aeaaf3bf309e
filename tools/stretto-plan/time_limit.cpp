#include "time_limit.hpp"
#include "format.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <utility>

#include <unistd.h>

#include <stretto/core/errors.hpp>

namespace stretto_plan {

double parse_time_limit(const std::string& text) {
  double value = 0.0;
  const char* begin = text.data() + (text.size() > 1 && text.front() == '+' ? 1 : 0);
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(begin, end, value);
  if (error != std::errc{} || stop != end || !std::isfinite(value) || !(value > 0.0))
    throw stretto::argument_error("--time-limit must be a finite number of seconds > 0, e.g. 60 (got '" + text + "')");
  return value;
}

namespace {

/**
Work model per schedule, in seconds, from p ranks, m microbatches and v chunks per rank
(pairs = p·v·m (stage, microbatch) pairs; every pair is 2 or 3 ops).

Calibration: `stretto-plan simulate --schedule NAME --ranks P --microbatches M --t-forward 1
--t-backward 1 --t-weight 1 --t-comm 0 --format json > /dev/null`, wall time (process start
included, about 0.3 s) on the 2-core build machine shared with other builds, December 2026:

- Policies generated from the shape alone (generation, validation, simulation and report are
  O(N) for N ops, plus O(p) vectors per rank): gpipe 0.55 s at p = 4, m = 25000 and 9.5 s at
  p = 10^6, m = 1; zb-h1 15.4 s at p = 10^6, m = 1; interleaved-1f1b 13.8 s at p = 10^6, m = 1,
  v = 2; chimera 12.5 s at p = 1000, m = 4000. Model: 4.5 µs per pair + 10 µs per rank.
- zb-v (the V planner, O(N) passes with more work per op): 1.1 s at p = 4, m = 25000; 2.6 s at
  p = 1000, m = 100; 4.2 s at p = 10^5, m = 1; 10.5 s at p = 2·10^5, m = 1; 12.8 s at p = 2,
  m = 250000; > 200 s at p = 5·10^6, m = 1. Model: 13 µs per pair + 25 µs per rank.
- v-half, v-min (the memory squeeze is O(p³·m)): 3.8 s at p = 4, m = 25000; 1.4 s at p = 64,
  m = 100; 18.5 s at p = 100, m = 1000. Model: 18 µs per pair + 18 ns per p³·m.
- zb-1p, zb-2p, auto (8 heuristic runs of O(p·m) each, then `refine_weights`, whose trials
  recompute a rank's peak over its 3m ops and whose critical-path scan after each move is O(N)):
  4.1 s at p = 1024, m = 100; 9.9 s (zb-2p 14.7 s) at p = 1024, m = 300; 315 s and 4 GB at
  p = 1024, m = 9765; 1.1 s at p = 4, m = 2500; 4.9 s at p = 4, m = 10000; 19 s at p = 4,
  m = 25000; 3.9 s at p = 10^4, m = 1; 33 s at p = 3·10^4, m = 1. Model: 40 µs per pair
  + 1.3 ns per min(N, 2·10^5)·3m (peaks of later moves, at most 2·10^5 trials) + 13 ns per N·p/m²
  (moves times the critical-path scan, which dominates for m ≪ p), N = 3pm.
- auto-v (candidates, then a local search bounded by 10^6 or 8·10^6 ops of work): 0.85 s at
  p = 8, m = 24 and at p = 32, m = 96; 1.3 s at p = 100, m = 100; 2.8 s at p = 1000, m = 10;
  9.6 s at p = 100, m = 1000; > 40 s at p = 10^4, m = 1. Model: 50 µs per pair + 10 µs per
  pair·p/m², and 0.5 s for the full search of shapes of at most 4096 ops.

The estimates are within about a factor of 2 of these measurements; the deadline and the
watchdog catch the rest.
*/
double model_seconds(std::string_view schedule, double p, double m, double v) {
  const double pairs = p * m * v;
  if (schedule == "zb-1p" || schedule == "zb-2p" || schedule == "auto") {
    const double ops = 3.0 * pairs;
    return 40e-6 * pairs + 1.3e-9 * std::min(ops, 2e5) * 3.0 * m + 13e-9 * ops * p / (m * m);
  }
  if (schedule == "auto-v") return 50e-6 * pairs + 10e-6 * pairs * p / (m * m) + (3.0 * pairs <= 4096 ? 0.5 : 0.0);
  if (schedule == "zb-v") return 13e-6 * pairs + 25e-6 * p;
  if (schedule == "v-half" || schedule == "v-min") return 18e-6 * pairs + 18e-9 * p * p * p * m;
  return 4.5e-6 * pairs + 10e-6 * p;
}

double total_seconds(const std::string_view* schedules, const stretto::pipeline_shape* shapes, std::size_t count,
                     double p, double m) {
  double total = 0.0;
  for (std::size_t k = 0; k < count; ++k) total += model_seconds(schedules[k], p, m, shapes[k].num_chunks);
  return total;
}

/** @brief The largest n in [1, hi) with fits(n), assuming fits is monotone; 0 when none. */
template <class Fits>
std::int32_t largest_fitting(std::int32_t hi, const Fits& fits) {
  if (hi <= 1 || !fits(1)) return 0;
  std::int32_t lo = 1;  // fits(lo)
  while (hi - lo > 1) {
    const std::int32_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

std::string seconds_text(double s) { return format_number(s < 10.0 ? std::round(s * 10.0) / 10.0 : std::round(s)); }

}  // namespace

double estimate_seconds(std::string_view schedule, const stretto::pipeline_shape& shape) {
  return model_seconds(schedule, shape.num_ranks, shape.num_microbatches, shape.num_chunks);
}

void check_planning_time(std::string_view what, const std::string_view* schedules,
                         const stretto::pipeline_shape* shapes, std::size_t count, double limit) {
  if (count == 0) return;
  // For the tests of the in-planner deadline only: without the up-front estimate, a shape far
  // beyond the limit reaches the deadline on any machine, however fast.
  if (const char* skip = std::getenv("STRETTO_PLAN_NO_ESTIMATE"); skip != nullptr && std::string_view(skip) == "1")
    return;
  const double p = shapes[0].num_ranks, m = shapes[0].num_microbatches;
  const double estimate = total_seconds(schedules, shapes, count, p, m);
  if (!(estimate > limit)) return;
  const auto fits_m = [&](std::int32_t mm) { return total_seconds(schedules, shapes, count, p, mm) <= limit; };
  const auto fits_p = [&](std::int32_t pp) { return total_seconds(schedules, shapes, count, pp, m) <= limit; };
  std::string fewer;
  if (const std::int32_t most_m = largest_fitting(shapes[0].num_microbatches, fits_m); most_m > 0)
    fewer = "at most " + std::to_string(most_m) + (most_m == 1 ? " microbatch fits" : " microbatches fit");
  else if (const std::int32_t most_p = largest_fitting(shapes[0].num_ranks, fits_p); most_p > 0)
    fewer = "at most " + std::to_string(most_p) + " ranks fit at " + std::to_string(shapes[0].num_microbatches) +
            (shapes[0].num_microbatches == 1 ? " microbatch" : " microbatches");
  // A limit with room for the model's error (a factor of 2, rounded up to a readable number).
  const double room = estimate < 5.0 ? std::ceil(2.0 * estimate) : std::ceil(2.0 * estimate / 10.0) * 10.0;
  throw stretto::argument_error(std::string(what) + " at " + std::to_string(shapes[0].num_ranks) +
                                (shapes[0].num_ranks == 1 ? " rank, " : " ranks, ") +
                                std::to_string(shapes[0].num_microbatches) +
                                (shapes[0].num_microbatches == 1 ? " microbatch" : " microbatches") + " would take about " +
                                seconds_text(estimate) + " s to plan and simulate (estimated), over --time-limit " +
                                format_number(limit) + " s; " + (fewer.empty() ? "" : fewer + " within the limit, or ") +
                                "give --time-limit " + format_number(room));
}

std::string time_limit_message(std::string_view what, double limit) {
  return std::string(what) + " ran past --time-limit " + format_number(limit) +
         " s and was stopped; give a larger --time-limit or fewer ranks or microbatches";
}

progress_reporter::progress_reporter(std::string what, double estimate, double limit)
    : what_(std::move(what)), estimate_(estimate), limit_(limit), terminal_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()), thread_([this] { watch(); }) {}

progress_reporter::~progress_reporter() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
  }
  wake_.notify_all();
  thread_.join();
  if (live_line_) std::cerr << "\r\033[K" << std::flush;
}

void progress_reporter::watch() {
  using seconds = std::chrono::duration<double>;
  std::unique_lock<std::mutex> lock(mutex_);
  double next_line = 1.0;  // seconds after the start
  const double stop_at = limit_ + 1.0;
  for (;;) {
    const double wake_at = std::min(next_line, stop_at);
    if (wake_.wait_until(lock, start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(seconds(wake_at)),
                         [this] { return done_; }))
      return;
    const double elapsed = seconds(std::chrono::steady_clock::now() - start_).count();
    if (elapsed >= stop_at) {
      if (live_line_) std::cerr << "\r\033[K";
      std::cerr << "stretto-plan: error: " << time_limit_message(what_, limit_) << '\n' << std::flush;
      std::_Exit(2);
    }
    if (elapsed < next_line) continue;
    const std::string estimated = estimate_ > 0.0 ? " of about " + seconds_text(estimate_) + " s estimated" : "";
    const std::string line = "stretto-plan: " + what_ + ": " + format_number(std::floor(elapsed)) + " s elapsed" +
                             estimated + " (--time-limit " + format_number(limit_) + " s)";
    if (terminal_) {
      std::cerr << "\r\033[K" << line << std::flush;
      live_line_ = true;
      next_line = std::floor(elapsed) + 1.0;
    } else {
      std::cerr << line << '\n' << std::flush;
      next_line = std::floor(elapsed) + 5.0;
    }
  }
}

}  // namespace stretto_plan
