/**
@file
@brief Fuzz harness of `stretto-plan`'s cost-file reader (`stretto_plan::parse_costs`).

Any input must either parse or be refused with `stretto::argument_error`; anything else (another
exception, a crash, a sanitizer report, a hang) is a bug. Built two ways:
- with clang's libFuzzer (`-fsanitize=fuzzer,address,undefined`, option STRETTO_BUILD_FUZZERS):
  `fuzz_costs_file test/fuzz/corpus/costs_file -max_total_time=60` explores from the seed corpus;
- with any compiler and `replay_main.cpp`: ctest runs every file of the corpus and of
  `test/fuzz/regressions/costs_file/` (each crash found becomes a file there) through it.
*/

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <stretto/core/errors.hpp>

#include "../../tools/stretto-plan/costs_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // Shapes with one and several chunks and ranks, so that per-stage and per-rank lengths vary.
  for (const stretto::pipeline_shape shape : {stretto::pipeline_shape{4, 8, 1}, stretto::pipeline_shape{2, 3, 2},
                                              stretto::pipeline_shape{1, 1, 1}}) {
    try {
      const auto costs = stretto_plan::parse_costs(text, shape, "fuzz: ");
      (void)costs;
    } catch (const stretto::argument_error&) {
      // refused with a message: the expected outcome for bad input
    }
  }
  return 0;
}
