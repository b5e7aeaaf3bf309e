#pragma once
/**
@file
@brief `--time-limit SECONDS`: how long `stretto-plan` may plan and simulate. A shape whose
estimated work exceeds the limit is refused before any work starts (`check_planning_time`); a
plan that runs out of time anyway stops at the planners' deadline (`stretto::plan::deadline`) or,
for work that does not check a deadline, at the watchdog of `progress_reporter`. Long runs show
their progress on stderr.
*/

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <stretto/core/errors.hpp>
#include <stretto/core/shape.hpp>

namespace stretto_plan {

/** @brief `--time-limit`'s default, in seconds. */
inline constexpr double default_time_limit = 60.0;

/**
@brief Returns the number of seconds `text` gives to `--time-limit`.
@throws stretto::argument_error unless `text` is a finite number > 0 (e.g. "60", "0.5").
*/
double parse_time_limit(const std::string& text);

/**
@brief The estimated wall time, in seconds on one core of a 2-core build machine, to generate or
plan, validate and simulate `schedule` (a policy or automatic schedule name) at `shape`, and to
write its report. The work model per policy and its calibration are in time_limit.cpp.
*/
double estimate_seconds(std::string_view schedule, const stretto::pipeline_shape& shape);

/**
@brief Refuses, before any work, a request whose estimated time exceeds `limit` seconds.
@param schedules the schedules the command would plan with their shapes (`compare`: every row).
@param what the command's subject for the message, e.g. "zb-v" or "compare".
@throws stretto::argument_error naming the limit, the estimate and a valid alternative: the most
microbatches (or ranks) that fit in the limit, and the limit that would fit the shape.
*/
void check_planning_time(std::string_view what, const std::string_view* schedules,
                         const stretto::pipeline_shape* shapes, std::size_t count, double limit);

/** @brief The message of a plan that ran out of time (`stretto::deadline_exceeded`). */
std::string time_limit_message(std::string_view what, double limit);

/**
@brief While alive, shows the progress of a long run on stderr and ends the program when it runs
well past the limit.

Nothing is printed during the first second (so short runs print nothing). Then, once a second,
a line `stretto-plan: <what>: 3 s elapsed of about 10 s estimated (--time-limit 60 s)` (without
the estimate when `estimate` is 0, i.e. unknown): rewritten
in place (`\r`) when stderr is a terminal, else a plain line (at 1 s, then every 5 s). If the run
is still going one second after the limit (work that checks no deadline, such as generating or
simulating a very large schedule), it prints the one-line error of `time_limit_message` and ends
the process with exit status 2. The destructor stops the thread and clears a live line.
*/
class progress_reporter {
 public:
  progress_reporter(std::string what, double estimate, double limit);
  ~progress_reporter();
  progress_reporter(const progress_reporter&) = delete;
  progress_reporter& operator=(const progress_reporter&) = delete;

 private:
  void watch();

  std::string what_;
  double estimate_;
  double limit_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_{false};
  bool live_line_{false};
  std::thread thread_;
};

/**
@brief Runs `work()` with a `progress_reporter` and returns its result; a planner that stops at
its deadline (`stretto::deadline_exceeded`) becomes the one-line argument error of
`time_limit_message`.
*/
template <class Work>
auto within_time_limit(const std::string& what, double estimate, double limit, Work&& work) {
  try {
    progress_reporter progress(what, estimate, limit);
    return work();
  } catch (const stretto::deadline_exceeded&) {
    throw stretto::argument_error(time_limit_message(what, limit));
  }
}

}  // namespace stretto_plan
