#pragma once
/**
@file
@brief The `--costs FILE` reader of `stretto-plan`: per-stage costs as one strict JSON object.
Kept apart so that the fuzz harness (`test/fuzz/fuzz_costs_file.cpp`) drives the same parser.
*/

#include <stdexcept>
#include <string>
#include <string_view>

#include <stretto/core/shape.hpp>
#include <stretto/sim/cost_model.hpp>

namespace stretto_plan {

/**
@brief A file could not be read (it exists and is a regular file, but reading it failed).
`stretto-plan` reports it on one line and exits with status 1 (I/O), not 2 (bad input).
*/
struct io_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/**
@brief Parses per-stage costs from the JSON text `text` for a pipeline of `shape`; `where`
starts every error message (e.g. "--costs file.json: ").

The text is one object and nothing else (only white space may follow it), with no key given
twice. Its keys are `stage_costs`' fields: `forward`, `backward_input`, `backward_weight`
(required), `latency`, `bandwidth`, `activation_bytes`, `gradient_bytes`, `activation_memory`,
`weight_gradient_memory`, `parameter_memory` (M_θ per stage), `optimizer_time`, `synchronised_optimizer`, `sync_latency`,
`overlapped_fb` (optional; `t_overlapped_fb`, the time of one overlapped F&B pair of DualPipe,
per chunk like the other times; absent: F + B). A per-stage field is an array of p·v numbers (one
per stage of the model, i.e. per chunk when v > 1, no division by v) or one number for every
stage; `optimizer_time` has one entry per rank. Every number is finite and ≥ 0.
@code{.json}
{"forward": [18.5, 18.5, 19.0, 18.5], "backward_input": 18.1, "backward_weight": 9.3, "latency": 0.6}
@endcode
@throws stretto::argument_error naming the rule broken (bad JSON with its position, text after
the object, a repeated or unknown key, a wrong length, a bad number).
*/
stretto::sim::stage_costs parse_costs(std::string_view text, const stretto::pipeline_shape& shape,
                                      const std::string& where);

/**
@brief Reads the file `path` and parses it with `parse_costs`.
@throws stretto::argument_error when `path` does not exist or is not a regular file (a directory,
a device), or for any rule of `parse_costs`; io_error when reading it fails.
*/
stretto::sim::stage_costs read_costs_file(const std::string& path, const stretto::pipeline_shape& shape);

}  // namespace stretto_plan
