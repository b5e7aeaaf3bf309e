#pragma once
// Small hand-made SkipPipe settings shared by the skippipe tests.
#include <cstdint>
#include <vector>

#include <stretto/skippipe/setting.hpp>

namespace skippipe_test {

/**
A line of `stages` stages with one node each (node k serves stage k), forward time w_k given,
every hop costing `hop` (latency only, no activation bytes).
*/
inline stretto::skippipe::setting line(const std::vector<double>& compute, double hop) {
  stretto::skippipe::setting s;
  const auto n = compute.size();
  s.compute = compute;
  s.latency.assign(n, std::vector<double>(n, hop));
  s.bandwidth.assign(n, std::vector<double>(n, 1.0));
  for (std::size_t k = 0; k < n; ++k) {
    s.latency[k][k] = 0.0;
    s.stages.push_back({static_cast<std::int32_t>(k)});
  }
  s.activation_bytes = 0.0;
  return s;
}

}  // namespace skippipe_test
