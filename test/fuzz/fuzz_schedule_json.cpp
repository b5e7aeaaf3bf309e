/**
@file
@brief Fuzz harness of the schedule-file reader `stretto::io::read_json` (`stretto-plan --schedule-file`).

Any input must either give a valid schedule or be refused with `stretto::io::format_error`;
anything else (another exception, a crash, a sanitizer report, a hang) is a bug. Built with
libFuzzer (STRETTO_BUILD_FUZZERS) and with `replay_main.cpp`, as `fuzz_costs_file.cpp` is.
*/

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <stretto/io/schedule_json.hpp>
#include <stretto/validate/validate.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const stretto::schedule s = stretto::io::read_json(text, "fuzz");
    // What the reader accepts is a valid schedule.
    if (!stretto::validate(s)) __builtin_trap();
  } catch (const stretto::io::format_error&) {
    // refused with a message: the expected outcome for bad input
  }
  return 0;
}
