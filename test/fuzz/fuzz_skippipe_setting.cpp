/**
@file
@brief Fuzz harness of the SkipPipe setting reader `stretto::io::read_skippipe_setting`
(`stretto-plan skippipe --setting`).

Any input must either give a setting that passes `setting::check` or be refused with
`stretto::io::format_error`; anything else (another exception, a crash, a sanitizer report, a
hang) is a bug. Built with libFuzzer (STRETTO_BUILD_FUZZERS) and with `replay_main.cpp`, as
`fuzz_schedule_json.cpp` is.
*/

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <stretto/io/skippipe_setting.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const stretto::skippipe::setting s = stretto::io::read_skippipe_setting(text, "fuzz");
    // What the reader accepts is a valid setting: check() does not throw, every node has a stage.
    s.check();
    for (std::int32_t n = 0; n < s.num_nodes(); ++n)
      if (s.stage_of(n) < 0) __builtin_trap();
  } catch (const stretto::io::format_error&) {
    // refused with a message: the expected outcome for bad input
  }
  return 0;
}
