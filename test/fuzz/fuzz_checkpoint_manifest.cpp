/**
@file
@brief Fuzz harness of the checkpoint manifest reader (`stretto::io::parse_manifest`).

Any input must either parse or be refused with `stretto::io::checkpoint_error`; a manifest that
parses must read back unchanged from the text `manifest_text` writes for it. Anything else
(another exception, a crash, a sanitizer report, a hang, a round trip that differs) is a bug.
Built two ways, like the other harnesses (test/fuzz/CMakeLists.txt): under libFuzzer from the
seed corpus `test/fuzz/corpus/checkpoint_manifest`, and with `replay_main.cpp` over that corpus
and `test/fuzz/regressions/checkpoint_manifest/`.
*/

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <stretto/io/checkpoint.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  stretto::io::checkpoint_manifest manifest;
  try {
    manifest = stretto::io::parse_manifest(text, "fuzz");
  } catch (const stretto::io::checkpoint_error&) {
    return 0;  // refused with a message: the expected outcome for bad input
  }
  // What was read is written back and read again unchanged.
  const std::string again = stretto::io::manifest_text(manifest);
  if (!(stretto::io::parse_manifest(again, "fuzz (written back)") == manifest)) std::abort();
  return 0;
}
